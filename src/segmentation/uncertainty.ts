/**
 * Uncertainty from several stochastic or transformed passes, aggregated in streaming form: one
 * running mean and one running sum of squared deviations per channel (Welford), plus the running
 * sum of per-pass entropies. Memory is O(channels × voxels) whatever the number of passes.
 *
 * Measures (natural logarithms):
 * - predictive entropy  H[p̄] of the mean probabilities;
 * - mutual information  H[p̄] − mean over passes of H[pₜ] (epistemic part; ≥ 0 up to rounding);
 * - variance            population variance over passes (divide by n), averaged over label channels;
 * - sd                  its square root.
 * Entropy is categorical (−Σ p log p over all channels) for softmax outputs and the sum of binary
 * entropies of the label channels for independent (sigmoid) outputs.
 */
import { mulberry32 } from "../core/random.ts";
import type { McDropoutSpec, UncertaintyMeasure } from "../core/types.ts";

export { mulberry32 };

/**
 * A dropout mask for batch 1 with the manifest's shape: each element is 0 with probability `rate`
 * and 1 / (1 − rate) otherwise (inverted dropout keeps the expected activation unchanged).
 */
export function dropoutMask(spec: Pick<McDropoutSpec, "shape" | "rate">, rng: () => number): Float32Array {
  const n = spec.shape.reduce((a, b) => a * b, 1);
  const keep = 1 / (1 - spec.rate);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng() < spec.rate ? 0 : keep;
  return out;
}

/** The deterministic mask (dropout off): all ones. */
export function identityMask(spec: Pick<McDropoutSpec, "shape">): Float32Array {
  return new Float32Array(spec.shape.reduce((a, b) => a * b, 1)).fill(1);
}

/** Repeat a batch-1 tensor along the batch axis. */
export function tileBatch(
  data: Float32Array,
  shape: number[],
  batch: number,
): { data: Float32Array; shape: number[] } {
  const out = new Float32Array(data.length * batch);
  for (let b = 0; b < batch; b++) out.set(data, b * data.length);
  return { data: out, shape: [batch, ...shape.slice(1)] };
}

/** Flip a planar multi-channel volume along the given spatial axes (0 = i, 1 = j, 2 = k); a fresh array. */
export function flipVolume(
  src: Float32Array,
  dims: [number, number, number],
  channels: number,
  axes: number[],
): Float32Array {
  const [nx, ny, nz] = dims;
  const fx = axes.includes(0), fy = axes.includes(1), fz = axes.includes(2);
  const out = new Float32Array(src.length);
  const nVox = nx * ny * nz;
  for (let c = 0; c < channels; c++) {
    for (let k = 0; k < nz; k++) {
      const sk = fz ? nz - 1 - k : k;
      for (let j = 0; j < ny; j++) {
        const sj = fy ? ny - 1 - j : j;
        const dst = c * nVox + nx * (j + ny * k);
        const srcRow = c * nVox + nx * (sj + ny * sk);
        if (fx) { for (let i = 0; i < nx; i++) out[dst + i] = src[srcRow + nx - 1 - i]; }
        else out.set(src.subarray(srcRow, srcRow + nx), dst);
      }
    }
  }
  return out;
}

export type EntropyKind = "categorical" | "binary";

/** Largest possible value of a measure, used to normalise it to [0, 1]. */
export function measureMaximum(
  measure: UncertaintyMeasure,
  kind: EntropyKind,
  channels: number,
  labelChannels: number,
): number {
  switch (measure) {
    case "entropy":
    case "mutualInformation":
      return kind === "categorical" ? Math.log(Math.max(2, channels)) : labelChannels * Math.LN2;
    case "variance":
      return 0.25;
    case "sd":
      return 0.5;
  }
}

/**
 * Add each voxel's entropy of `probs` to `out` (channel-major loops: sequential memory access,
 * no per-voxel calls; the logarithms dominate the cost).
 */
function addEntropy(
  probs: Float32Array,
  voxels: number,
  channels: number,
  kind: EntropyKind,
  labelChannels: Int32Array,
  out: Float32Array,
): void {
  if (kind === "categorical") {
    for (let c = 0; c < channels; c++) {
      const off = c * voxels;
      for (let v = 0; v < voxels; v++) {
        const p = probs[off + v];
        if (p > 0) out[v] -= p * Math.log(p);
      }
    }
    return;
  }
  for (let l = 0; l < labelChannels.length; l++) {
    const off = labelChannels[l] * voxels;
    for (let v = 0; v < voxels; v++) {
      const p = probs[off + v];
      if (p > 0 && p < 1) out[v] -= p * Math.log(p) + (1 - p) * Math.log(1 - p);
    }
  }
}

