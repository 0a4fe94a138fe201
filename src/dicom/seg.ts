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
import { variantLabel } from "../core/contract.ts";
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
import { channelsOf, keepOneFrame, packBinary, type Plan, plan } from "./seg_frames.ts";

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
 * "EdgeSeg <model name>", and ", variant int8 (INT8)" when a variant ran: the study browser then tells
 * a SEG of the INT8 file from one of the main model. SeriesDescription is LO (64 characters); the
 * model name gives way, never the variant.
 */
export function segSeriesDescription(provenance: ProvenanceLike | undefined): string {
  const name = String(provenance?.modelName ?? "segmentation");
  const variant = provenance ? variantLabel(provenance) : undefined;
  if (!variant) return `EdgeSeg ${name}`;
  const suffix = `, ${variant}`;
  const room = 64 - "EdgeSeg ".length - suffix.length;
  return `EdgeSeg ${name.length <= room ? name : `${name.slice(0, room - 1).trimEnd()}…`}${suffix}`;
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
      seriesDescription: segSeriesDescription(input.provenance),
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
