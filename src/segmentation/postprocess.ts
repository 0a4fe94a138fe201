/**
 * Post-processing of labelmaps: connected components (6-connectivity in 3D, 4-connectivity within a
 * slice in 2D), largest component per label, hole filling per label and removal of small
 * components. Union–find over typed arrays; no per-voxel objects.
 */
import type { PostprocessingSpec } from "../core/types.ts";
import type { Dims3 } from "./windows.ts";

export interface Components {
  /** component id per voxel, 0 outside the mask, 1..count inside */
  ids: Int32Array;
  count: number;
  /** sizes[id] = voxels of component id (sizes[0] unused) */
  sizes: Int32Array;
}

function find(parent: Int32Array, x: number): number {
  while (parent[x] !== x) {
    parent[x] = parent[parent[x]];
    x = parent[x];
  }
  return x;
}

function union(parent: Int32Array, p: number, q: number): void {
  const a = find(parent, p), b = find(parent, q);
  // the smaller root wins, so a component's root is its first voxel in scan order
  if (a < b) parent[b] = a;
  else if (b < a) parent[a] = b;
}

/**
 * Connected components of the voxels where `mask` is non-zero. `connectivity` "3d" joins the six
 * face neighbours; "2d" joins the four in-slice neighbours only (each slice on its own).
 */
export function connectedComponents(
  mask: Uint8Array,
  dims: Dims3,
  connectivity: "2d" | "3d" = "3d",
): Components {
  const [nx, ny, nz] = dims;
  const n = nx * ny * nz;
  const parent = new Int32Array(n);
  const sxy = nx * ny;
  for (let p = 0; p < n; p++) {
    if (!mask[p]) continue;
    parent[p] = p;
    const i = p % nx, j = ((p / nx) | 0) % ny, k = (p / sxy) | 0;
    if (i > 0 && mask[p - 1]) union(parent, p, p - 1);
    if (j > 0 && mask[p - nx]) union(parent, p, p - nx);
    if (connectivity === "3d" && k > 0 && mask[p - sxy]) union(parent, p, p - sxy);
  }
  // Links always point to a smaller index (see union), so one ascending scan labels every voxel
  // after its parent: roots get −id, others copy their parent's −id. The parent array becomes the
  // id array, so a CT-sized volume needs one Int32Array, not three.
  let count = 0;
  const sizesTmp: number[] = [0];
  for (let p = 0; p < n; p++) {
    if (!mask[p]) continue;
    const q = parent[p];
    if (q === p) {
      parent[p] = -(++count);
      sizesTmp.push(1);
    } else {
      const id = parent[q]; // q < p was labelled already: its entry is its −id
      parent[p] = id;
      sizesTmp[-id]++;
    }
  }
  const ids = parent;
  for (let p = 0; p < n; p++) ids[p] = mask[p] ? -ids[p] : 0;
  return { ids, count, sizes: Int32Array.from(sizesTmp) };
}

function findRoot(table: Int32Array, l: number): number {
  while (table[l] !== l) {
    table[l] = table[table[l]];
    l = table[l];
  }
  return l;
}

/** Merge two roots (0 = none); the smaller label becomes the root. */
function join(table: Int32Array, r: number, s: number): number {
  if (!r || r === s) return s;
  if (s < r) {
    table[r] = s;
    return s;
  }
  table[s] = r;
  return r;
}

/**
 * Number of 6-connected (3D) components of the voxels equal to `value`, without a per-voxel id
 * array: a slice-by-slice scan keeps provisional labels for two slices and an equivalence table,
 * so counting components on a CT-sized labelmap costs two slices of memory.
 */
export function countComponents(labels: ArrayLike<number>, dims: Dims3, value: number): number {
  const [nx, ny, nz] = dims;
  const sliceVox = nx * ny;
  let prev = new Int32Array(sliceVox), cur = new Int32Array(sliceVox);
  let table = new Int32Array(1024); // table[l] = parent of provisional label l (0 unused)
  let next = 1;
  for (let k = 0, p = 0; k < nz; k++) {
    for (let q = 0; q < sliceVox; q++, p++) {
      if (labels[p] !== value) {
        cur[q] = 0;
        continue;
      }
      const i = q % nx;
      const a = i > 0 ? cur[q - 1] : 0, b = q >= nx ? cur[q - nx] : 0, c = k > 0 ? prev[q] : 0;
      if (!a && !b && !c) {
        if (next >= table.length) {
          const grown = new Int32Array(table.length * 2);
          grown.set(table);
          table = grown;
        }
        table[next] = next;
        cur[q] = next++;
        continue;
      }
      let r = a ? findRoot(table, a) : 0;
      if (b) r = join(table, r, findRoot(table, b));
      if (c) r = join(table, r, findRoot(table, c));
      cur[q] = r;
    }
    const t = prev;
    prev = cur;
    cur = t;
  }
  let count = 0;
  for (let l = 1; l < next; l++) if (findRoot(table, l) === l) count++;
  return count;
}

