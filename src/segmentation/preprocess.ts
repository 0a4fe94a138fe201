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
  let picks = pre.channels ?? Array.from({ length: volumeChannels }, (_, c) => c);
  for (const c of picks) {
    if (!Number.isInteger(c) || c < 0 || c >= volumeChannels) {
      throw new InputError(
        "CHANNEL_MISSING",
        `preprocessing selects channel ${c}, but the volume has channels 0..${volumeChannels - 1}`,
      );
    }
  }
  if (picks.length !== modelChannels) {
    if (picks.length === 1 && pre.expandChannels === "repeat") {
      picks = Array.from({ length: modelChannels }, () => picks[0]);
    } else {
      throw new InputError(
        "CHANNEL_COUNT",
        `the model expects ${modelChannels} input channel(s); preprocessing provides ${picks.length}` +
          (picks.length === 1 ? ' (set preprocessing.expandChannels to "repeat" to copy it)' : ""),
      );
    }
  }
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

/** The whole recipe on a volume: channels, then intensity. Returns a fresh planar float32 array. */
export function preprocessVolume(volume: Volume, manifest: ModelManifest): Float32Array {
  const [nx, ny, nz] = volume.geometry.dims;
  const voxels = nx * ny * nz;
  const out = selectChannels(
    volume.data,
    voxels,
    volume.channels,
    manifest.preprocessing,
    modelInputChannels(manifest),
  );
  applyIntensity(out, voxels, manifest.preprocessing.intensity);
  return out;
}
