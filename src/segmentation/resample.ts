/**
 * Resampling between the original grid and the model's target spacing. The physical extent of the
 * volume is kept (voxel edges line up, like `align_corners=False`), so going there and back lands on
 * the original voxel centres. Linear interpolation is separable (one axis at a time); labels use
 * nearest neighbour. When the dims already match, the input array itself is returned (no copy).
 */
import type { Geometry, Vec3 } from "../core/types.ts";
import type { Dims3 } from "./windows.ts";

/** Geometry of the grid with `target` spacing (null per axis keeps the native axis). */
export function targetGeometry(geometry: Geometry, target?: (number | null)[]): Geometry {
  if (!target) return geometry;
  const dims: Vec3 = [...geometry.dims];
  const spacing: Vec3 = [...geometry.spacing];
  const shift: Vec3 = [0, 0, 0];
  let changed = false;
  for (let a = 0; a < 3; a++) {
    const t = target[a];
    if (t === null || t === undefined || !(t > 0)) continue;
    const n = Math.max(1, Math.round((geometry.dims[a] * geometry.spacing[a]) / t));
    if (n === geometry.dims[a]) continue;
    changed = true;
    dims[a] = n;
    spacing[a] = (geometry.dims[a] * geometry.spacing[a]) / n;
    // voxel centre 0 moves by half the difference of the spacings (edges stay where they were)
    shift[a] = (spacing[a] - geometry.spacing[a]) / 2;
  }
  if (!changed) return geometry;
  const d = geometry.direction;
  const origin: Vec3 = [
    geometry.origin[0] + d[0] * shift[0] + d[1] * shift[1] + d[2] * shift[2],
    geometry.origin[1] + d[3] * shift[0] + d[4] * shift[1] + d[5] * shift[2],
    geometry.origin[2] + d[6] * shift[0] + d[7] * shift[1] + d[8] * shift[2],
  ];
  return { dims, spacing, origin, direction: geometry.direction };
}

function sameDims(a: Dims3, b: Dims3): boolean {
  return a[0] === b[0] && a[1] === b[1] && a[2] === b[2];
}

/** Linear resampling along one axis, every channel. */
function resampleAxis(
  src: Float32Array,
  dims: Dims3,
  channels: number,
  axis: number,
  n: number,
): Float32Array {
  const outDims: Dims3 = [...dims];
  outDims[axis] = n;
  const m = dims[axis];
  const out = new Float32Array(outDims[0] * outDims[1] * outDims[2] * channels);
  // per output index: lower source index and weight of the upper one
  const lo = new Int32Array(n);
  const w = new Float32Array(n);
  const ratio = m / n;
  for (let o = 0; o < n; o++) {
    let x = (o + 0.5) * ratio - 0.5;
    if (x < 0) x = 0;
    if (x > m - 1) x = m - 1;
    const f = Math.floor(x);
    lo[o] = Math.min(f, m - 1);
    w[o] = x - f;
  }
  const strideIn = axis === 0 ? 1 : axis === 1 ? dims[0] : dims[0] * dims[1];
  const strideOut = axis === 0 ? 1 : axis === 1 ? outDims[0] : outDims[0] * outDims[1];
  // iterate over all "lines" along the axis
  const [nx, ny, nz] = dims;
  const inVox = nx * ny * nz, outVox = outDims[0] * outDims[1] * outDims[2];
  for (let c = 0; c < channels; c++) {
    for (let k = 0; k < (axis === 2 ? 1 : nz); k++) {
      for (let j = 0; j < (axis === 1 ? 1 : ny); j++) {
        for (let i = 0; i < (axis === 0 ? 1 : nx); i++) {
          const baseIn = c * inVox + i + nx * (j + ny * k);
          const baseOut = c * outVox + i + outDims[0] * (j + outDims[1] * k);
          for (let o = 0; o < n; o++) {
            const a = src[baseIn + lo[o] * strideIn];
            const wo = w[o];
            const v = wo > 0 ? a + (src[baseIn + (lo[o] + 1) * strideIn] - a) * wo : a;
            out[baseOut + o * strideOut] = v;
          }
        }
      }
    }
  }
  return out;
}

/**
 * Trilinear resampling of a planar multi-channel float volume from `from` dims to `to` dims
 * (same physical extent). Returns `src` itself when the dims are equal.
 */
export function resampleLinear(src: Float32Array, from: Dims3, to: Dims3, channels = 1): Float32Array {
  if (sameDims(from, to)) return src;
  let cur = src;
  const dims: Dims3 = [...from];
  for (let a = 0; a < 3; a++) {
    if (dims[a] === to[a]) continue;
    cur = resampleAxis(cur, dims, channels, a, to[a]);
    dims[a] = to[a];
  }
  return cur;
}

/** Nearest-neighbour resampling for labelmaps. Returns `src` itself when the dims are equal. */
export function resampleNearest<T extends Uint8Array | Uint16Array>(src: T, from: Dims3, to: Dims3): T {
  if (sameDims(from, to)) return src;
  const idx = (n: number, m: number) => {
    const map = new Int32Array(n);
    for (let o = 0; o < n; o++) map[o] = Math.min(m - 1, Math.max(0, Math.round((o + 0.5) * (m / n) - 0.5)));
    return map;
  };
  const ix = idx(to[0], from[0]), iy = idx(to[1], from[1]), iz = idx(to[2], from[2]);
  const out = new (src.constructor as { new (n: number): T })(to[0] * to[1] * to[2]);
  let p = 0;
  for (let k = 0; k < to[2]; k++) {
    for (let j = 0; j < to[1]; j++) {
      const row = from[0] * (iy[j] + from[1] * iz[k]);
      for (let i = 0; i < to[0]; i++, p++) out[p] = src[row + ix[i]];
    }
  }
  return out;
}
