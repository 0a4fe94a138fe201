/**
 * Running the planned passes. Every pass — the plain one, an MC-dropout draw, a TTA transform, an
 * ensemble member — goes through `runPass`: its model output arrives in chunks, each chunk takes the
 * one post-model step (`toSourceGrid`: activation → undo the flips → resample back → background
 * outside the region of interest) and goes into an `Aggregation` (several passes: streaming mean and
 * uncertainty, decided when all are in; one plain pass: decided at once).
 *
 * Two layouts produce the chunks (see `RunPlan.rows`), so nothing per pass spans the volume unless the
 * model resamples the slice axis:
 * - slabs (`runSlabs`): slice-wise models run in z-slabs of whole slices, passes inside each slab, one
 *   chunk per slab and pass; a target spacing that changes the slice axis makes the one slab the
 *   whole volume;
 * - rows (`runRows`): patch3d runs z-rows of patches (all patches sharing a z start), passes outside,
 *   each pass handing finished slices to an aggregation that spans the volume.
 */
import type { ModelManifest, ModelRuntime, SegmentOptions, Volume } from "../core/types.ts";
import { applyActivation, decide, labelArray } from "./activation.ts";
import { checkAborted } from "./host.ts";
import type { RunPlan } from "./plan.ts";
import { preprocessSlab } from "./preprocess.ts";
import type { PhaseTimer } from "./provenance.ts";
import { resampleLinear } from "./resample.ts";
import { backgroundOutside, type RegionOfInterest } from "./roi.ts";
import { type SweepContext, sweepRows, sweepWindows } from "./sweep.ts";
import { flipVolume, StreamingAggregator } from "./uncertainty.ts";
import type { Dims3, WindowPlan } from "./windows.ts";

/** The whole-volume outputs the passes fill. */
export interface RunOutputs {
  labels: Uint8Array | Uint16Array;
  /** the uncertainty measure per voxel (any uncertainty method) */
  uncertainty?: Float32Array;
  /** label probabilities quantised to 0..255, label-major (keepProbabilities) */
  quantised?: Uint8Array;
  /** per pass, per label: the voxels that pass alone gives the label (before post-processing) */
  passVoxels: number[][];
}

/** Zeroed outputs for a volume of `voxels` voxels. */
export function allocateOutputs(
  manifest: ModelManifest,
  plan: RunPlan,
  voxels: number,
  keepProbabilities = false,
): RunOutputs {
  return {
    labels: labelArray(manifest.labels, voxels),
    uncertainty: plan.multi ? new Float32Array(voxels) : undefined,
    quantised: keepProbabilities ? new Uint8Array(voxels * manifest.labels.length) : undefined,
    passVoxels: plan.passes.map(() => manifest.labels.map(() => 0)),
  };
}

/** A run in progress: what all its passes share. */
export interface PassRun {
  volume: Volume;
  runtime: ModelRuntime;
  options: SegmentOptions;
  plan: RunPlan;
  roi?: RegionOfInterest;
  outputs: RunOutputs;
  timer: PhaseTimer;
  /** windows run so far (progress) */
  windowsDone: number;
}

/**
 * Model output of one pass for the slices [z0, z0 + src[2]) of the original grid: `out` is on the
 * target grid `tgt`, in the pass's (flipped) frame, channels × voxels.
 */
interface PassChunk {
  z0: number;
  src: Dims3;
  tgt: Dims3;
  out: Float32Array;
}

/** Run every pass of the plan, filling `run.outputs`. */
export async function runPasses(run: PassRun): Promise<void> {
  if (run.plan.rows) await runRows(run);
  else await runSlabs(run);
}

/**
 * One pass, the same for plain, MC, TTA and ensemble runs and for both layouts: each chunk of model
 * output takes the post-model step and goes into the aggregation; then the pass is closed.
 */
async function runPass(
  run: PassRun,
  pass: number,
  chunks: AsyncIterable<PassChunk>,
  into: Aggregation,
): Promise<void> {
  for await (const chunk of chunks) {
    run.timer.lap("windowing");
    const probs = toSourceGrid(run, chunk, run.plan.passFlips[pass]);
    into.add(pass, probs, chunk.z0, chunk.src[0] * chunk.src[1] * chunk.src[2]);
    run.timer.lap("aggregation");
  }
  into.endPass();
}

/** Slab layout: each slab is preprocessed once, then every pass runs on it. */
async function runSlabs(run: PassRun): Promise<void> {
  const { volume, plan, roi, timer } = run;
  for (const s of slabOrder(plan.slabs.ranges, run.options.focusSlice)) {
    const [z0, z1] = plan.slabs.ranges[s];
    const { src, tgt } = plan.slabDims[s];
    checkAborted(run.options.signal);
    const sliceVox = src[0] * src[1];
    const decided = () =>
      run.options.onSlices?.(z0, z1, run.outputs.labels.subarray(z0 * sliceVox, z1 * sliceVox));
    // no window touches the region here: the slab stays background (labels 0, uncertainty 0)
    if (roi && plan.windows[s].every((p) => p.windows.length === 0)) {
      decided();
      continue;
    }
    const image = resampleLinear(
      preprocessSlab(volume, plan.preprocessing, z0, z1),
      src,
      tgt,
      plan.inChannels,
    );
    timer.lap("preprocessing");
    const into = new Aggregation(run, z0, z1);
    for (let i = 0; i < plan.passes.length; i++) await runPass(run, i, slabPass(run, s, i, image), into);
    into.finish();
    timer.lap("aggregation");
    decided();
  }
}

