/**
 * Sliding-window planning, importance maps and blending, after MONAI's `sliding_window_inference`
 * and nnU-Net's predictor. Everything here is pure and works on planar float32 arrays
 * (index = i + nx * (j + ny * (k + nz * c))), so fake predictors can prove it exact.
 */
import type { SpatialMode } from "../core/types.ts";

export type Dims3 = [number, number, number];

/** One window: where it starts in the padded volume and its size (x, y, z). */
export interface WindowBox {
  start: Dims3;
  size: Dims3;
}

/** A window plan over a (possibly padded) volume. */
export interface WindowPlan {
  /** the window size actually used, after padMultiple and whole-extent axes */
  window: Dims3;
  /** dims of the padded volume the windows tile: max(volume, window) per axis */
  paddedDims: Dims3;
  /** voxels of padding before the volume on each axis (MONAI pads symmetrically) */
  padBefore: Dims3;
  windows: WindowBox[];
}

function roundUp(n: number, multiple: number): number {
  return multiple > 1 ? Math.ceil(n / multiple) * multiple : n;
}

/**
 * Resolve the manifest's window to a 3D size. 2D modes get z = 1. A non-positive entry means "the
 * whole extent of that axis" (MONAI's roi_size -1), rounded up to `padMultiple`; fixed entries are
 * rounded up to `padMultiple` too, so every window the model sees satisfies its stride constraint.
 */
export function resolveWindow(
  dims: Dims3,
  window: number[],
  mode: SpatialMode,
  padMultiple = 1,
): Dims3 {
  const n = mode === "patch3d" ? 3 : 2;
  if (window.length < n) {
    throw new RangeError(`window needs ${n} entries for ${mode}, found ${window.length}`);
  }
  const out: Dims3 = [1, 1, 1];
  for (let a = 0; a < n; a++) {
    const w = window[a] > 0 ? window[a] : dims[a];
    out[a] = roundUp(w, padMultiple);
  }
  return out;
}

/**
 * Start positions along one axis, MONAI style: step = floor(window * (1 - overlap)) (at least 1),
 * ceil((dim - window) / step) + 1 windows, the last one flush with the end of the axis.
 */
export function axisStarts(dim: number, window: number, overlap: number): number[] {
  if (dim <= window) return [0];
  const step = Math.max(1, Math.floor(window * (1 - overlap)));
  const count = Math.ceil((dim - window) / step) + 1;
  const starts: number[] = [];
  for (let i = 0; i < count; i++) {
    const s = Math.min(i * step, dim - window);
    if (starts.length === 0 || starts[starts.length - 1] !== s) starts.push(s);
  }
  return starts;
}

/**
 * Plan the windows that tile a volume of `dims` (x, y, z) for a spatial mode.
 * - `image2d` and `slice2d`: 2D windows on every slice (z size 1, no overlap along z);
 * - `patch3d`: 3D patches with the overlap on every axis.
 * Axes shorter than the window are padded (symmetrically) up to the window.
 */
export function planWindows(
  dims: Dims3,
  window: number[],
  overlap: number,
  mode: SpatialMode = window.length === 3 ? "patch3d" : "slice2d",
  padMultiple = 1,
): WindowPlan {
  if (!(overlap >= 0 && overlap < 1)) throw new RangeError(`overlap must be in [0, 1), found ${overlap}`);
  const win = resolveWindow(dims, window, mode, padMultiple);
  const paddedDims: Dims3 = [0, 0, 0];
  const padBefore: Dims3 = [0, 0, 0];
  for (let a = 0; a < 3; a++) {
    paddedDims[a] = Math.max(dims[a], win[a]);
    padBefore[a] = Math.floor((paddedDims[a] - dims[a]) / 2);
  }
  const sx = axisStarts(paddedDims[0], win[0], overlap);
  const sy = axisStarts(paddedDims[1], win[1], overlap);
  const sz = mode === "patch3d"
    ? axisStarts(paddedDims[2], win[2], overlap)
    : Array.from({ length: paddedDims[2] }, (_, k) => k);
  const windows: WindowBox[] = [];
  for (const z of sz) {
    for (const y of sy) for (const x of sx) windows.push({ start: [x, y, z], size: [...win] as Dims3 });
  }
  return { window: win, paddedDims, padBefore, windows };
}

