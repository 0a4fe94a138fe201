/**
 * Volume from DICOM instances: single-frame series and enhanced multi-frame (per-frame functional
 * groups), one series at a time. Slices are ordered by position along the slice normal (cross product
 * of ImageOrientationPatient), never by InstanceNumber or file order.
 *
 * Gantry tilt: when the step between slice positions is not parallel to the slice normal, the stack
 * is sheared. EdgeSeg carries the shear in the geometry (the k column of `direction` is the unit
 * position step, not the normal) so every voxel sits exactly where the scanner put it and SEG frames
 * written for it reuse the source positions; `gantryTilt: "refuse"` raises InputError GANTRY_TILT
 * instead, for consumers that need an orthogonal grid.
 */
import { InputError } from "../core/errors.ts";
import type { Geometry, Mat3, SourceInstanceRef, Vec3, Volume, VoxelArray } from "../core/types.ts";
import {
  item,
  type NaturalizedDataset,
  num,
  nums,
  parseDicom,
  seq,
  str,
  TransferSyntax,
  withoutPixels,
} from "./dataset.ts";
import { frameInfoOf, readFrames } from "./frames.ts";

export interface ReadSeriesOptions {
  /** which series to read when the files hold several */
  seriesUID?: string;
  /** "carry" (default): sheared geometry; "refuse": InputError GANTRY_TILT */
  gantryTilt?: "carry" | "refuse";
  /** relative tolerance on slice steps (default 0.01 = 1 %, and never below 0.01 mm) */
  spacingTolerance?: number;
  /** keep only some frames of a multi-frame instance (e.g. one FrameType of a field map) */
  frameFilter?: (perFrame: NaturalizedDataset, frameNumber: number, instance: NaturalizedDataset) => boolean;
}

export interface SeriesRead {
  volume: Volume;
  /** metadata per slice, k order, pixel data removed (a multi-frame instance repeats per frame) */
  instances: NaturalizedDataset[];
}

interface SliceRef {
  ds: NaturalizedDataset;
  ts: string;
  /** 1-based frame number for multi-frame instances */
  frame?: number;
  position: Vec3;
  orientation: number[];
  pixelSpacing: [number, number];
  slope: number;
  intercept: number;
  thickness?: number;
}

const dot = (a: number[], b: number[]) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
const cross = (a: number[], b: number[]): Vec3 => [
  a[1] * b[2] - a[2] * b[1],
  a[2] * b[0] - a[0] * b[2],
  a[0] * b[1] - a[1] * b[0],
];
const norm = (a: number[]) => Math.hypot(a[0], a[1], a[2]);

