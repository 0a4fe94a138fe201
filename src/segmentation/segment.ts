/**
 * `segment()`: the one entry point the extension, the CLI and the tests share. It sees only a
 * ModelRuntime (manifest + Predictors), never ONNX Runtime:
 *
 *   validate → region of interest → plan (only windows touching the region) → preprocess →
 *   resample to target spacing → for each pass (MC dropout mask,
 *   TTA flip/scale, ensemble member): predict windows → blend → activation → undo flip → resample
 *   back → streaming aggregation; then decision → post-processing → statistics → triage →
 *   provenance.
 *
 * Memory: nothing per pass spans the volume unless the model resamples the slice axis.
 * - slice-wise models (image2d, slice2d) run in z-slabs of whole slices, passes inside each slab;
 * - patch3d runs z-rows of patches (all patches sharing a z start), passes outside, each pass
 *   handing finished slices to a volume-wide aggregator (only when there are several passes);
 * - a target spacing that changes the slice axis falls back to whole-volume processing.
 * Whole-volume outputs: the labelmap, and the uncertainty / quantised probability maps if asked.
 *
 * Provenance timings (ms): validation, preprocessing, model (inside the predictor), windowing
 * (window extraction and blending), aggregation (activation, flips, resampling back, uncertainty,
 * decision), postprocessing, statistics, total.
 */
import { MC_PASSES, modelFit, summarizeManifest } from "../core/contract.ts";
import { SOFTWARE } from "../core/version.ts";
import { CancelledError, InputError, ManifestError } from "../core/errors.ts";
import type {
  AbortSignalLike,
  Labelmap,
  ModelManifest,
  ModelRuntime,
  Predictor,
  ProbabilityMaps,
  Progress,
  RoiProvenance,
  SegmentationResult,
  SegmentOptions,
  UncertaintyMap,
  UncertaintyMethod,
  Volume,
} from "../core/types.ts";
import { applyActivation, decide, decisionRule, labelArray } from "./activation.ts";
import { postprocessLabels } from "./postprocess.ts";
import { modelInputChannels, planPreprocessing, preprocessSlab } from "./preprocess.ts";
import { resampleLinear, targetGeometry } from "./resample.ts";
import {
  backgroundOutside,
  boxTouches,
  computeRoi,
  type RegionOfInterest,
  ROI_ANALYSIS_SPACING_MM,
  sourceRange,
} from "./roi.ts";
import { segmentStatistics } from "./statistics.ts";
import { triage } from "./triage.ts";
import {
  dropoutMask,
  type EntropyKind,
  flipVolume,
  identityMask,
  measureMaximum,
  mulberry32,
  StreamingAggregator,
  tileBatch,
} from "./uncertainty.ts";
import {
  blendInto,
  constantImportance,
  copyInto,
  type Dims3,
  extractWindow,
  gaussianImportance,
  isDisjoint,
  normaliseBlend,
  planWindows,
  type WindowBox,
  type WindowPlan,
} from "./windows.ts";

/** Software name and version written into provenance. */
export { SOFTWARE };

/** One forward sweep over all windows. */
export interface PassSpec {
  member: number;
  /** spatial axes flipped for TTA */
  flips: number[];
  /** intensity scale for TTA jitter */
  scale: number;
  /** draw a fresh dropout mask for this pass */
  mc: boolean;
}

/** Output channels of the model: from the output shape, else one more than the highest label channel. */
export function modelOutputChannels(manifest: ModelManifest): number {
  const c = manifest.outputs[0]?.shape[1];
  if (typeof c === "number" && c > 0) return c;
  const maxChannel = manifest.labels.reduce((m, l) => Math.max(m, l.channel), 0);
  return manifest.activation === "sigmoid" ? maxChannel + 1 : Math.max(2, maxChannel + 1);
}

/**
 * The passes an uncertainty method runs. mc: N dropout passes. tta: identity, each flip set, each
 * intensity scale. ensemble: each member once. mc+tta: N dropout passes, pass i under TTA transform
 * i mod T (so the cost stays N). mc+ensemble: N dropout passes per member (the law of total
 * variance then holds MC variance plus inter-member disagreement).
 */
export function planPasses(
  method: UncertaintyMethod,
  manifest: ModelManifest,
  members: number,
  passes: number,
  intensityScales: number[] = [],
): PassSpec[] {
  const tta: PassSpec[] = [{ member: 0, flips: [], scale: 1, mc: false }];
  for (const f of manifest.uncertainty?.tta?.flips ?? []) {
    tta.push({ member: 0, flips: f, scale: 1, mc: false });
  }
  for (const s of intensityScales) tta.push({ member: 0, flips: [], scale: s, mc: false });
  switch (method) {
    case "none":
      return [{ member: 0, flips: [], scale: 1, mc: false }];
    case "tta":
      return tta;
    case "mc":
      return Array.from({ length: passes }, () => ({ member: 0, flips: [], scale: 1, mc: true }));
    case "ensemble":
      return Array.from({ length: members }, (_, m) => ({ member: m, flips: [], scale: 1, mc: false }));
    case "mc+tta":
      return Array.from({ length: passes }, (_, i) => ({ ...tta[i % tta.length], mc: true }));
    case "mc+ensemble": {
      const out: PassSpec[] = [];
      for (let m = 0; m < members; m++) {
        for (let i = 0; i < passes; i++) out.push({ member: m, flips: [], scale: 1, mc: true });
      }
      return out;
    }
  }
}

