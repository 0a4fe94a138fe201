/**
 * Heatmap rasters: a float map (uncertainty, probability) → RGBA pixels through a colormap, with a
 * value range, an opacity and an optional "show only above τ" cut, ready for a canvas ImageData or
 * a viewer fusion layer. Pure: no DOM.
 */
import { type ColormapName, colormapTable } from "./colormaps.ts";

export interface HeatmapOptions {
  colormap?: ColormapName;
  /** values mapped to the ends of the colormap; default the map's finite min and max */
  range?: [number, number];
  /** 0..1 alpha of drawn pixels (default 0.6) */
  opacity?: number;
  /** draw only pixels with value > threshold; others are transparent */
  threshold?: number;
}

/** Finite minimum and maximum of a map ([0, 0] when there is no finite value). */
export function finiteRange(values: ArrayLike<number>): [number, number] {
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return lo <= hi ? [lo, hi] : [0, 0];
}

/** One k-slice of a planar volume map (a view, not a copy). */
export function sliceOf<T extends Float32Array | Uint8Array | Uint16Array>(
  map: T,
  dims: [number, number, number],
  k: number,
): T {
  if (!(k >= 0 && k < dims[2])) throw new RangeError(`slice ${k} outside 0..${dims[2] - 1}`);
  const n = dims[0] * dims[1];
  return map.subarray(k * n, (k + 1) * n) as T;
}

/**
 * RGBA (4 bytes per value, row-major like the map) for `values`. NaN values and values at or below
 * the threshold are fully transparent.
 */
export function heatmapRGBA(values: ArrayLike<number>, options: HeatmapOptions = {}): Uint8ClampedArray {
  const table = colormapTable(options.colormap ?? "inferno");
  const [lo, hi] = options.range ?? finiteRange(values);
  const scale = hi > lo ? 255 / (hi - lo) : 0;
  const alpha = Math.round(Math.min(1, Math.max(0, options.opacity ?? 0.6)) * 255);
  const threshold = options.threshold ?? -Infinity;
  const out = new Uint8ClampedArray(values.length * 4);
  for (let p = 0; p < values.length; p++) {
    const v = values[p];
    if (!(v > threshold) || Number.isNaN(v)) continue;
    let idx = Math.round((v - lo) * scale);
    idx = idx < 0 ? 0 : idx > 255 ? 255 : idx;
    const o = p * 4, t = idx * 3;
    out[o] = table[t];
    out[o + 1] = table[t + 1];
    out[o + 2] = table[t + 2];
    out[o + 3] = alpha;
  }
  return out;
}