/** Reads one series from Part 10 files. */
export async function readSeries(files: Uint8Array[], options: ReadSeriesOptions = {}): Promise<SeriesRead> {
  if (files.length === 0) throw new InputError("NO_FILES", "expected at least one DICOM file, found none");
  const parsed = files.map((bytes, index) => {
    try {
      return parseDicom(bytes);
    } catch (e) {
      throw new InputError("NOT_DICOM", `file ${index}: ${e instanceof Error ? e.message : String(e)}`, {
        cause: e,
      });
    }
  });
  const bySeries = new Map<string, typeof parsed>();
  for (const p of parsed) {
    const uid = str(p.dataset, "SeriesInstanceUID") ?? "";
    bySeries.set(uid, [...(bySeries.get(uid) ?? []), p]);
  }
  let chosen: typeof parsed;
  if (options.seriesUID !== undefined) {
    const c = bySeries.get(options.seriesUID);
    if (!c) {
      throw new InputError(
        "SERIES_NOT_FOUND",
        `expected series ${options.seriesUID} among the files, found only ${[...bySeries.keys()].join(", ")}`,
      );
    }
    chosen = c;
  } else if (bySeries.size > 1) {
    throw new InputError(
      "MIXED_SERIES",
      `expected one series, found ${bySeries.size} (${
        [...bySeries.keys()].join(", ")
      }); choose one with --series <SeriesInstanceUID> (seriesUID in the API)`,
    );
  } else chosen = [...bySeries.values()][0];

  const slices: SliceRef[] = [];
  for (const p of chosen) slices.push(...slicesOf(p.dataset, p.transferSyntaxUID, options));
  if (slices.length === 0) {
    throw new InputError("NO_FRAMES", "expected at least one frame, found none after filtering");
  }

  const first = slices[0].ds;
  const rows = num(first, "Rows")!, cols = num(first, "Columns")!;
  const channels = num(first, "SamplesPerPixel") ?? 1;
  for (const s of slices) {
    if (num(s.ds, "Rows") !== rows || num(s.ds, "Columns") !== cols) {
      throw new InputError(
        "INCONSISTENT_DIMENSIONS",
        `expected every slice ${cols}×${rows}, found ${num(s.ds, "Columns")}×${num(s.ds, "Rows")} (${
          str(s.ds, "SOPInstanceUID")
        })`,
      );
    }
    for (let i = 0; i < 6; i++) {
      if (Math.abs(s.orientation[i] - slices[0].orientation[i]) > 1e-4) {
        throw new InputError(
          "INCONSISTENT_ORIENTATION",
          `expected every slice with ImageOrientationPatient ${slices[0].orientation.join("\\")}, found ${
            s.orientation.join("\\")
          }`,
        );
      }
    }
    if (
      Math.abs(s.pixelSpacing[0] - slices[0].pixelSpacing[0]) > 1e-4 ||
      Math.abs(s.pixelSpacing[1] - slices[0].pixelSpacing[1]) > 1e-4
    ) {
      throw new InputError(
        "INCONSISTENT_SPACING",
        `expected every slice with PixelSpacing ${slices[0].pixelSpacing.join("\\")}, found ${
          s.pixelSpacing.join("\\")
        }`,
      );
    }
  }

  const rowDir = slices[0].orientation.slice(0, 3), colDir = slices[0].orientation.slice(3, 6);
  const normal = cross(rowDir, colDir);
  slices.sort((a, b) => dot(a.position, normal) - dot(b.position, normal));
  const geometry = geometryOf(slices, rowDir, colDir, normal, cols, rows, options);

  // decode every frame once, instance by instance (multi-frame instances decode all their frames together)
  const frameCache = new Map<NaturalizedDataset, Uint8Array[]>();
  const raw: Uint8Array[] = [];
  for (const s of slices) {
    let frames = frameCache.get(s.ds);
    if (!frames) {
      frames = await readFrames(s.ds, s.ts);
      frameCache.set(s.ds, frames);
    }
    raw.push(frames[(s.frame ?? 1) - 1]);
  }
  frameCache.clear();

  const data = channels === 1
    ? toScalarVolume(slices, raw, rows * cols)
    : toRgbVolume(slices, raw, rows * cols, channels);

  const manufacturer = str(first, "Manufacturer");
  const volume: Volume = {
    geometry,
    channels,
    data,
    ...(manufacturer ? { manufacturer } : {}),
    modality: str(first, "Modality") ?? "OT",
    bodyPart: str(first, "BodyPartExamined"),
    frameOfReferenceUID: str(first, "FrameOfReferenceUID"),
    source: {
      studyUID: str(first, "StudyInstanceUID") ?? "",
      seriesUID: str(first, "SeriesInstanceUID") ?? "",
      instances: slices.map((s): SourceInstanceRef => ({
        sopClassUID: str(s.ds, "SOPClassUID") ?? "",
        sopInstanceUID: str(s.ds, "SOPInstanceUID") ?? "",
        ...(s.frame !== undefined ? { frame: s.frame } : {}),
      })),
    },
  };
  const stripped = new Map<NaturalizedDataset, NaturalizedDataset>();
  const instances = slices.map((s) => {
    let m = stripped.get(s.ds);
    if (!m) stripped.set(s.ds, m = withoutPixels(s.ds));
    return m;
  });
  return { volume, instances };
}

