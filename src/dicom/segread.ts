/**
 * Readers for DICOM Segmentation (BINARY, FRACTIONAL, LABELMAP) and Parametric Map: frames are mapped
 * back onto a target grid by ReferencedSOPInstanceUID (and frame number), or else by plane position.
 * They return the same SegmentDescription the writer takes, so round-trip tests compare them directly.
 */
import { InputError } from "../core/errors.ts";
import type {
  AlgorithmType,
  Geometry,
  Labelmap,
  SegmentDescription,
  SourceInstanceRef,
  Vec3,
} from "../core/types.ts";
import { codeFromItem } from "./codes.ts";
import { dicomLabToSrgb } from "./color.ts";
import { type FrameInfo, isEncapsulated } from "./codecs.ts";
import {
  item,
  type NaturalizedDataset,
  num,
  nums,
  parseDicom,
  pixelBuffers,
  seq,
  SopClass,
  str,
} from "./dataset.ts";
import { frameInfoOf, readFrames } from "./frames.ts";

export interface ReadTarget {
  geometry: Geometry;
  /** per slice k (Volume.source.instances): lets frames map by SOP Instance UID */
  refs?: SourceInstanceRef[];
}

export interface SegmentationRead {
  type: "BINARY" | "FRACTIONAL" | "LABELMAP";
  sopInstanceUID: string;
  seriesInstanceUID: string;
  frameOfReferenceUID?: string;
  referencedSeriesUID?: string;
  /** in SegmentSequence order, background (LABELMAP value 0) left out */
  segments: SegmentDescription[];
  /** non-zero pixels per segment (by label value), counted over the frames before any mapping */
  counts: Record<number, number>;
  /** the grid the frames were mapped to (the target's, or one derived from the SEG's positions) */
  geometry?: Geometry;
  /** label values on the grid; where segments overlap the later segment wins (see `overlapVoxels`) */
  labelmap?: Labelmap;
  overlapVoxels: number;
  /** FRACTIONAL: stored values per segment channel (segments order), planar; max = MaximumFractionalValue */
  fractional?: { data: Uint8Array; channels: number; maxValue: number };
}

interface Frame {
  /** segment label value (BINARY/FRACTIONAL) or −1 (LABELMAP) */
  label: number;
  ref?: SourceInstanceRef;
  position?: Vec3;
}

const dot = (a: number[], b: number[]) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];

function segmentOf(s: NaturalizedDataset): { dicomNumber: number; desc: SegmentDescription } {
  const dicomNumber = num(s, "SegmentNumber") ?? 0;
  const algo = item(s, "SegmentationAlgorithmIdentificationSequence");
  let labelValue = dicomNumber;
  const params = str(algo, "AlgorithmParameters");
  if (params) {
    try {
      const parsed: unknown = JSON.parse(params);
      if (parsed && typeof parsed === "object" && "labelValue" in parsed) {
        const v = (parsed as { labelValue: unknown }).labelValue;
        if (typeof v === "number" && Number.isInteger(v) && v > 0) labelValue = v;
      }
    } catch { /* parameters of another writer: free text */ }
  }
  const lab = nums(s, "RecommendedDisplayCIELabValue");
  const desc: SegmentDescription = {
    number: labelValue,
    label: str(s, "SegmentLabel") ?? "",
    category: codeFromItem(item(s, "SegmentedPropertyCategoryCodeSequence")) ??
      { value: "", scheme: "", meaning: "" },
    type: codeFromItem(item(s, "SegmentedPropertyTypeCodeSequence")) ??
      { value: "", scheme: "", meaning: "" },
    color: lab && lab.length === 3 ? dicomLabToSrgb([lab[0], lab[1], lab[2]]) : [128, 128, 128],
    algorithmType: (str(s, "SegmentAlgorithmType") ?? "MANUAL") as AlgorithmType,
  };
  const name = str(s, "SegmentAlgorithmName");
  if (name) desc.algorithmName = name;
  const version = str(algo, "AlgorithmVersion");
  if (version) desc.algorithmVersion = version;
  const d = str(s, "SegmentDescription");
  if (d) desc.description = d;
  return { dicomNumber, desc };
}

