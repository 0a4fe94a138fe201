/**
 * Evaluation metrics for binary masks and labelmaps, optionally inside a field-of-view mask.
 *
 * Conventions (documented because papers differ):
 * - Dice, IoU: both masks empty → 1; one empty → 0.
 * - precision = TP / (TP + FP); with no predicted positives it is 1 when the reference is empty too,
 *   else 0. recall = TP / (TP + FN); with an empty reference it is 1 when the prediction is empty,
 *   else 0. specificity with no reference negatives is 1.
 * - Surfaces are the voxels of a mask with a face neighbour outside it; the outside of the volume
 *   counts as outside, so mask voxels on the volume border are surface voxels.
 * - HD95 = max of the two directed 95th percentiles of surface-to-surface distances (MONAI / MedPy);
 *   ASSD = mean of the two directed mean distances. Both in mm, from the exact Euclidean distance
 *   transform with anisotropic spacing. Both surfaces empty → 0; exactly one empty → NaN (undefined;
 *   NaN serialises to null in JSON and is skipped by the means).
 * - AUC: exact ROC AUC (Mann–Whitney U, ties count 1/2) in O(n log n); NaN when one class is absent.
 * - ECE: 10 equal-width bins of the label's probability; |fraction positive − mean probability|
 *   weighted by bin size (binary calibration of each label, the reliability diagram's data).
 */
import type { Geometry } from "../core/types.ts";
import { percentile } from "./statistics.ts";
import type { Dims3 } from "./windows.ts";

export interface Confusion {
  tp: number;
  fp: number;
  fn: number;
  tn: number;
}

export interface OverlapMetrics {
  dice: number;
  iou: number;
  precision: number;
  recall: number;
  specificity: number;
  accuracy: number;
}

/** Confusion counts of two binary masks (non-zero = positive), inside `fov` when given. */
export function confusion(
  pred: ArrayLike<number>,
  ref: ArrayLike<number>,
  fov?: ArrayLike<number>,
): Confusion {
  if (pred.length !== ref.length) throw new RangeError(`mask sizes differ: ${pred.length} vs ${ref.length}`);
  if (fov && fov.length !== ref.length) {
    throw new RangeError(`field-of-view size ${fov.length} != ${ref.length}`);
  }
  let tp = 0, fp = 0, fn = 0, tn = 0;
  for (let p = 0; p < pred.length; p++) {
    if (fov && !fov[p]) continue;
    const a = pred[p] !== 0, b = ref[p] !== 0;
    if (a && b) tp++;
    else if (a) fp++;
    else if (b) fn++;
    else tn++;
  }
  return { tp, fp, fn, tn };
}

/** Overlap metrics from confusion counts, with the empty-mask conventions above. */
export function overlapMetrics(c: Confusion): OverlapMetrics {
  const { tp, fp, fn, tn } = c;
  const bothEmpty = tp + fp + fn === 0;
  const total = tp + fp + fn + tn;
  return {
    dice: bothEmpty ? 1 : (2 * tp) / (2 * tp + fp + fn),
    iou: bothEmpty ? 1 : tp / (tp + fp + fn),
    precision: tp + fp > 0 ? tp / (tp + fp) : fn === 0 ? 1 : 0,
    recall: tp + fn > 0 ? tp / (tp + fn) : fp === 0 ? 1 : 0,
    specificity: tn + fp > 0 ? tn / (tn + fp) : 1,
    accuracy: total > 0 ? (tp + tn) / total : 1,
  };
}

const BIG = 1e30;

/** 1D squared-distance transform (Felzenszwalb & Huttenlocher) of f sampled every `s` mm. */
function dt1d(f: Float64Array, n: number, s: number, d: Float64Array, v: Int32Array, z: Float64Array): void {
  // lower envelope of the parabolas y = f(r) + (x − r·s)², skipping voxels without a feature
  let k = -1;
  for (let q = 0; q < n; q++) {
    if (f[q] >= BIG) continue;
    let cut = -Infinity;
    while (k >= 0) {
      const r = v[k];
      cut = (f[q] + (q * s) ** 2 - (f[r] + (r * s) ** 2)) / (2 * s * (q - r));
      if (cut <= z[k]) k--;
      else break;
    }
    k++;
    v[k] = q;
    z[k] = k === 0 ? -Infinity : cut;
    z[k + 1] = Infinity;
  }
  if (k < 0) {
    d.fill(BIG, 0, n);
    return;
  }
  k = 0;
  for (let q = 0; q < n; q++) {
    while (z[k + 1] < q * s) k++;
    const r = v[k];
    d[q] = ((q - r) * s) ** 2 + f[r];
  }
}

