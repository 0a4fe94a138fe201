/**
 * The page side of the inference Worker (src/inference/protocol.ts): one Worker per page, runs
 * identified by id, progress streamed to a callback, cancel that ends the run with a CANCELLED error.
 */
import {
  type Capabilities as WorkerCapabilities,
  deserializeError,
  isWorkerResponse,
  requestTransferables,
  type RunRequest,
  type WorkerRequest,
} from "../../src/inference/protocol.ts";
import type { Progress, SegmentationResult } from "../../src/core/types.ts";
import { CancelledError, ViewerError } from "../../src/core/errors.ts";
import { assetUrl, isSameOrigin, PLUGIN_PATH } from "./base.ts";

/**
 * How long a cancelled run may take to acknowledge before the Worker is terminated. A run only sees
 * the cancel message when its loop yields to the event loop; if ONNX Runtime answers without yielding
 * (observed with WASM on small models), the message waits, so the page stops the Worker instead and
 * starts a fresh one on the next run.
 */
export const CANCEL_GRACE_MS = 300;

/** Replaced at build time with the hashed file name of the worker bundle (see extension/build.ts). */
declare const __EDGESEG_WORKER_FILE__: string;

/** The Worker bundle's absolute URL, beside the extension's own files (see base.ts). */
export function workerUrl(): string {
  const file = typeof __EDGESEG_WORKER_FILE__ === "string" ? __EDGESEG_WORKER_FILE__ : "edgeseg-worker.js";
  return assetUrl(PLUGIN_PATH + file);
}

/**
 * The script a Worker is started from. Browsers refuse `new Worker(url)` for a script on another
 * origin, which is where EdgeSeg lives inside a hospital's own OHIF; a module Worker started from a
 * same-origin blob that imports the absolute URL works (the import is a CORS request, which the edge
 * server's `--allow-origin` answers). The host's CSP then needs `worker-src blob:` (docs/deploy.md).
 */
export function workerBootstrap(url: string, sameOrigin: boolean): { url: string; revoke?: () => void } {
  if (sameOrigin) return { url };
  const blob = new Blob([`import ${JSON.stringify(url)};\n`], { type: "text/javascript" });
  const blobUrl = URL.createObjectURL(blob);
  return { url: blobUrl, revoke: () => URL.revokeObjectURL(blobUrl) };
}

function createWorker(): WorkerLike {
  const url = workerUrl();
  const boot = workerBootstrap(url, isSameOrigin(url));
  const worker = new Worker(boot.url, { type: "module", name: "edgeseg-inference" });
  // The blob only has to live until the Worker has fetched it; a revoke right away can race that fetch.
  if (boot.revoke) setTimeout(boot.revoke, 60_000);
  return worker;
}

interface WorkerLike {
  postMessage(msg: unknown, transfer?: Transferable[]): void;
  addEventListener(type: "message" | "error", fn: (ev: { data?: unknown; message?: string }) => void): void;
  terminate(): void;
}

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
  onProgress?: (p: Progress) => void;
  onSlices?: (z0: number, z1: number, labels: Uint8Array | Uint16Array) => void;
}

export interface RunHandle {
  id: string;
  result: Promise<SegmentationResult>;
  cancel(): void;
}

let counter = 0;
function nextId(prefix: string): string {
  counter += 1;
  return `${prefix}-${Date.now().toString(36)}-${counter}`;
}

export class SegmentationWorker {
  readonly #worker: WorkerLike;
  readonly #pending = new Map<string, Pending>();
  #stopped = false;

  /** True once the Worker was terminated (by `terminate()` or a hard cancel); start a new client then. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /** `create` exists so tests can hand in a fake Worker. */
  constructor(
    create: () => WorkerLike = createWorker,
  ) {
    this.#worker = create();
    this.#worker.addEventListener("message", (ev) => this.#onMessage(ev.data));
    this.#worker.addEventListener("error", (ev) => {
      // A worker that fails to load or throws at top level fails every pending run.
      const err = new ViewerError(
        "WORKER_FAILED",
        `the EdgeSeg inference worker failed: ${ev.message ?? "unknown error"}`,
      );
      for (const p of this.#pending.values()) p.reject(err);
      this.#pending.clear();
    });
  }

  #onMessage(data: unknown): void {
    if (!isWorkerResponse(data)) return;
    const pending = this.#pending.get(data.id);
    if (!pending) return;
    if (data.type === "progress") {
      pending.onProgress?.(data.progress);
      return;
    }
    if (data.type === "slices") {
      pending.onSlices?.(data.z0, data.z1, data.labels);
      return;
    }
    this.#pending.delete(data.id);
    if (data.type === "error") pending.reject(deserializeError(data.error));
    else if (data.type === "result") pending.resolve(data.result);
    else pending.resolve(data.capabilities);
  }

  #post(req: WorkerRequest, transfer: ArrayBuffer[] = []): void {
    this.#worker.postMessage(req, transfer);
  }

  /** Starts a run. The volume's voxel buffer is transferred: the caller must not use it afterwards. */
  run(
    request: Omit<RunRequest, "type" | "id" | "preview">,
    onProgress?: (p: Progress) => void,
    /** each slab's labels as decided (asks the worker for a preview) */
    onSlices?: (z0: number, z1: number, labels: Uint8Array | Uint16Array) => void,
  ): RunHandle {
    const id = nextId("run");
    const req: RunRequest = { type: "run", id, ...request, ...(onSlices ? { preview: true } : {}) };
    const result = new Promise<SegmentationResult>((resolve, reject) => {
      this.#pending.set(id, {
        resolve: (v) => resolve(v as SegmentationResult),
        reject,
        onProgress,
        onSlices,
      });
    });
    this.#post(req, requestTransferables(req));
    const cancel = () => {
      if (!this.#pending.has(id)) return;
      this.#post({ type: "cancel", id });
      setTimeout(() => {
        if (!this.#pending.has(id)) return;
        const pending = this.#pending.get(id);
        this.#pending.delete(id);
        this.terminate();
        pending?.reject(new CancelledError("cancelled (the inference worker was stopped)"));
      }, CANCEL_GRACE_MS);
    };
    return { id, result, cancel };
  }

  /** What the worker's ONNX Runtime can use (WebGPU adapter, WebNN, WASM threads). */
  capabilities(): Promise<WorkerCapabilities> {
    const id = nextId("caps");
    const p = new Promise<WorkerCapabilities>((resolve, reject) => {
      this.#pending.set(id, { resolve: (v) => resolve(v as WorkerCapabilities), reject });
    });
    this.#post({ type: "capabilities", id });
    return p;
  }

  terminate(): void {
    this.#stopped = true;
    this.#worker.terminate();
    const err = new CancelledError("the EdgeSeg inference worker was stopped");
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
  }
}

let shared: SegmentationWorker | undefined;

/** The page's one inference worker, started on first use (keeps ORT sessions warm between runs). */
export function sharedWorker(): SegmentationWorker {
  if (!shared || shared.stopped) shared = new SegmentationWorker();
  return shared;
}
