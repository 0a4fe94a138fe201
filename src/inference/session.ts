/**
 * ONNX Runtime sessions with execution-provider preference and fallback. Runtime-agnostic: the caller
 * passes `loadOrt(provider)`, which returns an onnxruntime module (onnxruntime-web's node build in
 * Deno, a browser bundle served at /edgeseg/ort/, or onnxruntime-node); see `deno.ts`, `node_native.ts`
 * and `browser.ts` for the three entry points. The Predictor over a session is in `predictor.ts`, the
 * ModelRuntime segment() takes in `runtime.ts`.
 *
 * Order of preference: webgpu → webnn (only where `navigator.ml` exists) → wasm (→ cpu for the
 * native baseline). Each provider that cannot be used is skipped with its reason recorded; when none
 * works a ProviderError lists every provider's failure. WebGPU is checked before it is tried: an
 * adapter must exist and the largest window tensor must fit its buffer limits. A GPU session is also
 * probed with one zero window, because a kernel that rejects a shape (e.g. ConvTranspose3d on both
 * WebGPU EPs) only fails at run time and never falls back per node.
 */
import { CancelledError, ProviderError } from "../core/errors.ts";
import type { AbortSignalLike, ExecutionProvider, ModelManifest } from "../core/types.ts";
import {
  type GpuDeviceLike,
  ortErrorMessage,
  type OrtLoader,
  type OrtModuleLike,
  type OrtSessionLike,
  type OrtTensorLike,
} from "./ort.ts";

/** The adapter limits the pre-flight compares against (a subset of GPUSupportedLimits). */
export interface GpuLimits {
  maxBufferSize: number;
  maxStorageBufferBindingSize: number;
  description?: string;
}

export interface SessionOptions {
  /** providers in order of preference, e.g. ["webgpu", "webnn", "wasm"] */
  providers: ExecutionProvider[];
  loadOrt: OrtLoader;
  /** threads for wasm (ort.env.wasm.numThreads, set before the first session) and cpu (intraOpNumThreads) */
  numThreads?: number;
  /** [batch, C, ...spatial] of one model call: used by the pre-flight and the GPU probe */
  windowShape?: number[];
  /** widest activation, in channels at window resolution, for the memory pre-flight (default 32) */
  featureChannels?: number;
  /** run one zero window on GPU providers before accepting them (default true) */
  probe?: boolean;
  /** the WebGPU adapter's limits; default asks navigator.gpu. Return null when there is no adapter. */
  gpuLimits?: () => Promise<GpuLimits | null>;
  /** extra ORT session options, merged in */
  sessionOptions?: Record<string, unknown>;
  /** the manifest, to build probe inputs (mask input) */
  manifest?: ModelManifest;
  signal?: AbortSignalLike;
}

export interface SessionHandle {
  session: OrtSessionLike;
  ort: OrtModuleLike;
  provider: ExecutionProvider;
  /** "provider: reason" for every preferred provider that was skipped */
  fallbackReasons: string[];
  failures: { provider: string; reason: string }[];
  gpu?: GpuLimits;
  numThreads?: number;
  /** settles with the reason when the WebGPU device the session runs on is lost */
  deviceLost?: Promise<string>;
}

interface NavigatorLike {
  gpu?: {
    requestAdapter(): Promise<
      { limits: GpuLimits; info?: { vendor?: string; architecture?: string; description?: string } } | null
    >;
  };
  ml?: unknown;
  hardwareConcurrency?: number;
}

function nav(): NavigatorLike | undefined {
  return (globalThis as { navigator?: NavigatorLike }).navigator;
}

/** Asks navigator.gpu for an adapter and returns its buffer limits, or null when there is none. */
export async function defaultGpuLimits(): Promise<GpuLimits | null> {
  const gpu = nav()?.gpu;
  if (!gpu) return null;
  const adapter = await gpu.requestAdapter();
  if (!adapter) return null;
  const info = adapter.info;
  return {
    maxBufferSize: Number(adapter.limits.maxBufferSize),
    maxStorageBufferBindingSize: Number(adapter.limits.maxStorageBufferBindingSize),
    description: info
      ? [info.vendor, info.architecture, info.description].filter(Boolean).join(" ")
      : undefined,
  };
}

