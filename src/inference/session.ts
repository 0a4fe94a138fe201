/**
 * ONNX Runtime sessions with execution-provider preference and fallback, and the `Predictor` that
 * the segmentation core calls. Runtime-agnostic: the caller passes `loadOrt(provider)`, which returns
 * an onnxruntime module (onnxruntime-web's node build in Deno, a browser bundle served at /edgeseg/ort/, or
 * onnxruntime-node); see `deno.ts`, `node_native.ts` and `browser.ts` for the three entry points.
 *
 * Order of preference: webgpu → webnn (only where `navigator.ml` exists) → wasm (→ cpu for the
 * native baseline). Each provider that cannot be used is skipped with its reason recorded; when none
 * works a ProviderError lists every provider's failure. WebGPU is checked before it is tried: an
 * adapter must exist and the largest window tensor must fit its buffer limits. A GPU session is also
 * probed with one zero window, because a kernel that rejects a shape (e.g. ConvTranspose3d on both
 * WebGPU EPs) only fails at run time and never falls back per node.
 */
import { CancelledError, EdgeSegError, InputError, ManifestError, ProviderError } from "../core/errors.ts";
import type {
  AbortSignalLike,
  ExecutionProvider,
  ModelManifest,
  ModelRuntime,
  Predictor,
} from "../core/types.ts";
import type { LoadedFile, ModelPackage } from "./package.ts";

// ---------------------------------------------------------------------------------------------
// The slice of the onnxruntime API used here; onnxruntime-web and onnxruntime-node both satisfy it.

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

/**
 * The GPU device a session ran on went away mid-run (driver reset, another tab, `destroy()`).
 * A runtime allowed to use WASM re-creates its sessions there and redoes the window; otherwise the
 * run ends with this error.
 */
export class DeviceLostError extends EdgeSegError {
  constructor(message: string) {
    super("GPU_DEVICE_LOST", message);
  }
}

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

function message(e: unknown): string {
  const s = e instanceof Error ? e.message : String(e);
  // ORT errors can carry long stacks and multi-line logs; the first lines say what failed
  return s.split("\n").slice(0, 3).join(" ").slice(0, 400);
}

const MiB = 1024 * 1024;

