/**
 * onnxruntime-node (native CPU, MLAS kernels): the baseline for parity tests and benchmarks, not a
 * deployment target. Same Predictor/ModelRuntime surface as the WASM path, provider "cpu".
 * onnxruntime-node is a dev dependency; it is imported only when this module is.
 */
import * as ortNode from "onnxruntime-node";
import type { ModelPackage } from "./package.ts";
import type { OrtLoader, OrtModuleLike } from "./ort.ts";
import { createRuntime } from "./runtime.ts";
import type { OrtModelRuntime } from "./runtime.ts";

export const nativeOrtLoader: OrtLoader = (provider) => {
  if (provider !== "cpu") {
    return Promise.reject(new Error(`onnxruntime-node offers only "cpu" here, not "${provider}"`));
  }
  return Promise.resolve(ortNode as unknown as OrtModuleLike);
};

/** A runtime on onnxruntime-node's CPU provider with `numThreads` intra-op threads (inter-op 1). */
export function createNativeRuntime(pkg: ModelPackage, numThreads: number): Promise<OrtModelRuntime> {
  return createRuntime(pkg, { providers: ["cpu"], loadOrt: nativeOrtLoader, numThreads });
}
