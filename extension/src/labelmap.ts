/**
 * A segmentation result shown in OHIF: a labelmap segmentation on the source display set, named and
 * coloured from the model's labels, editable with OHIF's segmentation tools. Slices are matched by
 * the Cornerstone imageId each result slice came from, never by index (display sets and volumes sort
 * slices differently).
 */
import { ViewerError } from "../../src/core/errors.ts";
import type { Labelmap, SegmentDescription } from "../../src/core/types.ts";
import type { DisplaySet, ServicesManager } from "./host.ts";
import { hostCornerstone } from "./host.ts";

interface SegmentationServiceLike {
  createLabelmapForDisplaySet(
    ds: DisplaySet,
    opts: { label: string; segments: Record<number, Record<string, unknown>> },
  ): Promise<string>;
  addSegmentationRepresentation(viewportId: string, opts: { segmentationId: string }): Promise<void>;
  setSegmentColor(viewportId: string, segmentationId: string, segmentIndex: number, color: number[]): void;
}

interface DerivedImageLike {
  referencedImageId?: string;
  voxelManager: { getScalarData(): { set(src: ArrayLike<number>): void; length: number } };
}

interface ToolsLike {
  segmentation: {
    state: {
      getSegmentation(id: string): { representationData: { Labelmap?: { imageIds: string[] } } } | undefined;
    };
    triggerSegmentationEvents: { triggerSegmentationDataModified(id: string): void };
  };
}

/** Which result slice k fills each labelmap image: the index of its referenced image in the volume. */
export function sliceIndexByImageId(sliceImageIds: string[]): Map<string, number> {
  const map = new Map<string, number>();
  sliceImageIds.forEach((id, k) => map.set(id, k));
  return map;
}

/** What `showLabelmap` reads of a labelmap: its voxels and how to name and colour each segment. */
export type ShownLabelmap = Pick<Labelmap, "geometry" | "data"> & {
  segments: Pick<SegmentDescription, "number" | "label" | "color" | "algorithmType" | "algorithmName">[];
};

type ScalarData = ReturnType<DerivedImageLike["voxelManager"]["getScalarData"]>;

/**
 * The labelmap images of a shown segmentation, each with the result slice k it holds (matched by the
 * image it references, never by index); undefined when the viewer has no such segmentation.
 */
function labelmapSlices(
  segmentationId: string,
  sliceImageIds: string[],
): { k: number; data: ScalarData }[] | undefined {
  const cs = hostCornerstone() as
    | { cache?: { getImage(id: string): DerivedImageLike | undefined } }
    | undefined;
  const tools = (globalThis as unknown as { cornerstoneTools?: ToolsLike }).cornerstoneTools;
  const imageIds = tools?.segmentation.state.getSegmentation(segmentationId)?.representationData.Labelmap
    ?.imageIds;
  if (!cs?.cache || !imageIds) return undefined;
  const byImageId = sliceIndexByImageId(sliceImageIds);
  const out: { k: number; data: ScalarData }[] = [];
  for (const id of imageIds) {
    const img = cs.cache.getImage(id);
    const k = img?.referencedImageId !== undefined ? byImageId.get(img.referencedImageId) : undefined;
    if (img && k !== undefined) out.push({ k, data: img.voxelManager.getScalarData() });
  }
  return out;
}

