/** Fake predictors and model runtimes for the segmentation unit tests (no ONNX involved). */
import type { Geometry, ModelManifest, ModelRuntime, Predictor, Volume } from "../../src/core/types.ts";

/** Output = input (same channels). */
export const identityPredictor: Predictor = (input) => Promise.resolve(input.slice());

/** Output = input + 1. */
export const plusOnePredictor: Predictor = (input) => Promise.resolve(input.map((x) => x + 1));

/**
 * Two-channel logits from a 1-channel input: channel 1 = scale·(x − t), channel 0 = 0, so
 * softmax gives sigmoid(scale·(x − t)) for the foreground.
 */
export function thresholdPredictor(t: number, scale = 50): Predictor {
  return (input, shape) => {
    const per = input.length / shape[0];
    const out = new Float32Array(input.length * 2);
    for (let b = 0; b < shape[0]; b++) {
      for (let p = 0; p < per; p++) out[b * 2 * per + per + p] = scale * (input[b * per + p] - t);
    }
    return Promise.resolve(out);
  };
}

export function geometry(
  dims: [number, number, number],
  spacing: [number, number, number] = [1, 1, 1],
): Geometry {
  return { dims, spacing, origin: [0, 0, 0], direction: [1, 0, 0, 0, 1, 0, 0, 0, 1] };
}

export function volume(
  dims: [number, number, number],
  f: (i: number, j: number, k: number) => number,
  g?: Partial<Geometry>,
): Volume {
  const data = new Float32Array(dims[0] * dims[1] * dims[2]);
  for (let k = 0, p = 0; k < dims[2]; k++) {
    for (let j = 0; j < dims[1]; j++) {
      for (let i = 0; i < dims[0]; i++, p++) data[p] = f(i, j, k);
    }
  }
  return { geometry: { ...geometry(dims), ...g }, channels: 1, data, modality: "CT" };
}

/** A minimal valid manifest for a 2-class softmax model; override what a test needs. */
export function manifest(over: Partial<ModelManifest> = {}): ModelManifest {
  return {
    schemaVersion: 1,
    id: "fake",
    name: "Fake model",
    version: "1.2.3",
    task: "segmentation",
    description: "test",
    intendedUse: "tests",
    license: "Apache-2.0",
    constraints: { modalities: ["CT"], channels: 1 },
    model: "fake.onnx",
    inputs: [{ name: "input", dtype: "float32", shape: ["batch", 1, "height", "width"] }],
    outputs: [{ name: "logits", dtype: "float32", shape: ["batch", 2, "height", "width"] }],
    activation: "softmax",
    preprocessing: { intensity: { kind: "none" } },
    spatial: { mode: "slice2d", window: [8, 8], overlap: 0.5, blending: "gaussian" },
    labels: [{
      value: 1,
      name: "Bright",
      channel: 1,
      category: { value: "85756007", scheme: "SCT", meaning: "Tissue" },
      type: { value: "87784001", scheme: "SCT", meaning: "Soft tissue" },
      color: [255, 0, 0],
    }],
    files: { "fake.onnx": { sha256: "0".repeat(64), bytes: 1 } },
    ...over,
  };
}

export function runtime(m: ModelManifest, members: Predictor[]): ModelRuntime {
  return {
    manifest: m,
    members,
    provider: "fake",
    fallbackReasons: ["webgpu: not in tests"],
    modelSha256: "ab".repeat(32),
    precision: "fp32",
  };
}