/** Bytes of the widest tensor one window call is expected to hold (lower bound; see featureChannels). */
export function estimateWindowBytes(windowShape: number[], featureChannels = 32): number {
  const [batch, channels, ...spatial] = windowShape;
  const voxels = spatial.reduce((a, b) => a * b, 1);
  return batch * voxels * Math.max(channels, featureChannels) * 4;
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

/** A promise that settles with a readable reason once `device` is lost (never, when it cannot be watched). */
function watchDevice(device: GpuDeviceLike | undefined): Promise<string> | undefined {
  if (!device?.lost || typeof device.lost.then !== "function") return undefined;
  return device.lost.then((info) =>
    `${info?.reason ?? "unknown"}${info?.message ? `: ${info.message}` : ""}`
  );
}

/** ORT builds whose WASM runtime has started (their thread count is fixed from then on). */
const wasmStarted = new WeakSet<object>();

/**
 * Creates one session, trying providers in order. Throws ProviderError (code NO_PROVIDER) listing
 * each provider's failure when none can run the model.
 */
export async function createSession(model: Uint8Array, opts: SessionOptions): Promise<SessionHandle> {
  const failures: { provider: string; reason: string }[] = [];
  const n = nav();
  for (const provider of opts.providers) {
    if (opts.signal?.aborted) throw new CancelledError("session creation cancelled");
    let gpu: GpuLimits | undefined;
    // checks that need no ORT at all come first, so the reason says what is missing
    if (provider === "webgpu") {
      let limits: GpuLimits | null;
      try {
        limits = await (opts.gpuLimits ?? defaultGpuLimits)();
      } catch (e) {
        failures.push({ provider, reason: `requesting a WebGPU adapter failed: ${message(e)}` });
        continue;
      }
      if (!limits) {
        failures.push({
          provider,
          reason: n?.gpu
            ? "navigator.gpu.requestAdapter() returned no adapter"
            : "WebGPU is not available (no navigator.gpu)",
        });
        continue;
      }
      if (opts.windowShape) {
        const need = estimateWindowBytes(opts.windowShape, opts.featureChannels);
        const limit = Math.min(limits.maxBufferSize, limits.maxStorageBufferBindingSize);
        if (need > limit) {
          failures.push({
            provider,
            reason: `a window needs about ${(need / MiB).toFixed(0)} MiB per tensor but the adapter allows ` +
              `${(limit / MiB).toFixed(0)} MiB (maxBufferSize / maxStorageBufferBindingSize)`,
          });
          continue;
        }
      }
      gpu = limits;
    }
    if (provider === "webnn" && !n?.ml) {
      failures.push({ provider, reason: "WebNN is not available (no navigator.ml)" });
      continue;
    }
    if (provider === "wasm" && opts.windowShape) {
      // wasm32 addresses 4 GiB; input, output and two activations must fit with room for weights
      const need = estimateWindowBytes(opts.windowShape, opts.featureChannels) * 4;
      if (need > 3 * 1024 * MiB) {
        failures.push({
          provider,
          reason: `a window needs about ${
            (need / MiB).toFixed(0)
          } MiB, more than WASM's 4 GiB address space allows`,
        });
        continue;
      }
    }
    let ort: OrtModuleLike;
    try {
      ort = await opts.loadOrt(provider);
    } catch (e) {
      failures.push({
        provider,
        reason: `could not load the onnxruntime build for ${provider}: ${message(e)}`,
      });
      continue;
    }
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
      failures.push({ provider, reason: "not an onnxruntime execution provider" });
      continue;
    }
    let session: OrtSessionLike;
    try {
      if (provider === "wasm") wasmStarted.add(ort.env);
      session = await ort.InferenceSession.create(model, so);
    } catch (e) {
      failures.push({ provider, reason: `session creation failed: ${message(e)}` });
      continue;
    }
    if (
      (provider === "webgpu" || provider === "webnn") && opts.probe !== false && opts.manifest &&
      opts.windowShape
    ) {
      try {
        const out = await session.run(probeFeeds(ort, opts.manifest, opts.windowShape));
        for (const t of Object.values(out)) t.dispose?.();
      } catch (e) {
        failures.push({
          provider,
          reason: `a test run failed (an operator the provider cannot run?): ${message(e)}`,
        });
        await session.release().catch(() => {});
        continue;
      }
    }
    return {
      session,
      ort,
      provider,
      deviceLost: provider === "webgpu" ? watchDevice(ort.env.webgpu?.device) : undefined,
      failures,
      fallbackReasons: failures.map((f) => `${f.provider}: ${f.reason}`),
      gpu,
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

// ---------------------------------------------------------------------------------------------
// Predictor

export interface PredictorStats {
  runs: number;
  windows: number;
  totalMs: number;
}

function product(a: readonly number[]): number {
  return a.reduce((x, y) => x * y, 1);
}

/**
 * Wraps a session as the core's Predictor: input [B, C, ...spatial] → first output [B, K, ...spatial].
 * Feeds `extra` inputs by name (the MC-dropout mask; a batch-1 mask is repeated for every window of
 * the batch) and a mask of ones when the model has a mask input and none is given. Splits the batch
 * into single calls when the model's batch axis is fixed. Calls run one at a time on the session.
 */
export function createPredictor(
  handle: SessionHandle,
  manifest: ModelManifest,
  stats: PredictorStats = { runs: 0, windows: 0, totalMs: 0 },
  opts: { maxCallBatch?: number } = {},
): Predictor {
  const { ort, session } = handle;
  const inputName = manifest.inputs[0].name;
  const outputName = manifest.outputs[0].name;
  const outChannels = manifest.outputs[0].shape[1] as number;
  // maxCallBatch 1 turns batching off (see deno.ts: multi-threaded WASM in Deno hangs on batch > 1)
  const batchDynamic = typeof manifest.inputs[0].shape[0] === "string" && (opts.maxCallBatch ?? Infinity) > 1;
  const mc = manifest.uncertainty?.mcDropout;
  const known = new Set(manifest.inputs.map((t) => t.name));
  let queue: Promise<unknown> = Promise.resolve();

  const runOne = async (
    input: Float32Array,
    shape: number[],
    extra: Record<string, { data: Float32Array; shape: number[] }>,
  ): Promise<Float32Array> => {
    const feeds: Record<string, OrtTensorLike> = { [inputName]: new ort.Tensor("float32", input, shape) };
    const batch = shape[0];
    for (const [name, t] of Object.entries(extra)) {
      let data = t.data, tshape = t.shape;
      if (tshape[0] === 1 && batch > 1) {
        data = new Float32Array(t.data.length * batch);
        for (let b = 0; b < batch; b++) data.set(t.data, b * t.data.length);
        tshape = [batch, ...tshape.slice(1)];
      }
      feeds[name] = new ort.Tensor("float32", data, tshape);
    }
    if (mc && !(mc.input in extra)) {
      const s = [batch, ...mc.shape.slice(1)];
      feeds[mc.input] = new ort.Tensor("float32", new Float32Array(product(s)).fill(1), s);
    }
    const t0 = performance.now();
    // A lost device may leave run() pending for ever; the loss itself ends the call.
    const out = handle.deviceLost
      ? await Promise.race([
        session.run(feeds),
        handle.deviceLost.then((why): never => {
          throw new DeviceLostError(`the WebGPU device was lost (${why})`);
        }),
      ])
      : await session.run(feeds);
    stats.totalMs += performance.now() - t0;
    stats.runs++;
    stats.windows += batch;
    const y = out[outputName];
    for (const [k, t] of Object.entries(out)) if (k !== outputName) t.dispose?.();
    if (!y || !(y.data instanceof Float32Array)) {
      throw new ManifestError("OUTPUT_TYPE", `model output "${outputName}" is missing or not float32`, {
        expected: "a float32 tensor",
        actual: y ? y.type : `outputs ${Object.keys(out).join(", ")}`,
      });
    }
    const want = [batch, outChannels, ...shape.slice(2)];
    if (y.dims.length !== want.length || y.dims.some((d, i) => d !== want[i])) {
      throw new ManifestError("OUTPUT_SHAPE", `model output "${outputName}" has an unexpected shape`, {
        expected: `[${want.join(", ")}]`,
        actual: `[${y.dims.join(", ")}]`,
      });
    }
    return y.data;
  };

  const predict = async (
    input: Float32Array,
    shape: number[],
    signal?: AbortSignalLike,
    extra: Record<string, { data: Float32Array; shape: number[] }> = {},
  ): Promise<Float32Array> => {
    if (product(shape) !== input.length) {
      throw new InputError(
        "TENSOR_SIZE",
        `input tensor has ${input.length} values but shape [${shape.join(", ")}] needs ${product(shape)}`,
      );
    }
    for (const name of Object.keys(extra)) {
      if (!known.has(name) || name === inputName) {
        throw new InputError(
          "UNKNOWN_INPUT",
          `extra input "${name}" is not an extra input of model ${manifest.id} ` +
            `(expected one of ${[...known].filter((k) => k !== inputName).join(", ") || "none"})`,
        );
      }
    }
    if (signal?.aborted) throw new CancelledError("inference cancelled");
    const batch = shape[0];
    if (batchDynamic || batch === 1) return await runOne(input, shape, extra);
    // fixed batch axis: one call per window
    const per = input.length / batch;
    const one = [1, ...shape.slice(1)];
    let out: Float32Array | undefined;
    for (let b = 0; b < batch; b++) {
      if (signal?.aborted) throw new CancelledError("inference cancelled");
      const ex: Record<string, { data: Float32Array; shape: number[] }> = {};
      for (const [k, t] of Object.entries(extra)) {
        const n = t.shape[0] === 1 ? t.data.length : t.data.length / batch;
        ex[k] = {
          data: t.shape[0] === 1 ? t.data : t.data.subarray(b * n, (b + 1) * n),
          shape: [1, ...t.shape.slice(1)],
        };
      }
      const y = await runOne(input.subarray(b * per, (b + 1) * per), one, ex);
      out ??= new Float32Array(y.length * batch);
      out.set(y, b * y.length);
    }
    return out!;
  };

  // one session, one call at a time: concurrent run() on a WASM session is not safe
  return (input, shape, signal, extra) => {
    const p = queue.then(() => predict(input, shape, signal, extra));
    queue = p.catch(() => {});
    return p;
  };
}

// ---------------------------------------------------------------------------------------------
// Runtime for segment()

export interface RuntimeOptions extends Omit<SessionOptions, "manifest" | "windowShape"> {
  /** override the batch used for the pre-flight (default manifest.spatial.batch or 1) */
  batch?: number;
  /** 1 = one model call per window even when the batch axis is dynamic */
  maxCallBatch?: number;
}

export interface OrtModelRuntime extends ModelRuntime {
  sessions: SessionHandle[];
  stats: PredictorStats;
  /** every loaded file's sha256, main first */
  sha256s: string[];
  release(): Promise<void>;
}

/** [batch, C, ...spatial (D, H, W order)] of one model call for this manifest (-1 axes → wholeExtent). */
export function windowShapeOf(
  manifest: ModelManifest,
  batch = manifest.spatial.batch ?? 1,
  wholeExtent = 512,
): number[] {
  const c = manifest.inputs[0].shape[1] as number;
  // a whole-extent axis (-1) is only known per volume; the pre-flight assumes `wholeExtent`
  return [batch, c, ...[...manifest.spatial.window].reverse().map((w) => (w > 0 ? w : wholeExtent))];
}

/**
 * Creates sessions for the package's main model (or variant) and its ensemble members on the first
 * provider that works, and returns the ModelRuntime segment() takes. Members try the provider the
 * main model got first, then the rest of the preference list.
 */
export async function createRuntime(pkg: ModelPackage, opts: RuntimeOptions): Promise<OrtModelRuntime> {
  const manifest = pkg.manifest;
  const windowShape = windowShapeOf(manifest, opts.batch);
  const stats: PredictorStats = { runs: 0, windows: 0, totalMs: 0 };
  const handles: SessionHandle[] = [];
  const files: LoadedFile[] = [pkg.main, ...pkg.members];
  // a package audited by `deno task package` lists the browser providers it runs on; try only those
  // (native "cpu" and test providers are not browser providers and stay allowed)
  const verified = manifest.providers;
  if (verified) {
    const allowed = opts.providers.filter((p) => p !== "webgpu" && p !== "wasm" || verified.includes(p));
    opts = { ...opts, providers: allowed.length ? allowed : ["wasm"] };
  }
  try {
    for (const f of files) {
      const providers = handles.length
        ? [handles[0].provider, ...opts.providers.filter((p) => p !== handles[0].provider)]
        : opts.providers;
      handles.push(await createSession(f.bytes, { ...opts, providers, manifest, windowShape }));
    }
  } catch (e) {
    await Promise.all(handles.map((h) => h.session.release().catch(() => {})));
    throw e;
  }
  const main = handles[0];
  const predictorOpts = { maxCallBatch: opts.maxCallBatch };
  let predictors = handles.map((h) => createPredictor(h, manifest, stats, predictorOpts));
  let switching: Promise<void> | undefined;
  const runtime: OrtModelRuntime = {
    manifest,
    members: handles.map((_, m) => (input, shape, signal, extra) =>
      callMember(m, input, shape, signal, extra)
    ),
    provider: main.provider,
    fallbackReasons: [...main.fallbackReasons],
    modelSha256: pkg.main.sha256,
    variant: pkg.variant?.id,
    precision: pkg.precision,
    sessions: handles,
    stats,
    sha256s: files.map((f) => f.sha256),
    release: async () => {
      await Promise.all(handles.map((h) => h.session.release()));
    },
  };

  /** Re-creates every session on WASM after the GPU failed mid-run, and records why. */
  const fallBackToWasm = async (cause: unknown): Promise<void> => {
    const from = runtime.provider;
    const wasm: SessionHandle[] = [];
    for (const f of files) {
      wasm.push(await createSession(f.bytes, { ...opts, providers: ["wasm"], manifest, windowShape }));
    }
    const old = handles.splice(0, handles.length, ...wasm);
    await Promise.all(old.map((h) => h.session.release().catch(() => {})));
    predictors = wasm.map((h) => createPredictor(h, manifest, stats, predictorOpts));
    runtime.provider = "wasm";
    runtime.fallbackReasons.push(
      `${from}: ${message(cause)} after ${stats.windows} window${
        stats.windows === 1 ? "" : "s"
      }; the remaining windows ran on WASM`,
    );
  };

  /**
   * One model call on member `m`. When a GPU session fails at run time (its device lost, a kernel
   * error) and the caller allowed WASM, the sessions move to WASM once and the call is redone there;
   * the windows already done on the GPU are kept (they agree with WASM within the tolerance).
   */
  const callMember = async (
    m: number,
    ...args: Parameters<Predictor>
  ): Promise<Float32Array> => {
    const provider = runtime.provider;
    try {
      return await predictors[m](...args);
    } catch (e) {
      const gpu = provider === "webgpu" || provider === "webnn";
      if (!gpu || e instanceof CancelledError || e instanceof InputError || e instanceof ManifestError) {
        throw e;
      }
      if (!opts.providers.includes("wasm")) {
        throw new DeviceLostError(
          `${provider} failed mid-run after ${stats.windows} windows (${message(e)}); ` +
            `WASM was not among the chosen devices (${
              opts.providers.join(", ")
            }): choose WASM or auto to finish on the CPU`,
        );
      }
      if (runtime.provider === provider) switching ??= fallBackToWasm(e);
      await switching;
      return await predictors[m](...args);
    }
  };
  return runtime;
}