/**
 * Voxels per slab in the slice-streaming path: big enough to batch, small enough to stay cheap.
 * Several passes keep an aggregator per slab (mean, spread, entropy), so their slabs are smaller.
 */
export function defaultSlabVoxels(method: UncertaintyMethod): number {
  return method === "none" ? 1 << 20 : 1 << 18;
}

/** How segment() walks the volume: z-slabs for 2D models, the whole volume otherwise. */
export interface SlabPlan {
  /** slice ranges [z0, z1) on the original grid */
  ranges: [number, number][];
  /** true when slabs are processed independently (2D modes without resampling along z) */
  streamed: boolean;
}

/**
 * Slice-wise models (image2d, slice2d) never mix slices, so when the target spacing keeps the slice
 * axis the volume is processed in slabs of whole slices: preprocessing, windows, passes and
 * aggregation hold one slab at a time and only the labelmap (and the uncertainty / probability maps
 * when asked for) cover the whole volume. patch3d and z-resampling process the whole volume.
 */
export function planSlabs(
  volume: Volume,
  manifest: ModelManifest,
  slabVoxels = defaultSlabVoxels("none"),
): SlabPlan {
  const dims = volume.geometry.dims;
  const tg = targetGeometry(volume.geometry, manifest.preprocessing.targetSpacingMm);
  const sp = manifest.spatial;
  if (sp.mode === "patch3d" || tg.dims[2] !== dims[2]) return { ranges: [[0, dims[2]]], streamed: false };
  const sliceVox = tg.dims[0] * tg.dims[1];
  const perSlice = planWindows(
    [tg.dims[0], tg.dims[1], 1],
    sp.window,
    sp.overlap,
    sp.mode,
    manifest.preprocessing.padMultiple,
  )
    .windows.length;
  const batch = Math.max(1, sp.batch ?? 1);
  const slices = Math.min(
    dims[2],
    Math.max(1, Math.ceil(batch / perSlice), Math.floor(slabVoxels / sliceVox)),
  );
  const ranges: [number, number][] = [];
  for (let z = 0; z < dims[2]; z += slices) ranges.push([z, Math.min(dims[2], z + slices)]);
  return { ranges, streamed: true };
}

/**
 * Bytes segment() allocates beyond the input volume at its peak (an estimate, used to refuse
 * before allocating): one slab's working set plus the whole-volume outputs.
 */
export function estimateWorkingSetBytes(
  volume: Volume,
  manifest: ModelManifest,
  method: UncertaintyMethod,
  keepProbabilities = false,
): number {
  const [nx, ny, nz] = volume.geometry.dims;
  const v = nx * ny * nz;
  const tg = targetGeometry(volume.geometry, manifest.preprocessing.targetSpacingMm);
  const sp = manifest.spatial;
  const plan = planWindows(tg.dims, sp.window, sp.overlap, sp.mode, manifest.preprocessing.padMultiple);
  const slabs = planSlabs(volume, manifest, defaultSlabVoxels(method));
  // patch3d without z-resampling streams z-rows: one window depth of slices at a time
  const rows3d = sp.mode === "patch3d" && tg.dims[2] === nz;
  const slices = rows3d ? Math.min(plan.window[2], nz) : Math.max(...slabs.ranges.map(([a, b]) => b - a));
  const vs = nx * ny * slices;
  const vts = slabs.streamed || rows3d
    ? tg.dims[0] * tg.dims[1] * slices
    : tg.dims[0] * tg.dims[1] * tg.dims[2];
  const resampled = vts !== vs;
  const cin = modelInputChannels(manifest);
  const k = modelOutputChannels(manifest);
  const wv = plan.window[0] * plan.window[1] * plan.window[2];
  const batch = Math.max(1, sp.batch ?? 1);
  let bytes = 4 * cin * vs; // preprocessed slab
  if (resampled) bytes += 4 * cin * vts; // resampled to the target spacing
  if (method.includes("tta")) bytes += 4 * cin * vts; // flipped input
  bytes += 4 * (k + 1) * vts; // accumulator + weights
  if (rows3d) bytes += 4 * k * vts; // finished slices handed out
  if (resampled) bytes += 4 * k * vs; // probabilities back on the original grid
  bytes += 4 * batch * wv * (2 * cin + 2 * k); // window batch in and out, and the runtime's copies
  const multi = method !== "none";
  // the aggregator spans the slab, or the whole volume when 3D rows stream each pass
  if (multi) bytes += StreamingAggregator.bytesFor(rows3d ? v : vs, k, manifest.labels.length) + 2 * vs;
  // region of interest: the mask stays; while it is computed, about 16 bytes per analysis voxel
  if (manifest.roi) {
    const f = Math.max(1, Math.round(ROI_ANALYSIS_SPACING_MM / volume.geometry.spacing[0])) *
      Math.max(1, Math.round(ROI_ANALYSIS_SPACING_MM / volume.geometry.spacing[1]));
    bytes += v + (16 * v) / f;
  }
  // whole-volume outputs
  bytes += (manifest.labels.some((l) => l.value > 255) ? 2 : 1) * v; // labelmap
  if (multi) bytes += 4 * v; // uncertainty map
  if (keepProbabilities) bytes += manifest.labels.length * v;
  return bytes;
}