/** Adds the labelmap to the display set's viewport; returns the OHIF segmentation id. */
export async function showLabelmap(
  servicesManager: ServicesManager,
  displaySet: DisplaySet,
  sliceImageIds: string[],
  labelmap: ShownLabelmap,
  title: string,
  /** per-segment opacity 0..255 (the heatmap ramps it by bin); opaque when absent */
  alphaOf?: (segmentNumber: number) => number,
): Promise<string> {
  const services = servicesManager.services;
  const segmentationService = services.segmentationService as SegmentationServiceLike | undefined;
  const viewportId = services.viewportGridService?.getActiveViewportId();
  const cs = hostCornerstone() as
    | { cache?: { getImage(id: string): DerivedImageLike | undefined } }
    | undefined;
  const tools = (globalThis as unknown as { cornerstoneTools?: ToolsLike }).cornerstoneTools;
  if (!segmentationService || !viewportId || !cs?.cache || !tools) {
    throw new ViewerError(
      "NO_SEGMENTATION_SERVICE",
      "EdgeSeg: the viewer's segmentation service or Cornerstone tools are not available",
    );
  }
  const segments: Record<number, Record<string, unknown>> = {};
  labelmap.segments.forEach((s, i) => {
    segments[s.number] = {
      label: s.label,
      active: i === 0,
      algorithmType: s.algorithmType,
      algorithmName: s.algorithmName ?? title,
    };
  });
  const segmentationId = await segmentationService.createLabelmapForDisplaySet(displaySet, {
    label: title,
    segments,
  });
  // A failure after the segmentation exists (the viewport went away, slices do not match) removes it
  // again: nothing half-shown stays in the viewer.
  try {
    const [cols, rows] = labelmap.geometry.dims;
    const sliceSize = cols * rows;
    let filled = 0;
    for (const { k, data: target } of labelmapSlices(segmentationId, sliceImageIds) ?? []) {
      if (target.length !== sliceSize) {
        throw new ViewerError(
          "LABELMAP_SIZE",
          `EdgeSeg: labelmap slice has ${target.length} pixels, the result has ${sliceSize} (${cols}×${rows})`,
        );
      }
      target.set(labelmap.data.subarray(k * sliceSize, (k + 1) * sliceSize));
      filled++;
    }
    if (filled !== labelmap.geometry.dims[2]) {
      throw new ViewerError(
        "LABELMAP_SLICES",
        `EdgeSeg: matched ${filled} of ${labelmap.geometry.dims[2]} result slices to the series' images`,
      );
    }
    await segmentationService.addSegmentationRepresentation(viewportId, { segmentationId });
    const colors: [number, number[]][] = labelmap.segments.map((s) => [
      s.number,
      [...s.color, alphaOf ? Math.round(Math.min(255, Math.max(0, alphaOf(s.number)))) : 255],
    ]);
    for (const [index, color] of colors) {
      segmentationService.setSegmentColor(viewportId, segmentationId, index, color);
    }
    tools.segmentation.triggerSegmentationEvents.triggerSegmentationDataModified(segmentationId);
    keepLabelmapsDrawn();
    shownOn.set(segmentationId, displaySet.displaySetInstanceUID);
    colorsOf.set(segmentationId, colors);
    followSeries(servicesManager);
  } catch (err) {
    (segmentationService as { remove?(id: string): void }).remove?.(segmentationId);
    throw err;
  }
  return segmentationId;
}

/** EdgeSeg segmentations (in the order they were shown) and the display set each one labels. */
const shownOn = new Map<string, string>();
/** Their segment colours, set again in each viewport they are added to (OHIF keeps colours per viewport). */
const colorsOf = new Map<string, [number, number[]][]>();
let followingSeries = false;

interface ViewportServiceLike {
  EVENTS: Record<string, string>;
  subscribe(event: string, cb: (evt: { viewportId?: string }) => void): unknown;
}

/** The segmentations to add to a viewport showing these display sets: those not there yet, in order. */
export function missingSegmentations(
  shown: ReadonlyMap<string, string>,
  displaySetUIDs: readonly string[],
  present: readonly string[],
): string[] {
  return [...shown].filter(([id, ds]) => displaySetUIDs.includes(ds) && !present.includes(id)).map(([id]) =>
    id
  );
}

/**
 * OHIF 3.13.2 carries segmentations into the viewports of a hanging protocol (MPR) but not into a
 * viewport that a layout change (1×2…) gives the same series: it shows the bare image. So when a
 * viewport is given data, each EdgeSeg segmentation of a series it shows is added to it (heatmap
 * first, so the model's labelmap stays the active, editable one). A segmentation the user deleted
 * is forgotten.
 */
