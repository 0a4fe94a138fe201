/**
 * The slice of the onnxruntime API EdgeSeg uses; onnxruntime-web (its node build in Deno, the browser
 * bundles served at /edgeseg/ort/) and onnxruntime-node all satisfy it, so sessions, predictors and
 * the package tool's audit are written once against these types.
 */
import type { ExecutionProvider } from "../core/types.ts";

export interface OrtTensorLike {
  readonly data: unknown;
  readonly dims: readonly number[];
  readonly type: string;
  dispose?(): void;
}

export interface OrtSessionLike {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  run(feeds: Record<string, OrtTensorLike>): Promise<Record<string, OrtTensorLike>>;
  release(): Promise<void>;
}

export interface OrtModuleLike {
  InferenceSession: { create(model: Uint8Array, options?: Record<string, unknown>): Promise<OrtSessionLike> };
  Tensor: new (type: "float32", data: Float32Array, dims: readonly number[]) => OrtTensorLike;
  env: {
    wasm?: { numThreads?: number; simd?: unknown; wasmPaths?: unknown; proxy?: boolean };
    /** onnxruntime-web's WebGPU build sets `device` once its first WebGPU session exists */
    webgpu?: { device?: GpuDeviceLike };
    logLevel?: string;
    versions?: Record<string, string>;
  };
}

export type OrtLoader = (provider: ExecutionProvider) => Promise<OrtModuleLike>;

/** The part of a GPUDevice used here: its loss is watched, and a test hook destroys it. */
export interface GpuDeviceLike {
  lost?: Promise<{ reason?: string; message?: string }>;
  destroy?(): void;
}

/** An ORT error in a few readable words: its first lines, at most 400 characters. */
export function ortErrorMessage(e: unknown): string {
  const s = e instanceof Error ? e.message : String(e);
  // ORT errors can carry long stacks and multi-line logs; the first lines say what failed
  return s.split("\n").slice(0, 3).join(" ").slice(0, 400);
}
