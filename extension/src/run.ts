/**
 * One EdgeSeg run on the active series: read the volume from the viewer, run segment() in the Worker
 * with the chosen provider and uncertainty method (the slice in view first, painted as a preview while
 * the rest runs), show the labelmap. Progress and cancellation are
 * surfaced to the panel; nothing here touches the DOM.
 */
import type {
  Progress,
  SegmentationResult,
  UncertaintyMeasure,
  UncertaintyMethod,
} from "../../src/core/types.ts";
import type { DisplaySet, ServicesManager } from "./host.ts";
import type { ModelIndexEntry } from "./models.ts";
import { assetUrl } from "./base.ts";
import { type Device as LibraryDevice, providersFor } from "../../src/inference/devices.ts";
import { markRun, readViewerLabelmap, showLabelmap } from "./labelmap.ts";
import { HEATMAP_BINS, HEATMAP_COLORMAP, type HeatmapBins, heatmapBins, showHeatmap } from "./heatmap.ts";
import { LabelmapPreview, sliceInView } from "./preview.ts";
import { volumeFromDisplaySet } from "./viewer_volume.ts";
import { sharedWorker } from "./worker_client.ts";
import type { ExportSource } from "./export.ts";
import { CancelledError, InputError } from "../../src/core/errors.ts";
import { variantLabel } from "../../src/core/contract.ts";
import type { WorkerTestHooks } from "../../src/inference/browser.ts";

export interface RunSettings {
  model: ModelIndexEntry;
  uncertainty: UncertaintyMethod;
  /** MC dropout passes (mc, mc+tta, mc+ensemble) */
  passes?: number;
  device: Device;
  /** a manifest variant id to run instead of the main model (undefined: the main model) */
  variant?: string;
}

/** What the panel shows while a run is under way. */
export interface RunProgress {
  phase: "series" | Progress["phase"];
  /** 0..1 within the phase, or null when unknown */
  fraction: number | null;
  text: string;
  /** seconds left in the phase, when it can be estimated */
  etaSeconds?: number;
}

const PHASE_TEXT: Record<RunProgress["phase"], string> = {
  series: "Reading the series",
  loading: "Loading model",
  preprocessing: "Preprocessing",
  inference: "Running the model",
  postprocessing: "Post-processing",
  writing: "Writing results",
};

/** The devices the panel offers; `cpu` (onnxruntime-node) exists only in the CLI. */
export type Device = Exclude<LibraryDevice, "cpu">;

/**
 * Turns a worker progress report into panel text and an ETA. The ETA extrapolates the phase's own
 * pace (time since the phase began / work done), so it needs at least one unit done.
 */
export function describeProgress(p: Progress, phaseStartedMs: number, nowMs: number): RunProgress {
  const fraction = p.total > 0 ? Math.min(1, p.done / p.total) : null;
  let text = PHASE_TEXT[p.phase] ?? p.phase;
  if (p.phase === "inference" && p.total > 0) text = `Window ${Math.min(p.done + 1, p.total)} of ${p.total}`;
  else if (p.phase === "loading" && p.total > 0) {
    text = `Loading model (${(p.done / 1048576).toFixed(1)} of ${(p.total / 1048576).toFixed(1)} MiB)`;
  }
  if (p.message && p.phase !== "loading") text += ` — ${p.message}`;
  let etaSeconds: number | undefined;
  if (fraction !== null && p.done > 0 && p.done < p.total) {
    const elapsed = (nowMs - phaseStartedMs) / 1000;
    etaSeconds = (elapsed / p.done) * (p.total - p.done);
  }
  return { phase: p.phase, fraction, text, etaSeconds };
}

/**
 * Where the series' pixel size comes from, or null when it has none. A photograph wrapped as a
 * Secondary Capture carries no PixelSpacing; the volume then gets 1 mm per pixel (as the headless
 * reader does) only so the pipeline can run, and nothing may be reported in mm, mm² or mL.
 */
export function spacingSource(
  instance: Record<string, unknown> | undefined,
): "PixelSpacing" | "ImagerPixelSpacing" | null {
  const real = (v: unknown) =>
    Array.isArray(v) && v.length === 2 && v.every((x) => Number.isFinite(Number(x)) && Number(x) > 0);
  if (real(instance?.PixelSpacing)) return "PixelSpacing";
  if (real(instance?.ImagerPixelSpacing)) return "ImagerPixelSpacing";
  return null;
}

// One segment's size (mL, mm², px) is decided in the library, for the panel and the CLI alike.
export { type SegmentSize, segmentSize } from "../../src/segmentation/statistics.ts";

