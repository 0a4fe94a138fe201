/**
 * `segment()`: the one entry point the extension, the CLI and the tests share. It sees only a
 * ModelRuntime (manifest + Predictors), never ONNX Runtime:
 *
 *   validate → preprocess → resample to target spacing → plan windows → for each pass (MC dropout
 *   mask, TTA flip/scale, ensemble member): predict windows → blend → activation → undo flip →
 *   resample back → streaming aggregation → decision → post-processing → statistics → triage →
 *   provenance.
 */
import { CancelledError, InputError, ManifestError } from "../core/errors.ts";
import type {
  AbortSignalLike,
  Labelmap,
  ModelManifest,
  ModelRuntime,
  Predictor,
  ProbabilityMaps,
  Progress,
  SegmentationResult,
  SegmentOptions,
  UncertaintyMap,
  UncertaintyMethod,
  Volume,
} from "../core/types.ts";
import { applyActivation, decide, decisionRule } from "./activation.ts";
import { postprocessLabels } from "./postprocess.ts";
import { modelInputChannels, preprocessVolume } from "./preprocess.ts";
import { resampleLinear, targetGeometry } from "./resample.ts";
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
  type Dims3,
  extractWindow,
  gaussianImportance,
  normaliseBlend,
  planWindows,
  type WindowPlan,
} from "./windows.ts";

/** Software name and version written into provenance. */
export const SOFTWARE = "EdgeSeg 0.1.0";

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

/** Bytes segment() will hold at its peak for this volume and model (an estimate, used to refuse early). */
export function estimateWorkingSetBytes(
  volume: Volume,
  manifest: ModelManifest,
  method: UncertaintyMethod,
): number {
  const [nx, ny, nz] = volume.geometry.dims;
  const v = nx * ny * nz;
  const tg = targetGeometry(volume.geometry, manifest.preprocessing.targetSpacingMm);
  const vt = tg.dims[0] * tg.dims[1] * tg.dims[2];
  const cin = modelInputChannels(manifest);
  const k = modelOutputChannels(manifest);
  const plan = planWindows(
    tg.dims,
    manifest.spatial.window,
    manifest.spatial.overlap,
    manifest.spatial.mode,
    manifest.preprocessing.padMultiple,
  );
  const wv = plan.window[0] * plan.window[1] * plan.window[2];
  const batch = manifest.spatial.batch ?? 1;
  let bytes = 4 * cin * v; // preprocessed copy
  if (vt !== v) bytes += 4 * cin * vt; // resampled image
  if (method.includes("tta")) bytes += 4 * cin * vt; // flipped input
  bytes += 4 * (k + 1) * vt; // accumulator + weights
  if (vt !== v) bytes += 4 * k * v; // probabilities back on the original grid
  bytes += 4 * batch * wv * (cin + k); // window batch in and out
  if (method !== "none") bytes += StreamingAggregator.bytesFor(v, k, manifest.labels.length) + 4 * v;
  bytes += 2 * v; // labelmap
  return bytes;
}