function slicesOf(ds: NaturalizedDataset, ts: string, options: ReadSeriesOptions): SliceRef[] {
  const shared = item(ds, "SharedFunctionalGroupsSequence");
  const perFrame = seq(ds, "PerFrameFunctionalGroupsSequence");
  const nFrames = num(ds, "NumberOfFrames") ?? 1;
  if (perFrame.length > 0 || shared) {
    const out: SliceRef[] = [];
    for (let f = 0; f < nFrames; f++) {
      const pf = perFrame[f] ?? {};
      if (options.frameFilter && !options.frameFilter(pf, f + 1, ds)) continue;
      const pick = (key: string) => item(pf, key) ?? item(shared, key);
      const pos = nums(pick("PlanePositionSequence"), "ImagePositionPatient");
      const ori = nums(pick("PlaneOrientationSequence"), "ImageOrientationPatient");
      const measures = pick("PixelMeasuresSequence");
      const ps = nums(measures, "PixelSpacing");
      const pvt = pick("PixelValueTransformationSequence");
      if (!pos || pos.length !== 3 || !ori || ori.length !== 6) {
        throw new InputError(
          "MISSING_GEOMETRY",
          `expected PlanePositionSequence and PlaneOrientationSequence for frame ${f + 1} of ${
            str(ds, "SOPInstanceUID")
          }, found none`,
        );
      }
      out.push({
        ds,
        ts,
        frame: f + 1,
        position: pos as Vec3,
        orientation: ori,
        pixelSpacing: ps && ps.length === 2 ? [ps[0], ps[1]] : [1, 1],
        slope: num(pvt, "RescaleSlope") ?? num(ds, "RescaleSlope") ?? 1,
        intercept: num(pvt, "RescaleIntercept") ?? num(ds, "RescaleIntercept") ?? 0,
        thickness: num(measures, "SliceThickness"),
      });
    }
    return out;
  }
  const pos = nums(ds, "ImagePositionPatient");
  const ori = nums(ds, "ImageOrientationPatient");
  const ps = nums(ds, "PixelSpacing") ?? nums(ds, "ImagerPixelSpacing");
  const base = {
    ds,
    ts,
    pixelSpacing: (ps && ps.length === 2 ? [ps[0], ps[1]] : [1, 1]) as [number, number],
    slope: num(ds, "RescaleSlope") ?? 1,
    intercept: num(ds, "RescaleIntercept") ?? 0,
    thickness: num(ds, "SliceThickness"),
  };
  if (nFrames > 1) {
    // a plain multi-frame image without functional groups (e.g. a secondary capture): frames stacked
    // along the normal at unit spacing, unless SpacingBetweenSlices says otherwise
    const o = ori && ori.length === 6 ? ori : [1, 0, 0, 0, 1, 0];
    const n = cross(o.slice(0, 3), o.slice(3, 6));
    const p0 = (pos && pos.length === 3 ? pos : [0, 0, 0]) as Vec3;
    const step = num(ds, "SpacingBetweenSlices") ?? 1;
    const out: SliceRef[] = [];
    for (let f = 0; f < nFrames; f++) {
      if (options.frameFilter && !options.frameFilter({}, f + 1, ds)) continue;
      out.push({
        ...base,
        frame: f + 1,
        orientation: o,
        position: [p0[0] + n[0] * step * f, p0[1] + n[1] * step * f, p0[2] + n[2] * step * f],
      });
    }
    return out;
  }
  return [{
    ...base,
    position: (pos && pos.length === 3 ? pos : [0, 0, 0]) as Vec3,
    orientation: ori && ori.length === 6 ? ori : [1, 0, 0, 0, 1, 0],
  }];
}

