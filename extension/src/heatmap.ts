/**
 * The uncertainty heatmap in the viewer: the voxel-wise uncertainty map is quantised into N bins and
 * shown as a second OHIF labelmap segmentation on the same series, each bin one segment coloured
 * from the colormap. Being an OHIF segmentation, it follows scrolling, MPR and layout changes like any
 * labelmap (the viewer reslices it), is drawn over the image as a fusion layer, and can be hidden,
 * faded and thresholded per bin ("show only above τ" hides the bins below τ). The panel draws the
 * colour-bar legend with the measure's name and range.
 *
 * Visibility and style are per viewport in OHIF, so the layer's settings (opacity, τ, shown) are kept
 * here and given to every viewport the heatmap appears in later (MPR, a layout change), not only to
 * the viewports that showed it when the control was moved.
 */
import { ViewerError } from "../../src/core/errors.ts";
import { binAlpha, type HeatmapBins, hiddenBins } from "../../src/overlays/heatmap_bins.ts";
import type { DisplaySet, ServicesManager } from "./host.ts";
import { hostCornerstone } from "./host.ts";
import { showLabelmap } from "./labelmap.ts";

// The binning itself is pure and lives in the library; re-exported for the panel and run.ts.
export {
  binAlpha,
  binLow,
  HEATMAP_BINS,
  HEATMAP_COLORMAP,
  type HeatmapBins,
  heatmapBins,
  hiddenBins,
  measureText,
} from "../../src/overlays/heatmap_bins.ts";

interface HeatmapSegmentationService {
  getStyle?(specifier: { viewportId: string; segmentationId: string; type: string }): Record<string, unknown>;
  setStyle(
    specifier: { viewportId?: string; segmentationId?: string; type?: string },
    style: Record<string, unknown>,
    merge?: boolean,
  ): void;
  setSegmentVisibility(
    viewportId: string,
    segmentationId: string,
    segmentIndex: number,
    visible: boolean,
  ): void;
  getViewportIdsWithSegmentation?(segmentationId: string): string[];
  setActiveSegmentation?(viewportId: string, segmentationId: string): void;
  remove?(segmentationId: string): void;
}

function segService(servicesManager: ServicesManager): HeatmapSegmentationService {
  const s = servicesManager.services.segmentationService as HeatmapSegmentationService | undefined;
  if (!s?.setStyle || !s.setSegmentVisibility) {
    throw new ViewerError(
      "NO_SEGMENTATION_STYLE",
      "EdgeSeg: the viewer's segmentation service has no style/visibility controls",
    );
  }
  return s;
}

function viewportsOf(servicesManager: ServicesManager, segmentationId: string): string[] {
  const s = segService(servicesManager);
  const ids = s.getViewportIdsWithSegmentation?.(segmentationId) ?? [];
  const active = servicesManager.services.viewportGridService?.getActiveViewportId();
  return ids.length > 0 ? ids : active ? [active] : [];
}

/** What the heatmap controls last asked for, per heatmap segmentation. */
export interface HeatmapDisplay {
  range: [number, number];
  bins: number;
  opacity: number;
  tau: number;
  visible: boolean;
}

const displays = new Map<string, HeatmapDisplay>();

/** The settings every viewport showing this heatmap gets; undefined for an unknown id. */
export function heatmapDisplay(segmentationId: string): HeatmapDisplay | undefined {
  const d = displays.get(segmentationId);
  return d ? { ...d } : undefined;
}

/** Shows the heatmap as a labelmap layer on the display set; returns its segmentation id. */
export async function showHeatmap(
  servicesManager: ServicesManager,
  displaySet: DisplaySet,
  sliceImageIds: string[],
  heat: HeatmapBins,
  title: string,
  opacity: number,
): Promise<string> {
  const id = await showLabelmap(
    servicesManager,
    displaySet,
    sliceImageIds,
    heat.labelmap,
    title,
    (b) => binAlpha(b, heat.bins),
  );
  displays.set(id, { range: heat.range, bins: heat.bins, opacity, tau: heat.range[0], visible: true });
  followViewports(servicesManager);
  setHeatmapOpacity(servicesManager, id, opacity);
  return id;
}

