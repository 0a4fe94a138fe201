/**
 * Region of interest from the image itself, declared in the manifest's `roi` block: where a model
 * can find something at all. `segment()` runs only the windows whose footprint touches the region
 * and reports background outside it, so a lung model spends no time on (and finds no "infection"
 * in) air, table, abdomen or pelvis.
 *
 * Both kinds work on CT numbers (HU) of channel 0, slice by slice in 2D where the anatomy is
 * planar, then in 3D for volumes:
 * - `body-from-hu`: the body is the largest connected region at or above `bodyHu` after a small
 *   in-plane opening (which cuts the thin table and blankets off), with its enclosed holes filled;
 * - `lungs-from-hu`: air below `airHu` enclosed by that body (air connected to the outside of a
 *   slice is not enclosed), kept where its 3D component holds at least `minComponentMl` (bowel
 *   gas is smaller than lungs).
 * Then the mask grows by `marginMm` along every axis (a box, so at least that far in every
 * direction) to keep pleura, chest wall and dense lesions that are not air.
 *
 * A slice whose border is mostly body (`croppedBorderFraction`) was cropped inside the patient:
 * outside air cannot be told from lung there, so that slice is kept whole rather than guessed.
 * A single-slice image has no through-plane extent, so its enclosed air is not filtered by volume.
 *
 * Linear in the voxels: thresholds, one-dimensional run passes for opening and margin, one
 * per-slice flood fill, one 3D component labelling of the candidate air; typed arrays throughout.
 */
import type { RoiSpec } from "../core/types.ts";
import { now } from "./host.ts";
import { connectedComponents } from "./postprocess.ts";
import type { Dims3 } from "./windows.ts";

/** Defaults for the optional fields of a `roi` block (documented in docs/model-packages.md). */
export const ROI_DEFAULTS = {
  bodyHu: -500,
  airHu: -400,
  openingMm: 3,
  minComponentMl: 0,
  croppedBorderFraction: 0.3,
} as const;

export interface RegionOfInterest {
  /** 1 inside the (dilated) region, 0 outside; original grid, planar like a one-channel volume */
  mask: Uint8Array;
  /** ROI voxels */
  voxels: number;
  /** slices holding at least one ROI voxel */
  slices: number;
  /** slices kept whole because their field of view was cropped inside the body */
  croppedSlices: number;
  /** the spec the mask was computed with, defaults filled in */
  spec: Required<RoiSpec>;
  /** milliseconds spent */
  ms: number;
}

type Numeric = ArrayLike<number>;

/** The spec with every optional field set to its default. */
export function resolveRoiSpec(spec: RoiSpec): Required<RoiSpec> {
  return {
    kind: spec.kind,
    bodyHu: spec.bodyHu ?? ROI_DEFAULTS.bodyHu,
    airHu: spec.airHu ?? ROI_DEFAULTS.airHu,
    openingMm: spec.openingMm ?? ROI_DEFAULTS.openingMm,
    minComponentMl: spec.minComponentMl ?? ROI_DEFAULTS.minComponentMl,
    marginMm: spec.marginMm,
    croppedBorderFraction: spec.croppedBorderFraction ?? ROI_DEFAULTS.croppedBorderFraction,
  };
}

/**
 * Binary dilation (`grow`) or erosion along one axis by `r` voxels, from `src` into `dst` (both
 * planar). Two sweeps track the distance to the nearest set (dilation) or unset (erosion) voxel;
 * outside the volume counts as unset for dilation and as set for erosion, so erosion never eats a
 * body that the field of view cuts.
 */
export function morph1d(
  src: Uint8Array,
  dst: Uint8Array,
  dims: Dims3,
  axis: 0 | 1 | 2,
  r: number,
  grow: boolean,
): void {
  if (r <= 0) {
    dst.set(src);
    return;
  }
  const want = grow ? 1 : 0; // the value whose nearness decides
  const len = dims[axis];
  const far = 1 << 29;
  if (axis === 0) {
    // rows are contiguous: one scalar distance per sweep
    for (let base = 0; base < src.length; base += len) {
      let last = -far;
      for (let t = 0; t < len; t++) {
        if ((src[base + t] !== 0 ? 1 : 0) === want) last = t;
        dst[base + t] = t - last <= r ? want : 1 - want;
      }
      last = far;
      for (let t = len - 1; t >= 0; t--) {
        if ((src[base + t] !== 0 ? 1 : 0) === want) last = t;
        if (last - t <= r) dst[base + t] = want;
      }
    }
    return;
  }
  // memory order: outer blocks × positions along the axis × contiguous inner run
  const inner = axis === 1 ? dims[0] : dims[0] * dims[1];
  const outer = axis === 1 ? dims[2] : 1;
  const last = new Int32Array(inner);
  for (let o = 0; o < outer; o++) {
    const base = o * len * inner;
    last.fill(-far);
    for (let t = 0; t < len; t++) {
      const row = base + t * inner;
      for (let q = 0; q < inner; q++) {
        if ((src[row + q] !== 0 ? 1 : 0) === want) last[q] = t;
        dst[row + q] = t - last[q] <= r ? want : 1 - want;
      }
    }
    last.fill(far);
    for (let t = len - 1; t >= 0; t--) {
      const row = base + t * inner;
      for (let q = 0; q < inner; q++) {
        if ((src[row + q] !== 0 ? 1 : 0) === want) last[q] = t;
        if (last[q] - t <= r) dst[row + q] = want;
      }
    }
  }
}

