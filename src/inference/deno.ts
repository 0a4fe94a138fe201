/**
 * The Deno entry point: model packages from a folder or an http(s) URL (with a file cache under
 * .cache/models, re-verified on every load), and sessions on onnxruntime-web's WASM backend.
 *
 * In Deno the bare `onnxruntime-web` import resolves (node export condition) to the node build, which
 * runs WASM threads on worker_threads (the `/wasm` subpath fails with more than one thread). The thread
 * count is set explicitly (see defaultThreads) and is fixed by the first session in a process.
 */
import * as ortWeb from "onnxruntime-web";
import { isAbsolute, join, resolve } from "node:path";
import { IntegrityError } from "../core/errors.ts";
import type { ExecutionProvider } from "../core/types.ts";
import { httpReader, loadPackage, readBody } from "./package.ts";
import type { LoadPackageOptions, ModelCache, ModelPackage, PackageReader } from "./package.ts";
import type { OrtLoader, OrtModuleLike } from "./ort.ts";
import { createRuntime } from "./runtime.ts";
import type { OrtModelRuntime, RuntimeOptions } from "./runtime.ts";

/** Project root, resolved from this file (src/inference/deno.ts). */
export const PROJECT_ROOT = resolve(new URL("../..", import.meta.url).pathname);
export const DEFAULT_MODEL_CACHE_DIR = join(PROJECT_ROOT, ".cache", "models");

/**
 * Threads for WASM in Deno: 1 unless EDGESEG_WASM_THREADS says otherwise. Measured on the project
 * machine (2 cores, busy): onnxruntime-web's node build with 2 WASM threads hung on its first run in
 * about 2 of 3 fresh processes for a 256² model (1 thread: never), so reliability wins by default.
 * Pass `numThreads` (or set the variable) to trade that for ~1.9× speed, e.g. in benchmarks.
 */
export function defaultThreads(): number {
  let env: string | undefined;
  try {
    env = Deno.env.get("EDGESEG_WASM_THREADS");
  } catch { /* no --allow-env */ }
  const n = Number(env);
  if (Number.isInteger(n) && n >= 1) {
    const cores =
      (globalThis.navigator as { hardwareConcurrency?: number } | undefined)?.hardwareConcurrency ?? 2;
    return Math.min(n, Math.max(1, cores));
  }
  return 1;
}

/** onnxruntime-web (node build) for wasm, onnxruntime-node for cpu (loaded only when asked). */
export const denoOrtLoader: OrtLoader = async (provider: ExecutionProvider): Promise<OrtModuleLike> => {
  if (provider === "cpu") {
    const mod = await import("onnxruntime-node");
    return ((mod as { default?: unknown }).default ?? mod) as OrtModuleLike;
  }
  // webgpu/webnn are not in this build; session creation then fails with ORT's own reason, which is recorded
  return ortWeb as unknown as OrtModuleLike;
};

/** Reads a package from a local folder. */
export function folderReader(dir: string): PackageReader {
  const root = resolve(dir);
  const path = (name: string) => join(root, name);
  return {
    location: root,
    cacheable: false,
    readText: (name) => Deno.readTextFile(path(name)),
    async readBytes(name, expected, onBytes, signal) {
      // the readable closes the file when it is read to the end or cancelled
      const file = await Deno.open(path(name));
      return await readBody(new Response(file.readable), name, expected, onBytes, signal);
    },
  };
}

/**
 * A content-addressed file cache (`<dir>/<sha256>.onnx`). Writes go to a temporary file and are
 * renamed into place, so a crash never leaves a half-written entry under the final name.
 */
export function fileCache(dir = DEFAULT_MODEL_CACHE_DIR): ModelCache {
  const path = (sha: string) => join(dir, `${sha}.onnx`);
  return {
    async get(sha) {
      try {
        return await Deno.readFile(path(sha));
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) return undefined;
        throw e;
      }
    },
    async put(sha, bytes) {
      await Deno.mkdir(dir, { recursive: true });
      const tmp = `${path(sha)}.${crypto.randomUUID()}.tmp`;
      await Deno.writeFile(tmp, bytes);
      await Deno.rename(tmp, path(sha));
    },
    async delete(sha) {
      await Deno.remove(path(sha)).catch((e) => {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      });
    },
  };
}

/** A reader for a folder path, a file: URL or an http(s) URL. */
export function readerFor(location: string): PackageReader {
  if (/^https?:\/\//i.test(location)) return httpReader(location);
  if (/^file:/i.test(location)) return folderReader(new URL(location).pathname);
  return folderReader(isAbsolute(location) ? location : resolve(location));
}

/**
 * Resolves a model argument: a folder or URL as is, or a bare package id looked up under models/
 * and then tests/fixtures/models/ of the project.
 */
export async function resolveModelLocation(idOrPath: string): Promise<string> {
  if (/^[a-z]+:\/\//i.test(idOrPath) || idOrPath.includes("/") || idOrPath.startsWith(".")) return idOrPath;
  for (const base of [join(PROJECT_ROOT, "models"), join(PROJECT_ROOT, "tests", "fixtures", "models")]) {
    try {
      await Deno.stat(join(base, idOrPath, "manifest.json"));
      return join(base, idOrPath);
    } catch { /* try the next */ }
  }
  throw new IntegrityError(
    "PACKAGE_NOT_FOUND",
    `no model package "${idOrPath}" under models/ or tests/fixtures/models/ ` +
      "(expected a folder with manifest.json, or a path or URL)",
  );
}

/** Loads a package (verified) from a folder or URL; http(s) packages use the file cache by default. */
export async function openPackage(location: string, opts: LoadPackageOptions = {}): Promise<ModelPackage> {
  const reader = readerFor(await resolveModelLocation(location));
  return await loadPackage(reader, { cache: reader.cacheable ? fileCache() : undefined, ...opts });
}

export interface DenoModelOptions extends LoadPackageOptions, Partial<Omit<RuntimeOptions, "signal">> {}

/**
 * Loads a package and creates its runtime in Deno. Defaults: providers ["wasm"], defaultThreads().
 * Pass providers ["cpu"] for the onnxruntime-node native baseline.
 */
export async function loadModel(
  location: string,
  opts: DenoModelOptions = {},
): Promise<{ pkg: ModelPackage; runtime: OrtModelRuntime }> {
  const pkg = await openPackage(location, opts);
  const numThreads = opts.numThreads ?? defaultThreads();
  const providers = opts.providers ?? ["wasm"];
  const runtime = await createRuntime(pkg, {
    ...opts,
    providers,
    loadOrt: opts.loadOrt ?? denoOrtLoader,
    numThreads,
    // With more than one WASM thread, onnxruntime-web's node build hung in Deno (most often with batch > 1;
    // Chromium was fine), so multi-threaded Deno runs make one call per window.
    maxCallBatch: opts.maxCallBatch ?? (providers[0] === "wasm" && numThreads > 1 ? 1 : undefined),
    signal: opts.signal,
  });
  return { pkg, runtime };
}

/** The onnxruntime-web version in use (for provenance and benchmarks). */
export function ortWebVersion(): string {
  return (ortWeb.env.versions as Record<string, string> | undefined)?.web ?? "unknown";
}
