/**
 * Model package loading: manifest.json → validate → choose the variant → fetch each ONNX file with
 * download progress → verify size and sha256 against `manifest.files` → check the manifest against
 * each graph. Works in browsers, Workers and Deno: file access goes through a `PackageReader`
 * (`httpReader` here; a folder reader lives in `deno.ts`), caching through a `ModelCache`
 * (`browserCache` here on the Cache API; a file cache in `deno.ts`). A cached file is re-verified on
 * every load; a cached copy that no longer matches is dropped and downloaded again.
 */
import { CancelledError, IntegrityError, ManifestError } from "../core/errors.ts";
import { checkManifestAgainstOnnx, validateManifest } from "../core/manifest.ts";
import type { OnnxSignature } from "../core/manifest.ts";
import type { AbortSignalLike, FileEntry, ModelManifest, ModelVariant } from "../core/types.ts";
import { readOnnxSignature } from "./onnx_signature.ts";

export interface DownloadProgress {
  file: string;
  loadedBytes: number;
  totalBytes: number;
  /** where the bytes came from */
  source: "cache" | "network" | "file";
}

/** Reads the files of one package. */
export interface PackageReader {
  /** where the package is, for messages and cache keys (a URL or a folder path) */
  readonly location: string;
  readText(name: string, signal?: AbortSignalLike): Promise<string>;
  /** reads a file, calling onBytes with the running total as it arrives */
  readBytes(
    name: string,
    expectedBytes: number,
    onBytes: (loaded: number) => void,
    signal?: AbortSignalLike,
  ): Promise<Uint8Array>;
  /** whether files from this reader are worth caching (network yes, local folder no) */
  readonly cacheable: boolean;
}

/** A store of verified model files, keyed by sha256 (content-addressed, so a new version never hits a stale copy). */
export interface ModelCache {
  get(sha256: string): Promise<Uint8Array | undefined>;
  put(sha256: string, bytes: Uint8Array): Promise<void>;
  delete(sha256: string): Promise<void>;
}

export interface LoadedFile {
  file: string;
  bytes: Uint8Array;
  sha256: string;
  signature: OnnxSignature;
  fromCache: boolean;
}

export interface ModelPackage {
  manifest: ModelManifest;
  location: string;
  /** the model that runs: the main model or the chosen variant */
  main: LoadedFile;
  /** further ensemble members (manifest.uncertainty.ensemble.members), in order */
  members: LoadedFile[];
  variant?: ModelVariant;
  precision: "fp32" | "fp16" | "int8";
  /** cached copies that failed re-verification and were downloaded again */
  cacheRejected: string[];
}

export interface VariantChoice {
  /** an explicit variant id; "main" (or undefined) for the package's main model */
  variant?: string;
  /** pick a variant of this precision if there is one (e.g. "int8" on slow devices) */
  precision?: "fp32" | "fp16" | "int8";
  /** facts about the input used by variants' `when` (e.g. { manufacturer: "SIEMENS" }); case-insensitive */
  context?: Record<string, string>;
}

export interface LoadPackageOptions extends VariantChoice {
  cache?: ModelCache;
  onProgress?: (p: DownloadProgress) => void;
  signal?: AbortSignalLike;
  /** load ensemble members too (default true) */
  loadMembers?: boolean;
}

function throwIfAborted(signal?: AbortSignalLike): void {
  if (signal?.aborted) throw new CancelledError("model loading cancelled");
}

/** SHA-256 of bytes as lower-case hex (WebCrypto, available in browsers, Workers and Deno). */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  let s = "";
  for (const b of digest) s += b.toString(16).padStart(2, "0");
  return s;
}

/** Throws IntegrityError unless the bytes have the size and sha256 the manifest lists. */
export async function verifyBytes(
  name: string,
  bytes: Uint8Array,
  entry: FileEntry,
  location = "",
): Promise<string> {
  const where = location ? ` in ${location}` : "";
  if (bytes.length !== entry.bytes) {
    throw new IntegrityError(
      "SIZE_MISMATCH",
      `${name}${where} has ${bytes.length} bytes but its manifest lists ${entry.bytes}: the file is truncated or was replaced; ` +
        "re-download the package or update manifest.files",
    );
  }
  const actual = await sha256Hex(bytes);
  if (actual !== entry.sha256) {
    throw new IntegrityError(
      "SHA256_MISMATCH",
      `${name}${where} has sha256 ${actual} but its manifest lists ${entry.sha256}: refusing to run a model that is not ` +
        "the one the manifest describes",
    );
  }
  return actual;
}

