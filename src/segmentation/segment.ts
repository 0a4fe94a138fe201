/**
 * `segment()`: the one entry point the extension, the CLI and the tests share. It sees only a
 * ModelRuntime (manifest + Predictors), never ONNX Runtime, and reads as the method it is:
 *
 *   validate (validate.ts) → region of interest (roi.ts) → plan once: slabs or rows, windows per
 *   pass (only those touching the region), passes and dropout masks (plan.ts) → run the passes, each
 *   through one `runPass`: predict windows → blend (sweep.ts) → activation → undo flip → resample
 *   back → streaming aggregation (passes.ts) → decision → post-processing → statistics → triage →
 *   provenance (provenance.ts).
 *
 * Memory: nothing per pass spans the volume unless the model resamples the slice axis (passes.ts
 * says how). Whole-volume outputs: the labelmap, and the uncertainty / quantised probability maps if
 * asked. Provenance timings: see `PhaseTimer`.
 */
import type {
  ModelManifest,
  ModelRuntime,
  SegmentationResult,
  SegmentOptions,
  Volume,
} from "../core/types.ts";
import { checkAborted } from "./host.ts";
import { allocateOutputs, type PassRun, runPasses } from "./passes.ts";
import { planRun } from "./plan.ts";
import { postprocessLabels } from "./postprocess.ts";
import { PhaseTimer, roiProvenance, runProvenance, segmentDescriptions } from "./provenance.ts";
import { computeRoi, type RegionOfInterest } from "./roi.ts";
import { segmentStatistics } from "./statistics.ts";
import { triage } from "./triage.ts";
import { measureMaximum } from "./uncertainty.ts";
import { passCount, validateInput } from "./validate.ts";

/** Engineering knobs that do not change results (tests use them to prove that). */
export interface SegmentTuning {
  /** target voxels per slab for slice-wise models (default: defaultSlabVoxels(method), 1 M or 256 k) */
  slabVoxels?: number;
}

/** Segment a volume with a model runtime; see the module comment for the phases. */
export async function segment(
  volume: Volume,
  runtime: ModelRuntime,
  options: SegmentOptions = {},
  tuning: SegmentTuning = {},
): Promise<SegmentationResult> {
  const startedAt = new Date().toISOString();
  const timer = new PhaseTimer();
  const manifest = runtime.manifest;
  validateInput(volume, runtime, options);
  checkAborted(options.signal);
  const passes = passCount(manifest, options);
  timer.lap("validation");

  const roi = regionOfInterest(volume, manifest, options);
  timer.lap("roi");

  options.onProgress?.({ phase: "preprocessing", done: 0, total: 1 });
  const plan = planRun(volume, runtime, options, passes, roi, tuning.slabVoxels);
  const [nx, ny, nz] = volume.geometry.dims;
  const outputs = allocateOutputs(manifest, plan, nx * ny * nz, options.keepProbabilities);
  timer.lap("preprocessing");

  const run: PassRun = { volume, runtime, options, plan, roi, outputs, timer, windowsDone: 0 };
  await runPasses(run);
  return finish(run, startedAt);
}

/** Where the model can find something at all (the manifest's `roi` block), unless the caller opts out. */
function regionOfInterest(
  volume: Volume,
  manifest: ModelManifest,
  options: SegmentOptions,
): RegionOfInterest | undefined {
  if (!manifest.roi || options.roi === false) return undefined;
  options.onProgress?.({ phase: "preprocessing", done: 0, total: 1 });
  const { dims, spacing } = volume.geometry;
  // a roi block requires one CT channel (validateManifest), so channel 0 is the whole volume
  const roi = computeRoi(
    volume.data.subarray(0, dims[0] * dims[1] * dims[2]),
    [...dims],
    spacing,
    manifest.roi,
  );
  checkAborted(options.signal);
  return roi;
}

/** Post-processing, statistics and triage on the decided labelmap, then the result with its provenance. */
function finish(run: PassRun, startedAt: string): SegmentationResult {
  const { volume, runtime, plan, outputs, timer, options } = run;
  const manifest = runtime.manifest;
  const geometry = volume.geometry;
  const voxels = geometry.dims[0] * geometry.dims[1] * geometry.dims[2];
  options.onProgress?.({ phase: "postprocessing", done: 0, total: 1 });
  postprocessLabels(
    outputs.labels,
    [...geometry.dims],
    manifest.postprocessing,
    manifest.spatial.mode === "patch3d" ? "3d" : "2d",
    [...geometry.spacing],
  );
  timer.lap("postprocessing");

  const intensityChannel = manifest.preprocessing.channels?.[0] ?? 0;
  const statistics = segmentStatistics({
    labels: outputs.labels,
    geometry,
    segments: manifest.labels,
    intensity: volume.data.subarray(intensityChannel * voxels, (intensityChannel + 1) * voxels),
    uncertainty: outputs.uncertainty,
    passVoxels: plan.multi ? outputs.passVoxels : undefined,
    centre: manifest.triage?.centre,
  });
  let triageResult: SegmentationResult["triage"];
  if (manifest.triage) {
    const max = measureMaximum(plan.measure, plan.entropyKind, plan.outChannels, plan.labelChannels.length);
    const { band, score, reasons, terms } = triage(statistics, manifest.triage, max);
    triageResult = { band, score, reasons, terms };
  }
  timer.lap("statistics");
  options.onProgress?.({ phase: "postprocessing", done: 1, total: 1 });

  const { measure, method, passes } = plan;
  return {
    labelmap: { geometry, data: outputs.labels, segments: segmentDescriptions(manifest) },
    probabilities: outputs.quantised
      ? { geometry, data: outputs.quantised, channels: manifest.labels.length }
      : undefined,
    uncertainty: outputs.uncertainty
      ? { geometry, data: outputs.uncertainty, measure, method, passes: passes.length }
      : undefined,
    statistics,
    triage: triageResult,
    provenance: runProvenance(
      runtime,
      plan,
      run.roi && manifest.roi ? roiProvenance(run.roi, manifest.roi, volume, plan) : undefined,
      timer.timings(),
      startedAt,
    ),
  };
}
