/**
 * Activations over the channel axis of planar outputs, and the decision from probabilities to a
 * labelmap whose values come from the manifest's labels (value ↔ output channel).
 */
import type { Activation, LabelSpec } from "../core/types.ts";

/** Softmax / sigmoid in place over `channels` planar channels of `voxels` each. */
export function applyActivation(
  data: Float32Array,
  voxels: number,
  channels: number,
  activation: Activation,
): void {
  if (activation === "none") return;
  if (activation === "sigmoid") {
    for (let p = 0; p < voxels * channels; p++) data[p] = 1 / (1 + Math.exp(-data[p]));
    return;
  }
  if (channels === 2) {
    // two classes: softmax is a logistic of the logit difference, one exp per voxel instead of two
    for (let v = 0; v < voxels; v++) {
      const p1 = 1 / (1 + Math.exp(data[v] - data[voxels + v]));
      data[voxels + v] = p1;
      data[v] = 1 - p1;
    }
    return;
  }
  for (let v = 0; v < voxels; v++) {
    let max = -Infinity;
    for (let c = 0; c < channels; c++) if (data[c * voxels + v] > max) max = data[c * voxels + v];
    let sum = 0;
    for (let c = 0; c < channels; c++) {
      const e = Math.exp(data[c * voxels + v] - max);
      data[c * voxels + v] = e;
      sum += e;
    }
    const inv = 1 / sum;
    for (let c = 0; c < channels; c++) data[c * voxels + v] *= inv;
  }
}

/**
 * How probabilities become labels. Softmax outputs use argmax (a channel without a label, usually
 * channel 0, is background), unless a label declares a `threshold`: then a voxel takes the most
 * probable label whose probability passes its threshold (0.5 for labels without one) and is
 * background otherwise — for two classes, a threshold t on the foreground probability (t = 0.5 is
 * argmax). Sigmoid outputs are independent: the same threshold rule. "none" means the model already
 * outputs probabilities: argmax when there is a channel without a label (a background channel),
 * threshold otherwise.
 */
export function decisionRule(
  activation: Activation,
  channels: number,
  labels: LabelSpec[],
): "argmax" | "threshold" {
  if (activation === "softmax") return labels.some((l) => l.threshold !== undefined) ? "threshold" : "argmax";
  if (activation === "sigmoid") return "threshold";
  const mapped = new Set(labels.map((l) => l.channel));
  return mapped.size < channels ? "argmax" : "threshold";
}

/** A zeroed labelmap array wide enough for the label values (Uint16 above 255). */
export function labelArray(labels: Pick<LabelSpec, "value">[], voxels: number): Uint8Array | Uint16Array {
  const maxValue = labels.reduce((m, l) => Math.max(m, l.value), 0);
  return maxValue > 255 ? new Uint16Array(voxels) : new Uint8Array(voxels);
}

/** Probabilities (planar, `channels` × voxels) → labelmap values, written into `out` when given. */
export function decide(
  probs: Float32Array,
  voxels: number,
  channels: number,
  labels: LabelSpec[],
  rule: "argmax" | "threshold",
  out: Uint8Array | Uint16Array = labelArray(labels, voxels),
): Uint8Array | Uint16Array {
  const valueOfChannel = new Int32Array(channels);
  for (const l of labels) valueOfChannel[l.channel] = l.value;
  if (rule === "argmax") {
    for (let v = 0; v < voxels; v++) {
      let best = 0, bestP = probs[v];
      for (let c = 1; c < channels; c++) {
        const p = probs[c * voxels + v];
        if (p > bestP) {
          bestP = p;
          best = c;
        }
      }
      out[v] = valueOfChannel[best];
    }
    return out;
  }
  const thresholds = labels.map((l) => l.threshold ?? 0.5);
  for (let v = 0; v < voxels; v++) {
    let bestP = -1, value = 0;
    for (let l = 0; l < labels.length; l++) {
      const p = probs[labels[l].channel * voxels + v];
      if (p >= thresholds[l] && p > bestP) {
        bestP = p;
        value = labels[l].value;
      }
    }
    out[v] = value;
  }
  return out;
}
