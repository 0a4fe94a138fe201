/**
 * "Compare with reference": a DICOM SEG already in the study for the same series is loaded through
 * OHIF's own SEG support (its display set and the segmentation service, so no DICOM decoding in our
 * bundle), read back on the result's grid by referenced image, and compared per segment number with
 * the run's labelmap: Dice, precision, recall, and a TP/FP/FN labelmap (green/red/blue) shown in the
 * viewer like any segmentation.
 */
import { InputError, ViewerError } from "../../src/core/errors.ts";
import type { Labelmap } from "../../src/core/types.ts";
import { overlapMetrics } from "../../src/segmentation/metrics.ts";
import { DEFAULT_COMPARE_COLORS } from "../../src/overlays/mod.ts";
import type { DisplaySet, ServicesManager } from "./host.ts";
import { readViewerLabelmap, showLabelmap } from "./labelmap.ts";

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

/** SEG display sets in the viewer that reference the given series (newest last). */
export function referenceCandidates(
  servicesManager: ServicesManager,
  seriesUID: string,
): SegDisplaySetLike[] {
  const all = servicesManager.services.displaySetService?.getActiveDisplaySets() ?? [];
  return (all as SegDisplaySetLike[]).filter((d) =>
    d.Modality === "SEG" && !d.madeInClient && d.referencedSeriesInstanceUID === seriesUID
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