function geometryOf(
  slices: SliceRef[],
  rowDir: number[],
  colDir: number[],
  normal: Vec3,
  cols: number,
  rows: number,
  options: ReadSeriesOptions,
): Geometry {
  const n = slices.length;
  // PixelSpacing is [row spacing (between rows, along j), column spacing (along i)]
  const [rowSpacing, colSpacing] = slices[0].pixelSpacing;
  let kDir: Vec3 = normal;
  let kSpacing = slices[0].thickness ?? 1;
  if (n > 1) {
    const steps: number[] = [];
    for (let k = 1; k < n; k++) {
      const d = dot(slices[k].position, normal) - dot(slices[k - 1].position, normal);
      if (d < 1e-3) {
        throw new InputError(
          "DUPLICATE_POSITION",
          `expected one slice per position, found two at ${slices[k].position.join("\\")} (${
            str(slices[k].ds, "SOPInstanceUID")
          }${slices[k].frame ? ` frame ${slices[k].frame}` : ""}); filter frames with frameFilter`,
        );
      }
      steps.push(d);
    }
    const mean = steps.reduce((a, b) => a + b, 0) / steps.length;
    const tol = Math.max(0.01, (options.spacingTolerance ?? 0.01) * mean);
    const worst = steps.reduce((w, s) => (Math.abs(s - mean) > Math.abs(w - mean) ? s : w), steps[0]);
    if (Math.abs(worst - mean) > tol) {
      throw new InputError(
        "NON_UNIFORM_SPACING",
        `expected uniform slice steps along the normal (mean ${mean.toFixed(3)} mm ± ${
          tol.toFixed(3)
        }), found a step of ${worst.toFixed(3)} mm`,
      );
    }
    const p0 = slices[0].position, pn = slices[n - 1].position;
    const span: Vec3 = [pn[0] - p0[0], pn[1] - p0[1], pn[2] - p0[2]];
    const spanLen = norm(span);
    const stepDir: Vec3 = [span[0] / spanLen, span[1] / spanLen, span[2] / spanLen];
    const stepLen = spanLen / (n - 1);
    // every position must lie on the line p0 + k·step: otherwise the stack is not a regular grid
    for (let k = 1; k < n - 1; k++) {
      const p = slices[k].position;
      const dev = Math.hypot(
        p[0] - (p0[0] + stepDir[0] * stepLen * k),
        p[1] - (p0[1] + stepDir[1] * stepLen * k),
        p[2] - (p0[2] + stepDir[2] * stepLen * k),
      );
      if (dev > tol) {
        throw new InputError(
          "NON_UNIFORM_SPACING",
          `expected slice ${k} at ${stepLen.toFixed(3)} mm steps on a line, found it ${
            dev.toFixed(3)
          } mm off`,
        );
      }
    }
    const sinTilt = norm(cross(stepDir, normal));
    if (sinTilt > 1e-3) {
      const deg = (Math.asin(Math.min(1, sinTilt)) * 180) / Math.PI;
      if (options.gantryTilt === "refuse") {
        throw new InputError(
          "GANTRY_TILT",
          `expected slice positions stepping along the slice normal, found them ${
            deg.toFixed(2)
          }° off (gantry tilt ${
            num(slices[0].ds, "GantryDetectorTilt") ?? "unknown"
          }°): the stack is sheared; read with gantryTilt "carry" to keep the sheared geometry`,
        );
      }
      kDir = stepDir;
    }
    kSpacing = stepLen;
  }
  const direction: Mat3 = [
    rowDir[0],
    colDir[0],
    kDir[0],
    rowDir[1],
    colDir[1],
    kDir[1],
    rowDir[2],
    colDir[2],
    kDir[2],
  ];
  return {
    dims: [cols, rows, n],
    spacing: [colSpacing, rowSpacing, kSpacing],
    origin: [...slices[0].position] as Vec3,
    direction,
  };
}