function maskOf(labels: Uint8Array | Uint16Array, value: number): Uint8Array {
  const m = new Uint8Array(labels.length);
  for (let p = 0; p < labels.length; p++) m[p] = labels[p] === value ? 1 : 0;
  return m;
}

/** Keep only the largest connected component of `value` (others become background). In place. */
export function keepLargestComponent(
  labels: Uint8Array | Uint16Array,
  dims: Dims3,
  value: number,
  connectivity: "2d" | "3d" = "3d",
): void {
  const cc = connectedComponents(maskOf(labels, value), dims, connectivity);
  if (cc.count <= 1) return;
  let best = 1;
  for (let c = 2; c <= cc.count; c++) if (cc.sizes[c] > cc.sizes[best]) best = c;
  for (let p = 0; p < labels.length; p++) if (cc.ids[p] !== 0 && cc.ids[p] !== best) labels[p] = 0;
}

/** Remove components of any non-zero label smaller than `minVoxels`. In place. */
export function removeSmallComponents(
  labels: Uint8Array | Uint16Array,
  dims: Dims3,
  minVoxels: number,
  connectivity: "2d" | "3d" = "3d",
): void {
  if (!(minVoxels > 1)) return;
  const values = new Set<number>();
  for (let p = 0; p < labels.length; p++) if (labels[p] !== 0) values.add(labels[p]);
  for (const value of values) {
    const cc = connectedComponents(maskOf(labels, value), dims, connectivity);
    for (let p = 0; p < labels.length; p++) {
      if (cc.ids[p] !== 0 && cc.sizes[cc.ids[p]] < minVoxels) labels[p] = 0;
    }
  }
}

/**
 * Fill holes of label `value`: components of "not this label" that do not touch the border (of
 * the slice in 2D, of the volume in 3D). Only background voxels inside a hole are filled; another
 * label enclosed by this one is left alone. In place.
 */
export function fillHoles(
  labels: Uint8Array | Uint16Array,
  dims: Dims3,
  value: number,
  connectivity: "2d" | "3d" = "3d",
): void {
  const [nx, ny, nz] = dims;
  const outside = new Uint8Array(labels.length);
  for (let p = 0; p < labels.length; p++) outside[p] = labels[p] === value ? 0 : 1;
  const cc = connectedComponents(outside, dims, connectivity);
  const touches = new Uint8Array(cc.count + 1);
  for (let k = 0, p = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++, p++) {
        if (cc.ids[p] === 0) continue;
        const onBorder = i === 0 || i === nx - 1 || j === 0 || j === ny - 1 ||
          // a single-slice volume has no z faces: its holes are 2D holes
          (connectivity === "3d" && nz > 1 && (k === 0 || k === nz - 1));
        if (onBorder) touches[cc.ids[p]] = 1;
      }
    }
  }
  for (let p = 0; p < labels.length; p++) {
    if (cc.ids[p] !== 0 && !touches[cc.ids[p]] && labels[p] === 0) labels[p] = value;
  }
}

/**
 * The voxel count of `minComponentMl` on a grid of `spacing` mm, or 0 (no filter) for a single
 * slice, whose voxels have no real thickness.
 */
export function minVoxelsForMl(minComponentMl: number | undefined, dims: Dims3, spacing: Dims3): number {
  if (!minComponentMl || dims[2] <= 1) return 0;
  const voxelMl = (spacing[0] * spacing[1] * spacing[2]) / 1000;
  return voxelMl > 0 ? Math.ceil(minComponentMl / voxelMl - 1e-9) : 0;
}

/**
 * Apply a manifest's post-processing in a fixed order: small components (the larger of the voxel
 * and the volume minimum), largest component, holes. `holeConnectivity` is "2d" for slice-wise
 * models (holes filled per slice), "3d" otherwise; `spacing` (mm) turns `minComponentMl` into voxels.
 */
export function postprocessLabels(
  labels: Uint8Array | Uint16Array,
  dims: Dims3,
  spec: PostprocessingSpec | undefined,
  holeConnectivity: "2d" | "3d",
  spacing: Dims3 = [1, 1, 1],
): void {
  if (!spec) return;
  const minVoxels = Math.max(
    spec.minComponentVoxels ?? 0,
    minVoxelsForMl(spec.minComponentMl, dims, spacing),
  );
  if (minVoxels > 1) removeSmallComponents(labels, dims, minVoxels, "3d");
  for (const v of spec.largestComponent ?? []) keepLargestComponent(labels, dims, v, "3d");
  for (const v of spec.fillHoles ?? []) fillHoles(labels, dims, v, holeConnectivity);
}