function followSeries(servicesManager: ServicesManager): void {
  const services = servicesManager.services;
  const viewports = services.cornerstoneViewportService as ViewportServiceLike | undefined;
  const segmentationService = services.segmentationService as SegmentationServiceLike | undefined;
  const event = viewports?.EVENTS?.VIEWPORT_DATA_CHANGED;
  if (followingSeries || !viewports || !event || !segmentationService) return;
  followingSeries = true;
  viewports.subscribe(event, ({ viewportId }) => {
    const tools = (globalThis as unknown as { cornerstoneTools?: ToolsLike & RedrawTools }).cornerstoneTools;
    const grid = services.viewportGridService?.getState().viewports.get(viewportId ?? "");
    if (!viewportId || !tools || !grid) return;
    for (const id of [...shownOn.keys()]) {
      if (!tools.segmentation.state.getSegmentation(id)) {
        shownOn.delete(id);
        colorsOf.delete(id);
      }
    }
    const present = (tools.segmentation.state.getSegmentationRepresentations(viewportId) ?? [])
      .map((r) => r.segmentationId);
    const missing = missingSegmentations(shownOn, grid.displaySetInstanceUIDs ?? [], present);
    (async () => {
      for (const segmentationId of missing) {
        await segmentationService.addSegmentationRepresentation(viewportId, { segmentationId });
        for (const [index, color] of colorsOf.get(segmentationId) ?? []) {
          segmentationService.setSegmentColor(viewportId, segmentationId, index, color);
        }
      }
    })().catch((err) => console.warn(`EdgeSeg: could not show the segmentations in ${viewportId}:`, err));
  });
}

interface RedrawTools {
  Enums: { Events: { SEGMENTATION_REPRESENTATION_MODIFIED: string } };
  segmentation: {
    state: { getSegmentationRepresentations(viewportId: string): { segmentationId: string; type: string }[] };
    triggerSegmentationEvents: {
      triggerSegmentationRepresentationModified(
        viewportId: string,
        segmentationId: string,
        type: string,
      ): void;
      triggerSegmentationDataModified(segmentationId: string): void;
    };
  };
}

interface RedrawActorEntry {
  representationUID?: string;
  actor?: { getProperty?(): { getRGBTransferFunction?(index: number): unknown } | undefined };
}

interface RedrawViewport {
  getActors(): RedrawActorEntry[];
}

interface RedrawCornerstone {
  eventTarget: { addEventListener(type: string, cb: (evt: Event) => void): void };
  getEnabledElementByViewportId(id: string): { viewport: RedrawViewport } | undefined;
}

/**
 * Pauses (ms) between checks of a viewport for an undrawn labelmap: backing off, ~40 s in all. In
 * tests/e2e/mpr_test.ts a redraw asked 1.5 s after the switch to MPR still drew nothing, one at 4 s
 * did; on a busy machine it took longer.
 */
export const REDRAW_BACKOFF_MS = [250, 500, 1000, 2000, 4000, 4000, 4000, 4000, 4000, 4000, 4000, 4000];
let redrawListening = false;
const watched = new Set<string>();

/** A labelmap actor as seen by the redraw check: its representation and whether it has a colour LUT. */
export interface LabelmapActorState {
  representationUID?: string;
  /** Cornerstone has given it the segment colours (an RGB transfer function); unstyled it draws grey */
  styled: boolean;
}

/** What a viewport still needs for each labelmap it lists: its actor mounted, or its colours applied. */
export function undrawnLabelmaps(
  representations: { segmentationId: string; type: string }[],
  actors: LabelmapActorState[],
): { unmounted: string[]; unstyled: string[] } {
  const unmounted: string[] = [], unstyled: string[] = [];
  for (const r of representations) {
    if (r.type !== "Labelmap") continue;
    const own = actors.filter((a) => a.representationUID?.startsWith(`${r.segmentationId}-Labelmap`));
    if (own.length === 0) unmounted.push(r.segmentationId);
    else if (own.some((a) => !a.styled)) unstyled.push(r.segmentationId);
  }
  return { unmounted, unstyled };
}

function actorState(entry: RedrawActorEntry): LabelmapActorState {
  const property = entry.actor?.getProperty?.();
  return { representationUID: entry.representationUID, styled: !!property?.getRGBTransferFunction?.(0) };
}

