/**
 * The message protocol between the viewer (main thread) and the inference Web Worker. Everything is
 * structured-clone data; voxel buffers travel as transferables (moved, not copied), so the page
 * gives up its copy of the volume when it posts a run and gets the result's buffers back the same way.
 *
 *   main → worker: run | cancel | capabilities
 *   worker → main: progress | slices | result | error | capabilities
 *
 * Every run carries an `id`; progress, slices, result and error echo it. A run asked for a `preview`
 * gets each slab's labels as soon as they are decided (`slices`), the slab in view first. A cancel makes the run end with an
 * error whose code is "CANCELLED" (checked between model calls, so within one window's time).
 */
import {
  CancelledError,
  EdgeSegError,
  InputError,
  IntegrityError,
  ManifestError,
  ProviderError,
} from "../core/errors.ts";
import type {
  ExecutionProvider,
  Progress,
  SegmentationResult,
  SegmentOptions,
  Volume,
} from "../core/types.ts";

/** SegmentOptions without what cannot cross a thread (functions, signals). */
export type WorkerSegmentOptions = Omit<SegmentOptions, "signal" | "onProgress" | "onSlices">;

export interface RunRequest {
  type: "run";
  id: string;
  /** its data buffer is transferred */
  volume: Volume;
  /** package base URL, e.g. "/models/tiny-2d/" */
  modelUrl: string;
  /** variant id, or precision / context for automatic choice */
  variant?: string;
  context?: Record<string, string>;
  /** provider preference (default ["webgpu", "webnn", "wasm"]) */
  providers?: ExecutionProvider[];
  options: WorkerSegmentOptions;
  /** post the labels of each slab as it is decided (`SlicesMessage`), for a progressive display */
  preview?: boolean;
}

export interface CancelRequest {
  type: "cancel";
  id: string;
}

export interface CapabilitiesRequest {
  type: "capabilities";
  id: string;
}

export type WorkerRequest = RunRequest | CancelRequest | CapabilitiesRequest;

export interface ProgressMessage {
  type: "progress";
  id: string;
  /** loading progress is reported with phase "loading", done/total in bytes */
  progress: Progress;
}

/** Labels of slices [z0, z1) as decided, before whole-volume post-processing (a preview). */
export interface SlicesMessage {
  type: "slices";
  id: string;
  z0: number;
  z1: number;
  /** its buffer is transferred */
  labels: Uint8Array | Uint16Array;
}

export interface ResultMessage {
  type: "result";
  id: string;
  result: SegmentationResult;
}

export interface SerializedError {
  name: string;
  code: string;
  message: string;
  expected?: string;
  actual?: string;
  failures?: { provider: string; reason: string }[];
}

export interface ErrorMessage {
  type: "error";
  id: string;
  error: SerializedError;
}

export interface Capabilities {
  webgpu: {
    available: boolean;
    adapter?: string;
    maxBufferSize?: number;
    maxStorageBufferBindingSize?: number;
    reason?: string;
  };
  webnn: boolean;
  crossOriginIsolated: boolean;
  /** WASM threads ORT will use (hardwareConcurrency when cross-origin isolated, else 1) */
  wasmThreads: number;
}

export interface CapabilitiesMessage {
  type: "capabilities";
  id: string;
  capabilities: Capabilities;
}

export type WorkerResponse =
  | ProgressMessage
  | SlicesMessage
  | ResultMessage
  | ErrorMessage
  | CapabilitiesMessage;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null;
}

/** Narrows an incoming message to a WorkerRequest (anything else is ignored by the worker). */
export function isWorkerRequest(v: unknown): v is WorkerRequest {
  if (!isObject(v) || typeof v.id !== "string") return false;
  if (v.type === "cancel" || v.type === "capabilities") return true;
  return v.type === "run" && isObject(v.volume) && typeof v.modelUrl === "string" && isObject(v.options);
}

/** Narrows an incoming message to a WorkerResponse. */
export function isWorkerResponse(v: unknown): v is WorkerResponse {
  return isObject(v) && typeof v.id === "string" &&
    (v.type === "progress" || v.type === "slices" || v.type === "result" || v.type === "error" ||
      v.type === "capabilities");
}

function bufferOf(a: ArrayBufferView | undefined, out: ArrayBuffer[]): void {
  if (a && a.buffer instanceof ArrayBuffer && !out.includes(a.buffer)) out.push(a.buffer);
}

/** The buffers to transfer with a run request (the volume's voxels). */
export function requestTransferables(req: RunRequest): ArrayBuffer[] {
  const out: ArrayBuffer[] = [];
  bufferOf(req.volume.data, out);
  return out;
}

/** The buffers to transfer with a result (labelmap, probabilities, uncertainty). */
export function resultTransferables(result: SegmentationResult): ArrayBuffer[] {
  const out: ArrayBuffer[] = [];
  bufferOf(result.labelmap.data, out);
  bufferOf(result.probabilities?.data, out);
  bufferOf(result.uncertainty?.data, out);
  return out;
}

/** Typed errors keep their class, code and details across the thread boundary. */
export function serializeError(e: unknown): SerializedError {
  if (e instanceof EdgeSegError) {
    const out: SerializedError = { name: e.name, code: e.code, message: e.message };
    if (e instanceof ManifestError) {
      out.expected = e.expected;
      out.actual = e.actual;
    }
    if (e instanceof ProviderError) out.failures = e.failures;
    return out;
  }
  if (isObject(e) && e.name === "AbortError") {
    return { name: "CancelledError", code: "CANCELLED", message: "cancelled" };
  }
  const message = e instanceof Error ? e.message : String(e);
  return { name: e instanceof Error ? e.name : "Error", code: "INTERNAL", message };
}

/** Rebuilds the typed error on the receiving side. */
export function deserializeError(s: SerializedError): Error {
  let e: Error;
  switch (s.name) {
    case "ManifestError":
      e = new ManifestError(s.code, s.message);
      Object.assign(e, { expected: s.expected, actual: s.actual });
      break;
    case "ProviderError":
      e = new ProviderError("no execution provider could run the model", s.failures ?? []);
      break;
    case "IntegrityError":
      e = new IntegrityError(s.code, s.message);
      break;
    case "InputError":
      e = new InputError(s.code, s.message);
      break;
    case "CancelledError":
      e = new CancelledError(s.message);
      break;
    default:
      e = new EdgeSegError(s.code, s.message);
      e.name = s.name;
  }
  // the message was already composed on the worker side; keep it verbatim
  e.message = s.message;
  return e;
}

/** What the panel and the provenance say when a page without COOP/COEP leaves WASM on one thread. */
export const WASM_THREADS_OFF = "WASM threads off: this page is not cross-origin isolated";