/** Check the input against the manifest before any allocation; throws InputError. */
export function validateInput(volume: Volume, runtime: ModelRuntime, options: SegmentOptions = {}): void {
  const m = runtime.manifest;
  const g = volume.geometry;
  const c = m.constraints;
  // The same fit rules the viewer's picker applies (src/core/contract.ts); the first refusal throws.
  const fit = modelFit(summarizeManifest(m), {
    modality: volume.modality || "(none)",
    channels: volume.channels,
    images: g.dims[2],
  });
  // A 3D model on one slice is refused in the viewer (one image there is a photograph, not a thin
  // volume); the pipeline itself pads such a volume to the window, as it always has.
  const refusal = fit.refusals.find((r) => r.code !== "NOT_A_VOLUME");
  if (refusal) throw new InputError(refusal.code, `model ${m.id} ${refusal.message}`);
  if (!g.dims.every((d) => Number.isInteger(d) && d > 0)) {
    throw new InputError("DIMS", `volume dims must be positive integers, found [${g.dims.join(", ")}]`);
  }
  if (!g.spacing || g.spacing.length !== 3 || !g.spacing.every((s) => Number.isFinite(s) && s > 0)) {
    throw new InputError(
      "SPACING",
      `voxel spacing must be three finite values > 0 mm, found [${(g.spacing ?? []).join(", ")}]`,
    );
  }
  const voxels = g.dims[0] * g.dims[1] * g.dims[2];
  if (volume.data.length !== voxels * volume.channels) {
    throw new InputError(
      "DATA_LENGTH",
      `volume data must hold ${
        voxels * volume.channels
      } values (dims × channels), found ${volume.data.length}`,
    );
  }
  if (c.maxVoxels !== undefined && voxels > c.maxVoxels) {
    throw new InputError("TOO_LARGE", `model ${m.id} accepts at most ${c.maxVoxels} voxels, found ${voxels}`);
  }
  const method = options.uncertainty ?? "none";
  if (method.includes("mc") && !m.uncertainty?.mcDropout) {
    throw new InputError(
      "UNCERTAINTY_UNSUPPORTED",
      `uncertainty "${method}" needs MC dropout, which model ${m.id} does not declare`,
    );
  }
  if (method.includes("ensemble") && runtime.members.length < 2) {
    throw new InputError(
      "UNCERTAINTY_UNSUPPORTED",
      `uncertainty "${method}" needs at least 2 ensemble members, found ${runtime.members.length}`,
    );
  }
  if (method.includes("tta") && !(m.uncertainty?.tta?.flips.length || options.ttaIntensityScales?.length)) {
    throw new InputError(
      "UNCERTAINTY_UNSUPPORTED",
      `uncertainty "${method}" needs TTA flips in the manifest or intensity scales`,
    );
  }
  if (options.memoryBudgetBytes !== undefined) {
    const need = estimateWorkingSetBytes(volume, m, method, options.keepProbabilities);
    if (need > options.memoryBudgetBytes) {
      throw new InputError(
        "MEMORY_BUDGET",
        `segmenting this ${g.dims.join("×")} volume needs about ${mib(need)} MiB, more than the budget of ` +
          `${mib(options.memoryBudgetBytes)} MiB; crop the volume or raise the budget`,
      );
    }
  }
}

const mib = (b: number) => (b / 2 ** 20).toFixed(1);

function checkAborted(signal?: AbortSignalLike): void {
  if (signal?.aborted) {
    const r = signal.reason;
    throw new CancelledError(
      r instanceof Error
        ? `cancelled: ${r.message}`
        : r !== undefined
        ? `cancelled: ${String(r)}`
        : "cancelled",
    );
  }
}

/**
 * The windows of `plan` whose footprint touches the region of interest. `plan` tiles a grid of
 * `tgt` voxels that is the resampled version of `src` voxels of the original grid, starting at
 * slice `z0` there, flipped along the axes in `flips` (TTA passes run on a mirrored input); the
 * footprint is mapped back conservatively (see `sourceRange`), so every
 * window that could touch a voxel of the region runs and the region's voxels come out exactly as
 * without it.
 */