/** Check the input against the manifest before any allocation; throws InputError. */
export function validateInput(volume: Volume, runtime: ModelRuntime, options: SegmentOptions = {}): void {
  const m = runtime.manifest;
  const g = volume.geometry;
  const c = m.constraints;
  const mods = c.modalities.map((x) => x.toUpperCase());
  if (!mods.includes(String(volume.modality).toUpperCase())) {
    throw new InputError(
      "MODALITY",
      `model ${m.id} accepts modality ${c.modalities.join(" or ")}, but the volume is ${
        volume.modality || "(none)"
      }`,
    );
  }
  if (volume.channels !== c.channels) {
    throw new InputError(
      "CHANNELS",
      `model ${m.id} expects ${c.channels}-channel images, found ${volume.channels}`,
    );
  }
  if (!g.dims.every((d) => Number.isInteger(d) && d > 0)) {
    throw new InputError("DIMS", `volume dims must be positive integers, found [${g.dims.join(", ")}]`);
  }
  if (!g.spacing || g.spacing.length !== 3 || !g.spacing.every((s) => Number.isFinite(s) && s > 0)) {
    throw new InputError(
      "SPACING",
      `voxel spacing must be three finite values > 0 mm, found [${(g.spacing ?? []).join(", ")}]`,
    );
  }
  if (c.minSlices !== undefined && g.dims[2] < c.minSlices) {
    throw new InputError(
      "TOO_FEW_SLICES",
      `model ${m.id} needs at least ${c.minSlices} slices, found ${g.dims[2]}`,
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
    const need = estimateWorkingSetBytes(volume, m, method);
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

interface SweepContext {
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
}

/** Run every window of the plan through the predictor and blend; returns out channels × voxels. */
export async function sweepWindows(image: Float32Array, ctx: SweepContext): Promise<Float32Array> {
  const { plan, dims, inChannels: cin, outChannels: k, batch } = ctx;
  const nVox = dims[0] * dims[1] * dims[2];
  const acc = new Float32Array(k * nVox);
  const weights = new Float32Array(nVox);
  const [wx, wy, wz] = plan.window;
  const wVox = wx * wy * wz;
  const input = new Float32Array(batch * cin * wVox);
  for (let first = 0; first < plan.windows.length; first += batch) {
    checkAborted(ctx.signal);
    const boxes = plan.windows.slice(first, first + batch);
    const b = boxes.length;
    for (let i = 0; i < b; i++) {
      extractWindow(image, dims, cin, boxes[i], plan.padBefore, ctx.padValue, input, i * cin * wVox);
    }
    const shape = ctx.mode === "3d" ? [b, cin, wz, wy, wx] : [b, cin, wy, wx];
    const extra = ctx.extraName && ctx.extraMask
      ? { [ctx.extraName]: tileBatch(ctx.extraMask.data, ctx.extraMask.shape, b) }
      : undefined;
    const view = b === batch ? input : input.subarray(0, b * cin * wVox);
    const out = await ctx.predictor(view, shape, ctx.signal, extra);
    checkAborted(ctx.signal);
    if (out.length !== b * k * wVox) {
      throw new ManifestError("OUTPUT_SHAPE", "model output size does not match the manifest", {
        expected: `${b}×${k}×${wVox} = ${b * k * wVox} values`,
        actual: `${out.length}`,
      });
    }
    for (let i = 0; i < b; i++) {
      blendInto(acc, weights, dims, k, out, i * k * wVox, boxes[i], plan.padBefore, ctx.importance);
    }
    ctx.onWindows(b);
  }
  normaliseBlend(acc, weights, k);
  return acc;
}

/** performance.now() where the host has it (browsers, Deno), else Date.now(); the core has no DOM types. */
function now(): number {
  const perf = (globalThis as { performance?: { now(): number } }).performance;
  return perf ? perf.now() : Date.now();
}

/** Segment a volume with a model runtime; see the module comment for the phases. */
export async function segment(
  volume: Volume,
  runtime: ModelRuntime,
  options: SegmentOptions = {},
): Promise<SegmentationResult> {
  const startedAt = new Date().toISOString();
  const manifest = runtime.manifest;
  const method = options.uncertainty ?? "none";
  const timings: Record<string, number> = {};
  const report = (p: Progress) => options.onProgress?.(p);
  let t0 = now();
  const lap = (name: string) => {
    const t = now();
    timings[name] = (timings[name] ?? 0) + (t - t0);
    t0 = t;
  };

  validateInput(volume, runtime, options);
  checkAborted(options.signal);
  lap("validation");

  // --- preprocessing ---------------------------------------------------------------------------
  report({ phase: "preprocessing", done: 0, total: 1 });
  const geometry = volume.geometry;
  const dims: Dims3 = [...geometry.dims];
  const voxels = dims[0] * dims[1] * dims[2];
  const cin = modelInputChannels(manifest);
  const k = modelOutputChannels(manifest);
  const pre = preprocessVolume(volume, manifest);
  const tg = targetGeometry(geometry, manifest.preprocessing.targetSpacingMm);
  const tdims: Dims3 = [...tg.dims];
  const image = resampleLinear(pre, dims, tdims, cin);
  const sp = manifest.spatial;
  const plan = planWindows(tdims, sp.window, sp.overlap, sp.mode, manifest.preprocessing.padMultiple);
  const importance = sp.blending === "gaussian"
    ? gaussianImportance(plan.window, sp.sigmaScale ?? 0.125)
    : constantImportance(plan.window);
  report({ phase: "preprocessing", done: 1, total: 1 });
  lap("preprocessing");

  // --- inference passes ------------------------------------------------------------------------
  const mcSpec = manifest.uncertainty?.mcDropout;
  const nPasses = options.passes ?? mcSpec?.defaultPasses ?? 1;
  if (!(Number.isInteger(nPasses) && nPasses >= 1)) {
    throw new InputError("PASSES", `passes must be a positive integer, found ${nPasses}`);
  }
  const passes = planPasses(method, manifest, runtime.members.length, nPasses, options.ttaIntensityScales);
  const usesMc = passes.some((p) => p.mc);
  const seed = options.seed ?? 0;
  const rng = mulberry32(seed);
  const rule = decisionRule(manifest.activation, k, manifest.labels);
  const entropyKind: EntropyKind = rule === "argmax" ? "categorical" : "binary";
  const labelChannels = manifest.labels.map((l) => l.channel);
  const aggregator = passes.length > 1
    ? new StreamingAggregator(voxels, k, labelChannels, entropyKind)
    : undefined;
  const passVoxels: number[][] = [];
  const totalWindows = plan.windows.length * passes.length;
  let doneWindows = 0;
  let single: Float32Array | undefined;
  const ones = mcSpec ? identityMask(mcSpec) : undefined;

  const loopStart = now();
  timings.inference = 0;
  for (const pass of passes) {
    checkAborted(options.signal);
    let input = image;
    if (pass.flips.length) input = flipVolume(input, tdims, cin, pass.flips);
    if (pass.scale !== 1) {
      if (input === image) input = image.slice();
      for (let p = 0; p < input.length; p++) input[p] *= pass.scale;
    }
    const mask = mcSpec ? (pass.mc ? dropoutMask(mcSpec, rng) : ones) : undefined;
    const t = now();
    let probs = await sweepWindows(input, {
      predictor: runtime.members[pass.member],
      plan,
      dims: tdims,
      inChannels: cin,
      outChannels: k,
      padValue: manifest.preprocessing.padValue ?? 0,
      importance,
      batch: Math.max(1, sp.batch ?? 1),
      mode: sp.mode === "patch3d" ? "3d" : "2d",
      extraName: mcSpec?.input,
      extraMask: mask && mcSpec ? { data: mask, shape: mcSpec.shape } : undefined,
      signal: options.signal,
      onWindows: (n) => {
        doneWindows += n;
        report({ phase: "inference", done: doneWindows, total: totalWindows });
      },
    });
    timings.inference += now() - t;
    applyActivation(probs, tdims[0] * tdims[1] * tdims[2], k, manifest.activation);
    if (pass.flips.length) probs = flipVolume(probs, tdims, k, pass.flips);
    probs = resampleLinear(probs, tdims, dims, k);
    if (aggregator) {
      aggregator.add(probs);
      passVoxels.push(countDecisions(probs, voxels, k, manifest, rule));
    } else single = probs;
  }
  // the loop's time outside window sweeps (activation, flips, resampling back, aggregation)
  timings.aggregation = now() - loopStart - timings.inference;
  t0 = now();

  // --- decision and post-processing --------------------------------------------------------------
  report({ phase: "postprocessing", done: 0, total: 1 });
  const mean = aggregator ? aggregator.mean : single!;
  const labels = decide(mean, voxels, k, manifest.labels, rule);
  const holeConnectivity = sp.mode === "patch3d" ? "3d" : "2d";
  postprocessLabels(labels, dims, manifest.postprocessing, holeConnectivity);
  lap("postprocessing");

  let uncertainty: UncertaintyMap | undefined;
  const measure = options.measure ?? "entropy";
  if (aggregator) {
    uncertainty = { geometry, data: aggregator.measure(measure), measure, method, passes: passes.length };
  }
  lap("uncertainty");

  let probabilities: ProbabilityMaps | undefined;
  if (options.keepProbabilities) {
    const q = new Uint8Array(voxels * manifest.labels.length);
    manifest.labels.forEach((l, i) => {
      const off = l.channel * voxels, dst = i * voxels;
      for (let v = 0; v < voxels; v++) q[dst + v] = Math.round(Math.min(1, Math.max(0, mean[off + v])) * 255);
    });
    probabilities = { geometry, data: q, channels: manifest.labels.length };
  }

  // --- statistics and triage ---------------------------------------------------------------------
  const intensityChannel = manifest.preprocessing.channels?.[0] ?? 0;
  const intensity = volume.data.subarray(intensityChannel * voxels, (intensityChannel + 1) * voxels);
  const statistics = segmentStatistics({
    labels,
    geometry,
    segments: manifest.labels,
    intensity,
    uncertainty: uncertainty?.data,
    passVoxels: aggregator ? passVoxels : undefined,
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
      seed: usesMc ? seed : undefined,
      uncertainty: method,
      timingsMs: timings,
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
  const counts = new Map<number, number>();
  for (let v = 0; v < voxels; v++) if (decided[v]) counts.set(decided[v], (counts.get(decided[v]) ?? 0) + 1);
  return manifest.labels.map((l) => counts.get(l.value) ?? 0);
}