/** The uncertainty layer in the viewer (when the run measured uncertainty). */
export interface HeatmapLayer extends Pick<HeatmapBins, "range" | "bins" | "colormap"> {
  segmentationId?: string;
  measure: UncertaintyMeasure;
  /** why the layer could not be shown, when it could not */
  error?: string;
}

/** Initial fill opacity of the heatmap layer. */
export const HEATMAP_OPACITY = 0.5;

export interface RunOutcome {
  result: SegmentationResult;
  /** the Cornerstone imageId of every result slice k (to read the viewer's labelmaps back) */
  sliceImageIds: string[];
  heatmap?: HeatmapLayer;
  /** everything export needs (the volume's voxels themselves went to the worker) */
  exportSource: ExportSource;
  segmentationId?: string;
  /** why the labelmap could not be shown, when it could not */
  displayError?: string;
  elapsedMs: number;
  /** whether the series states its pixel size (see spacingSource); sizes are in pixels otherwise */
  spacingKnown: boolean;
  /** SeriesInstanceUIDs this run's result was stored under (never offered as its own reference) */
  storedSeries: Set<string>;
}

export interface ActiveRun {
  cancel(): void;
  outcome: Promise<RunOutcome>;
}

/**
 * Test-only: `globalThis.EDGESEG_TEST_LOSE_WEBGPU_DEVICE_AFTER_WINDOWS = n` (set by an e2e test before
 * the page loads) asks the worker to destroy its WebGPU device after n windows. Unset in normal use,
 * and then the request carries nothing extra.
 */
export function testHooksFromPage(): { testHooks?: WorkerTestHooks } {
  const n = (globalThis as { EDGESEG_TEST_LOSE_WEBGPU_DEVICE_AFTER_WINDOWS?: unknown })
    .EDGESEG_TEST_LOSE_WEBGPU_DEVICE_AFTER_WINDOWS;
  return typeof n === "number" && n >= 0 ? { testHooks: { loseWebGpuDeviceAfterWindows: n } } : {};
}

/**
 * The patient-geometry attributes a series of several images lacks (ImagePositionPatient,
 * ImageOrientationPatient), naming each with the instance it is missing from first. A single image
 * (a photograph) needs neither: it is one plane.
 */
export function missingGeometry(instances: Record<string, unknown>[]): string[] {
  if (instances.length < 2) return [];
  const numbers = (v: unknown, n: number) =>
    Array.isArray(v) && v.length === n && v.every((x) => Number.isFinite(Number(x)));
  const missing: string[] = [];
  for (const [name, n] of [["ImagePositionPatient", 3], ["ImageOrientationPatient", 6]] as const) {
    const at = instances.findIndex((inst) => !numbers(inst[name], n));
    if (at >= 0) {
      const count = instances.filter((inst) => !numbers(inst[name], n)).length;
      missing.push(`${name} (absent or malformed in ${count} of ${instances.length} images)`);
    }
  }
  return missing;
}

/** The display set's instance metadata (OHIF's naturalized DICOM), in display order. */
export function displaySetInstances(displaySet: DisplaySet): Record<string, unknown>[] {
  const list = (displaySet as { instances?: unknown }).instances;
  return Array.isArray(list)
    ? list.filter((x): x is Record<string, unknown> => typeof x === "object" && x !== null)
    : [];
}

/**
 * Records a run's start and end as User Timing marks (visible to the browser's performance tools and
 * to the e2e tests, which wait on them instead of sleeping); never throws.
 */