/**
 * The order slabs run in: as planned, or from the slab holding `focus` outward, alternately the next
 * slab after and the next before, so the slices around the one in view are decided first.
 */
export function slabOrder(ranges: [number, number][], focus?: number): number[] {
  const order = ranges.map((_, s) => s);
  if (focus === undefined || !Number.isFinite(focus)) return order;
  let first = ranges.findIndex(([a, b]) => focus >= a && focus < b);
  if (first < 0) first = focus < ranges[0][0] ? 0 : ranges.length - 1;
  const out = [first];
  for (let d = 1; out.length < ranges.length; d++) {
    if (first + d < ranges.length) out.push(first + d);
    if (first - d >= 0) out.push(first - d);
  }
  return out;
}

/** Pass `i` on slab `s` (preprocessed and resampled: `image`): one chunk. */
async function* slabPass(run: PassRun, s: number, i: number, image: Float32Array): AsyncGenerator<PassChunk> {
  const { plan, timer } = run;
  const { src, tgt } = plan.slabDims[s];
  const input = passInput(image, tgt, plan.inChannels, plan.passFlips[i], plan.passes[i].scale, false);
  timer.lap("aggregation");
  const out = await sweepWindows(input, sweepContext(run, i, plan.windows[s][i], tgt));
  yield { z0: plan.slabs.ranges[s][0], src, tgt, out };
}

/** Row layout: passes outside, each streaming the volume's z-rows into one volume-wide aggregation. */
async function runRows(run: PassRun): Promise<void> {
  const into = new Aggregation(run, 0, run.volume.geometry.dims[2]);
  for (let i = 0; i < run.plan.passes.length; i++) await runPass(run, i, rowPass(run, i), into);
  into.finish();
  run.timer.lap("aggregation");
}

/** Pass `i` over z-rows of patches: the input is loaded per row, finished slices come out in chunks. */
async function* rowPass(run: PassRun, i: number): AsyncGenerator<PassChunk> {
  const { volume, plan, timer } = run;
  const [nx, ny, nz] = volume.geometry.dims;
  const [tx, ty] = plan.target;
  const flips = plan.passFlips[i];
  const flipZ = flips.includes(2);
  // rows run in the flipped frame: slab [z0, z1) there is [nz − z1, nz − z0) of the volume
  const load = (z0: number, z1: number) => {
    timer.lap("windowing");
    const n = z1 - z0;
    const a = flipZ ? nz - z1 : z0;
    const image = resampleLinear(
      preprocessSlab(volume, plan.preprocessing, a, a + n),
      [nx, ny, n],
      [tx, ty, n],
      plan.inChannels,
    );
    const input = passInput(image, [tx, ty, n], plan.inChannels, flips, plan.passes[i].scale, true);
    timer.lap("preprocessing");
    return input;
  };
  for await (const chunk of sweepRows(load, sweepContext(run, i, plan.windows[0][i], plan.target))) {
    const n = chunk.z1 - chunk.z0;
    yield { z0: flipZ ? nz - chunk.z1 : chunk.z0, src: [nx, ny, n], tgt: [tx, ty, n], out: chunk.out };
  }
}

/**
 * What a pass feeds the model: `image` flipped along `flips` and its intensities times `scale`
 * (TTA). `image` itself is scaled in place only when the caller does not need it again (`owned`).
 */
function passInput(
  image: Float32Array,
  grid: Dims3,
  channels: number,
  flips: number[],
  scale: number,
  owned: boolean,
): Float32Array {
  let input = image;
  if (flips.length) input = flipVolume(input, grid, channels, flips);
  if (scale !== 1) {
    if (input === image && !owned) input = image.slice();
    for (let p = 0; p < input.length; p++) input[p] *= scale;
  }
  return input;
}

/** The sweep of pass `i` over the windows `windows` of a grid. */
function sweepContext(run: PassRun, i: number, windows: WindowPlan, grid: Dims3): SweepContext {
  const { runtime, plan, options } = run;
  const { spatial, preprocessing } = runtime.manifest;
  const mcSpec = runtime.manifest.uncertainty?.mcDropout;
  const mask = plan.masks[i];
  return {
    predictor: runtime.members[plan.passes[i].member],
    plan: windows,
    dims: grid,
    inChannels: plan.inChannels,
    outChannels: plan.outChannels,
    padValue: preprocessing.padValue ?? 0,
    importance: plan.importance,
    batch: Math.max(1, spatial.batch ?? 1),
    mode: spatial.mode === "patch3d" ? "3d" : "2d",
    extraName: mcSpec?.input,
    extraMask: mask && mcSpec ? { data: mask, shape: mcSpec.shape } : undefined,
    signal: options.signal,
    onWindows: (n) => {
      run.windowsDone += n;
      options.onProgress?.({ phase: "inference", done: run.windowsDone, total: plan.totalWindows });
    },
    onModelMs: (ms) => run.timer.model(ms),
  };
}