/** Dilate (or erode) by a box of radii `r` voxels per axis; returns a new mask. */
function morphBox(mask: Uint8Array, dims: Dims3, r: Dims3, grow: boolean): Uint8Array {
  let src: Uint8Array = mask;
  let spare: Uint8Array | undefined;
  for (const axis of [0, 1, 2] as const) {
    if (r[axis] <= 0 || dims[axis] <= 1) continue;
    const dst: Uint8Array = spare ?? new Uint8Array(mask.length);
    morph1d(src, dst, dims, axis, r[axis], grow);
    // the input mask is never written; intermediate buffers are reused
    spare = src === mask ? undefined : src;
    src = dst;
  }
  return src === mask ? mask.slice() : src;
}

/**
 * Flood fill of the pixels where `open[q]` is 1, from the slice border, in one slice (4-connected).
 * Marks them in `reached`; `stack` is scratch of slice size.
 */
function fillFromBorder(
  open: Uint8Array,
  nx: number,
  ny: number,
  reached: Uint8Array,
  stack: Int32Array,
): void {
  reached.fill(0);
  let top = 0;
  const push = (q: number) => {
    if (open[q] && !reached[q]) {
      reached[q] = 1;
      stack[top++] = q;
    }
  };
  for (let i = 0; i < nx; i++) {
    push(i);
    push((ny - 1) * nx + i);
  }
  for (let j = 0; j < ny; j++) {
    push(j * nx);
    push(j * nx + nx - 1);
  }
  while (top > 0) {
    const q = stack[--top];
    const i = q % nx;
    if (i > 0) push(q - 1);
    if (i < nx - 1) push(q + 1);
    if (q >= nx) push(q - nx);
    if (q < (ny - 1) * nx) push(q + nx);
  }
}

/** In-plane grid the region is computed on (mm): lungs and body need no finer detail. */
export const ROI_ANALYSIS_SPACING_MM = 2;

/**
 * Block means of `fx × fy` pixels in every slice: the coarse grid the region is computed on.
 * Averaging (not sampling) also dissolves the thin table plate into the air around it.
 */
function blockMeans(data: Numeric, dims: Dims3, fx: number, fy: number): { hu: Float32Array; dims: Dims3 } {
  const [nx, ny, nz] = dims;
  const cx = Math.ceil(nx / fx), cy = Math.ceil(ny / fy);
  const hu = new Float32Array(cx * cy * nz);
  if (fx === 1 && fy === 1) {
    for (let p = 0; p < hu.length; p++) hu[p] = data[p];
    return { hu, dims: [cx, cy, nz] };
  }
  const counts = new Float32Array(cx * cy);
  for (let ci = 0; ci < cx; ci++) {
    for (let cj = 0; cj < cy; cj++) {
      counts[cj * cx + ci] = (Math.min(nx, (ci + 1) * fx) - ci * fx) *
        (Math.min(ny, (cj + 1) * fy) - cj * fy);
    }
  }
  const colOf = new Int32Array(nx);
  for (let i = 0; i < nx; i++) colOf[i] = (i / fx) | 0;
  for (let k = 0; k < nz; k++) {
    const src = k * nx * ny, dst = k * cx * cy;
    for (let j = 0; j < ny; j++) {
      const row = dst + ((j / fy) | 0) * cx, from = src + j * nx;
      for (let i = 0; i < nx; i++) hu[row + colOf[i]] += data[from + i];
    }
    for (let q = 0; q < cx * cy; q++) hu[dst + q] /= counts[q];
  }
  return { hu, dims: [cx, cy, nz] };
}

/**
 * The region of interest of a one-channel CT volume in HU (see the module comment). `data` holds
 * at least dims[0]·dims[1]·dims[2] values (channel 0 is used); `spacingMm` converts the margin,
 * the opening and the minimum volume to voxels. The work is done on a grid of about
 * `ROI_ANALYSIS_SPACING_MM` in-plane (block means) and the mask is returned on the input grid.
 */