/** Picks the file to run: an explicit variant, a precision, or the variant whose `when` matches the context. */
export function selectVariant(manifest: ModelManifest, choice: VariantChoice = {}): ModelVariant | undefined {
  const variants = manifest.variants ?? [];
  if (choice.variant && choice.variant !== "main") {
    const v = variants.find((x) => x.id === choice.variant);
    if (!v) {
      throw new ManifestError("UNKNOWN_VARIANT", `model ${manifest.id} has no variant "${choice.variant}"`, {
        expected: ["main", ...variants.map((x) => x.id)].join(", "),
        actual: choice.variant,
      });
    }
    return v;
  }
  const ctx = Object.fromEntries(
    Object.entries(choice.context ?? {}).map(([k, v]) => [k.toLowerCase(), v.toLowerCase()]),
  );
  const matches = (v: ModelVariant) =>
    v.when !== undefined &&
    Object.entries(v.when).every(([k, val]) => ctx[k.toLowerCase()]?.includes(val.toLowerCase()));
  const wantPrecision = choice.precision ?? "fp32";
  // a variant made for this input (scanner) wins; among those, the requested precision
  const specific = variants.filter(matches);
  const pick = specific.find((v) => v.precision === wantPrecision) ?? specific[0];
  if (pick) return pick;
  if (choice.precision && choice.precision !== "fp32") {
    return variants.find((v) => v.when === undefined && v.precision === choice.precision);
  }
  return undefined;
}

async function loadFile(
  reader: PackageReader,
  manifest: ModelManifest,
  name: string,
  opts: LoadPackageOptions,
  cacheRejected: string[],
): Promise<LoadedFile> {
  const entry = manifest.files[name];
  const cache = reader.cacheable ? opts.cache : undefined;
  throwIfAborted(opts.signal);
  if (cache) {
    const cached = await cache.get(entry.sha256);
    if (cached) {
      try {
        const sha256 = await verifyBytes(name, cached, entry, `the model cache (${reader.location})`);
        opts.onProgress?.({
          file: name,
          loadedBytes: cached.length,
          totalBytes: entry.bytes,
          source: "cache",
        });
        const signature = readOnnxSignature(cached);
        checkManifestAgainstOnnx(manifest, signature, name);
        return { file: name, bytes: cached, sha256, signature, fromCache: true };
      } catch (e) {
        if (!(e instanceof IntegrityError)) throw e;
        // a damaged cache entry is not the package's fault: drop it and fetch the real file
        cacheRejected.push(`${name}: ${e.message}`);
        await cache.delete(entry.sha256);
      }
    }
  }
  const source = reader.cacheable ? "network" : "file";
  const bytes = await reader.readBytes(
    name,
    entry.bytes,
    (loaded) => opts.onProgress?.({ file: name, loadedBytes: loaded, totalBytes: entry.bytes, source }),
    opts.signal,
  );
  const sha256 = await verifyBytes(name, bytes, entry, reader.location);
  const signature = readOnnxSignature(bytes);
  checkManifestAgainstOnnx(manifest, signature, name);
  if (cache) await cache.put(entry.sha256, bytes);
  return { file: name, bytes, sha256, signature, fromCache: false };
}

/**
 * Loads and verifies a model package. Throws ManifestError (invalid manifest, manifest ⇄ ONNX
 * mismatch), IntegrityError (size or sha256 mismatch) or CancelledError; nothing partial is returned.
 */
export async function loadPackage(
  reader: PackageReader,
  opts: LoadPackageOptions = {},
): Promise<ModelPackage> {
  let json: unknown;
  const text = await reader.readText("manifest.json", opts.signal);
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ManifestError("MANIFEST_JSON", `manifest.json in ${reader.location} is not valid JSON`, {
      expected: "a JSON object",
      actual: e instanceof Error ? e.message : String(e),
    });
  }
  const manifest = validateManifest(json);
  const variant = selectVariant(manifest, opts);
  const cacheRejected: string[] = [];
  const main = await loadFile(reader, manifest, variant?.file ?? manifest.model, opts, cacheRejected);
  const members: LoadedFile[] = [];
  if (opts.loadMembers !== false) {
    for (const m of manifest.uncertainty?.ensemble?.members ?? []) {
      members.push(await loadFile(reader, manifest, m, opts, cacheRejected));
    }
  }
  return {
    manifest,
    location: reader.location,
    main,
    members,
    variant,
    precision: variant?.precision ?? "fp32",
    cacheRejected,
  };
}