function toScalarVolume(slices: SliceRef[], raw: Uint8Array[], sliceLen: number): VoxelArray {
  const info = frameInfoOf(slices[0].ds);
  const bitsStored = num(slices[0].ds, "BitsStored") ?? info.bitsAllocated;
  const signed = info.pixelRepresentation === 1;
  const n = slices.length;
  // stored values → typed views without copying
  const views = raw.map((bytes, k) => {
    if (bytes.length < sliceLen * (info.bitsAllocated / 8)) {
      throw new InputError(
        "PIXEL_DATA_LENGTH",
        `expected ${sliceLen * (info.bitsAllocated / 8)} bytes for slice ${k}, found ${bytes.length}`,
      );
    }
    const aligned = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
    if (info.bitsAllocated === 8) {
      return signed
        ? new Int8Array(aligned.buffer, aligned.byteOffset, sliceLen)
        : aligned.subarray(0, sliceLen);
    }
    if (info.bitsAllocated === 16) {
      return signed
        ? new Int16Array(aligned.buffer, aligned.byteOffset, sliceLen)
        : new Uint16Array(aligned.buffer, aligned.byteOffset, sliceLen);
    }
    if (info.bitsAllocated === 32) {
      return signed
        ? new Int32Array(aligned.buffer, aligned.byteOffset, sliceLen)
        : new Uint32Array(aligned.buffer, aligned.byteOffset, sliceLen);
    }
    throw new InputError(
      "UNSUPPORTED_BITS",
      `expected BitsAllocated 8, 16 or 32, found ${info.bitsAllocated}`,
    );
  });
  // high bits above BitsStored may hold overlays or garbage: mask (unsigned) or sign-extend (signed)
  const shift = 32 - bitsStored;
  const mask = bitsStored >= 32 ? 0xffffffff : (2 ** bitsStored) - 1;
  const clean = (
    v: number,
  ) => (bitsStored >= info.bitsAllocated ? v : signed ? (v << shift) >> shift : v & mask);
  let integral = true;
  let lo = Infinity, hi = -Infinity;
  for (let k = 0; k < n; k++) {
    const s = slices[k];
    if (!Number.isInteger(s.slope) || !Number.isInteger(s.intercept)) integral = false;
    const v = views[k];
    let mn = Infinity, mx = -Infinity;
    for (let i = 0; i < sliceLen; i++) {
      const x = clean(v[i]);
      if (x < mn) mn = x;
      if (x > mx) mx = x;
    }
    const a = mn * s.slope + s.intercept, b = mx * s.slope + s.intercept;
    lo = Math.min(lo, a, b);
    hi = Math.max(hi, a, b);
  }
  let out: VoxelArray;
  if (integral && lo >= -32768 && hi <= 32767) out = new Int16Array(sliceLen * n);
  else if (integral && lo >= 0 && hi <= 65535) out = new Uint16Array(sliceLen * n);
  else out = new Float32Array(sliceLen * n);
  for (let k = 0; k < n; k++) {
    const { slope, intercept } = slices[k];
    const v = views[k];
    const base = k * sliceLen;
    if (bitsStored >= info.bitsAllocated && slope === 1 && intercept === 0) {
      for (let i = 0; i < sliceLen; i++) out[base + i] = v[i];
    } else {
      for (let i = 0; i < sliceLen; i++) out[base + i] = clean(v[i]) * slope + intercept;
    }
  }
  return out;
}

function toRgbVolume(slices: SliceRef[], raw: Uint8Array[], sliceLen: number, channels: number): Uint8Array {
  const info = frameInfoOf(slices[0].ds);
  if (info.bitsAllocated !== 8 || channels !== 3) {
    throw new InputError(
      "UNSUPPORTED_COLOR",
      `expected 8-bit RGB (SamplesPerPixel 3), found ${channels} samples of ${info.bitsAllocated} bits`,
    );
  }
  const photometric = str(slices[0].ds, "PhotometricInterpretation") ?? "RGB";
  const ts = slices[0].ts;
  // JPEG and JPEG 2000 decoders already return RGB; native and RLE YBR_FULL need converting here
  const jpegFamily = ts.startsWith("1.2.840.10008.1.2.4.");
  const ybr = photometric.startsWith("YBR") && !jpegFamily;
  if (ybr && photometric !== "YBR_FULL") {
    throw new InputError(
      "UNSUPPORTED_COLOR",
      `expected RGB or YBR_FULL for native colour, found ${photometric}`,
    );
  }
  // RLE output is interleaved (see decodeRle); native data follows PlanarConfiguration
  const planar = ts !== TransferSyntax.Rle && !jpegFamily && info.planarConfiguration === 1;
  const n = slices.length;
  const out = new Uint8Array(sliceLen * n * 3);
  const plane = sliceLen * n;
  for (let k = 0; k < n; k++) {
    const src = raw[k];
    const base = k * sliceLen;
    for (let i = 0; i < sliceLen; i++) {
      let r = planar ? src[i] : src[3 * i];
      let g = planar ? src[sliceLen + i] : src[3 * i + 1];
      let b = planar ? src[2 * sliceLen + i] : src[3 * i + 2];
      if (ybr) {
        // PS3.3 C.7.6.3.1.2 YBR_FULL → RGB
        const y = r, cb = g - 128, cr = b - 128;
        r = Math.min(255, Math.max(0, Math.round(y + 1.402 * cr)));
        g = Math.min(255, Math.max(0, Math.round(y - 0.344136 * cb - 0.714136 * cr)));
        b = Math.min(255, Math.max(0, Math.round(y + 1.772 * cb)));
      }
      out[base + i] = r;
      out[plane + base + i] = g;
      out[2 * plane + base + i] = b;
    }
  }
  return out;
}
