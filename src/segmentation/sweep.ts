/**
 * The sliding-window sweep: batched extract → predict → blend over a window plan, for a whole grid
 * (`sweepWindows`) or z-row by z-row for patch3d without the volume in memory (`sweepRows`). It sees
 * a `Predictor` and nothing of the model behind it (MONAI's `sliding_window_inference` in spirit).
 */
import { ManifestError } from "../core/errors.ts";
import type { AbortSignalLike, Predictor } from "../core/types.ts";
import { checkAborted, now } from "./host.ts";
import { tileBatch } from "./uncertainty.ts";
import {
  blendInto,
  copyInto,
  type Dims3,
  extractWindow,
  isDisjoint,
  normaliseBlend,
  type WindowBox,
  type WindowPlan,
} from "./windows.ts";

/** What one sweep needs: the predictor of its pass, the plan, the grid and the run's callbacks. */
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
