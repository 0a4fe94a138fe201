/** Pure overlay rasters: colormaps, heatmaps, colour-bar legends and TP/FP/FN compare overlays. No DOM. */
export { COLORMAP_NAMES, type ColormapName, colormapTable, sampleColormap } from "./colormaps.ts";
export { finiteRange, type HeatmapOptions, heatmapRGBA, sliceOf } from "./heatmap.ts";
export { type ColorBar, colorBar, colorBarTicks, niceStep, type Tick } from "./legend.ts";
export {
  type CompareColors,
  type CompareOverlay,
  compareOverlayRGBA,
  compositeOnGray,
  DEFAULT_COMPARE_COLORS,
} from "./compare.ts";
export {
  binAlpha,
  binLow,
  HEATMAP_BINS,
  HEATMAP_COLORMAP,
  type HeatmapBins,
  heatmapBins,
  hiddenBins,
  measureText,
} from "./heatmap_bins.ts";
