/**
 * Colormaps as data: 256-entry sRGB lookup tables (viridis and inferno are perceptually uniform and
 * readable in grey-scale print; hot is the familiar radiology heat scale).
 */
import { COLORMAP_HEX } from "./colormap_data.ts";

export type ColormapName = "viridis" | "inferno" | "hot";

export const COLORMAP_NAMES: readonly ColormapName[] = ["viridis", "inferno", "hot"];

const cache = new Map<ColormapName, Uint8Array>();

/** The 256 × RGB table of a colormap (shared; do not modify). */
export function colormapTable(name: ColormapName): Uint8Array {
  let t = cache.get(name);
  if (!t) {
    const hex = COLORMAP_HEX[name];
    if (hex === undefined) {
      throw new RangeError(`unknown colormap "${name}"; expected one of ${COLORMAP_NAMES.join(", ")}`);
    }
    t = new Uint8Array(768);
    for (let i = 0; i < 768; i++) t[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
    cache.set(name, t);
  }
  return t;
}

/** Colour of t ∈ [0, 1] (clamped) as [r, g, b]. */
export function sampleColormap(name: ColormapName, t: number): [number, number, number] {
  const table = colormapTable(name);
  const i = Math.round(Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * 255) * 3;
  return [table[i], table[i + 1], table[i + 2]];
}