const MiB = 1024 * 1024;

/** Bytes of the widest tensor one window call is expected to hold (lower bound; see featureChannels). */
export function estimateWindowBytes(windowShape: number[], featureChannels = 32): number {
  const [batch, channels, ...spatial] = windowShape;
  const voxels = spatial.reduce((a, b) => a * b, 1);
  return batch * voxels * Math.max(channels, featureChannels) * 4;
}

/** Either what a step produced or why the provider was skipped. */
type Outcome<T> = { ok: true; value: T } | { ok: false; reason: string };

const skip = (reason: string): { ok: false; reason: string } => ({ ok: false, reason });

/**
 * The checks that need no ORT at all, so the reason says what is missing: a WebGPU adapter whose
 * buffers hold a window, `navigator.ml` for WebNN, a window that fits wasm32's address space.
 * Gives the adapter's limits for WebGPU.
 */
async function preflight(
  provider: ExecutionProvider,
  opts: SessionOptions,
): Promise<Outcome<GpuLimits | undefined>> {
  if (provider === "webgpu") {
    let limits: GpuLimits | null;
    try {
      limits = await (opts.gpuLimits ?? defaultGpuLimits)();
    } catch (e) {
      return skip(`requesting a WebGPU adapter failed: ${ortErrorMessage(e)}`);
    }
    if (!limits) {
      return skip(
        nav()?.gpu
          ? "navigator.gpu.requestAdapter() returned no adapter"
          : "WebGPU is not available (no navigator.gpu)",
      );
    }
    if (opts.windowShape) {
      const need = estimateWindowBytes(opts.windowShape, opts.featureChannels);
      const limit = Math.min(limits.maxBufferSize, limits.maxStorageBufferBindingSize);
      if (need > limit) {
        return skip(
          `a window needs about ${(need / MiB).toFixed(0)} MiB per tensor but the adapter allows ` +
            `${(limit / MiB).toFixed(0)} MiB (maxBufferSize / maxStorageBufferBindingSize)`,
        );
      }
    }
    return { ok: true, value: limits };
  }
  if (provider === "webnn" && !nav()?.ml) return skip("WebNN is not available (no navigator.ml)");
  if (provider === "wasm" && opts.windowShape) {
    // wasm32 addresses 4 GiB; input, output and two activations must fit with room for weights
    const need = estimateWindowBytes(opts.windowShape, opts.featureChannels) * 4;
    if (need > 3 * 1024 * MiB) {
      return skip(
        `a window needs about ${(need / MiB).toFixed(0)} MiB, more than WASM's 4 GiB address space allows`,
      );
    }
  }
  return { ok: true, value: undefined };
}

/** ORT builds whose WASM runtime has started (their thread count is fixed from then on). */
const wasmStarted = new WeakSet<object>();

/** The ORT session options for `provider`, or null when it is not an onnxruntime execution provider. */
function ortSessionOptions(
  provider: ExecutionProvider,
  ort: OrtModuleLike,
  opts: SessionOptions,
): Record<string, unknown> | null {
  const so: Record<string, unknown> = { graphOptimizationLevel: "all", ...opts.sessionOptions };
  if (provider === "wasm") {
    // only before the first session starts the WASM runtime: ORT ignores later changes, and changing it
    // after start-up was seen to hang a later run in a process that also held onnxruntime-node
    if (ort.env.wasm && opts.numThreads && !wasmStarted.has(ort.env)) {
      ort.env.wasm.numThreads = opts.numThreads;
    }
    so.executionProviders = ["wasm"];
  } else if (provider === "cpu") {
    so.executionProviders = ["cpu"];
    if (opts.numThreads) {
      so.intraOpNumThreads = opts.numThreads;
      so.interOpNumThreads = 1;
    }
  } else if (provider === "webgpu") {
    // JSEP's 3D pooling only works in NCHW; the native WebGPU EP ignores the option
    const rank = opts.manifest?.inputs[0].shape.length ?? 4;
    so.executionProviders = [rank === 5 ? { name: "webgpu", preferredLayout: "NCHW" } : "webgpu"];
  } else if (provider === "webnn") {
    so.executionProviders = [{ name: "webnn", deviceType: "gpu" }];
  } else {
    return null;
  }
  return so;
}

