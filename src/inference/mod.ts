/**
 * src/inference: model packages (load, verify sha256, check manifest ⇄ ONNX), ONNX Runtime sessions
 * with execution-provider fallback (session.ts), the Predictor (predictor.ts) and ModelRuntime
 * (runtime.ts) for segment(), and the Worker protocol.
 * Runtime-specific entry points are separate modules so bundles pull in only one onnxruntime:
 * `deno.ts` (Deno, onnxruntime-web WASM), `node_native.ts` (onnxruntime-node baseline) and
 * `browser.ts` (a Worker, ORT bundles served at /edgeseg/ort/).
 */
export { readOnnxSignature } from "./onnx_signature.ts";
export {
  browserCache,
  httpReader,
  loadPackage,
  memoryCache,
  readBody,
  selectVariant,
  sha256Hex,
  verifyBytes,
} from "./package.ts";
export type {
  DownloadProgress,
  LoadedFile,
  LoadPackageOptions,
  ModelCache,
  ModelPackage,
  PackageReader,
  VariantChoice,
} from "./package.ts";
export type { OrtLoader, OrtModuleLike, OrtSessionLike, OrtTensorLike } from "./ort.ts";
export { createSession, defaultGpuLimits, estimateWindowBytes } from "./session.ts";
export type { GpuLimits, SessionHandle, SessionOptions } from "./session.ts";
export { createPredictor } from "./predictor.ts";
export type { PredictorStats } from "./predictor.ts";
export { createRuntime, windowShapeOf } from "./runtime.ts";
export type { OrtModelRuntime, RuntimeOptions } from "./runtime.ts";
export * from "./protocol.ts";