function framesOf(ds: NaturalizedDataset, dicomToLabel: Map<number, number>, type: string): Frame[] {
  const n = num(ds, "NumberOfFrames") ?? 1;
  const shared = item(ds, "SharedFunctionalGroupsSequence");
  const perFrame = seq(ds, "PerFrameFunctionalGroupsSequence");
  const out: Frame[] = [];
  for (let f = 0; f < n; f++) {
    const pf = perFrame[f];
    const pick = (key: string) => item(pf, key) ?? item(shared, key);
    let label = -1;
    if (type !== "LABELMAP") {
      const dn = num(pick("SegmentIdentificationSequence"), "ReferencedSegmentNumber");
      if (dn === undefined) {
        throw new InputError(
          "MISSING_ATTRIBUTE",
          `frame ${f + 1}: expected SegmentIdentificationSequence > ReferencedSegmentNumber, found none`,
        );
      }
      label = dicomToLabel.get(dn) ?? dn;
    }
    const src = item(pick("DerivationImageSequence"), "SourceImageSequence");
    const ref = src && str(src, "ReferencedSOPInstanceUID")
      ? {
        sopClassUID: str(src, "ReferencedSOPClassUID") ?? "",
        sopInstanceUID: str(src, "ReferencedSOPInstanceUID")!,
        ...(num(src, "ReferencedFrameNumber") !== undefined
          ? { frame: num(src, "ReferencedFrameNumber") }
          : {}),
      }
      : undefined;
    const pos = nums(pick("PlanePositionSequence"), "ImagePositionPatient");
    out.push({ label, ref, position: pos && pos.length === 3 ? [pos[0], pos[1], pos[2]] : undefined });
  }
  return out;
}

/** A grid from the SEG's own positions, for SEGs read without their source series. */
function gridFromPositions(ds: NaturalizedDataset, frames: Frame[]): Geometry | undefined {
  const shared = item(ds, "SharedFunctionalGroupsSequence");
  const perFrame0 = seq(ds, "PerFrameFunctionalGroupsSequence")[0];
  const ori = nums(
    item(perFrame0, "PlaneOrientationSequence") ?? item(shared, "PlaneOrientationSequence"),
    "ImageOrientationPatient",
  );
  const measures = item(shared, "PixelMeasuresSequence") ?? item(perFrame0, "PixelMeasuresSequence");
  const ps = nums(measures, "PixelSpacing") ?? [1, 1];
  if (!ori || ori.length !== 6 || frames.some((f) => !f.position)) return undefined;
  const normal: Vec3 = [
    ori[1] * ori[5] - ori[2] * ori[4],
    ori[2] * ori[3] - ori[0] * ori[5],
    ori[0] * ori[4] - ori[1] * ori[3],
  ];
  const unique: Vec3[] = [];
  for (const f of frames) {
    const d = dot(f.position!, normal);
    if (!unique.some((u) => Math.abs(dot(u, normal) - d) < 1e-3)) unique.push(f.position!);
  }
  unique.sort((a, b) => dot(a, normal) - dot(b, normal));
  const steps = unique.slice(1).map((p, i) => dot(p, normal) - dot(unique[i], normal));
  const step = steps.length
    ? Math.min(...steps)
    : num(measures, "SliceThickness") ?? num(measures, "SpacingBetweenSlices") ?? 1;
  const nSlices = steps.length
    ? Math.round((dot(unique[unique.length - 1], normal) - dot(unique[0], normal)) / step) + 1
    : 1;
  const cols = num(ds, "Columns") ?? 0, rows = num(ds, "Rows") ?? 0;
  // positions come from the file: refuse a grid that would need an absurd allocation
  if (!(nSlices >= 1 && nSlices <= 65536 && cols * rows * nSlices <= 2 ** 31)) {
    throw new InputError(
      "IRREGULAR_POSITIONS",
      `expected frame positions on a regular grid of at most 65536 slices, found ${unique.length} positions needing ${nSlices}`,
    );
  }
  return {
    dims: [cols, rows, nSlices],
    spacing: [ps[1], ps[0], step],
    origin: unique[0],
    direction: [ori[0], ori[3], normal[0], ori[1], ori[4], normal[1], ori[2], ori[5], normal[2]],
  };
}