/**
 * Windows that tile only the box [lo, hi) of a grid of `dims` (a region's bounding box), planned
 * as `planWindows` plans the box alone, then placed on the grid: a window that fits the grid is
 * moved inside it (real neighbours rather than padding), a larger one is centred on it. A window
 * entry of -1 spans the box on that axis. Coordinates are grid coordinates (`padBefore` is 0).
 */
export function planWindowsInBox(
  dims: Dims3,
  lo: Dims3,
  hi: Dims3,
  window: number[],
  overlap: number,
  mode: SpatialMode,
  padMultiple = 1,
): WindowPlan {
  const box: Dims3 = [hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]];
  const inner = planWindows(box, window, overlap, mode, padMultiple);
  const place = (a: number, start: number) => {
    const size = inner.window[a];
    return size <= dims[a] ? Math.min(Math.max(start, 0), dims[a] - size) : -Math.floor((size - dims[a]) / 2);
  };
  const windows = inner.windows.map((w): WindowBox => ({
    start: [0, 1, 2].map((a) => place(a, w.start[a] - inner.padBefore[a] + lo[a])) as Dims3,
    size: [...w.size] as Dims3,
  }));
  return { window: inner.window, paddedDims: [...dims], padBefore: [0, 0, 0], windows };
}

/**
 * Gaussian importance map for a window (nnU-Net): sigma = sigmaScale × window per axis, centred,
 * normalised to a maximum of 1, and clamped below to the smallest positive value so that voxels
 * at window corners never get zero weight (a zero there would divide by zero where only one
 * window covers a voxel). Axes of size 1 have weight 1.
 */
export function gaussianImportance(window: Dims3, sigmaScale = 0.125): Float32Array {
  const factors = window.map((w) => {
    const f = new Float64Array(w);
    if (w === 1) {
      f[0] = 1;
      return f;
    }
    const sigma = Math.max(w * sigmaScale, 1e-6);
    const c = (w - 1) / 2;
    for (let i = 0; i < w; i++) f[i] = Math.exp(-((i - c) ** 2) / (2 * sigma * sigma));
    return f;
  });
  const [wx, wy, wz] = window;
  const out = new Float32Array(wx * wy * wz);
  let max = 0;
  for (let z = 0, p = 0; z < wz; z++) {
    for (let y = 0; y < wy; y++) {
      const fzy = factors[2][z] * factors[1][y];
      for (let x = 0; x < wx; x++, p++) {
        const v = fzy * factors[0][x];
        out[p] = v;
        if (v > max) max = v;
      }
    }
  }
  let minPositive = Infinity;
  for (let p = 0; p < out.length; p++) {
    out[p] /= max;
    if (out[p] > 0 && out[p] < minPositive) minPositive = out[p];
  }
  for (let p = 0; p < out.length; p++) if (!(out[p] > 0)) out[p] = minPositive;
  return out;
}

/** Constant importance (plain averaging of overlapping windows). */
export function constantImportance(window: Dims3): Float32Array {
  return new Float32Array(window[0] * window[1] * window[2]).fill(1);
}

/**
 * Copy one window out of a planar multi-channel volume into `dest` (channel-major, window layout),
 * with `padValue` where the window lies outside the volume. Window coordinates are in the padded
 * volume; `padBefore` maps them back to the volume.
 */
export function extractWindow(
  src: Float32Array,
  dims: Dims3,
  channels: number,
  box: WindowBox,
  padBefore: Dims3,
  padValue: number,
  dest: Float32Array,
  destOffset = 0,
): void {
  const [nx, ny, nz] = dims;
  const [wx, wy, wz] = box.size;
  const x0 = box.start[0] - padBefore[0], y0 = box.start[1] - padBefore[1], z0 = box.start[2] - padBefore[2];
  const nVox = nx * ny * nz;
  // the in-volume part of each row is one contiguous copy; only the padding is filled
  const xLo = Math.min(wx, Math.max(0, -x0)), xHi = Math.max(xLo, Math.min(wx, nx - x0));
  let p = destOffset;
  for (let c = 0; c < channels; c++) {
    const cOff = c * nVox;
    for (let z = 0; z < wz; z++) {
      const k = z0 + z;
      for (let y = 0; y < wy; y++, p += wx) {
        const j = y0 + y;
        if (k < 0 || k >= nz || j < 0 || j >= ny || xHi === xLo) {
          dest.fill(padValue, p, p + wx);
          continue;
        }
        const row = cOff + nx * (j + ny * k) + x0;
        if (xLo > 0) dest.fill(padValue, p, p + xLo);
        dest.set(src.subarray(row + xLo, row + xHi), p + xLo);
        if (xHi < wx) dest.fill(padValue, p + xHi, p + wx);
      }
    }
  }
}