export function computeRoi(
  data: Numeric,
  dims: Dims3,
  spacingMm: [number, number, number],
  spec: RoiSpec,
): RegionOfInterest {
  const t0 = now();
  const s = resolveRoiSpec(spec);
  const [nx, ny, nz] = dims;
  const fx = Math.max(1, Math.min(nx, Math.round(ROI_ANALYSIS_SPACING_MM / spacingMm[0])));
  const fy = Math.max(1, Math.min(ny, Math.round(ROI_ANALYSIS_SPACING_MM / spacingMm[1])));
  const coarse = blockMeans(data, dims, fx, fy);
  const c = regionOnGrid(coarse.hu, coarse.dims, [spacingMm[0] * fx, spacingMm[1] * fy, spacingMm[2]], s);
  // back to the input grid: every pixel takes its block's value (one fine row per coarse row, copied)
  const [cx, cy] = coarse.dims;
  const sliceVox = nx * ny;
  const mask = new Uint8Array(sliceVox * nz);
  const row = new Uint8Array(nx);
  let voxels = 0, slices = 0;
  for (let k = 0; k < nz; k++) {
    let inSlice = 0;
    for (let cj = 0; cj < cy; cj++) {
      const from = (k * cy + cj) * cx;
      const coarseRow = c.mask.subarray(from, from + cx);
      if (coarseRow.indexOf(1) < 0) continue;
      let inRow = 0;
      for (let i = 0; i < nx; i++) inRow += row[i] = coarseRow[(i / fx) | 0];
      const j1 = Math.min(ny, (cj + 1) * fy);
      for (let j = cj * fy; j < j1; j++) mask.set(row, k * sliceVox + j * nx);
      inSlice += inRow * (j1 - cj * fy);
    }
    voxels += inSlice;
    if (inSlice) slices++;
  }
  return { mask, voxels, slices, croppedSlices: c.croppedSlices, spec: s, ms: now() - t0 };
}

/** The algorithm on one grid: returns the mask on that grid and the number of cropped slices. */
function regionOnGrid(
  data: Float32Array,
  dims: Dims3,
  spacingMm: [number, number, number],
  s: Required<RoiSpec>,
): { mask: Uint8Array; croppedSlices: number } {
  const [nx, ny, nz] = dims;
  const sliceVox = nx * ny;
  const n = sliceVox * nz;
  const roi = new Uint8Array(n);
  const cropped = new Uint8Array(nz);
  const borderPixels = nx > 1 && ny > 1 ? 2 * (nx + ny) - 4 : sliceVox;

  // 1. body candidates, and slices cropped inside the body
  const body = new Uint8Array(n);
  for (let p = 0; p < n; p++) body[p] = data[p] >= s.bodyHu ? 1 : 0;
  for (let k = 0; k < nz; k++) {
    const o = k * sliceVox;
    let onBorder = 0;
    for (let i = 0; i < nx; i++) onBorder += body[o + i] + (ny > 1 ? body[o + (ny - 1) * nx + i] : 0);
    for (let j = 1; j < ny - 1; j++) onBorder += body[o + j * nx] + (nx > 1 ? body[o + j * nx + nx - 1] : 0);
    if (onBorder / borderPixels > s.croppedBorderFraction) cropped[k] = 1;
  }

  // 2. in-plane opening cuts thin table and blanket bridges; then the largest component per slice
  const rOpen: Dims3 = [
    Math.round(s.openingMm / spacingMm[0]),
    Math.round(s.openingMm / spacingMm[1]),
    0,
  ];
  const opened = rOpen[0] > 0 || rOpen[1] > 0
    ? morphBox(morphBox(body, dims, rOpen, false), dims, rOpen, true)
    : body;
  const reached = new Uint8Array(sliceVox);
  const stack = new Int32Array(sliceVox);
  const outside = new Uint8Array(sliceVox);
  for (let k = 0; k < nz; k++) {
    const o = k * sliceVox;
    const cc = connectedComponents(opened.subarray(o, o + sliceVox), [nx, ny, 1], "2d");
    let best = 0;
    for (let c = 1; c <= cc.count; c++) if (!best || cc.sizes[c] > cc.sizes[best]) best = c;
    // 3. the filled body: the largest component and every hole it encloses
    for (let q = 0; q < sliceVox; q++) outside[q] = best && cc.ids[q] === best ? 0 : 1;
    fillFromBorder(outside, nx, ny, reached, stack);
    for (let q = 0; q < sliceVox; q++) {
      const inBody = best !== 0 && !reached[q];
      if (s.kind === "body-from-hu") roi[o + q] = inBody ? 1 : 0;
      else roi[o + q] = inBody && data[o + q] < s.airHu ? 1 : 0;
    }
  }

  // 4. lungs: enclosed air whose 3D component is large enough (a single slice has no volume)
  if (s.kind === "lungs-from-hu" && s.minComponentMl > 0 && nz > 1) {
    const voxelMl = (spacingMm[0] * spacingMm[1] * spacingMm[2]) / 1000;
    const minVoxels = Math.ceil(s.minComponentMl / voxelMl);
    const cc = connectedComponents(roi, dims, "3d");
    for (let p = 0; p < n; p++) {
      const id = cc.ids[p];
      if (id !== 0 && cc.sizes[id] < minVoxels) roi[p] = 0;
    }
  }

  // 5. the margin, then cropped slices whole
  const rMargin = [0, 1, 2].map((a) => Math.ceil(s.marginMm / spacingMm[a] - 1e-9)) as Dims3;
  const mask = s.marginMm > 0 ? morphBox(roi, dims, rMargin, true) : roi;
  let croppedSlices = 0;
  for (let k = 0; k < nz; k++) {
    if (!cropped[k]) continue;
    croppedSlices++;
    mask.fill(1, k * sliceVox, (k + 1) * sliceVox);
  }
  return { mask, croppedSlices };
}