/**
 * Exact squared Euclidean distance (mm²) from every voxel to the nearest voxel where `feature` is
 * non-zero, with anisotropic spacing; Infinity everywhere when there is no feature voxel.
 */
export function edtSquared(feature: ArrayLike<number>, dims: Dims3, spacing: Dims3): Float32Array {
  const [nx, ny, nz] = dims;
  const n = nx * ny * nz;
  const work = new Float64Array(n);
  for (let p = 0; p < n; p++) work[p] = feature[p] ? 0 : BIG;
  const len = Math.max(nx, ny, nz);
  const f = new Float64Array(len),
    d = new Float64Array(len),
    v = new Int32Array(len),
    z = new Float64Array(len + 1);
  const strides = [1, nx, nx * ny];
  for (let axis = 0; axis < 3; axis++) {
    const m = dims[axis], stride = strides[axis];
    if (m === 1) continue;
    for (let k = 0; k < (axis === 2 ? 1 : nz); k++) {
      for (let j = 0; j < (axis === 1 ? 1 : ny); j++) {
        for (let i = 0; i < (axis === 0 ? 1 : nx); i++) {
          const base = i + nx * (j + ny * k);
          for (let q = 0; q < m; q++) f[q] = work[base + q * stride];
          dt1d(f, m, spacing[axis], d, v, z);
          for (let q = 0; q < m; q++) work[base + q * stride] = d[q] >= BIG ? BIG : d[q];
        }
      }
    }
  }
  const out = new Float32Array(n);
  for (let p = 0; p < n; p++) out[p] = work[p] >= BIG ? Infinity : work[p];
  return out;
}

/** Surface voxels of a binary mask: mask voxels with a face neighbour outside the mask or the volume. */
export function surfaceMask(mask: ArrayLike<number>, dims: Dims3): Uint8Array {
  const [nx, ny, nz] = dims;
  const out = new Uint8Array(nx * ny * nz);
  const sxy = nx * ny;
  // 2D images (nz = 1) have no z neighbours: their surface is the in-plane contour
  const useZ = nz > 1;
  for (let k = 0, p = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++, p++) {
        if (!mask[p]) continue;
        if (
          i === 0 || i === nx - 1 || j === 0 || j === ny - 1 || !mask[p - 1] || !mask[p + 1] ||
          !mask[p - nx] || !mask[p + nx] ||
          (useZ && (k === 0 || k === nz - 1 || !mask[p - sxy] || !mask[p + sxy]))
        ) out[p] = 1;
      }
    }
  }
  return out;
}

/** Bounding box [lo, hi) of the non-zero voxels of several masks; null when all are empty. */
function boundingBox(masks: Uint8Array[], dims: Dims3): { lo: Dims3; hi: Dims3 } | null {
  const [nx, ny] = dims;
  const lo: Dims3 = [Infinity, Infinity, Infinity], hi: Dims3 = [-1, -1, -1];
  for (const m of masks) {
    for (let p = 0; p < m.length; p++) {
      if (!m[p]) continue;
      const i = p % nx, j = ((p / nx) | 0) % ny, k = (p / (nx * ny)) | 0;
      if (i < lo[0]) lo[0] = i;
      if (j < lo[1]) lo[1] = j;
      if (k < lo[2]) lo[2] = k;
      if (i > hi[0]) hi[0] = i;
      if (j > hi[1]) hi[1] = j;
      if (k > hi[2]) hi[2] = k;
    }
  }
  if (hi[0] < 0) return null;
  return { lo, hi: [hi[0] + 1, hi[1] + 1, hi[2] + 1] };
}

