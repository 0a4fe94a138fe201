/**
 * The uncertainty heatmap as labelmap bins (pure): the voxel-wise uncertainty map quantised into N
 * bins, each bin a segment coloured from the colormap with an alpha ramp; which bins "show only above
 * τ" hides. The extension draws these bins as an OHIF labelmap (extension/src/heatmap.ts).
 */
import type { Labelmap, SegmentDescription, UncertaintyMap } from "../core/types.ts";
import { type ColormapName, sampleColormap } from "./colormaps.ts";
import { finiteRange } from "./heatmap.ts";

/** Enough bins that neighbouring colours are hard to tell apart, few enough for OHIF's segment list. */
export const HEATMAP_BINS = 16;
export const HEATMAP_COLORMAP: ColormapName = "inferno";

const MEASURE_TEXT: Record<UncertaintyMap["measure"], string> = {
  entropy: "Predictive entropy",
  mutualInformation: "Mutual information",
  variance: "Variance",
  sd: "Standard deviation",
};

export function measureText(measure: UncertaintyMap["measure"]): string {
  return MEASURE_TEXT[measure] ?? measure;
}

export interface HeatmapBins {
  labelmap: Labelmap;
  /** [lo, hi] of the finite values: bin b covers (lo + (b-1)·w, lo + b·w], w = (hi-lo)/bins */
  range: [number, number];
  bins: number;
  colormap: ColormapName;
}

/**
 * Opacity (0..255) of bin b: a ramp from nearly clear to opaque, so the near-certain floor (MC passes
 * rarely give exactly 0) only faintly tints the image and the uncertain voxels stand out, as in a
 * heatmap whose colormap fades in. Multiplied by the layer's opacity control.
 */
export function binAlpha(b: number, bins: number): number {
  const t = bins > 1 ? (Math.min(Math.max(b, 1), bins) - 1) / (bins - 1) : 1;
  return Math.round(255 * (0.08 + 0.92 * t));
}

/** Lower edge of bin b (1-based). */
export function binLow(h: Pick<HeatmapBins, "range" | "bins">, b: number): number {
  const [lo, hi] = h.range;
  return lo + ((b - 1) * (hi - lo)) / h.bins;
}

/**
 * Quantises the map: values at the lower end of the range (typically 0: the model is certain) are
 * left transparent, so only uncertain voxels are drawn over the image.
 */
export function heatmapBins(
  map: UncertaintyMap,
  options: { bins?: number; colormap?: ColormapName } = {},
): HeatmapBins {
  const bins = options.bins ?? HEATMAP_BINS;
  const colormap = options.colormap ?? HEATMAP_COLORMAP;
  const range = finiteRange(map.data);
  const [lo, hi] = range;
  const data = new Uint8Array(map.data.length);
  if (hi > lo) {
    const scale = bins / (hi - lo);
    const src = map.data;
    for (let i = 0; i < src.length; i++) {
      const v = src[i];
      if (!(v > lo)) continue; // NaN and the certain floor stay transparent
      const b = Math.ceil((v - lo) * scale);
      data[i] = b > bins ? bins : b;
    }
  }
  const name = measureText(map.measure);
  const segments: SegmentDescription[] = [];
  for (let b = 1; b <= bins; b++) {
    const a = lo + ((b - 1) * (hi - lo)) / bins, z = lo + (b * (hi - lo)) / bins;
    const [r, g, bl] = sampleColormap(colormap, (b - 0.5) / bins);
    segments.push({
      number: b,
      label: `${name} ${a.toPrecision(2)}–${z.toPrecision(2)}`,
      // Not anatomy: a display layer; never exported as a SEG.
      category: { value: "", scheme: "", meaning: "" },
      type: { value: "", scheme: "", meaning: "" },
      color: [r, g, bl],
      algorithmType: "AUTOMATIC",
    });
  }
  return { labelmap: { geometry: map.geometry, data, segments }, range, bins, colormap };
}

/** Bins hidden at τ: those whose upper edge is at or below τ, or all when the layer is off. */
export function hiddenBins(
  d: Pick<HeatmapBins, "range" | "bins"> & { tau: number; visible: boolean },
): number[] {
  const hidden: number[] = [];
  for (let b = 1; b <= d.bins; b++) {
    if (!d.visible || !(binLow(d, b + 1) > d.tau)) hidden.push(b);
  }
  return hidden;
}