/**
 * The source-grid range [lo, hi) that a target-grid range [a, b) depends on or feeds through the
 * linear resampling of `resample.ts` (m source voxels, n target voxels on the axis): widened by
 * the interpolation neighbours both ways, so a window whose range misses the region cannot
 * change a voxel inside it. Equal grids map exactly.
 */
export function sourceRange(a: number, b: number, m: number, n: number): [number, number] {
  if (m === n) return [a, b];
  const r = m / n, pad = 1 + Math.ceil(r);
  const lo = Math.floor((a + 0.5) * r - 0.5) - pad;
  const hi = Math.ceil((b - 0.5) * r - 0.5) + 1 + pad;
  return [Math.max(0, lo), Math.min(m, hi)];
}

/** The bounding box [lo, hi) of the set voxels of `mask` (planar, `dims`), or undefined when none is set. */
export function maskBox(mask: Uint8Array, dims: Dims3): { lo: Dims3; hi: Dims3 } | undefined {
  const [nx, ny, nz] = dims;
  const lo: Dims3 = [nx, ny, nz], hi: Dims3 = [0, 0, 0];
  for (let k = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      const row = (k * ny + j) * nx;
      const first = mask.subarray(row, row + nx).indexOf(1);
      if (first < 0) continue;
      const last = mask.subarray(row, row + nx).lastIndexOf(1);
      lo[0] = Math.min(lo[0], first);
      hi[0] = Math.max(hi[0], last + 1);
      lo[1] = Math.min(lo[1], j);
      hi[1] = Math.max(hi[1], j + 1);
      lo[2] = Math.min(lo[2], k);
      hi[2] = Math.max(hi[2], k + 1);
    }
  }
  return hi[2] > 0 ? { lo, hi } : undefined;
}

/** True when `mask` (planar, `dims`) has a set voxel in the box [x0, x1) × [y0, y1) × [z0, z1). */
export function boxTouches(
  mask: Uint8Array,
  dims: Dims3,
  x0: number,
  x1: number,
  y0: number,
  y1: number,
  z0: number,
  z1: number,
): boolean {
  const [nx, ny] = dims;
  if (x1 <= x0) return false;
  for (let k = z0; k < z1; k++) {
    for (let j = y0; j < y1; j++) {
      const row = (k * ny + j) * nx;
      const hit = mask.subarray(row + x0, row + x1).indexOf(1);
      if (hit >= 0) return true;
    }
  }
  return false;
}

/**
 * Outside the region, make `values` (channels × voxels, planar) a certain background: 1 in
 * `backgroundChannel` and 0 elsewhere, or 0 everywhere when it is -1 (threshold decisions). Works
 * on probabilities and, for argmax decisions, on logits. `maskOffset` is where `values` starts in
 * the mask.
 */
export function backgroundOutside(
  values: Float32Array,
  mask: Uint8Array,
  maskOffset: number,
  voxels: number,
  channels: number,
  backgroundChannel: number,
): void {
  for (let v = 0; v < voxels; v++) {
    if (mask[maskOffset + v]) continue;
    for (let c = 0; c < channels; c++) values[c * voxels + v] = c === backgroundChannel ? 1 : 0;
  }
}