/**
 * OHIF 3.13.2 re-adds every segmentation to the viewports a hanging protocol or layout change creates
 * (MPR, 1×2…), but in a new volume viewport the first render of a labelmap made from stack images
 * does not complete: the representation is listed, no actor is mounted, nothing is drawn and nothing
 * renders it again (tests/e2e/mpr_test.ts saw three blank MPR viewports; Cornerstone never sent
 * SEGMENTATION_RENDERED for them, and no later host event says when a render would succeed). In a
 * new stack viewport (a 1×2 layout) the opposite happens: the stack's image-change listener mounts the
 * labelmap actors with a placeholder style (no colour function, opacity 1 at label 1), but the
 * segmentation render that would give them the segment colours never runs for that viewport, so the
 * labelmap covers the image in near-black (tests/e2e/mpr_test.ts: the second viewport "dimmed", its
 * actors without an RGB transfer function, no SEGMENTATION_RENDERED; a data-modified event colours
 * them). So when a labelmap representation is added to or changed in a viewport, the viewport is
 * checked a few times, backing off: a labelmap still without its actor is rendered again, one whose
 * actor is unstyled gets a data-modified render pass, until it is drawn in colour.
 */
export function keepLabelmapsDrawn(): void {
  const tools = (globalThis as unknown as { cornerstoneTools?: RedrawTools }).cornerstoneTools;
  const cs = hostCornerstone() as unknown as RedrawCornerstone | undefined;
  const modified = tools?.Enums?.Events?.SEGMENTATION_REPRESENTATION_MODIFIED;
  if (redrawListening || !tools || !modified || !cs?.eventTarget) return;
  redrawListening = true;
  cs.eventTarget.addEventListener(modified, (evt: Event) => {
    const viewportId = (evt as CustomEvent<{ viewportId?: string }>).detail?.viewportId;
    if (viewportId && !watched.has(viewportId)) {
      watched.add(viewportId);
      redrawUntilDrawn(tools, cs, viewportId, 0);
    }
  });
}

function redrawUntilDrawn(
  tools: RedrawTools,
  cs: RedrawCornerstone,
  viewportId: string,
  attempt: number,
): void {
  setTimeout(() => {
    const viewport = cs.getEnabledElementByViewportId(viewportId)?.viewport;
    const representations = tools.segmentation.state.getSegmentationRepresentations(viewportId) ?? [];
    const { unmounted, unstyled } = viewport
      ? undrawnLabelmaps(representations, viewport.getActors().map(actorState))
      : { unmounted: [], unstyled: [] };
    if (unmounted.length + unstyled.length === 0 || attempt + 1 >= REDRAW_BACKOFF_MS.length) {
      watched.delete(viewportId);
      return;
    }
    const events = tools.segmentation.triggerSegmentationEvents;
    for (const segmentationId of unmounted) {
      events.triggerSegmentationRepresentationModified(viewportId, segmentationId, "Labelmap");
    }
    for (const segmentationId of unstyled) events.triggerSegmentationDataModified(segmentationId);
    redrawUntilDrawn(tools, cs, viewportId, attempt + 1);
  }, REDRAW_BACKOFF_MS[attempt]);
}

/**
 * Segments whose voxel set differs between the labelmap a run wrote and the one the viewer holds now
 * (edited with OHIF's brush, eraser, scissors…). Voxels of segments the model did not define count
 * against the segment they were taken from.
 */
export function editedSegments(original: ArrayLike<number>, current: ArrayLike<number>): Set<number> {
  if (original.length !== current.length) {
    throw new RangeError(`labelmap has ${current.length} voxels, the run wrote ${original.length}`);
  }
  const edited = new Set<number>();
  for (let i = 0; i < original.length; i++) {
    const a = original[i], b = current[i];
    if (a === b) continue;
    if (a !== 0) edited.add(a);
    if (b !== 0) edited.add(b);
  }
  return edited;
}

/**
 * The labelmap to export: the viewer's current voxels, with every segment the user changed marked
 * SEMIAUTOMATIC (model output edited by a person, DICOM's meaning). Voxels of labels the model does
 * not know are dropped, since a SEG cannot describe them.
 */