function probeFeeds(
  ort: OrtModuleLike,
  manifest: ModelManifest,
  windowShape: number[],
): Record<string, OrtTensorLike> {
  const feeds: Record<string, OrtTensorLike> = {};
  const shape = [1, ...windowShape.slice(1)];
  feeds[manifest.inputs[0].name] = new ort.Tensor(
    "float32",
    new Float32Array(shape.reduce((a, b) => a * b, 1)),
    shape,
  );
  const mc = manifest.uncertainty?.mcDropout;
  if (mc) {
    feeds[mc.input] = new ort.Tensor(
      "float32",
      new Float32Array(mc.shape.reduce((a, b) => a * b, 1)).fill(1),
      mc.shape,
    );
  }
  return feeds;
}

/** Loads ORT for `provider`, creates the session and, on a GPU provider, runs the probe window. */
async function openSession(
  model: Uint8Array,
  provider: ExecutionProvider,
  opts: SessionOptions,
): Promise<Outcome<{ ort: OrtModuleLike; session: OrtSessionLike }>> {
  let ort: OrtModuleLike;
  try {
    ort = await opts.loadOrt(provider);
  } catch (e) {
    return skip(`could not load the onnxruntime build for ${provider}: ${ortErrorMessage(e)}`);
  }
  const so = ortSessionOptions(provider, ort, opts);
  if (!so) return skip("not an onnxruntime execution provider");
  let session: OrtSessionLike;
  try {
    if (provider === "wasm") wasmStarted.add(ort.env);
    session = await ort.InferenceSession.create(model, so);
  } catch (e) {
    return skip(`session creation failed: ${ortErrorMessage(e)}`);
  }
  if (
    (provider === "webgpu" || provider === "webnn") && opts.probe !== false && opts.manifest &&
    opts.windowShape
  ) {
    try {
      const out = await session.run(probeFeeds(ort, opts.manifest, opts.windowShape));
      for (const t of Object.values(out)) t.dispose?.();
    } catch (e) {
      await session.release().catch(() => {});
      return skip(`a test run failed (an operator the provider cannot run?): ${ortErrorMessage(e)}`);
    }
  }
  return { ok: true, value: { ort, session } };
}

/** A promise that settles with a readable reason once `device` is lost (never, when it cannot be watched). */
function watchDevice(device: GpuDeviceLike | undefined): Promise<string> | undefined {
  if (!device?.lost || typeof device.lost.then !== "function") return undefined;
  return device.lost.then((info) =>
    `${info?.reason ?? "unknown"}${info?.message ? `: ${info.message}` : ""}`
  );
}

/**
 * Creates one session, trying providers in order. Throws ProviderError (code NO_PROVIDER) listing
 * each provider's failure when none can run the model.
 */
export async function createSession(model: Uint8Array, opts: SessionOptions): Promise<SessionHandle> {
  const failures: { provider: string; reason: string }[] = [];
  for (const provider of opts.providers) {
    if (opts.signal?.aborted) throw new CancelledError("session creation cancelled");
    const checked = await preflight(provider, opts);
    if (!checked.ok) {
      failures.push({ provider, reason: checked.reason });
      continue;
    }
    const opened = await openSession(model, provider, opts);
    if (!opened.ok) {
      failures.push({ provider, reason: opened.reason });
      continue;
    }
    const { ort, session } = opened.value;
    return {
      session,
      ort,
      provider,
      deviceLost: provider === "webgpu" ? watchDevice(ort.env.webgpu?.device) : undefined,
      failures,
      fallbackReasons: failures.map((f) => `${f.provider}: ${f.reason}`),
      gpu: checked.value,
      numThreads: provider === "wasm"
        ? ort.env.wasm?.numThreads
        : provider === "cpu"
        ? opts.numThreads
        : undefined,
    };
  }
  throw new ProviderError(
    `no execution provider could run the model (tried ${opts.providers.join(", ") || "none"})`,
    failures.length ? failures : [{ provider: "(none)", reason: "no providers were requested" }],
  );
}
