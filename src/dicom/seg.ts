/**
 * DICOM Segmentation writer on dcmjs's dataset layer (not dcmjs.derivations.Segmentation, which
 * renumbers segments and maps masks to sorted frames). One constructor validates everything up front
 * (ConformanceError naming attribute, expected, found), then builds the dataset, then packs pixels
 * straight into the output buffer.
 *
 * - BINARY (default): Segmentation Storage, 1-bit frames packed contiguously across frames (PS3.5 8.1.1:
 *   LSB first, no padding between frames), one frame per (segment, slice), empty frames omitted.
 * - LABELMAP: Label Map Segmentation Storage (…66.7, Sup 243), one 8- or 16-bit frame per slice whose
 *   values are segment numbers; segment 0 "Background" describes the zero pixels.
 * - FRACTIONAL: PROBABILITY, 8-bit, MaximumFractionalValue 255, one frame per (segment, slice).
 */
import { ConformanceError } from "../core/errors.ts";
import type { Labelmap, SegmentDescription } from "../core/types.ts";
import { codeItem, Codes } from "./codes.ts";
import { srgbToDicomLab } from "./color.ts";
import {
  checkPositiveInt,
  type CommonOptions,
  derivationImage,
  equipment,
  type ProvenanceLike,
  sameGrid,
  type SourceSeries,
  validateSource,
} from "./common.ts";
import { allocateWithPixelElement, type NaturalizedDataset, SopClass } from "./dataset.ts";
import {
  derivedFromSource,
  multiFrameDimensions,
  planePosition,
  POSITION_DIMENSION,
  SEGMENT_DIMENSION,
  seriesAndContent,
  sharedGeometryGroups,
} from "./macros.ts";
import { writeWithTrailingSequence } from "./encode.ts";
import { dicomDateTime, newUid } from "./uid.ts";

export type SegmentationType = "BINARY" | "LABELMAP" | "FRACTIONAL";

export interface SegmentationWriteOptions extends CommonOptions {
  type?: SegmentationType;
  /**
   * FRACTIONAL: probabilities 0..255, one channel per segment in the order of `segments` (as
   * ProbabilityMaps holds them in label order), planar like Volume
   */
  fractional?: { data: Uint8Array; channels: number };
  /** leave out frames with no segment pixel (default true) */
  omitEmptyFrames?: boolean;
}

export interface SegmentationWriteInput {
  source: SourceSeries;
  labelmap: Labelmap;
  /** default: labelmap.segments */
  segments?: SegmentDescription[];
  provenance?: ProvenanceLike;
  options?: SegmentationWriteOptions;
}

const ALGORITHM_TYPES = new Set(["AUTOMATIC", "SEMIAUTOMATIC", "MANUAL"]);

function validateSegments(segments: SegmentDescription[], maxNumber: number): void {
  if (segments.length === 0) {
    throw new ConformanceError("NO_SEGMENTS", "SegmentSequence: expected at least one segment, found none");
  }
  const seen = new Set<number>();
  for (const s of segments) {
    const where = `SegmentSequence item ${s.number}`;
    if (!Number.isInteger(s.number) || s.number < 1 || s.number > maxNumber) {
      throw new ConformanceError(
        "BAD_SEGMENT_NUMBER",
        `${where}: expected SegmentNumber an integer 1..${maxNumber}, found ${s.number}`,
      );
    }
    if (seen.has(s.number)) {
      throw new ConformanceError(
        "DUPLICATE_SEGMENT_NUMBER",
        `${where}: expected unique SegmentNumber, found it twice`,
      );
    }
    seen.add(s.number);
    if (!s.label || s.label.length > 64) {
      throw new ConformanceError(
        "BAD_SEGMENT_LABEL",
        `${where}: expected SegmentLabel of 1..64 characters, found ${JSON.stringify(s.label)}`,
      );
    }
    if (!ALGORITHM_TYPES.has(s.algorithmType)) {
      throw new ConformanceError(
        "BAD_ALGORITHM_TYPE",
        `${where}: expected SegmentAlgorithmType AUTOMATIC, SEMIAUTOMATIC or MANUAL, found ${s.algorithmType}`,
      );
    }
    for (
      const [name, code] of [["SegmentedPropertyCategoryCodeSequence", s.category], [
        "SegmentedPropertyTypeCodeSequence",
        s.type,
      ]] as const
    ) {
      if (!code || !code.value || !code.scheme || !code.meaning) {
        throw new ConformanceError(
          "BAD_CODE",
          `${where} ${name}: expected CodeValue, CodingSchemeDesignator and CodeMeaning, found ${
            JSON.stringify(code)
          }`,
        );
      }
      if (code.scheme === "SRT") {
        throw new ConformanceError(
          "DEPRECATED_SCHEME",
          `${where} ${name}: expected SNOMED CT as "SCT", found the retired designator "SRT" (${code.value})`,
        );
      }
    }
    if (!Array.isArray(s.color) || s.color.length !== 3 || s.color.some((c) => !(c >= 0 && c <= 255))) {
      throw new ConformanceError(
        "BAD_COLOR",
        `${where}: expected an sRGB colour of three values 0..255, found ${JSON.stringify(s.color)}`,
      );
    }
  }
}

