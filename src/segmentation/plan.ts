/**
 * Planning a run before any pass: which passes an uncertainty method runs, how the volume is walked
 * (z-slabs of whole slices, z-rows of patches, or the whole volume), which windows each pass runs
 * (only those touching the region of interest), the dropout mask of each pass, and how much memory
 * that takes. Everything here is decided once, up front, and is the same for every slab and pass.
 */
import type {
  ModelManifest,
  ModelRuntime,
  SegmentOptions,
  UncertaintyMeasure,
  UncertaintyMethod,
  Volume,
} from "../core/types.ts";
import { decisionRule } from "./activation.ts";
import { modelInputChannels, planPreprocessing, type PreprocessPlan } from "./preprocess.ts";
import { targetGeometry } from "./resample.ts";
import { boxTouches, maskBox, type RegionOfInterest, ROI_ANALYSIS_SPACING_MM, sourceRange } from "./roi.ts";
import {
  dropoutMask,
  type EntropyKind,
  identityMask,
  mulberry32,
  StreamingAggregator,
} from "./uncertainty.ts";
import {
  constantImportance,
  type Dims3,
  gaussianImportance,
  planWindows,
  planWindowsInBox,
  type WindowBox,
  type WindowPlan,
} from "./windows.ts";

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
 * Streamed slabs with the slice in view (`focus`) split out as a slab of its own, so a progressive
 * display gets that slice after one slice of work rather than a whole slab's. Slabs of a streamed
 * plan are independent, so this changes when slices finish, never what they hold.
 */