export function windowsInRoi(
  plan: WindowPlan,
  tgt: Dims3,
  src: Dims3,
  z0: number,
  roi: RegionOfInterest,
  volumeDims: Dims3,
  flips: number[] = [],
): WindowBox[] {
  return plan.windows.filter((w) => {
    const r: [number, number][] = [0, 1, 2].map((a) => {
      let lo = Math.max(0, w.start[a] - plan.padBefore[a]);
      let hi = Math.min(tgt[a], w.start[a] - plan.padBefore[a] + w.size[a]);
      // a pass that flips this axis runs the window on the mirrored grid
      if (flips.includes(a)) [lo, hi] = [tgt[a] - hi, tgt[a] - lo];
      return sourceRange(lo, hi, src[a], tgt[a]);
    });
    return boxTouches(roi.mask, volumeDims, r[0][0], r[0][1], r[1][0], r[1][1], r[2][0] + z0, r[2][1] + z0);
  });
}

const thousands = (n: number) => String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",");

export interface SweepContext {
  predictor: Predictor;
  plan: WindowPlan;
  dims: Dims3;
  inChannels: number;
  outChannels: number;
  padValue: number;
  importance: Float32Array;
  batch: number;
  mode: "2d" | "3d";
  extraName?: string;
  extraMask?: { data: Float32Array; shape: number[] };
  signal?: AbortSignalLike;
  onWindows: (n: number) => void;
  /** time spent inside the predictor, per call */
  onModelMs?: (ms: number) => void;
}

/** Where windows read from and write to: an array, its dims, and the padded-plan offset of its origin. */
interface WindowTarget {
  data: Float32Array;
  dims: Dims3;
  padBefore: Dims3;
}

/**
 * Batched extract → predict → blend for a list of windows. `weights` is empty for disjoint plans,
 * where the output is copied instead of blended.
 */
async function runWindows(
  boxes: WindowBox[],
  input: WindowTarget,
  acc: WindowTarget,
  weights: Float32Array,
  disjoint: boolean,
  ctx: SweepContext,
): Promise<void> {
  const { plan, inChannels: cin, outChannels: k, batch } = ctx;
  const [wx, wy, wz] = plan.window;
  const wVox = wx * wy * wz;
  const buffer = new Float32Array(Math.min(batch, boxes.length) * cin * wVox);
  for (let first = 0; first < boxes.length; first += batch) {
    checkAborted(ctx.signal);
    const group = boxes.slice(first, first + batch);
    const b = group.length;
    for (let i = 0; i < b; i++) {
      extractWindow(
        input.data,
        input.dims,
        cin,
        group[i],
        input.padBefore,
        ctx.padValue,
        buffer,
        i * cin * wVox,
      );
    }
    const shape = ctx.mode === "3d" ? [b, cin, wz, wy, wx] : [b, cin, wy, wx];
    const extra = ctx.extraName && ctx.extraMask
      ? { [ctx.extraName]: tileBatch(ctx.extraMask.data, ctx.extraMask.shape, b) }
      : undefined;
    const view = b * cin * wVox === buffer.length ? buffer : buffer.subarray(0, b * cin * wVox);
    const t = now();
    const out = await ctx.predictor(view, shape, ctx.signal, extra);
    ctx.onModelMs?.(now() - t);
    checkAborted(ctx.signal);
    if (out.length !== b * k * wVox) {
      throw new ManifestError("OUTPUT_SHAPE", "model output size does not match the manifest", {
        expected: `${b}×${k}×${wVox} = ${b * k * wVox} values`,
        actual: `${out.length}`,
      });
    }
    for (let i = 0; i < b; i++) {
      if (disjoint) copyInto(acc.data, acc.dims, k, out, i * k * wVox, group[i], acc.padBefore);
      else {blendInto(
          acc.data,
          weights,
          acc.dims,
          k,
          out,
          i * k * wVox,
          group[i],
          acc.padBefore,
          ctx.importance,
        );}
    }
    ctx.onWindows(b);
  }
}

/** Run every window of the plan through the predictor and blend; returns out channels × voxels. */
export async function sweepWindows(image: Float32Array, ctx: SweepContext): Promise<Float32Array> {
  const { plan, dims, outChannels: k } = ctx;
  const nVox = dims[0] * dims[1] * dims[2];
  const acc = new Float32Array(k * nVox);
  const disjoint = isDisjoint(plan);
  const weights = disjoint ? new Float32Array(0) : new Float32Array(nVox);
  const target = { dims, padBefore: plan.padBefore };
  await runWindows(
    plan.windows,
    { data: image, ...target },
    { data: acc, ...target },
    weights,
    disjoint,
    ctx,
  );
  if (!disjoint) normaliseBlend(acc, weights, k);
  return acc;
}

/**
 * patch3d without the whole volume in memory: windows are swept one z-row at a time (all windows
 * sharing a z start), the input is loaded per row, and blended slices are handed out as soon as no
 * later window can touch them. The accumulator holds at most one window depth of slices.
 * `ctx.dims` is the full target grid; yields normalised outputs (channels × slices × slice voxels).
 */