function crop(m: Uint8Array, dims: Dims3, lo: Dims3, cd: Dims3): Uint8Array {
  const out = new Uint8Array(cd[0] * cd[1] * cd[2]);
  for (let k = 0, p = 0; k < cd[2]; k++) {
    for (let j = 0; j < cd[1]; j++) {
      const row = lo[0] + dims[0] * (lo[1] + j + dims[1] * (lo[2] + k));
      for (let i = 0; i < cd[0]; i++, p++) out[p] = m[row + i];
    }
  }
  return out;
}

export interface SurfaceDistances {
  hd95Mm: number;
  assdMm: number;
  /** directed distances (mm) from prediction surface to reference surface and back */
  predToRefMm: Float32Array;
  refToPredMm: Float32Array;
}

/** HD95 and ASSD between two binary masks (non-zero = inside), with the conventions above. */
export function surfaceDistances(
  pred: ArrayLike<number>,
  ref: ArrayLike<number>,
  dims: Dims3,
  spacing: Dims3,
  fov?: ArrayLike<number>,
): SurfaceDistances {
  const n = dims[0] * dims[1] * dims[2];
  const a = new Uint8Array(n), b = new Uint8Array(n);
  for (let p = 0; p < n; p++) {
    const inside = !fov || fov[p] !== 0;
    a[p] = inside && pred[p] ? 1 : 0;
    b[p] = inside && ref[p] ? 1 : 0;
  }
  const sa = surfaceMask(a, dims), sb = surfaceMask(b, dims);
  const empty = new Float32Array(0);
  const box = boundingBox([sa, sb], dims);
  if (!box) return { hd95Mm: 0, assdMm: 0, predToRefMm: empty, refToPredMm: empty };
  const cd: Dims3 = [box.hi[0] - box.lo[0], box.hi[1] - box.lo[1], box.hi[2] - box.lo[2]];
  // the EDT inside a box holding every feature and every query voxel is exact, and much cheaper
  const ca = crop(sa, dims, box.lo, cd), cb = crop(sb, dims, box.lo, cd);
  const hasA = ca.some((x) => x !== 0), hasB = cb.some((x) => x !== 0);
  if (!hasA || !hasB) return { hd95Mm: NaN, assdMm: NaN, predToRefMm: empty, refToPredMm: empty };
  const directed = (from: Uint8Array, to: Uint8Array) => {
    const d2 = edtSquared(to, cd, spacing);
    const out: number[] = [];
    for (let p = 0; p < from.length; p++) if (from[p]) out.push(Math.sqrt(d2[p]));
    return Float32Array.from(out);
  };
  const ab = directed(ca, cb), ba = directed(cb, ca);
  const mean = (x: Float32Array) => x.reduce((s, v) => s + v, 0) / x.length;
  return {
    hd95Mm: Math.max(percentile(ab, 95), percentile(ba, 95)),
    assdMm: (mean(ab) + mean(ba)) / 2,
    predToRefMm: ab,
    refToPredMm: ba,
  };
}

/** Exact ROC AUC of scores against binary labels (non-zero = positive), ties counted as 1/2. */
export function aucRoc(
  scores: ArrayLike<number>,
  labels: ArrayLike<number>,
  fov?: ArrayLike<number>,
): number {
  let nPos = 0, nNeg = 0;
  for (let p = 0; p < scores.length; p++) {
    if (fov && !fov[p]) continue;
    if (labels[p]) nPos++;
    else nNeg++;
  }
  if (nPos === 0 || nNeg === 0) return NaN;
  const pos = new Float64Array(nPos), neg = new Float64Array(nNeg);
  for (let p = 0, a = 0, b = 0; p < scores.length; p++) {
    if (fov && !fov[p]) continue;
    if (labels[p]) pos[a++] = scores[p];
    else neg[b++] = scores[p];
  }
  pos.sort();
  neg.sort();
  // for each positive: negatives strictly below + half the negatives equal to it
  let u = 0, below = 0, equalEnd = 0;
  for (let a = 0; a < nPos; a++) {
    const s = pos[a];
    while (below < nNeg && neg[below] < s) below++;
    if (equalEnd < below) equalEnd = below;
    while (equalEnd < nNeg && neg[equalEnd] === s) equalEnd++;
    u += below + (equalEnd - below) / 2;
  }
  return u / (nPos * nNeg);
}

