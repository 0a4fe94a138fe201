/**
 * src/inference: model packages (load, verify sha256, check manifest ⇄ ONNX), ONNX Runtime sessions
 * with execution-provider fallback, the Predictor for segment(), and the Worker protocol.
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
export {
  createPredictor,
  createRuntime,
  createSession,
  defaultGpuLimits,
  estimateWindowBytes,
  windowShapeOf,
} from "./session.ts";
export type {
  GpuLimits,
  OrtLoader,
  OrtModelRuntime,
  OrtModuleLike,
  OrtSessionLike,
  OrtTensorLike,
  PredictorStats,
  RuntimeOptions,
  SessionHandle,
  SessionOptions,
} from "./session.ts";
export * from "./protocol.ts";
