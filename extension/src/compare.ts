/**
 * "Compare with reference": a DICOM SEG already in the study for the same series is loaded through
 * OHIF's own SEG support (its display set and the segmentation service, so no DICOM decoding in our
 * bundle), read back on the result's grid by referenced image, and compared per segment number with
 * the run's labelmap: Dice, precision, recall, and a TP/FP/FN labelmap (green/red/blue) shown in the
 * viewer like any segmentation.
 */
import { InputError, ViewerError } from "../../src/core/errors.ts";
import type { Labelmap } from "../../src/core/types.ts";
import { DEFAULT_COMPARE_COLORS } from "../../src/overlays/mod.ts";
import type { DisplaySet, ServicesManager } from "./host.ts";
import { readViewerLabelmap, showLabelmap } from "./labelmap.ts";

// The comparison itself is pure and lives in the library (src/overlays/compare.ts).
export { compareLabelmaps, type Comparison, type SegmentComparison } from "../../src/overlays/compare.ts";

/** The TP/FP/FN overlay as a three-segment labelmap on the result's grid. */
export function compareOverlayLabelmap(geometry: Labelmap["geometry"], overlay: Uint8Array): Labelmap {
  const code = { value: "", scheme: "", meaning: "" };
  const seg = (number: number, label: string, color: [number, number, number]) => ({
    number,
    label,
    category: code,
    type: code,
    color,
    algorithmType: "AUTOMATIC" as const,
  });
  const c = DEFAULT_COMPARE_COLORS;
  return {
    geometry,
    data: overlay,
    segments: [
      seg(1, "True positive", c.tp),
      seg(2, "False positive", c.fp),
      seg(3, "False negative", c.fn),
    ],
  };
}

interface SegDisplaySetLike extends DisplaySet {
  referencedSeriesInstanceUID?: string;
  SeriesDate?: string;
  SeriesNumber?: number;
  isLoaded?: boolean;
  /** OHIF's own display set for a segmentation made in this page (ours included): not a reference */
  madeInClient?: boolean;
  load?(args: { headers: Record<string, string> }): Promise<unknown>;
}

/**
 * SEG display sets in the viewer that reference the given series (newest last), except `exclude`:
 * the series this run stored itself, which would only compare the run with its own output.
 */
export function referenceCandidates(
  servicesManager: ServicesManager,
  seriesUID: string,
  exclude: ReadonlySet<string> = new Set(),
): SegDisplaySetLike[] {
  const all = servicesManager.services.displaySetService?.getActiveDisplaySets() ?? [];
  return (all as SegDisplaySetLike[]).filter((d) =>
    d.Modality === "SEG" && !d.madeInClient && d.referencedSeriesInstanceUID === seriesUID &&
    !exclude.has(d.SeriesInstanceUID ?? "")
  );
}

interface SegServiceForCompare {
  createSegmentationForSEGDisplaySet(ds: DisplaySet): Promise<string>;
  getSegmentation?(id: string): unknown;
}

/** Loads the reference SEG into OHIF (once) and reads its voxels on the result's grid. */
export async function loadReference(
  servicesManager: ServicesManager,
  seg: SegDisplaySetLike,
  sliceImageIds: string[],
  dims: readonly [number, number, number],
): Promise<Uint8Array> {
  const service = servicesManager.services.segmentationService as SegServiceForCompare | undefined;
  if (!service?.createSegmentationForSEGDisplaySet) {
    throw new ViewerError(
      "NO_SEGMENTATION_SERVICE",
      "the viewer cannot load DICOM SEG (no segmentation service)",
    );
  }
  if (!seg.isLoaded) await seg.load?.({ headers: {} });
  const existing = service.getSegmentation?.(seg.displaySetInstanceUID);
  const id = existing ? seg.displaySetInstanceUID : await service.createSegmentationForSEGDisplaySet(seg);
  const data = readViewerLabelmap(id, sliceImageIds, dims);
  if (!data) {
    throw new InputError(
      "REFERENCE_COVERAGE",
      `the reference SEG does not cover the ${dims[2]} image${dims[2] === 1 ? "" : "s"} of the series`,
    );
  }
  return data;
}

/** Shows the overlay in the viewer; returns its segmentation id. */
export function showCompareOverlay(
  servicesManager: ServicesManager,
  displaySet: DisplaySet,
  sliceImageIds: string[],
  geometry: Labelmap["geometry"],
  overlay: Uint8Array,
  title: string,
): Promise<string> {
  return showLabelmap(
    servicesManager,
    displaySet,
    sliceImageIds,
    compareOverlayLabelmap(geometry, overlay),
    title,
  );
}
