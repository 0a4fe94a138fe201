/**
 * What a result says about how it was made: the phase timings, the region of interest's effect,
 * the segment descriptions of the labelmap and the provenance record (model, runtime, passes, seed).
 */
import { SOFTWARE } from "../core/version.ts";
import type {
  ModelManifest,
  ModelRuntime,
  Provenance,
  RoiProvenance,
  RoiSpec,
  SegmentDescription,
  Volume,
} from "../core/types.ts";
import { now } from "./host.ts";
import type { RunPlan } from "./plan.ts";
import type { RegionOfInterest } from "./roi.ts";
import type { Dims3 } from "./windows.ts";

/**
 * Provenance timings (ms): validation, region of interest, preprocessing, model (inside the
 * predictor), windowing (window extraction and blending), aggregation (activation, flips, resampling
 * back, uncertainty, decision), postprocessing, statistics; reported in this order, then the total.
 */
export class PhaseTimer {
  readonly ms = {
    validation: 0,
    roi: 0,
    preprocessing: 0,
    model: 0,
    windowing: 0,
    aggregation: 0,
    postprocessing: 0,
    statistics: 0,
  };
  private mark = now();

  /** Charge the time since the previous lap to `phase`. */
  lap(phase: keyof PhaseTimer["ms"]): void {
    const n = now();
    this.ms[phase] += n - this.mark;
    this.mark = n;
  }

  /** Time spent inside the predictor, which a windowing lap includes: counted as model instead. */
  model(ms: number): void {
    this.ms.model += ms;
    this.ms.windowing -= ms;
  }

  /** Every phase, then the total. */
  timings(): Record<string, number> {
    return { ...this.ms, total: Object.values(this.ms).reduce((a, b) => a + b, 0) };
  }
}

const thousands = (n: number) => String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",");

/** How much of the volume the region of interest let the passes skip, with a one-line summary. */
export function roiProvenance(
  roi: RegionOfInterest,
  spec: RoiSpec,
  volume: Volume,
  plan: RunPlan,
): RoiProvenance {
  const { dims, spacing } = volume.geometry;
  const slicesSkipped = dims[2] - roi.slices;
  const region = spec.kind === "lungs-from-hu" ? "lung" : "body";
  const cropped = roi.croppedSlices
    ? `; ${roi.croppedSlices} slice${roi.croppedSlices === 1 ? "" : "s"} cropped inside the body kept whole`
    : "";
  const vox = (w: Dims3) => w[0] * w[1] * w[2];
  const voxelsRun = plan.totalWindows * vox(plan.window);
  const voxelsPlanned = plan.plannedWindows * vox(plan.plannedWindow);
  const size = (w: number[]) =>
    w.slice(0, volume.geometry.dims[2] > 1 && plan.window[2] > 1 ? 3 : 2).join("×");
  const cropBox = plan.crop
    ? [0, 1, 2].map((a) => plan.crop!.hi[a] - plan.crop!.lo[a]) as [number, number, number]
    : undefined;
  const windows = cropBox
    ? `${thousands(plan.totalWindows)} windows of ${size(plan.window)} run over the ${region} region's ${
      size(cropBox)
    } box (${Math.round((100 * voxelsRun) / voxelsPlanned)}% of the voxels of ${
      thousands(plan.plannedWindows)
    } windows of ${size(plan.plannedWindow)})`
    : `${thousands(plan.totalWindows)} of ${thousands(plan.plannedWindows)} windows run`;
  return {
    kind: spec.kind,
    marginMm: spec.marginMm,
    windowsRun: plan.totalWindows,
    windowsPlanned: plan.plannedWindows,
    slicesSkipped,
    slices: dims[2],
    croppedSlices: roi.croppedSlices,
    volumeMl: roi.voxels * (spacing[0] * spacing[1] * spacing[2]) / 1000,
    ...(cropBox ? { cropBox } : {}),
    voxelsRun,
    voxelsPlanned,
    summary: `${windows}; ${slicesSkipped} of ${
      dims[2]
    } slices outside the ${region} region skipped${cropped}`,
  };
}

/** The labelmap's segment descriptions: the manifest's labels, produced automatically by this model. */
export function segmentDescriptions(manifest: ModelManifest): SegmentDescription[] {
  return manifest.labels.map((l) => ({
    number: l.value,
    label: l.name,
    category: l.category,
    type: l.type,
    color: l.color,
    algorithmType: "AUTOMATIC",
    algorithmName: manifest.name,
    algorithmVersion: manifest.version,
  }));
}

/** The provenance record of a finished run. */
export function runProvenance(
  runtime: ModelRuntime,
  plan: RunPlan,
  roi: RoiProvenance | undefined,
  timingsMs: Record<string, number>,
  startedAt: string,
): Provenance {
  const manifest = runtime.manifest;
  return {
    modelId: manifest.id,
    modelName: manifest.name,
    modelVersion: manifest.version,
    modelSha256: runtime.modelSha256,
    variant: runtime.variant,
    ...(plan.preprocessing.manufacturer ? { intensityManufacturer: plan.preprocessing.manufacturer } : {}),
    provider: runtime.provider,
    fallbackReasons: [...runtime.fallbackReasons],
    precision: runtime.precision,
    windows: plan.totalWindows,
    passes: plan.passes.length,
    roi,
    seed: plan.usesMc ? plan.seed : undefined,
    uncertainty: plan.method,
    timingsMs,
    startedAt,
    software: SOFTWARE,
  };
}