/**
 * PS3.3 C.8.20.2 requires SegmentNumber to start at 1 and increase by 1 (dciodvfy checks it), while
 * model labels may have gaps (1, 3, 7). So DICOM numbers are 1..n in ascending label order and the
 * label value is kept in AlgorithmParameters (`labelValue`), where readSegmentation finds it again.
 */
function segmentItem(
  s: SegmentDescription,
  dicomNumber: number,
  provenance: ProvenanceLike | undefined,
): NaturalizedDataset {
  const item: NaturalizedDataset = {
    SegmentNumber: dicomNumber,
    SegmentLabel: s.label,
    SegmentedPropertyCategoryCodeSequence: [codeItem(s.category)],
    SegmentedPropertyTypeCodeSequence: [codeItem(s.type)],
    SegmentAlgorithmType: s.algorithmType,
    RecommendedDisplayCIELabValue: srgbToDicomLab(s.color),
  };
  if (s.description) item.SegmentDescription = s.description.slice(0, 64);
  if (s.algorithmType !== "MANUAL") {
    const name = s.algorithmName ?? provenance?.modelName ?? provenance?.modelId ?? "EdgeSeg";
    const version = s.algorithmVersion ?? provenance?.modelVersion ?? "unknown";
    item.SegmentAlgorithmName = String(name).slice(0, 64);
    const algo: NaturalizedDataset = {
      AlgorithmFamilyCodeSequence: [codeItem(Codes.artificialIntelligence)],
      AlgorithmName: String(name).slice(0, 64),
      AlgorithmVersion: String(version).slice(0, 64),
    };
    algo.AlgorithmParameters = JSON.stringify({
      labelValue: s.number,
      ...(provenance ? { provenance } : {}),
    });
    if ((algo.AlgorithmParameters as string).length > 10240) {
      throw new ConformanceError(
        "VALUE_TOO_LONG",
        `AlgorithmParameters (LT): expected at most 10240 characters, found ${
          (algo.AlgorithmParameters as string).length
        }`,
      );
    }
    item.SegmentationAlgorithmIdentificationSequence = [algo];
  }
  return item;
}

interface Plan {
  type: SegmentationType;
  segments: SegmentDescription[];
  /** frames in file order: segment index (−1 for LABELMAP) and slice k */
  frames: { si: number; k: number }[];
  /** frameIndex[si * K + k] (BINARY/FRACTIONAL) or [k] (LABELMAP), −1 when omitted */
  frameIndex: Int32Array;
  bitsAllocated: 1 | 8 | 16;
}

/**
 * A segmentation without a single segment pixel is still a result ("no findings"), and a SEG needs at
 * least one frame: keep the first frame, empty, as highdicom does, so the SEG is valid and says that
 * every segment was looked for and none was found.
 */