// ---------------------------------------------------------------------------------------------
// readers and caches that need nothing but fetch and the Cache API

/** Streams a response body, reporting the running byte count; refuses bodies longer than expected. */
export async function readBody(
  res: Response,
  name: string,
  expectedBytes: number,
  onBytes: (loaded: number) => void,
  signal?: AbortSignalLike,
): Promise<Uint8Array> {
  if (!res.body) return new Uint8Array(await res.arrayBuffer());
  // one extra byte tells "too long" apart from "exact" without buffering an unbounded body
  const out = new Uint8Array(expectedBytes + 1);
  let loaded = 0;
  const r = res.body.getReader();
  try {
    for (;;) {
      if (signal?.aborted) {
        await r.cancel();
        throw new CancelledError(`download of ${name} cancelled`);
      }
      const { done, value } = await r.read();
      if (done) break;
      if (loaded + value.length > out.length) {
        await r.cancel();
        throw new IntegrityError(
          "SIZE_MISMATCH",
          `${name} is longer than the ${expectedBytes} bytes its manifest lists`,
        );
      }
      out.set(value, loaded);
      loaded += value.length;
      onBytes(loaded);
    }
  } finally {
    r.releaseLock();
  }
  return out.subarray(0, loaded);
}

/** Reads a package from a URL base (http(s) or file:), e.g. "/models/tiny-2d/". */
export function httpReader(base: string | URL, fetchFn: typeof fetch = fetch): PackageReader {
  const root = typeof base === "string" && !/^[a-z]+:/i.test(base)
    ? new URL(
      base.endsWith("/") ? base : base + "/",
      (globalThis as { location?: { href: string } }).location?.href,
    )
    : new URL(String(base).endsWith("/") ? String(base) : String(base) + "/");
  const get = async (name: string, signal?: AbortSignalLike): Promise<Response> => {
    const url = new URL(name, root);
    const res = await fetchFn(url, { signal: signal as AbortSignal | undefined });
    if (!res.ok) {
      await res.body?.cancel();
      throw new IntegrityError(
        "FETCH_FAILED",
        `could not fetch ${url.href}: HTTP ${res.status} ${res.statusText} (expected 200 with the package file)`,
      );
    }
    return res;
  };
  return {
    location: root.href,
    cacheable: root.protocol === "http:" || root.protocol === "https:",
    readText: async (name, signal) => await (await get(name, signal)).text(),
    readBytes: async (name, expected, onBytes, signal) =>
      readBody(await get(name, signal), name, expected, onBytes, signal),
  };
}

/** The browser's Cache API as a model cache (persists across page loads; entries re-verified on use). */
export function browserCache(cacheName = "edgeseg-models-v1"): ModelCache {
  const key = (sha: string) => `https://edgeseg.invalid/model/${sha}`;
  const open = () => caches.open(cacheName);
  return {
    async get(sha) {
      const res = await (await open()).match(key(sha));
      return res ? new Uint8Array(await res.arrayBuffer()) : undefined;
    },
    async put(sha, bytes) {
      await (await open()).put(
        key(sha),
        new Response(bytes as Uint8Array<ArrayBuffer>, {
          headers: { "content-type": "application/octet-stream" },
        }),
      );
    },
    async delete(sha) {
      await (await open()).delete(key(sha));
    },
  };
}

/** An in-memory cache (tests, and a Worker that reuses the same model across runs). */
export function memoryCache(): ModelCache & { entries: Map<string, Uint8Array> } {
  const entries = new Map<string, Uint8Array>();
  return {
    entries,
    get: (sha) => Promise.resolve(entries.get(sha)),
    put: (sha, bytes) => {
      entries.set(sha, bytes.slice());
      return Promise.resolve();
    },
    delete: (sha) => {
      entries.delete(sha);
      return Promise.resolve();
    },
  };
}
