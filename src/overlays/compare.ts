/**
 * Compare overlays: prediction vs reference as true positives (green), false positives (red) and
 * false negatives (blue); true negatives stay transparent. Used for eval report thumbnails and for
 * reviewing a model against a reference segmentation in the viewer.
 */

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