export async function* sweepRows(
  loadSlab: (z0: number, z1: number) => Float32Array,
  ctx: SweepContext,
): AsyncGenerator<{ z0: number; z1: number; out: Float32Array }> {
  const { plan, dims, outChannels: k } = ctx;
  const [tx, ty, nz] = dims;
  const sliceVox = tx * ty;
  const wz = plan.window[2], pbz = plan.padBefore[2];
  const cap = Math.min(wz, nz);
  const capVox = cap * sliceVox;
  const disjoint = isDisjoint(plan);
  const acc = new Float32Array(k * capVox);
  const weights = disjoint ? new Float32Array(0) : new Float32Array(capVox);
  let base = 0;
  const finalize = (upTo: number): { z0: number; z1: number; out: Float32Array } | undefined => {
    const n = upTo - base;
    if (n <= 0) return undefined;
    const nVox = n * sliceVox;
    const out = new Float32Array(k * nVox);
    for (let c = 0; c < k; c++) {
      const from = c * capVox, to = c * nVox;
      if (disjoint) out.set(acc.subarray(from, from + nVox), to);
      else for (let v = 0; v < nVox; v++) out[to + v] = weights[v] > 0 ? acc[from + v] / weights[v] : 0;
      acc.copyWithin(from, from + nVox, from + capVox);
      acc.fill(0, from + capVox - nVox, from + capVox);
    }
    if (!disjoint) {
      weights.copyWithin(0, nVox, capVox);
      weights.fill(0, capVox - nVox, capVox);
    }
    const chunk = { z0: base, z1: upTo, out };
    base = upTo;
    return chunk;
  };
  const starts = [...new Set(plan.windows.map((w) => w.start[2]))].sort((a, b) => a - b);
  for (const s of starts) {
    const a = Math.max(0, s - pbz), b = Math.min(nz, s - pbz + wz);
    const done = finalize(a);
    if (done) yield done;
    const padBefore: Dims3 = [plan.padBefore[0], plan.padBefore[1], pbz + a];
    await runWindows(
      plan.windows.filter((w) => w.start[2] === s),
      { data: loadSlab(a, b), dims: [tx, ty, b - a], padBefore },
      { data: acc, dims: [tx, ty, cap], padBefore },
      weights,
      disjoint,
      ctx,
    );
  }
  const last = finalize(nz);
  if (last) yield last;
}