function sliceIndexOf(frame: Frame, target: ReadTarget, byUid: Map<string, number>, f: number): number {
  if (frame.ref) {
    const k = byUid.get(`${frame.ref.sopInstanceUID}|${frame.ref.frame ?? ""}`) ??
      byUid.get(`${frame.ref.sopInstanceUID}|`);
    if (k !== undefined) return k;
  }
  if (!frame.position) {
    throw new InputError(
      "UNMAPPABLE_FRAME",
      `frame ${f + 1}: expected a source reference in the target or a PlanePositionSequence, found neither`,
    );
  }
  const g = target.geometry;
  const d = g.direction;
  const rel = [
    frame.position[0] - g.origin[0],
    frame.position[1] - g.origin[1],
    frame.position[2] - g.origin[2],
  ];
  // solve rel = kDir · spacing_k · k + in-plane offset: project on the normal of the i, j plane
  const normal = [d[3] * d[7] - d[6] * d[4], d[6] * d[1] - d[0] * d[7], d[0] * d[4] - d[3] * d[1]];
  const kStep = g.spacing[2] * (d[2] * normal[0] + d[5] * normal[1] + d[8] * normal[2]);
  const kf = dot(rel, normal) / kStep;
  const k = Math.round(kf);
  const expect = [
    g.origin[0] + d[2] * g.spacing[2] * k,
    g.origin[1] + d[5] * g.spacing[2] * k,
    g.origin[2] + d[8] * g.spacing[2] * k,
  ];
  const off = Math.hypot(
    frame.position[0] - expect[0],
    frame.position[1] - expect[1],
    frame.position[2] - expect[2],
  );
  if (
    k < 0 || k >= g.dims[2] ||
    off > Math.max(0.01, 0.05 * Math.min(g.spacing[0], g.spacing[1], Math.abs(g.spacing[2])))
  ) {
    throw new InputError(
      "FRAME_OFF_GRID",
      `frame ${f + 1}: expected its position on a slice of the target grid, found ${
        frame.position.join("\\")
      } (${off.toFixed(3)} mm off slice ${k})`,
    );
  }
  return k;
}

/** Unpacked 0/1 bytes for each BINARY frame (native: bit stream continuous across frames). */
async function binaryFrames(
  ds: NaturalizedDataset,
  ts: string,
  info: FrameInfo,
  nFrames: number,
): Promise<(f: number, out: Uint8Array) => void> {
  const P = info.rows * info.columns;
  if (!isEncapsulated(ts)) {
    const [bits] = pixelBuffers(ds);
    const need = Math.ceil((P * nFrames) / 8);
    if (!bits || bits.length < need) {
      throw new InputError(
        "PIXEL_DATA_LENGTH",
        `expected ${need} bytes of 1-bit pixel data, found ${bits?.length ?? 0}`,
      );
    }
    return (f, out) => {
      const base = f * P;
      for (let i = 0; i < P; i++) {
        const b = base + i;
        out[i] = (bits[b >>> 3] >> (b & 7)) & 1;
      }
    };
  }
  // encapsulated: every frame starts on a byte boundary (PS3.5 8.2)
  const decoded = await readFrames(ds, ts);
  return (f, out) => {
    const src = decoded[f];
    if (src.length >= P && src.length !== Math.ceil(P / 8)) {
      for (let i = 0; i < P; i++) out[i] = src[i] ? 1 : 0;
    } else {
      for (let i = 0; i < P; i++) out[i] = (src[i >>> 3] >> (i & 7)) & 1;
    }
  };
}