/** True when no voxel is covered by two windows (then blending is a plain copy). */
export function isDisjoint(plan: WindowPlan): boolean {
  for (let a = 0; a < 3; a++) {
    const starts = [...new Set(plan.windows.map((w) => w.start[a]))].sort((x, y) => x - y);
    for (let i = 1; i < starts.length; i++) if (starts[i] - starts[i - 1] < plan.window[a]) return false;
  }
  return true;
}

/**
 * Copy a window's output into the accumulator without weights: exact for disjoint plans, where
 * weighting and normalising would only add rounding and time.
 */
export function copyInto(
  accumulator: Float32Array,
  dims: Dims3,
  channels: number,
  windowOutput: Float32Array,
  outOffset: number,
  box: WindowBox,
  padBefore: Dims3,
): void {
  const [nx, ny, nz] = dims;
  const [wx, wy, wz] = box.size;
  const x0 = box.start[0] - padBefore[0], y0 = box.start[1] - padBefore[1], z0 = box.start[2] - padBefore[2];
  const nVox = nx * ny * nz, wVox = wx * wy * wz;
  const xLo = Math.max(0, -x0), xHi = Math.min(wx, nx - x0);
  if (xHi <= xLo) return;
  for (let z = 0; z < wz; z++) {
    const k = z0 + z;
    if (k < 0 || k >= nz) continue;
    for (let y = 0; y < wy; y++) {
      const j = y0 + y;
      if (j < 0 || j >= ny) continue;
      const wRow = wx * (y + wy * z), dstRow = nx * (j + ny * k) + x0;
      for (let c = 0; c < channels; c++) {
        const from = outOffset + c * wVox + wRow;
        accumulator.set(windowOutput.subarray(from + xLo, from + xHi), c * nVox + dstRow + xLo);
      }
    }
  }
}

/**
 * Add a window's output (channels × window voxels, starting at `outOffset`) times the importance
 * map into `accumulator` (channels × volume voxels) and the importance into `weights` (volume
 * voxels). Parts of the window in the padding are dropped.
 */
export function blendInto(
  accumulator: Float32Array,
  weights: Float32Array,
  dims: Dims3,
  channels: number,
  windowOutput: Float32Array,
  outOffset: number,
  box: WindowBox,
  padBefore: Dims3,
  importance: Float32Array,
): void {
  const [nx, ny, nz] = dims;
  const [wx, wy, wz] = box.size;
  const x0 = box.start[0] - padBefore[0], y0 = box.start[1] - padBefore[1], z0 = box.start[2] - padBefore[2];
  const nVox = nx * ny * nz;
  const wVox = wx * wy * wz;
  const xLo = Math.max(0, -x0), xHi = Math.min(wx, nx - x0);
  for (let z = 0; z < wz; z++) {
    const k = z0 + z;
    if (k < 0 || k >= nz) continue;
    for (let y = 0; y < wy; y++) {
      const j = y0 + y;
      if (j < 0 || j >= ny) continue;
      const dstRow = nx * (j + ny * k) + x0;
      const wRow = wx * (y + wy * z);
      for (let x = xLo; x < xHi; x++) weights[dstRow + x] += importance[wRow + x];
      for (let c = 0; c < channels; c++) {
        const src = outOffset + c * wVox + wRow;
        const dst = c * nVox + dstRow;
        for (let x = xLo; x < xHi; x++) accumulator[dst + x] += windowOutput[src + x] * importance[wRow + x];
      }
    }
  }
}

/**
 * Divide the accumulator by the weights in place. A full plan covers every voxel; voxels that no
 * window covered (windows skipped outside a region of interest) have weight 0 and stay 0.
 */
export function normaliseBlend(accumulator: Float32Array, weights: Float32Array, channels: number): void {
  const n = weights.length;
  for (let c = 0; c < channels; c++) {
    const off = c * n;
    for (let v = 0; v < n; v++) {
      const w = weights[v];
      if (w > 0) accumulator[off + v] /= w;
    }
  }
}