function keepOneFrame(p: Plan, K: number): Plan {
  if (p.frames.length > 0 || K === 0 || p.segments.length === 0) return p;
  const si = p.type === "LABELMAP" ? -1 : 0;
  p.frames.push({ si, k: 0 });
  p.frameIndex[0] = 0;
  return p;
}

/** Scans the labelmap once: which segment occurs on which slice, and no undescribed values. */
function plan(input: SegmentationWriteInput, type: SegmentationType, segments: SegmentDescription[]): Plan {
  const [cols, rows, K] = input.source.geometry.dims;
  const P = cols * rows;
  const omit = input.options?.omitEmptyFrames ?? true;
  const nSeg = segments.length;
  const frames: { si: number; k: number }[] = [];
  if (type === "FRACTIONAL") {
    const f = input.options?.fractional!;
    const channel = channelsOf(input, segments);
    const present = new Uint8Array(nSeg * K);
    for (let si = 0; si < nSeg; si++) {
      for (let k = 0; k < K; k++) {
        const base = (channel[si] * K + k) * P;
        let any = 0;
        for (let i = 0; i < P && !any; i++) any = f.data[base + i];
        present[si * K + k] = any ? 1 : 0;
      }
    }
    const frameIndex = new Int32Array(nSeg * K).fill(-1);
    for (let si = 0; si < nSeg; si++) {
      for (let k = 0; k < K; k++) {
        if (omit && !present[si * K + k]) continue;
        frameIndex[si * K + k] = frames.length;
        frames.push({ si, k });
      }
    }
    return { type, segments, frames, frameIndex, bitsAllocated: 8 };
  }
  const lut = new Int32Array(65536).fill(-1);
  segments.forEach((s, si) => (lut[s.number] = si));
  const present = new Uint8Array(nSeg * K);
  const sliceAny = new Uint8Array(K);
  // one store per voxel: stamp[value] = slice + 1; presence and undescribed values are read off the
  // small stamp table afterwards (a branch on the lookup per voxel was 4× slower on 512²×300)
  const stamp = new Int32Array(65536);
  const everSeen = new Uint8Array(65536);
  scanSlices(input.labelmap.data, P, K, stamp, (k) => {
    for (let si = 0; si < nSeg; si++) {
      if (stamp[segments[si].number] === k + 1) {
        present[si * K + k] = 1;
        sliceAny[k] = 1;
      }
    }
  }, everSeen);
  for (let v = 1; v < 65536; v++) {
    if (everSeen[v] && lut[v] < 0) {
      throw new ConformanceError(
        "UNDESCRIBED_LABEL",
        `labelmap: expected only values 0 and the segment numbers (${
          segments.map((s) => s.number).join(", ")
        }), found ${v}`,
      );
    }
  }
  if (type === "LABELMAP") {
    const frameIndex = new Int32Array(K).fill(-1);
    for (let k = 0; k < K; k++) {
      if (omit && !sliceAny[k]) continue;
      frameIndex[k] = frames.length;
      frames.push({ si: -1, k });
    }
    // pixel values are the DICOM segment numbers 1..n (see segmentItem)
    return { type, segments, frames, frameIndex, bitsAllocated: nSeg > 255 ? 16 : 8 };
  }
  const frameIndex = new Int32Array(nSeg * K).fill(-1);
  for (let si = 0; si < nSeg; si++) {
    for (let k = 0; k < K; k++) {
      if (omit && !present[si * K + k]) continue;
      frameIndex[si * K + k] = frames.length;
      frames.push({ si, k });
    }
  }
  return { type, segments, frames, frameIndex, bitsAllocated: 1 };
}

