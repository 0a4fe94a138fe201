/**
 * One interpreter of a manifest's `preprocessing` recipe (nnU-Net style: the recipe is data stored
 * with the model, not code): channel selection / expansion, then an intensity transform.
 * Output is a planar float32 array with the model's input channels.
 */
import { InputError } from "../core/errors.ts";
import type { IntensityTransform, ModelManifest, Preprocessing, Volume, VoxelArray } from "../core/types.ts";

/** Number of input channels the model wants, from its first input's shape (NCHW / NCDHW axis 1). */
export function modelInputChannels(manifest: ModelManifest): number {
  const c = manifest.inputs[0]?.shape[1];
  if (typeof c === "number" && c > 0) return c;
  return manifest.preprocessing.channels?.length ?? manifest.constraints.channels;
}

/**
 * Which volume channel feeds each model input channel: `preprocessing.channels` (e.g. [1] = green
 * of RGB) or all channels, repeated when `expandChannels` is "repeat". Throws InputError.
 */
export function channelPicks(
  volumeChannels: number,
  pre: Pick<Preprocessing, "channels" | "expandChannels">,
  modelChannels: number,
): number[] {
  const picks = pre.channels ?? Array.from({ length: volumeChannels }, (_, c) => c);
  for (const c of picks) {
    if (!Number.isInteger(c) || c < 0 || c >= volumeChannels) {
      throw new InputError(
        "CHANNEL_MISSING",
        `preprocessing selects channel ${c}, but the volume has channels 0..${volumeChannels - 1}`,
      );
    }
  }
  if (picks.length === modelChannels) return picks;
  if (picks.length === 1 && pre.expandChannels === "repeat") {
    return Array.from({ length: modelChannels }, () => picks[0]);
  }
  throw new InputError(
    "CHANNEL_COUNT",
    `the model expects ${modelChannels} input channel(s); preprocessing provides ${picks.length}` +
      (picks.length === 1 ? ' (set preprocessing.expandChannels to "repeat" to copy it)' : ""),
  );
}

/**
 * Pick and order the volume's channels for the model (e.g. [1] = green of RGB), or repeat a single
 * channel N times when `expandChannels` is "repeat". Always returns a fresh Float32Array.
 */
export function selectChannels(
  data: VoxelArray,
  voxels: number,
  volumeChannels: number,
  pre: Pick<Preprocessing, "channels" | "expandChannels">,
  modelChannels: number,
): Float32Array {
  const picks = channelPicks(volumeChannels, pre, modelChannels);
  const out = new Float32Array(voxels * picks.length);
  for (let o = 0; o < picks.length; o++) {
    const src = picks[o] * voxels;
    const dst = o * voxels;
    for (let v = 0; v < voxels; v++) out[dst + v] = data[src + v];
  }
  return out;
}

/**
 * Apply an intensity transform in place, channel by channel (z-score statistics are per channel,
 * as nnU-Net normalises each modality on its own).
 */
export function applyIntensity(data: Float32Array, voxels: number, t: IntensityTransform): void {
  const channels = data.length / voxels;
  switch (t.kind) {
    case "none":
      return;
    case "window": {
      const lo = t.center - t.width / 2;
      mapLinear(data, lo, lo + t.width, t.outMin, t.outMax);
      return;
    }
    case "clipScale":
      mapLinear(data, t.min, t.max, t.outMin, t.outMax);
      return;
    case "scale":
      for (let v = 0; v < data.length; v++) data[v] = data[v] * t.scale + t.offset;
      return;
    case "zscore":
      for (let c = 0; c < channels; c++) zscore(data.subarray(c * voxels, (c + 1) * voxels), t.mask, t.clip);
      return;
  }
}

/** clip x to [lo, hi] then map [lo, hi] → [outMin, outMax] */
function mapLinear(data: Float32Array, lo: number, hi: number, outMin: number, outMax: number): void {
  const scale = hi > lo ? (outMax - outMin) / (hi - lo) : 0;
  for (let v = 0; v < data.length; v++) {
    const x = data[v] < lo ? lo : data[v] > hi ? hi : data[v];
    data[v] = outMin + (x - lo) * scale;
  }
}

function zscore(data: Float32Array, mask: "all" | "nonzero", clip?: [number, number]): void {
  let n = 0, mean = 0, m2 = 0;
  for (let v = 0; v < data.length; v++) {
    const x = data[v];
    if (mask === "nonzero" && x === 0) continue;
    n++;
    const d = x - mean;
    mean += d / n;
    m2 += d * (x - mean);
  }
  const sd = n > 0 ? Math.sqrt(m2 / n) : 1;
  const inv = sd > 1e-8 ? 1 / sd : 1;
  for (let v = 0; v < data.length; v++) {
    // nnU-Net keeps voxels outside the "nonzero" mask at 0 after normalising
    if (mask === "nonzero" && data[v] === 0) continue;
    let z = (data[v] - mean) * inv;
    if (clip) z = z < clip[0] ? clip[0] : z > clip[1] ? clip[1] : z;
    data[v] = z;
  }
}

/**
 * A preprocessing recipe resolved against one volume: the channel picks, and for z-score the
 * statistics of the whole volume, so that slabs can then be preprocessed one at a time with the
 * same result as the whole volume at once.
 */