/** Reads a SEG and maps its frames onto `target` (or onto a grid built from its own positions). */
export async function readSegmentation(bytes: Uint8Array, target?: ReadTarget): Promise<SegmentationRead> {
  const { dataset: ds, transferSyntaxUID: ts } = parseDicom(bytes);
  const sop = str(ds, "SOPClassUID");
  if (sop !== SopClass.Segmentation && sop !== SopClass.LabelmapSegmentation) {
    throw new InputError(
      "NOT_SEGMENTATION",
      `expected a Segmentation SOP class (…66.4 or …66.7), found ${sop}`,
    );
  }
  const type = (str(ds, "SegmentationType") ?? "BINARY") as SegmentationRead["type"];
  if (type !== "BINARY" && type !== "FRACTIONAL" && type !== "LABELMAP") {
    throw new InputError(
      "BAD_SEGMENTATION_TYPE",
      `expected SegmentationType BINARY, FRACTIONAL or LABELMAP, found ${type}`,
    );
  }
  const dicomToLabel = new Map<number, number>();
  const segments: SegmentDescription[] = [];
  for (const s of seq(ds, "SegmentSequence")) {
    const { dicomNumber, desc } = segmentOf(s);
    dicomToLabel.set(dicomNumber, desc.number);
    if (type === "LABELMAP" && dicomNumber === 0) continue;
    segments.push(desc);
  }
  const info = frameInfoOf(ds);
  const P = info.rows * info.columns;
  const nFrames = num(ds, "NumberOfFrames") ?? 1;
  const frames = framesOf(ds, dicomToLabel, type);
  const geometry = target?.geometry ?? gridFromPositions(ds, frames);
  if (geometry && (geometry.dims[0] !== info.columns || geometry.dims[1] !== info.rows)) {
    throw new InputError(
      "GRID_MISMATCH",
      `expected SEG frames of the target size ${geometry.dims[0]}×${
        geometry.dims[1]
      }, found ${info.columns}×${info.rows}`,
    );
  }
  const effectiveTarget = geometry ? { geometry, refs: target?.refs } : undefined;
  const byUid = new Map<string, number>();
  target?.refs?.forEach((r, k) => {
    byUid.set(`${r.sopInstanceUID}|${r.frame ?? ""}`, k);
    if (!byUid.has(`${r.sopInstanceUID}|`)) byUid.set(`${r.sopInstanceUID}|`, k);
  });
  const K = geometry?.dims[2] ?? 0;
  const maxLabel = segments.reduce((m, s) => Math.max(m, s.number), 0);
  const labelData = geometry ? (maxLabel > 255 ? new Uint16Array(P * K) : new Uint8Array(P * K)) : undefined;
  const counts: Record<number, number> = {};
  for (const s of segments) counts[s.number] = 0;
  let overlapVoxels = 0;
  const frameBuf = new Uint8Array(P);

  if (type === "BINARY") {
    const unpack = await binaryFrames(ds, ts, info, nFrames);
    for (let f = 0; f < nFrames; f++) {
      unpack(f, frameBuf);
      const label = frames[f].label;
      let c = 0;
      for (let i = 0; i < P; i++) c += frameBuf[i];
      counts[label] = (counts[label] ?? 0) + c;
      if (labelData && effectiveTarget) {
        const base = sliceIndexOf(frames[f], effectiveTarget, byUid, f) * P;
        for (let i = 0; i < P; i++) {
          if (!frameBuf[i]) continue;
          if (labelData[base + i] !== 0 && labelData[base + i] !== label) overlapVoxels++;
          labelData[base + i] = label;
        }
      }
    }
  } else {
    const decoded = await readFrames(ds, ts);
    const channelOf = new Map(segments.map((s, c) => [s.number, c]));
    const maxValue = num(ds, "MaximumFractionalValue") ?? 255;
    const fractional = type === "FRACTIONAL" && geometry
      ? new Uint8Array(P * K * segments.length)
      : undefined;
    for (let f = 0; f < nFrames; f++) {
      const src = decoded[f];
      const values = info.bitsAllocated === 16
        ? new Uint16Array(src.buffer.slice(src.byteOffset, src.byteOffset + 2 * P))
        : src;
      const k = effectiveTarget ? sliceIndexOf(frames[f], effectiveTarget, byUid, f) : -1;
      const base = k * P;
      if (type === "LABELMAP") {
        for (let i = 0; i < P; i++) {
          const v = values[i];
          if (v === 0) continue;
          const label = dicomToLabel.get(v) ?? v;
          counts[label] = (counts[label] ?? 0) + 1;
          if (labelData && k >= 0) labelData[base + i] = label;
        }
      } else {
        const label = frames[f].label;
        const c = channelOf.get(label) ?? 0;
        let n = 0;
        for (let i = 0; i < P; i++) {
          const v = values[i];
          if (v === 0) continue;
          n++;
          if (fractional && k >= 0) fractional[(c * K + k) * P + i] = v;
          // the binary view of a probability: at least half the maximum
          if (labelData && k >= 0 && v * 2 >= maxValue) {
            if (labelData[base + i] !== 0 && labelData[base + i] !== label) overlapVoxels++;
            labelData[base + i] = label;
          }
        }
        counts[label] = (counts[label] ?? 0) + n;
      }
    }
    if (fractional) {
      return result(fractional, maxValue);
    }
  }
  return result();

  function result(fractional?: Uint8Array, maxValue?: number): SegmentationRead {
    return {
      type,
      sopInstanceUID: str(ds, "SOPInstanceUID") ?? "",
      seriesInstanceUID: str(ds, "SeriesInstanceUID") ?? "",
      frameOfReferenceUID: str(ds, "FrameOfReferenceUID"),
      referencedSeriesUID: str(item(ds, "ReferencedSeriesSequence"), "SeriesInstanceUID"),
      segments,
      counts,
      geometry,
      labelmap: geometry && labelData ? { geometry, data: labelData, segments } : undefined,
      overlapVoxels,
      ...(fractional
        ? { fractional: { data: fractional, channels: segments.length, maxValue: maxValue ?? 255 } }
        : {}),
    };
  }
}