/** Writes a DICOM Segmentation (Part 10, Explicit VR Little Endian). */
export function writeSegmentation(input: SegmentationWriteInput): Uint8Array {
  const options = input.options ?? {};
  const type = options.type ?? "BINARY";
  if (type !== "BINARY" && type !== "LABELMAP" && type !== "FRACTIONAL") {
    throw new ConformanceError(
      "BAD_OPTION",
      `SegmentationType: expected BINARY, LABELMAP or FRACTIONAL, found ${type}`,
    );
  }
  const { source, labelmap } = input;
  validateSource(source, "Segmentation");
  const segments = [...(input.segments ?? labelmap.segments)].sort((a, b) => a.number - b.number);
  validateSegments(segments, 65535);
  checkPositiveInt("SeriesNumber", options.seriesNumber, 2147483647);
  checkPositiveInt("InstanceNumber", options.instanceNumber, 2147483647);
  if (!sameGrid(labelmap.geometry, source.geometry)) {
    throw new ConformanceError(
      "GEOMETRY_MISMATCH",
      `labelmap: expected the source grid ${JSON.stringify(source.geometry)}, found ${
        JSON.stringify(labelmap.geometry)
      }`,
    );
  }
  const [cols, rows, K] = source.geometry.dims;
  const P = cols * rows;
  if (labelmap.data.length !== P * K) {
    throw new ConformanceError(
      "BAD_LABELMAP",
      `labelmap: expected ${P * K} voxels, found ${labelmap.data.length}`,
    );
  }
  if (type === "FRACTIONAL") {
    const f = options.fractional;
    if (!f || f.channels !== segments.length || f.data.length !== P * K * f.channels) {
      throw new ConformanceError(
        "BAD_FRACTIONAL",
        `fractional: expected ${segments.length} channels of ${P * K} probabilities (0..255), found ${
          f ? `${f.channels} channels, ${f.data.length} values` : "none"
        }`,
      );
    }
  }

  const p = keepOneFrame(plan(input, type, segments), K);
  const pixelBytes = type === "BINARY"
    ? Math.ceil((p.frames.length * P) / 8)
    : p.frames.length * P * (p.bitsAllocated / 8);
  if (pixelBytes > 0xfffffffd) {
    throw new ConformanceError(
      "TOO_LARGE",
      `PixelData: expected at most 4 GiB − 2, found ${pixelBytes} bytes`,
    );
  }

  const now = options.now ?? new Date();
  const { date, time } = dicomDateTime(now);
  const seriesUID = options.uids?.series ?? newUid();
  const instanceUID = options.uids?.instance ?? newUid();
  const dimOrgUID = options.uids?.dimensionOrganization ?? newUid();
  const g = source.geometry;

  const segItems = segments.map((s, si) => segmentItem(s, si + 1, input.provenance));
  if (type === "LABELMAP") {
    segItems.unshift({
      SegmentNumber: 0,
      SegmentLabel: "Background",
      SegmentedPropertyCategoryCodeSequence: [codeItem(Codes.spatialAndRelationalConcept)],
      SegmentedPropertyTypeCodeSequence: [codeItem(Codes.background)],
      SegmentAlgorithmType: "AUTOMATIC",
      SegmentAlgorithmName: segItems[0].SegmentAlgorithmName ?? "EdgeSeg",
      RecommendedDisplayCIELabValue: srgbToDicomLab([0, 0, 0]),
    });
  }

  const dimensions = type === "LABELMAP" ? [POSITION_DIMENSION] : [SEGMENT_DIMENSION, POSITION_DIMENSION];

  const perFrame = p.frames.map(({ si, k }) => {
    const fg: NaturalizedDataset = {
      DerivationImageSequence: derivationImage(source, k),
      FrameContentSequence: [{
        DimensionIndexValues: type === "LABELMAP" ? [k + 1] : [si + 1, k + 1],
      }],
      PlanePositionSequence: planePosition(g, k),
    };
    if (type !== "LABELMAP") fg.SegmentIdentificationSequence = [{ ReferencedSegmentNumber: si + 1 }];
    return fg;
  });

  const dataset: NaturalizedDataset = {
    SpecificCharacterSet: "ISO_IR 192",
    ImageType: ["DERIVED", "PRIMARY"],
    InstanceCreationDate: date,
    InstanceCreationTime: time,
    SOPClassUID: type === "LABELMAP" ? SopClass.LabelmapSegmentation : SopClass.Segmentation,
    SOPInstanceUID: instanceUID,
    ContentDate: date,
    ContentTime: time,
    Modality: "SEG",
    ...derivedFromSource(source),
    ...equipment(options, input.provenance, now),
    SeriesInstanceUID: seriesUID,
    ...seriesAndContent(options, {
      seriesNumber: 9901,
      seriesDescription: `EdgeSeg ${input.provenance?.modelName ?? "segmentation"}`,
      contentDescription: "AI segmentation (research use, not for diagnosis)",
    }),
    ContentLabel: sanitizeCs(options.contentLabel ?? "EDGESEG"),
    SamplesPerPixel: 1,
    PhotometricInterpretation: "MONOCHROME2",
    Rows: rows,
    Columns: cols,
    BitsAllocated: p.bitsAllocated,
    BitsStored: p.bitsAllocated,
    HighBit: p.bitsAllocated - 1,
    PixelRepresentation: 0,
    LossyImageCompression: "00",
    SegmentationType: type,
    SegmentSequence: segItems,
    NumberOfFrames: p.frames.length,
    SharedFunctionalGroupsSequence: [sharedGeometryGroups(source)],
    ...multiFrameDimensions(dimOrgUID, dimensions),
  };
  if (type === "FRACTIONAL") {
    dataset.SegmentationFractionalType = "PROBABILITY";
    dataset.MaximumFractionalValue = 255;
  }
  if (type !== "LABELMAP") dataset.SegmentsOverlap = type === "BINARY" ? "NO" : "UNDEFINED";
  else dataset.SegmentsOverlap = "NO";

  // dcmjs writes the dataset; the per-frame sequence (5200,9230), the highest tag before the pixel
  // data, is appended by the fast encoder (see encode.ts for the measured reason)
  const head = writeWithTrailingSequence(dataset, "PerFrameFunctionalGroupsSequence", perFrame);
  const { file, value } = allocateWithPixelElement(
    head,
    "PixelData",
    p.bitsAllocated === 16 ? "OW" : "OB",
    pixelBytes,
  );
  fillPixels(value, input, p, P, K);
  return file;
}

