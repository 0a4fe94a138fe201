/**
 * Colour-bar legends as data: an RGBA raster of the colormap and tick positions with labels. Text
 * is left to the caller (canvas, SVG, HTML), so the core stays free of fonts and the DOM.
 */
import { type ColormapName, colormapTable } from "./colormaps.ts";

export interface Tick {
  value: number;
  /** 0 at the low end of the bar, 1 at the high end */
  position: number;
  label: string;
}

export interface ColorBar {
  width: number;
  height: number;
  /** RGBA, row-major */
  rgba: Uint8ClampedArray;
  orientation: "vertical" | "horizontal";
  ticks: Tick[];
  range: [number, number];
}

/** "Nice" step (1, 2 or 5 × 10ⁿ) for about `count` intervals over `span`. */
export function niceStep(span: number, count: number): number {
  if (!(span > 0) || count < 1) return 1;
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

/** Ticks at nice values inside [lo, hi], labelled with just enough decimals. */
export function colorBarTicks(range: [number, number], count = 5): Tick[] {
  const [lo, hi] = range;
  if (!(hi > lo)) return [{ value: lo, position: 0, label: formatTick(lo, 1) }];
  const step = niceStep(hi - lo, count);
  const ticks: Tick[] = [];
  const first = Math.ceil(lo / step - 1e-9) * step;
  for (let v = first; v <= hi + step * 1e-9; v += step) {
    const value = Math.abs(v) < step * 1e-9 ? 0 : v;
    ticks.push({ value, position: (value - lo) / (hi - lo), label: formatTick(value, step) });
  }
  return ticks;
}

function formatTick(v: number, step: number): string {
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  return v.toFixed(Math.min(decimals, 6));
}

/**
 * A colour bar raster: vertical bars have the high end at the top (as legends are read), horizontal
 * bars have it on the right.
 */
export function colorBar(
  colormap: ColormapName,
  range: [number, number],
  width: number,
  height: number,
  orientation: "vertical" | "horizontal" = "vertical",
  tickCount = 5,
): ColorBar {
  const table = colormapTable(colormap);
  const rgba = new Uint8ClampedArray(width * height * 4);
  const along = orientation === "vertical" ? height : width;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const pos = orientation === "vertical" ? height - 1 - y : x;
      const t = along > 1 ? pos / (along - 1) : 0;
      const c = Math.round(t * 255) * 3;
      const o = (y * width + x) * 4;
      rgba[o] = table[c];
      rgba[o + 1] = table[c + 1];
      rgba[o + 2] = table[c + 2];
      rgba[o + 3] = 255;
    }
  }
  return { width, height, rgba, orientation, ticks: colorBarTicks(range, tickCount), range };
}