/**
 * The step after the model, the same for every pass and layout: activation → undo the pass's flips →
 * resample back to the original grid → a certain background outside the region of interest.
 */
function toSourceGrid(run: PassRun, chunk: PassChunk, flips: number[]): Float32Array {
  const { plan, roi } = run;
  const { src, tgt } = chunk;
  const k = plan.outChannels;
  const activation = run.runtime.manifest.activation;
  let probs = chunk.out;
  if (!logitsSuffice(run, src, tgt)) applyActivation(probs, tgt[0] * tgt[1] * tgt[2], k, activation);
  if (flips.length) probs = flipVolume(probs, tgt, k, flips);
  probs = resampleLinear(probs, tgt, src, k);
  const sliceVox = src[0] * src[1];
  if (roi) {
    backgroundOutside(probs, roi.mask, chunk.z0 * sliceVox, sliceVox * src[2], k, plan.backgroundChannel);
  }
  return probs;
}

/** argmax of softmax = argmax of the logits: one plain pass needs no exp when nothing else reads probabilities. */
function logitsSuffice(run: PassRun, src: Dims3, tgt: Dims3): boolean {
  const { plan, outputs } = run;
  const sameGrid = src[0] === tgt[0] && src[1] === tgt[1] && src[2] === tgt[2];
  return !plan.multi && !outputs.quantised && run.runtime.manifest.activation === "softmax" &&
    plan.rule === "argmax" && sameGrid;
}

/**
 * Where the passes' probabilities for the slices [z0, z1) go. With an uncertainty method: into a
 * streaming aggregator spanning those slices, decided once every pass is in (`finish`); the
 * per-pass label volumes are counted on the way. A plain run's one pass is decided at once.
 */
class Aggregation {
  private readonly aggregator?: StreamingAggregator;
  private readonly sliceVox: number;

  constructor(private readonly run: PassRun, private readonly z0: number, private readonly z1: number) {
    const [nx, ny] = run.volume.geometry.dims;
    this.sliceVox = nx * ny;
    const { plan } = run;
    if (plan.multi) {
      this.aggregator = new StreamingAggregator(
        (z1 - z0) * this.sliceVox,
        plan.outChannels,
        plan.labelChannels,
        plan.entropyKind,
        plan.measure === "mutualInformation",
      );
    }
  }

  /** Probabilities of pass `pass` for `voxels` voxels from slice `z0`, on the original grid. */
  add(pass: number, probs: Float32Array, z0: number, voxels: number): void {
    if (!this.aggregator) return decideChunk(this.run, probs, z0, voxels);
    this.aggregator.addPart(probs, (z0 - this.z0) * this.sliceVox, pass + 1);
    // per-pass volumes come from the pass's own decision (before post-processing)
    const counts = countDecisions(probs, voxels, this.run);
    const passVoxels = this.run.outputs.passVoxels[pass];
    for (let l = 0; l < counts.length; l++) passVoxels[l] += counts[l];
  }

  endPass(): void {
    this.aggregator?.endPass();
  }

  /** Decide the aggregated slices (nothing left to do for a plain run). */
  finish(): void {
    const a = this.aggregator;
    if (a) decideChunk(this.run, a.mean, this.z0, (this.z1 - this.z0) * this.sliceVox, a);
  }
}

/** Decision, uncertainty and quantised probabilities for `voxels` voxels from slice z0. */
function decideChunk(
  run: PassRun,
  mean: Float32Array,
  z0: number,
  voxels: number,
  aggregator?: StreamingAggregator,
): void {
  const { plan, outputs } = run;
  const manifest = run.runtime.manifest;
  const [nx, ny, nz] = run.volume.geometry.dims;
  const offset = z0 * nx * ny;
  decide(
    mean,
    voxels,
    plan.outChannels,
    manifest.labels,
    plan.rule,
    outputs.labels.subarray(offset, offset + voxels),
  );
  if (aggregator && outputs.uncertainty) outputs.uncertainty.set(aggregator.measure(plan.measure), offset);
  const quantised = outputs.quantised;
  if (quantised) {
    const total = nx * ny * nz;
    manifest.labels.forEach((l, i) => {
      const from = l.channel * voxels, to = i * total + offset;
      for (let v = 0; v < voxels; v++) {
        quantised[to + v] = Math.round(Math.min(1, Math.max(0, mean[from + v])) * 255);
      }
    });
  }
}

/** Voxels each label would get from one pass's probabilities (for the volume spread statistic). */
function countDecisions(probs: Float32Array, voxels: number, run: PassRun): number[] {
  const labels = run.runtime.manifest.labels;
  const decided = decide(probs, voxels, run.plan.outChannels, labels, run.plan.rule);
  const maxValue = labels.reduce((m, l) => Math.max(m, l.value), 0);
  const counts = new Float64Array(maxValue + 1);
  for (let v = 0; v < voxels; v++) counts[decided[v]]++;
  return labels.map((l) => counts[l.value]);
}