/** Fill opacity 0..1 (active or not: the heatmap is rarely the active segmentation); no outlines. */
export function setHeatmapOpacity(
  servicesManager: ServicesManager,
  segmentationId: string,
  opacity: number,
): void {
  const a = Math.min(1, Math.max(0, opacity));
  const d = displays.get(segmentationId);
  if (d) d.opacity = a;
  for (const viewportId of viewportsOf(servicesManager, segmentationId)) {
    applyOpacity(segService(servicesManager), viewportId, segmentationId, a);
  }
}

function applyOpacity(s: HeatmapSegmentationService, viewportId: string, segmentationId: string, a: number) {
  s.setStyle({ viewportId, segmentationId, type: "Labelmap" }, {
    fillAlpha: a,
    fillAlphaInactive: a,
    renderOutline: false,
    renderOutlineInactive: false,
  });
}

/** Shows the bins whose lower edge is at or above τ (and the bin τ falls in), hides the rest; `visible` false hides all. */
export function setHeatmapDisplay(
  servicesManager: ServicesManager,
  segmentationId: string,
  heat: Pick<HeatmapBins, "range" | "bins">,
  tau: number,
  visible: boolean,
): number {
  const s = segService(servicesManager);
  const d = displays.get(segmentationId);
  const next = { ...(d ?? { opacity: 1 }), range: heat.range, bins: heat.bins, tau, visible };
  displays.set(segmentationId, next);
  const hidden = new Set(hiddenBins(next));
  for (const viewportId of viewportsOf(servicesManager, segmentationId)) {
    for (let b = 1; b <= heat.bins; b++) {
      s.setSegmentVisibility(viewportId, segmentationId, b, !hidden.has(b));
    }
  }
  return heat.bins - hidden.size;
}

interface FollowTools {
  Enums: { Events: { SEGMENTATION_REPRESENTATION_MODIFIED: string } };
  segmentation: {
    config: {
      visibility: {
        getHiddenSegmentIndices(viewportId: string, s: { segmentationId: string; type: string }): Set<number>;
      };
    };
  };
}

let following = false;

/**
 * Gives a viewport the heatmap's settings when the heatmap's representation there is added or
 * changed (a new MPR or layout viewport starts with every bin shown at the default style). Only what
 * differs is set, so the change events this causes end here.
 */
function followViewports(servicesManager: ServicesManager): void {
  const tools = (globalThis as unknown as { cornerstoneTools?: FollowTools }).cornerstoneTools;
  const cs = hostCornerstone() as
    | { eventTarget?: { addEventListener(type: string, cb: (evt: Event) => void): void } }
    | undefined;
  const event = tools?.Enums?.Events?.SEGMENTATION_REPRESENTATION_MODIFIED;
  if (following || !tools || !event || !cs?.eventTarget) return;
  following = true;
  cs.eventTarget.addEventListener(event, (evt: Event) => {
    const { segmentationId, viewportId } =
      (evt as CustomEvent<{ segmentationId?: string; viewportId?: string }>)
        .detail ?? {};
    const d = segmentationId ? displays.get(segmentationId) : undefined;
    if (!d || !segmentationId || !viewportId) return;
    try {
      applyToViewport(servicesManager, tools, viewportId, segmentationId, d);
    } catch (err) {
      console.warn(`EdgeSeg: could not give viewport ${viewportId} the heatmap settings:`, err);
    }
  });
}

function applyToViewport(
  servicesManager: ServicesManager,
  tools: FollowTools,
  viewportId: string,
  segmentationId: string,
  d: HeatmapDisplay,
): void {
  const s = segService(servicesManager);
  const style = s.getStyle?.({ viewportId, segmentationId, type: "Labelmap" });
  if (!style || style.fillAlpha !== d.opacity || style.renderOutline !== false) {
    applyOpacity(s, viewportId, segmentationId, d.opacity);
  }
  const now = tools.segmentation.config.visibility.getHiddenSegmentIndices(viewportId, {
    segmentationId,
    type: "Labelmap",
  });
  const hidden = new Set(hiddenBins(d));
  for (let b = 1; b <= d.bins; b++) {
    if (now.has(b) !== hidden.has(b)) s.setSegmentVisibility(viewportId, segmentationId, b, !hidden.has(b));
  }
}