/**
 * A Uint32 view over the labelmap so the hot loops can skip 4 (8-bit) or 2 (16-bit) background
 * voxels with one load: labelmaps are mostly zero, and this halves the time of both passes.
 */
function zeroWords(
  data: Uint8Array | Uint16Array,
  P: number,
): { words: Uint32Array; perWord: number } | undefined {
  const perWord = 4 / data.BYTES_PER_ELEMENT;
  if (data.byteOffset % 4 !== 0 || P % perWord !== 0) return undefined;
  return { words: new Uint32Array(data.buffer, data.byteOffset, data.length / perWord), perWord };
}

function scanSlices(
  data: Uint8Array | Uint16Array,
  P: number,
  K: number,
  stamp: Int32Array,
  afterSlice: (k: number) => void,
  everSeen: Uint8Array,
): void {
  const z = zeroWords(data, P);
  for (let k = 0; k < K; k++) {
    const base = k * P, mark = k + 1;
    if (z) {
      const { words, perWord } = z;
      const w0 = base / perWord, w1 = (base + P) / perWord;
      for (let w = w0; w < w1; w++) {
        if (words[w] === 0) continue;
        const i0 = w * perWord;
        for (let j = 0; j < perWord; j++) stamp[data[i0 + j]] = mark;
      }
    } else {
      for (let i = 0; i < P; i++) stamp[data[base + i]] = mark;
    }
    stamp[0] = 0;
    afterSlice(k);
  }
  for (let v = 1; v < 65536; v++) if (stamp[v] !== 0) everSeen[v] = 1;
}