export interface CalibrationBin {
  lo: number;
  hi: number;
  count: number;
  meanProbability: number;
  fractionPositive: number;
}

/** Expected calibration error over `bins` equal-width bins (last bin includes 1), plus the bins. */
export function expectedCalibrationError(
  probs: ArrayLike<number>,
  labels: ArrayLike<number>,
  fov?: ArrayLike<number>,
  bins = 10,
): { ece: number; bins: CalibrationBin[] } {
  const count = new Float64Array(bins), sumP = new Float64Array(bins), sumY = new Float64Array(bins);
  let total = 0;
  for (let p = 0; p < probs.length; p++) {
    if (fov && !fov[p]) continue;
    const x = probs[p];
    const b = Math.min(bins - 1, Math.max(0, Math.floor(x * bins)));
    count[b]++;
    sumP[b] += x;
    sumY[b] += labels[p] ? 1 : 0;
    total++;
  }
  let ece = 0;
  const out: CalibrationBin[] = [];
  for (let b = 0; b < bins; b++) {
    const c = count[b];
    const mp = c > 0 ? sumP[b] / c : NaN, fp = c > 0 ? sumY[b] / c : NaN;
    if (c > 0) ece += (c / total) * Math.abs(fp - mp);
    out.push({ lo: b / bins, hi: (b + 1) / bins, count: c, meanProbability: mp, fractionPositive: fp });
  }
  return { ece: total > 0 ? ece : NaN, bins: out };
}

export interface LabelMetrics extends OverlapMetrics {
  label: number;
  hd95Mm: number;
  assdMm: number;
  /** present when a probability map was given for the label */
  auc?: number;
  ece?: number;
  confusion: Confusion;
}

export interface EvaluationResult {
  perLabel: LabelMetrics[];
  /** arithmetic mean over labels, NaN values skipped */
  mean: Omit<LabelMetrics, "label" | "confusion">;
}

/** Mean of the finite values (NaN when there are none). */
export function nanMean(values: number[]): number {
  const ok = values.filter((v) => Number.isFinite(v));
  return ok.length ? ok.reduce((a, b) => a + b, 0) / ok.length : NaN;
}

/**
 * Per-label and mean metrics of a predicted labelmap against a reference labelmap.
 * `probabilities[value]` (0..1, same grid) adds AUC and ECE for that label.
 */
export function evaluateSegmentation(
  pred: ArrayLike<number>,
  ref: ArrayLike<number>,
  geometry: Pick<Geometry, "dims" | "spacing">,
  labelValues: number[],
  options: { fov?: ArrayLike<number>; probabilities?: Record<number, ArrayLike<number>> } = {},
): EvaluationResult {
  const n = pred.length;
  const perLabel = labelValues.map((value): LabelMetrics => {
    const a = new Uint8Array(n), b = new Uint8Array(n);
    for (let p = 0; p < n; p++) {
      a[p] = pred[p] === value ? 1 : 0;
      b[p] = ref[p] === value ? 1 : 0;
    }
    const c = confusion(a, b, options.fov);
    const sd = surfaceDistances(a, b, geometry.dims, geometry.spacing, options.fov);
    const m: LabelMetrics = {
      label: value,
      ...overlapMetrics(c),
      hd95Mm: sd.hd95Mm,
      assdMm: sd.assdMm,
      confusion: c,
    };
    const prob = options.probabilities?.[value];
    if (prob) {
      m.auc = aucRoc(prob, b, options.fov);
      m.ece = expectedCalibrationError(prob, b, options.fov).ece;
    }
    return m;
  });
  const keys = ["dice", "iou", "precision", "recall", "specificity", "accuracy", "hd95Mm", "assdMm"] as const;
  const mean = {} as Omit<LabelMetrics, "label" | "confusion">;
  for (const k of keys) mean[k] = nanMean(perLabel.map((m) => m[k]));
  if (perLabel.some((m) => m.auc !== undefined)) {
    mean.auc = nanMean(perLabel.map((m) => m.auc ?? NaN));
    mean.ece = nanMean(perLabel.map((m) => m.ece ?? NaN));
  }
  return { perLabel, mean };
}
