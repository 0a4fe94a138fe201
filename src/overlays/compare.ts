/**
 * Compare overlays: prediction vs reference as true positives (green), false positives (red) and
 * false negatives (blue); true negatives stay transparent. Used for eval report thumbnails and for
 * reviewing a model against a reference segmentation in the viewer; and the per-segment comparison
 * of two labelmaps ("Compare with reference" in the viewer).
 */
import { overlapMetrics } from "../segmentation/metrics.ts";

export interface CompareColors {
  tp: [number, number, number];
  fp: [number, number, number];
  fn: [number, number, number];
}

export const DEFAULT_COMPARE_COLORS: CompareColors = { tp: [0, 200, 0], fp: [230, 0, 0], fn: [0, 90, 255] };

export interface CompareOverlay {
  rgba: Uint8ClampedArray;
  counts: { tp: number; fp: number; fn: number; tn: number };
}

/**
 * RGBA overlay of two masks (non-zero = positive; with `label`, positive means equal to it). Pixels
 * outside `fov` (when given) are transparent and not counted.
 */
export function compareOverlayRGBA(
  pred: ArrayLike<number>,
  ref: ArrayLike<number>,
  options: { label?: number; opacity?: number; colors?: CompareColors; fov?: ArrayLike<number> } = {},
): CompareOverlay {
  if (pred.length !== ref.length) {
    throw new RangeError(`prediction has ${pred.length} pixels, reference ${ref.length}`);
  }
  const colors = options.colors ?? DEFAULT_COMPARE_COLORS;
  const alpha = Math.round(Math.min(1, Math.max(0, options.opacity ?? 0.7)) * 255);
  const label = options.label;
  const rgba = new Uint8ClampedArray(pred.length * 4);
  const counts = { tp: 0, fp: 0, fn: 0, tn: 0 };
  for (let p = 0; p < pred.length; p++) {
    if (options.fov && !options.fov[p]) continue;
    const a = label === undefined ? pred[p] !== 0 : pred[p] === label;
    const b = label === undefined ? ref[p] !== 0 : ref[p] === label;
    let c: [number, number, number] | undefined;
    if (a && b) {
      counts.tp++;
      c = colors.tp;
    } else if (a) {
      counts.fp++;
      c = colors.fp;
    } else if (b) {
      counts.fn++;
      c = colors.fn;
    } else counts.tn++;
    if (!c) continue;
    const o = p * 4;
    rgba[o] = c[0];
    rgba[o + 1] = c[1];
    rgba[o + 2] = c[2];
    rgba[o + 3] = alpha;
  }
  return { rgba, counts };
}

/**
 * Alpha-composite an RGBA overlay onto a grey-scale image (8-bit, one byte per pixel), giving an
 * opaque RGBA thumbnail for reports.
 */
export function compositeOnGray(gray: ArrayLike<number>, overlay: Uint8ClampedArray): Uint8ClampedArray {
  const out = new Uint8ClampedArray(gray.length * 4);
  for (let p = 0; p < gray.length; p++) {
    const o = p * 4, a = overlay[o + 3] / 255, g = gray[p] * (1 - a);
    out[o] = g + overlay[o] * a;
    out[o + 1] = g + overlay[o + 1] * a;
    out[o + 2] = g + overlay[o + 2] * a;
    out[o + 3] = 255;
  }
  return out;
}

export interface SegmentComparison {
  label: number;
  name: string;
  dice: number;
  precision: number;
  recall: number;
  tp: number;
  fp: number;
  fn: number;
}

export interface Comparison {
  perSegment: SegmentComparison[];
  /** 1 = TP, 2 = FP, 3 = FN per voxel (any segment): the overlay's labelmap data */
  overlay: Uint8Array;
}

/**
 * Per segment number: overlap of prediction and reference. The overlay marks a voxel TP where both
 * carry the same non-zero label, FP where the prediction has a label the reference does not, FN where
 * the reference has a label and the prediction none.
 */
export function compareLabelmaps(
  pred: ArrayLike<number>,
  ref: ArrayLike<number>,
  segments: { number: number; label: string }[],
): Comparison {
  if (pred.length !== ref.length) {
    throw new RangeError(`reference has ${ref.length} voxels, the result ${pred.length}`);
  }
  const max = segments.reduce((m, s) => Math.max(m, s.number), 0);
  const tp = new Float64Array(max + 1), fp = new Float64Array(max + 1), fn = new Float64Array(max + 1);
  const overlay = new Uint8Array(pred.length);
  for (let i = 0; i < pred.length; i++) {
    const a = pred[i], b = ref[i];
    if (a === b) {
      if (a !== 0) {
        if (a <= max) tp[a]++;
        overlay[i] = 1;
      }
      continue;
    }
    if (a !== 0 && a <= max) fp[a]++;
    if (b !== 0 && b <= max) fn[b]++;
    overlay[i] = a !== 0 ? 2 : 3;
  }
  const n = pred.length;
  const perSegment = segments.map((s) => {
    const c = { tp: tp[s.number], fp: fp[s.number], fn: fn[s.number] };
    const m = overlapMetrics({ ...c, tn: n - c.tp - c.fp - c.fn });
    return { label: s.number, name: s.label, dice: m.dice, precision: m.precision, recall: m.recall, ...c };
  });
  return { perSegment, overlay };
}