/** Starts a run. `cancel()` stops it within one model call; the outcome then rejects with CANCELLED. */
export function startRun(
  servicesManager: ServicesManager,
  displaySet: DisplaySet,
  settings: RunSettings,
  onProgress: (p: RunProgress) => void,
): ActiveRun {
  let cancelled = false;
  let cancelWorker: (() => void) | undefined;
  const started = performance.now();
  const outcome = (async (): Promise<RunOutcome> => {
    onProgress({ phase: "series", fraction: null, text: PHASE_TEXT.series });
    const missing = missingGeometry(displaySetInstances(displaySet));
    if (missing.length > 0) {
      throw new InputError(
        "MISSING_GEOMETRY",
        `the series cannot be read as a volume: expected ImagePositionPatient and ImageOrientationPatient ` +
          `in every image, found ${missing.join(" and ")} missing`,
      );
    }
    const { volume, sliceImageIds } = await volumeFromDisplaySet(displaySet, {
      onProgress: (done, total) =>
        onProgress({ phase: "series", fraction: total ? done / total : null, text: PHASE_TEXT.series }),
    });
    if (cancelled) throw new CancelledError("cancelled before the model ran");
    let phase: Progress["phase"] | undefined;
    let phaseStart = performance.now();
    // The slab with the slice in view runs first and each decided slab is painted at once (preview.ts).
    const preview = new LabelmapPreview(
      servicesManager,
      displaySet,
      sliceImageIds,
      volume.geometry,
      settings.model,
      sliceInView(servicesManager, sliceImageIds),
    );
    const handle = sharedWorker().run(
      {
        ...testHooksFromPage(),
        volume,
        modelUrl: settings.model.url || assetUrl(`models/${encodeURIComponent(settings.model.id)}/`),
        providers: providersFor(settings.device),
        ...(settings.variant ? { variant: settings.variant } : {}),
        options: { uncertainty: settings.uncertainty, passes: settings.passes, focusSlice: preview.focus },
      },
      (p) => {
        if (p.phase !== phase) {
          phase = p.phase;
          phaseStart = performance.now();
        }
        onProgress(describeProgress(p, phaseStart, performance.now()));
      },
      // a single image or slice is decided in one piece: nothing to show before the result
      volume.geometry.dims[2] > 1 ? (z0, _z1, labels) => preview.add(z0, labels) : undefined,
    );
    cancelWorker = handle.cancel;
    if (cancelled) handle.cancel();
    let result: SegmentationResult;
    try {
      result = await handle.result;
    } finally {
      await preview.close();
    }
    // A cancel that arrives with the result (the study was closed) must not add a labelmap later.
    if (cancelled) throw new CancelledError("cancelled; the result was discarded");
    const spacingKnown = spacingSource(displaySetInstances(displaySet)[0]) !== null;
    const exportSource: ExportSource = {
      displaySet,
      volume: { geometry: volume.geometry, source: volume.source },
      result,
    };
    onProgress({ phase: "writing", fraction: null, text: "Showing the labelmap" });
    // Two runs of one model, main and variant, stay apart in OHIF's segmentation list.
    const variant = variantLabel(result.provenance);
    const title = `${settings.model.name} ${settings.model.version}${variant ? `, ${variant}` : ""}`;
    // The heatmap goes in first so the model's labelmap, added after it, is the active (editable) one.
    let heatmap: HeatmapLayer | undefined;
    if (result.uncertainty) {
      const heat = heatmapBins(result.uncertainty, { bins: HEATMAP_BINS, colormap: HEATMAP_COLORMAP });
      heatmap = {
        range: heat.range,
        bins: heat.bins,
        colormap: heat.colormap,
        measure: result.uncertainty.measure,
      };
      try {
        heatmap.segmentationId = await showHeatmap(
          servicesManager,
          displaySet,
          sliceImageIds,
          heat,
          `${title} uncertainty`,
          HEATMAP_OPACITY,
        );
      } catch (err) {
        heatmap.error = err instanceof Error ? err.message : String(err);
      }
    }
    try {
      const segmentationId = await showLabelmap(
        servicesManager,
        displaySet,
        sliceImageIds,
        result.labelmap,
        title,
      );
      exportSource.currentLabelmap = () =>
        readViewerLabelmap(segmentationId, sliceImageIds, result.labelmap.geometry.dims);
      return {
        result,
        sliceImageIds,
        exportSource,
        segmentationId,
        heatmap,
        elapsedMs: performance.now() - started,
        storedSeries: new Set<string>(),
        spacingKnown,
      };
    } catch (err) {
      // The result stays usable (statistics, export) even if the viewer cannot draw it.
      return {
        result,
        sliceImageIds,
        exportSource,
        heatmap,
        displayError: err instanceof Error ? err.message : String(err),
        elapsedMs: performance.now() - started,
        storedSeries: new Set<string>(),
        spacingKnown,
      };
    }
  })();
  markRun("edgeseg:run-start", { model: settings.model.id, variant: settings.variant ?? null });
  outcome.then(
    (o) => markRun("edgeseg:run-end", { outcome: "result", segmentationId: o.segmentationId ?? null }),
    (err: unknown) =>
      markRun("edgeseg:run-end", {
        outcome: (err as { code?: unknown })?.code === "CANCELLED" ? "cancelled" : "error",
        message: err instanceof Error ? err.message : String(err),
      }),
  );
  return {
    cancel() {
      cancelled = true;
      cancelWorker?.();
    },
    outcome,
  };
}
