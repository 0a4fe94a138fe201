/**
 * The browser entry point (page or Web Worker): ONNX Runtime bundles served by the edge server at
 * /edgeseg/ort/, model packages from /models/<id>/ with the Cache API (re-verified on every load), provider
 * fallback webgpu → webnn → wasm, and `serveWorker`, the worker side of protocol.ts.
 *
 * One onnxruntime build per provider, imported on first use, because each build is best at one thing:
 *   webgpu → ort.webgpu.min.mjs (native WebGPU EP: runs MaxPool3d and per-tensor DequantizeLinear
 *            correctly, unlike JSEP; its asyncify WASM is slower on CPU, so it is not used for wasm)
 *   webnn  → ort.min.mjs (the JSEP build, which carries WebNN)
 *   wasm   → ort.wasm.min.mjs (WASM only, 14 MB instead of 27–28 MB, fastest on CPU)
 * WASM threads need cross-origin isolation (COOP/COEP); otherwise ORT runs one thread.
 */
import type {
  ExecutionProvider,
  ModelRuntime,
  Progress,
  SegmentationResult,
  SegmentOptions,
  Volume,
} from "../core/types.ts";
import { browserCache, httpReader, loadPackage } from "./package.ts";
import type { LoadPackageOptions, ModelCache, ModelPackage } from "./package.ts";
import type { OrtLoader, OrtModuleLike } from "./ort.ts";
import { createRuntime } from "./runtime.ts";
import type { OrtModelRuntime, RuntimeOptions } from "./runtime.ts";
import { defaultGpuLimits } from "./session.ts";
import {
  type Capabilities,
  isWorkerRequest,
  resultTransferables,
  type RunRequest,
  serializeError,
  WASM_THREADS_OFF,
  type WorkerResponse,
} from "./protocol.ts";

export const ORT_BUNDLES: Record<"webgpu" | "webnn" | "wasm", string> = {
  webgpu: "ort.webgpu.min.mjs",
  webnn: "ort.min.mjs",
  wasm: "ort.wasm.min.mjs",
};

/**
 * Every onnxruntime-web file a browser may fetch from the ORT base: the three bundles above and, per
 * bundle, the WASM glue module and binary it loads from `wasmPaths` (`deno task export-plugin` copies
 * exactly these).
 */
export const ORT_RUNTIME_FILES: readonly string[] = [
  ...Object.values(ORT_BUNDLES),
  "ort-wasm-simd-threaded.mjs",
  "ort-wasm-simd-threaded.wasm",
  "ort-wasm-simd-threaded.jsep.mjs",
  "ort-wasm-simd-threaded.jsep.wasm",
  "ort-wasm-simd-threaded.asyncify.mjs",
  "ort-wasm-simd-threaded.asyncify.wasm",
];

interface BrowserGlobals {
  crossOriginIsolated?: boolean;
  navigator?: { hardwareConcurrency?: number; ml?: unknown; gpu?: unknown };
  location?: { href: string };
}

const g = globalThis as unknown as BrowserGlobals;

/** WASM threads: all cores when cross-origin isolated (SharedArrayBuffer available), else 1. */
export function browserThreads(): number {
  return g.crossOriginIsolated ? Math.max(1, g.navigator?.hardwareConcurrency ?? 1) : 1;
}

/**
 * Loads ORT builds from `base` (default "/edgeseg/ort/" on this origin) and points their WASM files there,
 * so nothing is fetched from a CDN. `import(url)` of a runtime URL is left alone by bundlers.
 */
export function browserOrtLoader(base = "/edgeseg/ort/", numThreads = browserThreads()): OrtLoader {
  const root = new URL(base, g.location?.href);
  const loaded = new Map<string, Promise<OrtModuleLike>>();
  return (provider: ExecutionProvider) => {
    if (provider !== "webgpu" && provider !== "webnn" && provider !== "wasm") {
      return Promise.reject(new Error(`no browser onnxruntime build for "${provider}"`));
    }
    const url = new URL(ORT_BUNDLES[provider], root).href;
    let p = loaded.get(url);
    if (!p) {
      p = (import(/* @vite-ignore */ url) as Promise<OrtModuleLike & { default?: OrtModuleLike }>).then(
        (m) => {
          const ort = (m.InferenceSession ? m : m.default ?? m) as OrtModuleLike;
          if (ort.env.wasm) {
            ort.env.wasm.wasmPaths = root.href;
            ort.env.wasm.numThreads = numThreads;
          }
          return ort;
        },
      );
      loaded.set(url, p);
    }
    return p;
  };
}

export interface BrowserModelOptions extends LoadPackageOptions, Partial<RuntimeOptions> {
  /** where the ORT bundles are served (default "/edgeseg/ort/") */
  ortBase?: string;
  /** false disables the Cache API (e.g. in tests of the download path) */
  useCache?: boolean;
}

/** Loads a verified package from a URL base ("/models/tiny-2d/"), through the Cache API. */
export async function openBrowserPackage(url: string, opts: BrowserModelOptions = {}): Promise<ModelPackage> {
  let cache: ModelCache | undefined = opts.cache;
  if (!cache && opts.useCache !== false && typeof caches !== "undefined") cache = browserCache();
  return await loadPackage(httpReader(url), { ...opts, cache });
}

/** Loads a package and creates its runtime: providers default to webgpu → webnn → wasm. */
export async function loadBrowserModel(
  url: string,
  opts: BrowserModelOptions = {},
): Promise<{ pkg: ModelPackage; runtime: OrtModelRuntime }> {
  const pkg = await openBrowserPackage(url, opts);
  const runtime = await createRuntime(pkg, {
    ...opts,
    providers: opts.providers ?? ["webgpu", "webnn", "wasm"],
    loadOrt: opts.loadOrt ?? browserOrtLoader(opts.ortBase, opts.numThreads ?? browserThreads()),
    numThreads: opts.numThreads ?? browserThreads(),
  });
  return { pkg, runtime };
}