export function isolateSlice(slabs: SlabPlan, focus?: number): SlabPlan {
  if (!slabs.streamed || focus === undefined || !Number.isInteger(focus)) return slabs;
  const ranges: [number, number][] = [];
  for (const [a, b] of slabs.ranges) {
    if (focus < a || focus >= b || b - a === 1) {
      ranges.push([a, b]);
      continue;
    }
    if (focus > a) ranges.push([a, focus]);
    ranges.push([focus, focus + 1]);
    if (focus + 1 < b) ranges.push([focus + 1, b]);
  }
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

/** Everything a run decides before its first pass; the passes only read it. */
export interface RunPlan {
  method: UncertaintyMethod;
  inChannels: number;
  outChannels: number;
  preprocessing: PreprocessPlan;
  /** the volume's grid at the model's target spacing */
  target: Dims3;
  slabs: SlabPlan;
  /** per slab: its size on the original grid (src) and at the target spacing (tgt) */
  slabDims: { src: Dims3; tgt: Dims3 }[];
  /** patch3d without z-resampling: z-rows of windows stream through each pass (see `sweepRows`) */
  rows: boolean;
  importance: Float32Array;
  passes: PassSpec[];
  /** the flips each pass applies to its input: a slice-wise model in slabs never flips the slice axis */
  passFlips: number[][];
  /** per slab, per pass: the windows that run (all of them, or those touching the region) */
  windows: WindowPlan[][];
  /** per pass: the mask fed to the model's MC-dropout input, when the model has one */
  masks: (Float32Array | undefined)[];
  rule: "argmax" | "threshold";
  entropyKind: EntropyKind;
  labelChannels: number[];
  measure: UncertaintyMeasure;
  /** any uncertainty method aggregates, even a single pass (its entropy is still an uncertainty map) */
  multi: boolean;
  seed: number;
  usesMc: boolean;
  /** windows the passes run, and would run without a region of interest */
  totalWindows: number;
  plannedWindows: number;
  /** the full sweep's window, and the window that runs (larger when it spans the region's box) */
  plannedWindow: Dims3;
  window: Dims3;
  /** `spatial.cropToRoi`: the region's bounding box [lo, hi) that the windows tile */
  crop?: { lo: Dims3; hi: Dims3 };
  /** outside the region: the background channel set to 1 (categorical), or -1 (sigmoid: every channel 0) */
  backgroundChannel: number;
}

/**
 * Plan a run once: grids, slabs, window plans, passes and their masks. `passCount` is the validated
 * number of stochastic passes; `roi`, when given, limits every pass to the windows touching it;
 * `slabVoxels` overrides `defaultSlabVoxels` (an engineering knob that does not change results).
 */
export function planRun(
  volume: Volume,
  runtime: ModelRuntime,
  options: SegmentOptions,
  passCount: number,
  roi?: RegionOfInterest,
  slabVoxels?: number,
): RunPlan {
  const manifest = runtime.manifest;
  const method = options.uncertainty ?? "none";
  const dims: Dims3 = [...volume.geometry.dims];
  const k = modelOutputChannels(manifest);
  const sp = manifest.spatial;
  const tg = targetGeometry(volume.geometry, manifest.preprocessing.targetSpacingMm);
  const slabs = isolateSlice(
    planSlabs(volume, manifest, slabVoxels ?? defaultSlabVoxels(method)),
    options.focusSlice,
  );
  const slabDims = slabs.ranges.map(([z0, z1]): { src: Dims3; tgt: Dims3 } => ({
    src: [dims[0], dims[1], z1 - z0],
    tgt: slabs.streamed ? [tg.dims[0], tg.dims[1], z1 - z0] : [...tg.dims],
  }));
  const fullPlans = slabDims.map((d) =>
    planWindows(d.tgt, sp.window, sp.overlap, sp.mode, manifest.preprocessing.padMultiple)
  );
  const passes = planPasses(method, manifest, runtime.members.length, passCount, options.ttaIntensityScales);
  const passFlips = passes.map((p) => (slabs.streamed ? p.flips.filter((a) => a !== 2) : p.flips));
  const crop = cropBox(manifest, roi, dims, tg.dims);
  const tile = (s: number, flips: number[]): WindowPlan =>
    crop ? cropPlan(crop, slabDims[s].tgt, slabs.streamed, flips, manifest) : fullPlans[s];
  const windows = windowsPerPass(tile, slabs, slabDims, passFlips, dims, roi);
  const window = tile(0, []).window;
  const seed = options.seed ?? 0;
  const rule = decisionRule(manifest.activation, k, manifest.labels);
  const labelChannels = manifest.labels.map((l) => l.channel);
  // the probabilities are one distribution over the channels (softmax, or argmax over given ones),
  // whatever rule decides the labels
  const categorical = rule === "argmax" || manifest.activation === "softmax";
  return {
    method,
    inChannels: modelInputChannels(manifest),
    outChannels: k,
    preprocessing: planPreprocessing(volume, manifest),
    target: [...tg.dims],
    slabs,
    slabDims,
    rows: sp.mode === "patch3d" && tg.dims[2] === dims[2],
    importance: sp.blending === "gaussian"
      ? gaussianImportance(window, sp.sigmaScale ?? 0.125)
      : constantImportance(window),
    passes,
    passFlips,
    windows,
    masks: dropoutMasks(manifest, passes, seed),
    rule,
    entropyKind: categorical ? "categorical" : "binary",
    labelChannels,
    measure: options.measure ?? "entropy",
    multi: method !== "none",
    seed,
    usesMc: passes.some((p) => p.mc),
    totalWindows: windows.reduce((a, perPass) => a + perPass.reduce((b, p) => b + p.windows.length, 0), 0),
    plannedWindows: fullPlans.reduce((a, p) => a + p.windows.length, 0) * passes.length,
    plannedWindow: fullPlans[0].window,
    window,
    crop,
    backgroundChannel: categorical
      ? Array.from({ length: k }, (_, c) => c).find((c) => !labelChannels.includes(c)) ?? 0
      : -1,
  };
}

/**
 * The region's bounding box on the original grid, when the manifest crops to it (`cropToRoi`) and
 * the windows tile that grid (no resampling on the axes the windows span); otherwise undefined and
 * the whole grid is tiled.
 */
function cropBox(
  manifest: ModelManifest,
  roi: RegionOfInterest | undefined,
  dims: Dims3,
  target: Dims3,
): { lo: Dims3; hi: Dims3 } | undefined {
  if (!manifest.spatial.cropToRoi || !roi) return undefined;
  const axes = manifest.spatial.mode === "patch3d" ? 3 : 2;
  for (let a = 0; a < axes; a++) if (target[a] !== dims[a]) return undefined;
  return maskBox(roi.mask, dims);
}

/**
 * The windows tiling the crop box on one slab's grid (`grid`), in the frame of a pass that flips
 * `flips` (the box mirrors with it). A streamed slab of slices keeps all its slices: slices the
 * region misses are dropped with the other windows that miss it.
 */
function cropPlan(
  crop: { lo: Dims3; hi: Dims3 },
  grid: Dims3,
  streamed: boolean,
  flips: number[],
  manifest: ModelManifest,
): WindowPlan {
  const lo = [...crop.lo] as Dims3, hi = [...crop.hi] as Dims3;
  if (streamed) [lo[2], hi[2]] = [0, grid[2]];
  for (const a of flips) [lo[a], hi[a]] = [grid[a] - hi[a], grid[a] - lo[a]];
  const sp = manifest.spatial;
  return planWindowsInBox(grid, lo, hi, sp.window, sp.overlap, sp.mode, manifest.preprocessing.padMultiple);
}

/**
 * Per slab and pass, the windows that run: with a region of interest only those touching it, per
 * flip set (a flipped pass runs its windows in the mirrored frame); the rest of the grid is
 * background. Passes with the same flips share one plan. `tile` gives a slab's windows before the
 * region filters them (the whole grid, or the region's box).
 */
function windowsPerPass(
  tile: (slab: number, flips: number[]) => WindowPlan,
  slabs: SlabPlan,
  slabDims: { src: Dims3; tgt: Dims3 }[],
  passFlips: number[][],
  volumeDims: Dims3,
  roi?: RegionOfInterest,
): WindowPlan[][] {
  return slabDims.map(({ src, tgt }, s) => {
    if (!roi) return passFlips.map(() => tile(s, []));
    const z0 = slabs.streamed ? slabs.ranges[s][0] : 0;
    const byFlips = new Map<string, WindowPlan>();
    return passFlips.map((flips) => {
      const key = flips.join(",");
      let plan = byFlips.get(key);
      if (!plan) {
        const base = tile(s, flips);
        plan = { ...base, windows: windowsInRoi(base, tgt, src, z0, roi, volumeDims, flips) };
        byFlips.set(key, plan);
      }
      return plan;
    });
  });
}

/**
 * One mask per pass, drawn up front in pass order so every slab of a pass sees the same "model":
 * a fresh dropout mask for an MC pass, all ones for the others; none when the model has no mask input.
 */
function dropoutMasks(
  manifest: ModelManifest,
  passes: PassSpec[],
  seed: number,
): (Float32Array | undefined)[] {
  const mcSpec = manifest.uncertainty?.mcDropout;
  const rng = mulberry32(seed);
  const ones = mcSpec ? identityMask(mcSpec) : undefined;
  return passes.map((p) => (mcSpec ? (p.mc ? dropoutMask(mcSpec, rng) : ones) : undefined));
}