export interface PreprocessPlan {
  picks: number[];
  transform: IntensityTransform;
  /** the `intensityByManufacturer` key that chose `transform`; absent when the default applies */
  manufacturer?: string;
  /** per model channel: mean and 1/sd of the z-score mask (z-score only) */
  zscore?: { mean: number[]; inv: number[] };
}

/**
 * The intensity transform for a volume: the `intensityByManufacturer` entry whose key the volume's
 * DICOM Manufacturer contains (case-insensitive, as variants' `when` matches; the longest key wins, so
 * "Zeiss Meditec" beats "Zeiss"), else the default `intensity`. `manufacturer` names the key used.
 */
export function intensityFor(
  pre: Pick<Preprocessing, "intensity" | "intensityByManufacturer">,
  manufacturer: string | undefined,
): { transform: IntensityTransform; manufacturer?: string } {
  const m = manufacturer?.trim().toLowerCase();
  if (!pre.intensityByManufacturer || !m) return { transform: pre.intensity };
  let best: string | undefined;
  for (const key of Object.keys(pre.intensityByManufacturer)) {
    if (
      m.includes(key.trim().toLowerCase()) && (best === undefined || key.trim().length > best.trim().length)
    ) {
      best = key;
    }
  }
  return best === undefined
    ? { transform: pre.intensity }
    : { transform: pre.intensityByManufacturer[best], manufacturer: best };
}

/** Resolve the recipe for a volume (one pass over the picked channels for z-score statistics). */
export function planPreprocessing(volume: Volume, manifest: ModelManifest): PreprocessPlan {
  const picks = channelPicks(volume.channels, manifest.preprocessing, modelInputChannels(manifest));
  const { transform: t, manufacturer } = intensityFor(manifest.preprocessing, volume.manufacturer);
  if (t.kind !== "zscore") return { picks, transform: t, ...(manufacturer ? { manufacturer } : {}) };
  const [nx, ny, nz] = volume.geometry.dims;
  const voxels = nx * ny * nz;
  const mean: number[] = [], inv: number[] = [];
  for (const c of picks) {
    let n = 0, mu = 0, m2 = 0;
    const off = c * voxels;
    for (let v = 0; v < voxels; v++) {
      const x = volume.data[off + v];
      if (t.mask === "nonzero" && x === 0) continue;
      n++;
      const d = x - mu;
      mu += d / n;
      m2 += d * (x - mu);
    }
    const sd = n > 0 ? Math.sqrt(m2 / n) : 1;
    mean.push(mu);
    inv.push(sd > 1e-8 ? 1 / sd : 1);
  }
  return { picks, transform: t, zscore: { mean, inv }, ...(manufacturer ? { manufacturer } : {}) };
}

/**
 * Preprocess slices z0..z1−1 of a volume with a resolved plan: planar float32, model channels ×
 * slab voxels.
 */
export function preprocessSlab(volume: Volume, plan: PreprocessPlan, z0: number, z1: number): Float32Array {
  const [nx, ny, nz] = volume.geometry.dims;
  const sliceVox = nx * ny, voxels = sliceVox * nz, slabVox = sliceVox * (z1 - z0);
  const out = new Float32Array(slabVox * plan.picks.length);
  const t = plan.transform;
  for (let o = 0; o < plan.picks.length; o++) {
    const src = plan.picks[o] * voxels + z0 * sliceVox;
    const dst = o * slabVox;
    const view = out.subarray(dst, dst + slabVox);
    const data = volume.data;
    if (t.kind === "window" || t.kind === "clipScale") {
      // fused copy + clip + linear map: one pass over the slab (CT-sized volumes are hundreds of MB)
      const lo = t.kind === "window" ? t.center - t.width / 2 : t.min;
      const hi = t.kind === "window" ? lo + t.width : t.max;
      const scale = hi > lo ? (t.outMax - t.outMin) / (hi - lo) : 0;
      for (let v = 0; v < slabVox; v++) {
        const x = data[src + v];
        view[v] = t.outMin + ((x < lo ? lo : x > hi ? hi : x) - lo) * scale;
      }
      continue;
    }
    for (let v = 0; v < slabVox; v++) view[v] = data[src + v];
    if (t.kind === "zscore" && plan.zscore) {
      const mu = plan.zscore.mean[o], inv = plan.zscore.inv[o], clip = t.clip;
      const lo = clip ? clip[0] : -Infinity, hi = clip ? clip[1] : Infinity;
      for (let v = 0; v < slabVox; v++) {
        // nnU-Net keeps voxels outside the "nonzero" mask at 0 after normalising
        if (t.mask === "nonzero" && view[v] === 0) continue;
        const z = (view[v] - mu) * inv;
        view[v] = z < lo ? lo : z > hi ? hi : z;
      }
    } else applyIntensity(view, slabVox, t);
  }
  return out;
}

/** The whole recipe on a volume: channels, then intensity. Returns a fresh planar float32 array. */
export function preprocessVolume(volume: Volume, manifest: ModelManifest): Float32Array {
  return preprocessSlab(volume, planPreprocessing(volume, manifest), 0, volume.geometry.dims[2]);
}