/** performance.now() where the host has it (browsers, Deno), else Date.now(); the core has no DOM types. */
function now(): number {
  const perf = (globalThis as { performance?: { now(): number } }).performance;
  return perf ? perf.now() : Date.now();
}

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
  const manifest = runtime.manifest;
  const method = options.uncertainty ?? "none";
  const t = {
    validation: 0,
    roi: 0,
    preprocessing: 0,
    model: 0,
    windowing: 0,
    aggregation: 0,
    postprocessing: 0,
    statistics: 0,
  };
  const report = (p: Progress) => options.onProgress?.(p);
  let mark = now();
  const lap = (name: keyof typeof t) => {
    const n = now();
    t[name] += n - mark;
    mark = n;
  };

  validateInput(volume, runtime, options);
  checkAborted(options.signal);
  const mcSpec = manifest.uncertainty?.mcDropout;
  const nPasses = options.passes ?? mcSpec?.defaultPasses ?? 1;
  // One pass is allowed here (its entropy is still an uncertainty); users are offered MC_PASSES.min+.
  if (!(Number.isInteger(nPasses) && nPasses >= 1 && nPasses <= MC_PASSES.max)) {
    throw new InputError("PASSES", `passes must be an integer from 1 to ${MC_PASSES.max}, found ${nPasses}`);
  }
  lap("validation");

  // --- region of interest: where the model can find something ---------------------------------------
  const geometry = volume.geometry;
  const dims: Dims3 = [...geometry.dims];
  const sliceVox = dims[0] * dims[1];
  const voxels = sliceVox * dims[2];
  let roi: RegionOfInterest | undefined;
  if (manifest.roi && options.roi !== false) {
    report({ phase: "preprocessing", done: 0, total: 1 });
    // a roi block requires one CT channel (validateManifest), so channel 0 is the whole volume
    roi = computeRoi(volume.data.subarray(0, voxels), dims, geometry.spacing, manifest.roi);
    checkAborted(options.signal);
  }
  lap("roi");

  // --- plan ----------------------------------------------------------------------------------------
  report({ phase: "preprocessing", done: 0, total: 1 });
  const cin = modelInputChannels(manifest);
  const k = modelOutputChannels(manifest);
  const sp = manifest.spatial;
  const pplan = planPreprocessing(volume, manifest);
  const tg = targetGeometry(geometry, manifest.preprocessing.targetSpacingMm);
  const slabs = planSlabs(volume, manifest, tuning.slabVoxels ?? defaultSlabVoxels(method));
  const slabDims = slabs.ranges.map(([z0, z1]): { src: Dims3; tgt: Dims3 } => ({
    src: [dims[0], dims[1], z1 - z0],
    tgt: slabs.streamed ? [tg.dims[0], tg.dims[1], z1 - z0] : [...tg.dims],
  }));
  const fullPlans = slabDims.map((d) =>
    planWindows(d.tgt, sp.window, sp.overlap, sp.mode, manifest.preprocessing.padMultiple)
  );
  const importance = sp.blending === "gaussian"
    ? gaussianImportance(fullPlans[0].window, sp.sigmaScale ?? 0.125)
    : constantImportance(fullPlans[0].window);
  const passes = planPasses(method, manifest, runtime.members.length, nPasses, options.ttaIntensityScales);
  // the flips a pass applies to its input: a slice-wise model in slabs never flips the slice axis
  const passFlips = passes.map((p) => (slabs.streamed ? p.flips.filter((a) => a !== 2) : p.flips));
  // only windows that touch the region run (per slab and flip set: a flipped pass runs its windows in
  // the mirrored frame); the rest of the grid is background
  const roiPlans = new Map<string, WindowPlan>();
  const planFor = (s: number, flips: number[]): WindowPlan => {
    if (!roi) return fullPlans[s];
    const key = `${s}:${flips.join(",")}`;
    let plan = roiPlans.get(key);
    if (!plan) {
      const p = fullPlans[s];
      const z0 = slabs.streamed ? slabs.ranges[s][0] : 0;
      plan = { ...p, windows: windowsInRoi(p, slabDims[s].tgt, slabDims[s].src, z0, roi, dims, flips) };
      roiPlans.set(key, plan);
    }
    return plan;
  };
  const usesMc = passes.some((p) => p.mc);
  const seed = options.seed ?? 0;
  // one mask per pass, drawn up front in pass order so every slab of a pass sees the same "model"
  const rng = mulberry32(seed);
  const ones = mcSpec ? identityMask(mcSpec) : undefined;
  const masks = passes.map((p) => (mcSpec ? (p.mc ? dropoutMask(mcSpec, rng) : ones) : undefined));
  const rule = decisionRule(manifest.activation, k, manifest.labels);
  const entropyKind: EntropyKind = rule === "argmax" ? "categorical" : "binary";
  const labelChannels = manifest.labels.map((l) => l.channel);
  const measure = options.measure ?? "entropy";
  // any uncertainty method aggregates, even a single pass (its entropy is still an uncertainty map)
  const multi = method !== "none";
  let totalWindows = 0;
  for (let s = 0; s < fullPlans.length; s++) {
    for (const f of passFlips) totalWindows += planFor(s, f).windows.length;
  }
  const plannedWindows = fullPlans.reduce((a, p) => a + p.windows.length, 0) * passes.length;
  // outside the region: a certain background (1 in the background channel, or 0 for thresholds)
  const backgroundChannel = rule === "argmax"
    ? Array.from({ length: k }, (_, c) => c).find((c) => !labelChannels.includes(c)) ?? 0
    : -1;
  const maskOutside = (values: Float32Array, z0: number, n: number) => {
    if (roi) backgroundOutside(values, roi.mask, z0 * sliceVox, n, k, backgroundChannel);
  };

  const labels = labelArray(manifest.labels, voxels);
  const uncertaintyData = multi ? new Float32Array(voxels) : undefined;
  const quantised = options.keepProbabilities ? new Uint8Array(voxels * manifest.labels.length) : undefined;
  const passVoxels = passes.map(() => manifest.labels.map(() => 0));
  let doneWindows = 0;
  lap("preprocessing");

  const sweepContext = (
    i: number,
    plan: WindowPlan,
    grid: Dims3,
    onModelMs: (ms: number) => void,
  ): SweepContext => ({
    predictor: runtime.members[passes[i].member],
    plan,
    dims: grid,
    inChannels: cin,
    outChannels: k,
    padValue: manifest.preprocessing.padValue ?? 0,
    importance,
    batch: Math.max(1, sp.batch ?? 1),
    mode: sp.mode === "patch3d" ? "3d" : "2d",
    extraName: mcSpec?.input,
    extraMask: masks[i] && mcSpec ? { data: masks[i]!, shape: mcSpec.shape } : undefined,
    signal: options.signal,
    onWindows: (n) => {
      doneWindows += n;
      report({ phase: "inference", done: doneWindows, total: totalWindows });
    },
    onModelMs,
  });
  /** Decision, uncertainty and quantised probabilities for slices from z0 of one finished chunk. */
  const finishChunk = (mean: Float32Array, z0: number, slabVox: number, aggregator?: StreamingAggregator) => {
    const offset = z0 * sliceVox;
    decide(mean, slabVox, k, manifest.labels, rule, labels.subarray(offset, offset + slabVox));
    if (aggregator && uncertaintyData) uncertaintyData.set(aggregator.measure(measure), offset);
    if (quantised) {
      manifest.labels.forEach((l, i) => {
        const from = l.channel * slabVox, to = i * voxels + offset;
        for (let v = 0; v < slabVox; v++) {
          quantised[to + v] = Math.round(Math.min(1, Math.max(0, mean[from + v])) * 255);
        }
      });
    }
  };
  const sameGrid = (a: Dims3, b: Dims3) => a[0] === b[0] && a[1] === b[1] && a[2] === b[2];
  // argmax of softmax = argmax of the logits: one plain pass needs no exp when nothing else reads probabilities
  const logitsSuffice = (src: Dims3, tgt: Dims3) =>
    !multi && !quantised && manifest.activation === "softmax" && rule === "argmax" && sameGrid(src, tgt);

  if (sp.mode === "patch3d" && tg.dims[2] === dims[2]) {
    // stream z-rows of patches: the per-pass volumes (input, accumulator) never exist whole; with
    // several passes only the aggregator spans the volume
    const nz = dims[2];
    const aggregator = multi
      ? new StreamingAggregator(voxels, k, labelChannels, entropyKind, measure === "mutualInformation")
      : undefined;
    for (let i = 0; i < passes.length; i++) {
      const pass = passes[i];
      const flipZ = pass.flips.includes(2);
      let model = 0;
      // rows run in the flipped frame: slab [z0, z1) there is [nz − z1, nz − z0) of the volume
      const load = (z0: number, z1: number) => {
        lap("windowing");
        const n = z1 - z0;
        const a = flipZ ? nz - z1 : z0;
        let image = resampleLinear(
          preprocessSlab(volume, pplan, a, a + n),
          [dims[0], dims[1], n],
          [tg.dims[0], tg.dims[1], n],
          cin,
        );
        if (pass.flips.length) image = flipVolume(image, [tg.dims[0], tg.dims[1], n], cin, pass.flips);
        if (pass.scale !== 1) { for (let p = 0; p < image.length; p++) image[p] *= pass.scale; }
        lap("preprocessing");
        return image;
      };
      for await (
        const chunk of sweepRows(
          load,
          sweepContext(i, planFor(0, passFlips[i]), [...tg.dims], (ms) => (model += ms)),
        )
      ) {
        lap("windowing");
        const n = chunk.z1 - chunk.z0;
        const src: Dims3 = [dims[0], dims[1], n], tgt: Dims3 = [tg.dims[0], tg.dims[1], n];
        let probs = chunk.out;
        if (!logitsSuffice(src, tgt)) applyActivation(probs, tgt[0] * tgt[1] * n, k, manifest.activation);
        if (pass.flips.length) probs = flipVolume(probs, tgt, k, pass.flips);
        probs = resampleLinear(probs, tgt, src, k);
        const z0 = flipZ ? nz - chunk.z1 : chunk.z0;
        maskOutside(probs, z0, sliceVox * n);
        if (aggregator) {
          aggregator.addPart(probs, z0 * sliceVox, i + 1);
          const counts = countDecisions(probs, sliceVox * n, k, manifest, rule);
          for (let l = 0; l < counts.length; l++) passVoxels[i][l] += counts[l];
        } else finishChunk(probs, z0, sliceVox * n);
        lap("aggregation");
      }
      aggregator?.endPass();
      t.model += model;
      t.windowing -= model;
    }
    if (aggregator) {
      finishChunk(aggregator.mean, 0, voxels, aggregator);
      lap("aggregation");
    }
  } else {
    for (let s = 0; s < slabs.ranges.length; s++) {
      const [z0] = slabs.ranges[s];
      const { src, tgt } = slabDims[s];
      const slabVox = src[0] * src[1] * src[2];
      const tgtVox = tgt[0] * tgt[1] * tgt[2];
      checkAborted(options.signal);
      // no window touches the region here: the slab stays background (labels 0, uncertainty 0)
      if (roi && passFlips.every((f) => planFor(s, f).windows.length === 0)) continue;
      const image = resampleLinear(preprocessSlab(volume, pplan, z0, slabs.ranges[s][1]), src, tgt, cin);
      lap("preprocessing");

      const aggregator = multi
        ? new StreamingAggregator(slabVox, k, labelChannels, entropyKind, measure === "mutualInformation")
        : undefined;
      let single: Float32Array | undefined;
      for (let i = 0; i < passes.length; i++) {
        const pass = passes[i];
        // a slice-wise model sees each slice alone, so flipping the slice axis changes nothing there
        const flips = passFlips[i];
        let input = image;
        if (flips.length) input = flipVolume(input, tgt, cin, flips);
        if (pass.scale !== 1) {
          if (input === image) input = image.slice();
          for (let p = 0; p < input.length; p++) input[p] *= pass.scale;
        }
        lap("aggregation");
        let model = 0;
        let probs = await sweepWindows(input, sweepContext(i, planFor(s, flips), tgt, (ms) => (model += ms)));
        t.model += model;
        lap("windowing");
        t.windowing -= model;
        if (!logitsSuffice(src, tgt)) applyActivation(probs, tgtVox, k, manifest.activation);
        if (flips.length) probs = flipVolume(probs, tgt, k, flips);
        probs = resampleLinear(probs, tgt, src, k);
        maskOutside(probs, z0, slabVox);
        if (aggregator) {
          aggregator.add(probs);
          // per-pass volumes come from the pass's own decision (before post-processing)
          const counts = countDecisions(probs, slabVox, k, manifest, rule);
          for (let l = 0; l < counts.length; l++) passVoxels[i][l] += counts[l];
        } else single = probs;
        lap("aggregation");
      }
      finishChunk(aggregator ? aggregator.mean : single!, z0, slabVox, aggregator);
      lap("aggregation");
    }
  }

  // --- post-processing, statistics, triage -------------------------------------------------------------
  report({ phase: "postprocessing", done: 0, total: 1 });
  postprocessLabels(labels, dims, manifest.postprocessing, sp.mode === "patch3d" ? "3d" : "2d");
  lap("postprocessing");

  const intensityChannel = manifest.preprocessing.channels?.[0] ?? 0;
  const statistics = segmentStatistics({
    labels,
    geometry,
    segments: manifest.labels,
    intensity: volume.data.subarray(intensityChannel * voxels, (intensityChannel + 1) * voxels),
    uncertainty: uncertaintyData,
    passVoxels: multi ? passVoxels : undefined,
  });
  let triageResult: SegmentationResult["triage"];
  if (manifest.triage) {
    const max = measureMaximum(measure, entropyKind, k, labelChannels.length);
    const { band, score, reasons } = triage(statistics, manifest.triage, max);
    triageResult = { band, score, reasons };
  }
  lap("statistics");
  report({ phase: "postprocessing", done: 1, total: 1 });

  const labelmap: Labelmap = {
    geometry,
    data: labels,
    segments: manifest.labels.map((l) => ({
      number: l.value,
      label: l.name,
      category: l.category,
      type: l.type,
      color: l.color,
      algorithmType: "AUTOMATIC",
      algorithmName: manifest.name,
      algorithmVersion: manifest.version,
    })),
  };
  const uncertainty: UncertaintyMap | undefined = uncertaintyData
    ? { geometry, data: uncertaintyData, measure, method, passes: passes.length }
    : undefined;
  const probabilities: ProbabilityMaps | undefined = quantised
    ? { geometry, data: quantised, channels: manifest.labels.length }
    : undefined;
  const timingsMs: Record<string, number> = { ...t, total: Object.values(t).reduce((a, b) => a + b, 0) };
  let roiProvenance: RoiProvenance | undefined;
  if (roi && manifest.roi) {
    const slicesSkipped = dims[2] - roi.slices;
    const region = manifest.roi.kind === "lungs-from-hu" ? "lung" : "body";
    const cropped = roi.croppedSlices
      ? `; ${roi.croppedSlices} slice${roi.croppedSlices === 1 ? "" : "s"} cropped inside the body kept whole`
      : "";
    roiProvenance = {
      kind: manifest.roi.kind,
      marginMm: manifest.roi.marginMm,
      windowsRun: totalWindows,
      windowsPlanned: plannedWindows,
      slicesSkipped,
      slices: dims[2],
      croppedSlices: roi.croppedSlices,
      volumeMl: roi.voxels * (geometry.spacing[0] * geometry.spacing[1] * geometry.spacing[2]) / 1000,
      summary: `${thousands(totalWindows)} of ${thousands(plannedWindows)} windows run; ${slicesSkipped} of ${
        dims[2]
      } slices outside the ${region} region skipped${cropped}`,
    };
  }
  return {
    labelmap,
    probabilities,
    uncertainty,
    statistics,
    triage: triageResult,
    provenance: {
      modelId: manifest.id,
      modelName: manifest.name,
      modelVersion: manifest.version,
      modelSha256: runtime.modelSha256,
      variant: runtime.variant,
      provider: runtime.provider,
      fallbackReasons: [...runtime.fallbackReasons],
      precision: runtime.precision,
      windows: totalWindows,
      passes: passes.length,
      roi: roiProvenance,
      seed: usesMc ? seed : undefined,
      uncertainty: method,
      timingsMs,
      startedAt,
      software: SOFTWARE,
    },
  };
}

/** Voxels each label would get from one pass's probabilities (for the volume spread statistic). */
function countDecisions(
  probs: Float32Array,
  voxels: number,
  channels: number,
  manifest: ModelManifest,
  rule: "argmax" | "threshold",
): number[] {
  const decided = decide(probs, voxels, channels, manifest.labels, rule);
  const maxValue = manifest.labels.reduce((m, l) => Math.max(m, l.value), 0);
  const counts = new Float64Array(maxValue + 1);
  for (let v = 0; v < voxels; v++) counts[decided[v]]++;
  return manifest.labels.map((l) => counts[l.value]);
}