/** Streaming aggregation of per-pass probability maps (planar, channels × voxels). */
export class StreamingAggregator {
  readonly voxels: number;
  readonly channels: number;
  readonly kind: EntropyKind;
  readonly labelChannels: Int32Array;
  /** passes added so far */
  n = 0;
  /** running mean per channel and voxel */
  readonly mean: Float32Array;
  /** running sum of squared deviations, label channels only (order of labelChannels) */
  private readonly m2: Float32Array;
  /** running sum of per-pass entropies per voxel */
  private readonly entropySum: Float32Array;

  /** whether per-pass entropies are accumulated (only mutual information needs them) */
  readonly tracksPassEntropy: boolean;

  constructor(
    voxels: number,
    channels: number,
    labelChannels: number[],
    kind: EntropyKind,
    tracksPassEntropy = true,
  ) {
    this.voxels = voxels;
    this.tracksPassEntropy = tracksPassEntropy;
    this.channels = channels;
    this.kind = kind;
    this.labelChannels = Int32Array.from(labelChannels);
    this.mean = new Float32Array(voxels * channels);
    this.m2 = new Float32Array(voxels * labelChannels.length);
    this.entropySum = new Float32Array(tracksPassEntropy ? voxels : 0);
  }

  /** Bytes this aggregator holds for a given size (for memory budgets). */
  static bytesFor(voxels: number, channels: number, labelChannels: number): number {
    return 4 * voxels * (channels + labelChannels + 1);
  }

  /** Add one pass covering every voxel. */
  add(probs: Float32Array): void {
    this.addPart(probs, 0, this.n + 1);
    this.n++;
  }

  /**
   * Add part of pass number `pass` (1-based): `probs` holds channels × (probs.length / channels)
   * voxels starting at voxel `offset`. Streaming callers hand over a pass in pieces, then call
   * `endPass()`; every voxel must be covered exactly once per pass.
   */
  addPart(probs: Float32Array, offset: number, pass: number): void {
    const { voxels, channels, mean, m2, labelChannels } = this;
    const n = probs.length / channels;
    if (!Number.isInteger(n) || offset < 0 || offset + n > voxels) {
      throw new RangeError(
        `part of ${probs.length} values at voxel ${offset} does not fit ${channels} × ${voxels}`,
      );
    }
    const inv = 1 / pass;
    for (let l = 0; l < labelChannels.length; l++) {
      const off = labelChannels[l] * voxels + offset, src = labelChannels[l] * n, moff = l * voxels + offset;
      for (let v = 0; v < n; v++) {
        const x = probs[src + v];
        const d = x - mean[off + v];
        const m = mean[off + v] + d * inv;
        m2[moff + v] += d * (x - m);
      }
    }
    // per-pass entropies cost K logarithms per voxel and pass: only when mutual information is wanted
    if (this.tracksPassEntropy) {
      addEntropy(probs, n, channels, this.kind, labelChannels, this.entropySum.subarray(offset, offset + n));
    }
    for (let c = 0; c < channels; c++) {
      const off = c * voxels + offset, src = c * n;
      for (let v = 0; v < n; v++) mean[off + v] += (probs[src + v] - mean[off + v]) * inv;
    }
  }

  /** Close a pass handed over with `addPart`. */
  endPass(): void {
    this.n++;
  }

  /** Per-voxel population variance averaged over the label channels. */
  variance(): Float32Array {
    const out = new Float32Array(this.voxels);
    const L = this.labelChannels.length;
    if (this.n === 0 || L === 0) return out;
    for (let l = 0; l < L; l++) {
      const moff = l * this.voxels;
      for (let v = 0; v < this.voxels; v++) out[v] += this.m2[moff + v];
    }
    const scale = 1 / (this.n * L);
    for (let v = 0; v < this.voxels; v++) out[v] = Math.max(0, out[v] * scale);
    return out;
  }

  /** Predictive entropy of the mean probabilities. */
  entropy(): Float32Array {
    const out = new Float32Array(this.voxels);
    addEntropy(this.mean, this.voxels, this.channels, this.kind, this.labelChannels, out);
    return out;
  }

  /** Mutual information: entropy of the mean minus the mean per-pass entropy (clamped at 0). */
  mutualInformation(): Float32Array {
    if (!this.tracksPassEntropy) throw new RangeError("this aggregator was built without per-pass entropies");
    const out = this.entropy();
    const inv = this.n > 0 ? 1 / this.n : 0;
    for (let v = 0; v < this.voxels; v++) out[v] = Math.max(0, out[v] - this.entropySum[v] * inv);
    return out;
  }

  /** The requested measure as a float32 map. */
  measure(measure: UncertaintyMeasure): Float32Array {
    switch (measure) {
      case "entropy":
        return this.entropy();
      case "mutualInformation":
        return this.mutualInformation();
      case "variance":
        return this.variance();
      case "sd": {
        const v = this.variance();
        for (let i = 0; i < v.length; i++) v[i] = Math.sqrt(v[i]);
        return v;
      }
    }
  }
}