/** What the panel shows: WebGPU adapter or not, WebNN, WASM threads. */
export async function browserCapabilities(): Promise<Capabilities> {
  let webgpu: Capabilities["webgpu"];
  try {
    const limits = await defaultGpuLimits();
    webgpu = limits
      ? {
        available: true,
        adapter: limits.description,
        maxBufferSize: limits.maxBufferSize,
        maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
      }
      : {
        available: false,
        reason: g.navigator?.gpu ? "no WebGPU adapter" : "WebGPU is not available (no navigator.gpu)",
      };
  } catch (e) {
    webgpu = { available: false, reason: e instanceof Error ? e.message : String(e) };
  }
  return {
    webgpu,
    webnn: !!g.navigator?.ml,
    crossOriginIsolated: !!g.crossOriginIsolated,
    wasmThreads: browserThreads(),
  };
}

/** The pipeline the worker runs; the extension passes src/segmentation's segment(). */
export type SegmentFn = (
  volume: Volume,
  runtime: ModelRuntime,
  options: SegmentOptions,
) => Promise<SegmentationResult>;

/**
 * Test-only fault injection, carried on a run request and off unless set. `loseWebGpuDeviceAfterWindows`
 * destroys onnxruntime-web's WebGPU device (`ort.env.webgpu.device`) once that many windows are done,
 * to exercise the mid-run fallback to WASM (src/inference/session.ts createRuntime).
 */
export interface WorkerTestHooks {
  loseWebGpuDeviceAfterWindows?: number;
}

/** A run request as the worker reads it: the protocol's, plus the test hooks (absent in normal use). */
export type HookedRunRequest = RunRequest & { testHooks?: WorkerTestHooks };

/** Arms the test hooks of one run; returns what its progress callback must call. */
function armTestHooks(hooks: WorkerTestHooks | undefined, runtime: OrtModelRuntime): (p: Progress) => void {
  const after = hooks?.loseWebGpuDeviceAfterWindows;
  if (typeof after !== "number" || runtime.provider !== "webgpu") return () => {};
  let fired = false;
  return (p) => {
    if (fired || p.phase !== "inference" || p.done < after) return;
    fired = true;
    runtime.sessions[0]?.ort.env.webgpu?.device?.destroy?.();
  };
}

interface WorkerScope {
  addEventListener(type: "message", fn: (ev: { data: unknown }) => void): void;
  postMessage(msg: unknown, transfer?: Transferable[]): void;
}

/**
 * Makes this Worker answer protocol.ts requests. Runtimes are kept per (model URL, variant,
 * providers), so a second run on the same model reuses the sessions. A cancel aborts the run's signal.
 */
export function serveWorker(scope: WorkerScope, segment: SegmentFn, opts: { ortBase?: string } = {}): void {
  const runtimes = new Map<string, Promise<OrtModelRuntime>>();
  const running = new Map<string, AbortController>();
  const post = (msg: WorkerResponse, transfer: ArrayBuffer[] = []) => scope.postMessage(msg, transfer);
  const loader = browserOrtLoader(opts.ortBase);

  const run = async (req: RunRequest) => {
    const ac = new AbortController();
    running.set(req.id, ac);
    try {
      const providers = req.providers ?? ["webgpu", "webnn", "wasm"];
      const key = JSON.stringify([req.modelUrl, req.variant ?? null, req.context ?? null, providers]);
      let rt = runtimes.get(key);
      if (!rt) {
        rt = loadBrowserModel(req.modelUrl, {
          variant: req.variant,
          context: req.context,
          providers,
          loadOrt: loader,
          signal: ac.signal,
          onProgress: (p) =>
            post({
              type: "progress",
              id: req.id,
              progress: { phase: "loading", done: p.loadedBytes, total: p.totalBytes, message: p.file },
            }),
        }).then((x) => x.runtime);
        runtimes.set(key, rt);
        rt.catch(() => runtimes.delete(key));
      }
      const runtime = await rt;
      const hook = armTestHooks((req as HookedRunRequest).testHooks, runtime);
      const result = await segment(req.volume, runtime, {
        ...req.options,
        signal: ac.signal,
        onProgress: (progress) => {
          post({ type: "progress", id: req.id, progress });
          hook(progress);
        },
        onSlices: req.preview
          ? (z0, z1, labels) => {
            const copy = labels.slice();
            post({ type: "slices", id: req.id, z0, z1, labels: copy }, [copy.buffer as ArrayBuffer]);
          }
          : undefined,
      });
      if (runtime.provider === "wasm") {
        result.provenance.threads = browserThreads();
        if (!g.crossOriginIsolated) result.provenance.threadsNote = WASM_THREADS_OFF;
      }
      post({ type: "result", id: req.id, result }, resultTransferables(result));
    } catch (e) {
      post({ type: "error", id: req.id, error: serializeError(e) });
    } finally {
      running.delete(req.id);
    }
  };

  scope.addEventListener("message", (ev) => {
    const msg = ev.data;
    if (!isWorkerRequest(msg)) return;
    if (msg.type === "cancel") running.get(msg.id)?.abort();
    else if (msg.type === "capabilities") {
      browserCapabilities().then((capabilities) => post({ type: "capabilities", id: msg.id, capabilities }));
    } else void run(msg);
  });
}