function packBinary(
  data: Uint8Array | Uint16Array,
  out: Uint8Array,
  valueToSlot: Int32Array,
  frameIndex: Int32Array,
  nSeg: number,
  P: number,
  K: number,
): void {
  // per slice, the first bit of each segment's frame; slot 0 is background and never written
  const bitBase = new Float64Array(nSeg + 1);
  const small = (frameIndex.reduce((m, f) => Math.max(m, f), 0) + 1) * P < 2 ** 31;
  const z = small ? zeroWords(data, P) : undefined;
  for (let k = 0; k < K; k++) {
    for (let si = 0; si < nSeg; si++) bitBase[si + 1] = frameIndex[si * K + k] * P;
    const off = k * P;
    if (z) {
      const { words, perWord } = z;
      const w0 = off / perWord, w1 = (off + P) / perWord;
      for (let w = w0; w < w1; w++) {
        if (words[w] === 0) continue;
        const i0 = w * perWord;
        for (let j = 0; j < perWord; j++) {
          const v = data[i0 + j];
          if (v === 0) continue;
          const b = (bitBase[valueToSlot[v]] + i0 + j - off) | 0;
          out[b >>> 3] |= 1 << (b & 7);
        }
      }
    } else if (small) {
      for (let i = 0; i < P; i++) {
        const v = data[off + i];
        if (v === 0) continue;
        const b = (bitBase[valueToSlot[v]] + i) | 0;
        out[b >>> 3] |= 1 << (b & 7);
      }
    } else {
      for (let i = 0; i < P; i++) {
        const v = data[off + i];
        if (v === 0) continue;
        const b = bitBase[valueToSlot[v]] + i;
        out[Math.floor(b / 8)] |= 1 << (b % 8);
      }
    }
  }
}

function sanitizeCs(s: string): string {
  return s.toUpperCase().replace(/[^A-Z0-9_ ]/g, "_").slice(0, 16);
}

function fillPixels(out: Uint8Array, input: SegmentationWriteInput, p: Plan, P: number, K: number): void {
  const data = input.labelmap.data;
  if (p.type === "BINARY") {
    // one pass over the labelmap; every foreground voxel sets one bit in its (segment, slice) frame
    const valueToSlot = new Int32Array(65536);
    p.segments.forEach((s, si) => (valueToSlot[s.number] = si + 1));
    packBinary(data, out, valueToSlot, p.frameIndex, p.segments.length, P, K);
    return;
  }
  if (p.type === "LABELMAP") {
    if (p.segments.some((s, si) => s.number !== si + 1)) {
      // label values with gaps: map to the consecutive DICOM numbers voxel by voxel
      const lut = new Uint16Array(65536);
      p.segments.forEach((s, si) => (lut[s.number] = si + 1));
      const wide = p.bitsAllocated === 16;
      p.frames.forEach(({ k }, fi) => {
        for (let i = 0; i < P; i++) {
          const v = lut[data[k * P + i]];
          if (wide) {
            out[2 * (fi * P + i)] = v & 0xff;
            out[2 * (fi * P + i) + 1] = v >> 8;
          } else out[fi * P + i] = v;
        }
      });
      return;
    }
    if (p.bitsAllocated === 16 && out.byteOffset % 2 !== 0) {
      // cannot view an odd offset as Uint16: write bytes
      p.frames.forEach(({ k }, fi) => {
        for (let i = 0; i < P; i++) {
          const v = data[k * P + i];
          out[2 * (fi * P + i)] = v & 0xff;
          out[2 * (fi * P + i) + 1] = v >> 8;
        }
      });
      return;
    }
    const view16 = p.bitsAllocated === 16
      ? new Uint16Array(out.buffer, out.byteOffset, out.byteLength / 2)
      : undefined;
    p.frames.forEach(({ k }, fi) => {
      const slice = data.subarray(k * P, (k + 1) * P);
      if (view16) view16.set(slice, fi * P);
      else out.set(slice, fi * P);
    });
    return;
  }
  const f = input.options!.fractional!;
  const channel = channelsOf(input, p.segments);
  p.frames.forEach(({ si, k }, fi) =>
    out.set(f.data.subarray((channel[si] * K + k) * P, (channel[si] * K + k + 1) * P), fi * P)
  );
}

/**
 * FRACTIONAL channels follow the caller's segment order (the manifest's label order); frames follow
 * ascending segment number. channel[si] = the caller's index of sorted segment si.
 */
function channelsOf(input: SegmentationWriteInput, sorted: SegmentDescription[]): number[] {
  const order = input.segments ?? input.labelmap.segments;
  return sorted.map((s) => order.findIndex((o) => o.number === s.number));
}