export function withEdits(
  labelmap: Labelmap,
  current: ArrayLike<number>,
): { labelmap: Labelmap; edited: number[] } {
  const edited = editedSegments(labelmap.data, current);
  if (edited.size === 0) return { labelmap, edited: [] };
  const known = new Set(labelmap.segments.map((s) => s.number));
  const data = new (labelmap.data.constructor as { new (n: number): Uint8Array | Uint16Array })(
    current.length,
  );
  for (let i = 0; i < current.length; i++) {
    const v = current[i];
    if (known.has(v)) data[i] = v;
  }
  const segments = labelmap.segments.map((s) =>
    edited.has(s.number) ? { ...s, algorithmType: "SEMIAUTOMATIC" as const } : s
  );
  return {
    labelmap: { ...labelmap, data, segments },
    edited: [...edited].filter((n) => known.has(n)).sort(),
  };
}

/**
 * The voxels the viewer holds for a segmentation, in the result's slice order (slice k from the
 * labelmap image whose referenced image is sliceImageIds[k]); undefined when it is gone.
 */
export function readViewerLabelmap(
  segmentationId: string,
  sliceImageIds: string[],
  dims: readonly [number, number, number],
): Uint8Array | undefined {
  const slices = labelmapSlices(segmentationId, sliceImageIds);
  if (!slices) return undefined;
  const sliceSize = dims[0] * dims[1];
  const out = new Uint8Array(sliceSize * dims[2]);
  let filled = 0;
  for (const { k, data } of slices) {
    const src = data as unknown as ArrayLike<number>;
    if (src.length !== sliceSize) return undefined;
    for (let p = 0; p < sliceSize; p++) out[k * sliceSize + p] = src[p];
    filled++;
  }
  return filled === dims[2] ? out : undefined;
}

/**
 * Writes result slices [z0, z1) (`labels`, slice-major like the result) into a labelmap already shown
 * with `showLabelmap`, and redraws it. Returns the number of slices written.
 */
export function fillLabelmapSlices(
  segmentationId: string,
  sliceImageIds: string[],
  dims: readonly [number, number, number],
  z0: number,
  labels: Uint8Array | Uint16Array,
): number {
  const tools = (globalThis as unknown as { cornerstoneTools?: ToolsLike }).cornerstoneTools;
  const slices = labelmapSlices(segmentationId, sliceImageIds);
  if (!tools || !slices) return 0;
  const sliceSize = dims[0] * dims[1];
  const z1 = z0 + labels.length / sliceSize;
  let written = 0;
  for (const { k, data: target } of slices) {
    if (k < z0 || k >= z1 || target.length !== sliceSize) continue;
    target.set(labels.subarray((k - z0) * sliceSize, (k - z0 + 1) * sliceSize));
    written++;
  }
  if (written) tools.segmentation.triggerSegmentationEvents.triggerSegmentationDataModified(segmentationId);
  return written;
}

/**
 * Removes a labelmap shown with `showLabelmap` from the viewer (a preview the result replaces) and
 * resolves once the viewer's segmentation state no longer holds it (the removal settles
 * asynchronously while a viewport is being torn down), or after `maxWaitMs`.
 */
export async function removeLabelmap(
  servicesManager: ServicesManager,
  segmentationId: string,
  maxWaitMs = 2000,
): Promise<void> {
  const s = servicesManager.services.segmentationService as
    | { remove?(segmentationId: string): void; getSegmentation?(id: string): unknown }
    | undefined;
  shownOn.delete(segmentationId);
  colorsOf.delete(segmentationId);
  s?.remove?.(segmentationId);
  const tools = (globalThis as unknown as { cornerstoneTools?: ToolsLike }).cornerstoneTools;
  const present = () =>
    tools?.segmentation.state.getSegmentation(segmentationId) !== undefined ||
    (s?.getSegmentation?.(segmentationId) ?? undefined) !== undefined;
  const until = performance.now() + maxWaitMs;
  while (present() && performance.now() < until) {
    s?.remove?.(segmentationId);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * A User Timing mark with detail (edgeseg:run-start, edgeseg:preview-slices, …): what the e2e tests and
 * the bench read. Old browsers without User Timing L3 skip it; nothing depends on it.
 */
export function markRun(name: string, detail: Record<string, unknown>): void {
  try {
    performance.mark(name, { detail });
  } catch {
    // mark(name, { detail }) is missing: the run goes on without it
  }
}