export interface ParametricMapRead {
  sopInstanceUID: string;
  geometry?: Geometry;
  /** real-world values on the grid (NaN where no frame covers a slice) */
  data?: Float32Array;
  /** real-world values per frame, frame order */
  frames: Float32Array[];
  mapping: { label?: string; explanation?: string; unit?: string; slope: number; intercept: number };
  quantity?: string;
  measure?: string;
}

/** Reads a Parametric Map (float, double or integer pixels with Real World Value Mapping). */
export async function readParametricMap(bytes: Uint8Array, target?: ReadTarget): Promise<ParametricMapRead> {
  const { dataset: ds, transferSyntaxUID: ts } = parseDicom(bytes);
  if (str(ds, "SOPClassUID") !== SopClass.ParametricMap) {
    throw new InputError(
      "NOT_PARAMETRIC_MAP",
      `expected Parametric Map Storage (…1.30), found ${str(ds, "SOPClassUID")}`,
    );
  }
  const info = frameInfoOf({ ...ds, BitsAllocated: num(ds, "BitsAllocated") ?? 32 });
  const P = info.rows * info.columns;
  const nFrames = num(ds, "NumberOfFrames") ?? 1;
  const shared = item(ds, "SharedFunctionalGroupsSequence");
  const perFrame = seq(ds, "PerFrameFunctionalGroupsSequence");
  const rwvmOf = (f: number) =>
    item(
      item(perFrame[f], "RealWorldValueMappingSequence") ? perFrame[f] : shared,
      "RealWorldValueMappingSequence",
    );
  const rw0 = rwvmOf(0);
  const key = ds.FloatPixelData !== undefined
    ? "FloatPixelData"
    : ds.DoubleFloatPixelData !== undefined
    ? "DoubleFloatPixelData"
    : "PixelData";
  const raw = await readFrames(ds, ts, key);
  const frames: Float32Array[] = raw.map((b, f) => {
    const rw = rwvmOf(f);
    const slope = num(rw, "RealWorldValueSlope") ?? 1, intercept = num(rw, "RealWorldValueIntercept") ?? 0;
    const copy = b.slice();
    const out = new Float32Array(P);
    const src = key === "FloatPixelData"
      ? new Float32Array(copy.buffer, 0, P)
      : key === "DoubleFloatPixelData"
      ? new Float64Array(copy.buffer, 0, P)
      : info.bitsAllocated === 16
      ? (info.pixelRepresentation ? new Int16Array(copy.buffer, 0, P) : new Uint16Array(copy.buffer, 0, P))
      : copy;
    for (let i = 0; i < P; i++) out[i] = src[i] * slope + intercept;
    return out;
  });
  const framesMeta: Frame[] = perFrame.length
    ? framesOf(ds, new Map(), "LABELMAP")
    : Array.from({ length: nFrames }, () => ({ label: -1 }));
  const geometry = target?.geometry ?? gridFromPositions(ds, framesMeta);
  let data: Float32Array | undefined;
  if (geometry) {
    const byUid = new Map<string, number>();
    target?.refs?.forEach((r, k) => byUid.set(`${r.sopInstanceUID}|${r.frame ?? ""}`, k));
    data = new Float32Array(P * geometry.dims[2]).fill(NaN);
    for (let f = 0; f < nFrames; f++) {
      const k = sliceIndexOf(framesMeta[f], { geometry, refs: target?.refs }, byUid, f);
      data.set(frames[f], k * P);
    }
  }
  const unit = item(rw0, "MeasurementUnitsCodeSequence");
  const qd = seq(rw0, "QuantityDefinitionSequence");
  const quantity = qd.find((q) => str(item(q, "ConceptNameCodeSequence"), "CodeValue") === "246205007");
  const method = qd.find((q) => str(item(q, "ConceptNameCodeSequence"), "CodeValue") === "370129005");
  return {
    sopInstanceUID: str(ds, "SOPInstanceUID") ?? "",
    geometry,
    data,
    frames,
    mapping: {
      label: str(rw0, "LUTLabel"),
      explanation: str(rw0, "LUTExplanation"),
      unit: str(unit, "CodeValue"),
      slope: num(rw0, "RealWorldValueSlope") ?? 1,
      intercept: num(rw0, "RealWorldValueIntercept") ?? 0,
    },
    quantity: str(item(quantity, "ConceptCodeSequence"), "CodeMeaning"),
    measure: str(item(method, "ConceptCodeSequence"), "CodeMeaning"),
  };
}
