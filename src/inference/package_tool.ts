/**
 * `deno task package`: an ONNX export → a verified EdgeSeg model package.
 *
 * 1. reads the graph (pure TS), inlines external data (`.onnx.data`) within a size limit;
 * 2. drafts manifest.json from the graph (inputs, outputs, dynamic axes → window, an MC-dropout mask
 *    input) merged with an optional draft; validates it and checks it against the graph;
 * 3. applies exact rewrites for patterns the WebGPU EPs cannot run (src/inference/onnx_rewrite.py),
 *    keeping each only when a probe window gives the same output (≤ 1e-4) as before;
 * 4. op audit: creates a session and runs the probe on onnxruntime-node (reference), onnxruntime-web
 *    WASM in Deno and — when Chromium exists — WebGPU in headless Chromium (both EPs);
 * 5. writes the package folder atomically (temp folder + rename), `providers` recording what ran.
 */
import { dirname, join, resolve } from "node:path";
import { EdgeSegError, ManifestError } from "../core/errors.ts";
import { checkManifestAgainstOnnx, ONNX_ELEM_TYPES, validateManifest } from "../core/manifest.ts";
import type { OnnxSignature } from "../core/manifest.ts";
import type { ModelManifest } from "../core/types.ts";
import { findExternalData, inlineExternalData } from "./onnx_external.ts";
import { readOnnxSignature } from "./onnx_signature.ts";
import { sha256Hex } from "./package.ts";
import type { OrtModuleLike } from "./ort.ts";
import { windowShapeOf } from "./runtime.ts";

/**
 * Largest model (graph + external data) the tool packages: 1 GiB. A package is one ONNX protobuf
 * (hard limit 2 GiB); the browser holds the file as an ArrayBuffer *and* copies it into the 4 GiB
 * wasm32 heap while creating a session, next to activations; WebGPU adapters cap one buffer at 1 GiB
 * (SwiftShader: maxBufferSize 1 GiB).
 */
export const DEFAULT_MAX_MODEL_BYTES = 1024 * 1024 * 1024;

/** Max abs difference a rewrite may introduce on the probe before it is dropped. */
export const REWRITE_TOLERANCE = 1e-4;

export const PYTHON = "/usr/bin/python3";
const REWRITE_SCRIPT = new URL("./onnx_rewrite.py", import.meta.url).pathname;

export class PackageError extends EdgeSegError {
  constructor(code: string, readonly field: string, message: string) {
    super(code, `${field}: ${message}`);
  }
}

export type AuditProvider = "native" | "wasm" | "webgpu" | "webgpu-jsep";

export interface AuditResult {
  provider: AuditProvider;
  ok: boolean;
  /** why it was not run (no Chromium, …) */
  skipped?: string;
  /** the node and op ORT named when it failed */
  node?: string;
  op?: string;
  error?: string;
  /** vs the native reference (or vs WASM when native did not run) */
  maxAbsDiff?: number;
  ms?: number;
}

export interface RewriteResult {
  rewrite: string;
  node: string;
  op: string;
  as?: string[];
  kept: boolean;
  maxAbsDiff?: number;
  reason?: string;
}

export interface PackageReport {
  id: string;
  out: string;
  file: string;
  sha256: string;
  bytes: number;
  externalData?: { files: string[]; tensors: number; bytes: number };
  auditBefore?: AuditResult[];
  rewrites: RewriteResult[];
  audit: AuditResult[];
  providers?: ("webgpu" | "wasm")[];
  manifest: ModelManifest;
}

// ---------------------------------------------------------------------------------------------
// manifest draft

const TISSUE = { value: "85756007", scheme: "SCT", meaning: "Tissue" };

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Objects merge recursively; arrays and scalars in `over` replace. */
export function deepMerge(base: unknown, over: unknown): unknown {
  if (!isObj(base) || !isObj(over)) return over === undefined ? base : over;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = deepMerge(base[k], v);
  return out;
}

function specOf(v: OnnxSignature["inputs"][number], field: string, axisNames: string[]) {
  const dtype = ONNX_ELEM_TYPES[v.elemType];
  if (dtype !== "float32") {
    throw new PackageError(
      "GRAPH_UNSUPPORTED",
      `${field}.dtype`,
      `"${v.name}" is ${dtype ?? "untyped"}, EdgeSeg feeds float32`,
    );
  }
  if (!v.shape) {
    throw new PackageError("GRAPH_UNSUPPORTED", `${field}.shape`, `"${v.name}" declares no shape`);
  }
  return {
    name: v.name,
    dtype,
    shape: v.shape.map((d, i) => d ?? axisNames[i] ?? `axis${i}`),
  };
}

/** A manifest drafted from the graph alone; `draft` (the user's partial manifest) is merged over it. */
export function draftManifest(
  sig: OnnxSignature,
  id: string,
  file: string,
  draft: Record<string, unknown> = {},
): Record<string, unknown> {
  const [x, ...extra] = sig.inputs;
  if (!x) throw new PackageError("GRAPH_UNSUPPORTED", "inputs", "the graph has no input to feed");
  const y = sig.outputs[0];
  if (!y) throw new PackageError("GRAPH_UNSUPPORTED", "outputs", "the graph has no output");
  const rank = x.shape?.length ?? 0;
  if (rank !== 4 && rank !== 5) {
    throw new PackageError(
      "GRAPH_UNSUPPORTED",
      "inputs[0].shape",
      `"${x.name}" has rank ${rank}; EdgeSeg feeds [batch, channels, (depth,) height, width]`,
    );
  }
  if ((y.shape?.length ?? 0) !== rank) {
    throw new PackageError(
      "GRAPH_UNSUPPORTED",
      "outputs[0].shape",
      `"${y.name}" has rank ${
        y.shape?.length ?? "unknown"
      }, not ${rank}: a segmentation output keeps the input's spatial axes (is this a classifier?)`,
    );
  }
  const names = rank === 5
    ? ["batch", "channels", "depth", "height", "width"]
    : ["batch", "channels", "height", "width"];
  const input = specOf(x, "inputs[0]", names);
  const output = specOf(y, "outputs[0]", names);
  const channels = typeof x.shape![1] === "number" ? x.shape![1] as number : 1;
  const outC = typeof y.shape![1] === "number" ? y.shape![1] as number : 2;
  const spatialAxes = rank - 2;
  // window runs [x, y(, z)] while tensor axes run [.., (D,) H, W]; dynamic axes get a default size
  const window = x.shape!.slice(2).reverse().map((d) =>
    typeof d === "number" ? d : spatialAxes === 3 ? 96 : 256
  );
  const manifest: Record<string, unknown> = {
    schemaVersion: 1,
    id,
    name: id,
    version: "0.1.0",
    task: "segmentation",
    description: `Drafted by deno task package from ${file}.`,
    intendedUse: "Research and software testing; not validated for diagnosis.",
    license: "UNSPECIFIED",
    constraints: { modalities: spatialAxes === 3 ? ["CT", "MR"] : ["OT"], channels },
    model: file,
    inputs: [input],
    outputs: [output],
    activation: outC === 1 ? "sigmoid" : "softmax",
    preprocessing: {
      intensity: { kind: "zscore", mask: "all" },
      targetSpacingMm: [null, null, null],
      padMultiple: 16,
      padValue: 0,
    },
    spatial: {
      mode: spatialAxes === 3 ? "patch3d" : channels === 1 ? "slice2d" : "image2d",
      window,
      overlap: 0.25,
      blending: "gaussian",
      sigmaScale: 0.125,
    },
    labels: (outC === 1 ? [1] : Array.from({ length: outC - 1 }, (_, i) => i + 1)).map((v, i) => ({
      value: v,
      name: `Class ${v}`,
      channel: outC === 1 ? 0 : v,
      category: TISSUE,
      type: TISSUE,
      color: [[230, 80, 80], [80, 160, 255], [90, 200, 120], [240, 200, 60]][i % 4],
    })),
  };
  // an extra input shaped [batch, C, 1, …] is an MC-dropout mask (docs/platform: ORT drops Dropout nodes)
  if (extra.length === 1) {
    const m = extra[0];
    const s = m.shape ?? [];
    if (s.length === rank && typeof s[1] === "number" && s.slice(2).every((d) => d === 1)) {
      (manifest.inputs as unknown[]).push(specOf(m, "inputs[1]", ["batch"]));
      manifest.uncertainty = {
        mcDropout: { input: m.name, shape: [1, s[1], ...s.slice(2)], rate: 0.5, defaultPasses: 8 },
      };
    }
  }
  return deepMerge(manifest, draft) as Record<string, unknown>;
}

// ---------------------------------------------------------------------------------------------
// probe and audit

export function probeFeeds(manifest: ModelManifest): Record<string, { data: Float32Array; dims: number[] }> {
  const shape = windowShapeOf(manifest, 1, 64);
  const n = shape.reduce((a, b) => a * b, 1);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.sin(0.01 * i) + 0.25 * Math.cos(0.37 * i);
  const feeds: Record<string, { data: Float32Array; dims: number[] }> = {
    [manifest.inputs[0].name]: { data: x, dims: shape },
  };
  const mc = manifest.uncertainty?.mcDropout;
  if (mc) {
    feeds[mc.input] = { data: new Float32Array(mc.shape.reduce((a, b) => a * b, 1)).fill(1), dims: mc.shape };
  }
  return feeds;
}

/** The node and op in an ORT error ("… running ConvTranspose node. Name:'/up/ConvTranspose' …"). */
export function parseOrtError(message: string): { node?: string; op?: string } {
  // onnxruntime-web appends "_token_<n>" to node names; the graph's own name is what a user can find
  const node = (n: string) => n.replace(/_token_\d+$/, "");
  const m = /running (\w+) node\. Name:'([^']*)'/.exec(message);
  if (m) return { op: m[1], node: node(m[2]) };
  const jsep = /Kernel "\[(\w+)\] ([^"]*)" failed/.exec(message); // JSEP WebGPU
  if (jsep) return { op: jsep[1], node: node(jsep[2]) };
  const impl = /implementation for (\w+)\((\d+)\) node with name '([^']*)'/.exec(message);
  if (impl) return { op: impl[1], node: node(impl[3]) };
  return {};
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

type Feeds = ReturnType<typeof probeFeeds>;

async function runOrt(ort: OrtModuleLike, model: Uint8Array, feeds: Feeds, options: Record<string, unknown>) {
  const session = await ort.InferenceSession.create(model, options);
  try {
    const input: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(feeds)) input[k] = new ort.Tensor("float32", v.data, v.dims);
    const out = await session.run(input as never);
    return Float32Array.from(out[session.outputNames[0]].data as Float32Array);
  } finally {
    await session.release();
  }
}

let ortWeb: OrtModuleLike | undefined;

async function loadOrt(which: "onnxruntime-node" | "onnxruntime-web"): Promise<OrtModuleLike> {
  const m: unknown = which === "onnxruntime-node"
    ? await import("onnxruntime-node")
    : await import("onnxruntime-web");
  return ((m as { default?: unknown }).default ?? m) as OrtModuleLike;
}
let ortNode: OrtModuleLike | undefined;

/** Runs the probe on one in-process provider; errors become an AuditResult, never a throw. */
export async function runInProcess(
  provider: "native" | "wasm",
  model: Uint8Array,
  feeds: Feeds,
): Promise<{ result: AuditResult; output?: Float32Array }> {
  const t0 = performance.now();
  try {
    let out: Float32Array;
    if (provider === "native") {
      const ort: OrtModuleLike = ortNode ??= await loadOrt("onnxruntime-node");
      out = await runOrt(ort, model, feeds, {
        executionProviders: ["cpu"],
        intraOpNumThreads: 1,
        interOpNumThreads: 1,
      });
    } else {
      let ort: OrtModuleLike | undefined = ortWeb;
      if (!ort) {
        ort = ortWeb = await loadOrt("onnxruntime-web");
        ort.env.wasm!.numThreads = 1;
      }
      out = await runOrt(ort, model, feeds, { executionProviders: ["wasm"] });
    }
    return { result: { provider, ok: true, ms: Math.round(performance.now() - t0) }, output: out };
  } catch (e) {
    const error = e instanceof Error ? e.message : String(e);
    return { result: { provider, ok: false, error, ...parseOrtError(error) } };
  }
}

/** What a browser audit needs: a function that runs the probe on one EP, or why it cannot. */
export interface BrowserAuditor {
  run(
    model: Uint8Array,
    feeds: Feeds,
    ep: "webgpu" | "webgpu-jsep",
  ): Promise<{ result: AuditResult; output?: Float32Array }>;
  close(): Promise<void>;
}

/** Audits one model on every provider; diffs against native (or WASM when native failed). */
export async function audit(
  model: Uint8Array,
  feeds: Feeds,
  browser: BrowserAuditor | string | null,
): Promise<{ results: AuditResult[]; reference?: Float32Array }> {
  const native = await runInProcess("native", model, feeds);
  const wasm = await runInProcess("wasm", model, feeds);
  const reference = native.output ?? wasm.output;
  const results: AuditResult[] = [native.result, wasm.result];
  if (wasm.output && native.output) wasm.result.maxAbsDiff = maxAbsDiff(wasm.output, native.output);
  for (const ep of ["webgpu", "webgpu-jsep"] as const) {
    if (typeof browser === "string" || browser === null) {
      results.push({ provider: ep, ok: false, skipped: browser ?? "not asked (--no-webgpu)" });
      continue;
    }
    const r = await browser.run(model, feeds, ep);
    if (r.output && reference) r.result.maxAbsDiff = maxAbsDiff(r.output, reference);
    results.push(r.result);
  }
  return { results, reference };
}

// ---------------------------------------------------------------------------------------------
// rewrites

export const REWRITES = ["convtranspose", "maxpool3d"] as const;

/** Whether Debian's python3 with the onnx package is here (the rewrites need it). */
export function pythonOnnxMissing(): string | null {
  try {
    const r = new Deno.Command(PYTHON, { args: ["-c", "import onnx, numpy"], stdout: "null", stderr: "null" })
      .outputSync();
    return r.success
      ? null
      : `${PYTHON} cannot import onnx and numpy (Debian packages "python3-onnx python3-numpy")`;
  } catch {
    return `${PYTHON} is not installed`;
  }
}

/** Runs one rewrite through the Python script; returns the new bytes and what it changed. */
export async function applyRewrite(
  model: Uint8Array,
  rewrite: string,
): Promise<{ bytes: Uint8Array; applied: RewriteResult[]; skipped: RewriteResult[] }> {
  const dir = await Deno.makeTempDir({ prefix: "edgeseg-rewrite-" });
  try {
    const src = join(dir, "in.onnx"), dst = join(dir, "out.onnx");
    await Deno.writeFile(src, model);
    const r = await new Deno.Command(PYTHON, { args: [REWRITE_SCRIPT, src, dst, rewrite] }).output();
    if (!r.success) {
      throw new EdgeSegError(
        "REWRITE_FAILED",
        `${rewrite}: ${new TextDecoder().decode(r.stderr).trim().split("\n").pop()}`,
      );
    }
    const report = JSON.parse(new TextDecoder().decode(r.stdout)) as {
      applied: RewriteResult[];
      skipped: RewriteResult[];
    };
    return {
      bytes: await Deno.readFile(dst),
      applied: report.applied.map((a) => ({ ...a, kept: false })),
      skipped: report.skipped.map((s) => ({ ...s, kept: false })),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

// ---------------------------------------------------------------------------------------------
// the whole tool

export interface PackageOptions {
  id: string;
  out: string;
  draft?: Record<string, unknown>;
  maxBytes?: number;
  rewrite?: boolean;
  /** the WebGPU auditor, or why there is none */
  browser: BrowserAuditor | string | null;
  log?: (line: string) => void;
}

/** Reads the model and its external data (within maxBytes), returning one self-contained ONNX. */
export async function readModel(
  path: string,
  maxBytes = DEFAULT_MAX_MODEL_BYTES,
): Promise<{ bytes: Uint8Array; externalData?: PackageReport["externalData"] }> {
  const stat = await Deno.stat(path).catch(() => null);
  if (!stat?.isFile) throw new PackageError("INPUT_MISSING", "model", `${path} is not a file`);
  let raw: Uint8Array = await Deno.readFile(path);
  readOnnxSignature(raw); // typed ONNX_INVALID for anything that is not an ONNX model
  const refs = findExternalData(raw);
  if (!refs.length) {
    if (raw.length > maxBytes) tooLarge("model", raw.length, maxBytes);
    return { bytes: raw };
  }
  const files = [...new Set(refs.map((r) => r.location))];
  let total = raw.length;
  for (const f of files) {
    const s = await Deno.stat(join(dirname(path), f)).catch(() => null);
    if (!s?.isFile) {
      throw new PackageError(
        "EXTERNAL_DATA_MISSING",
        "externalData",
        `${f} (named by the graph's initializers) is not beside ${path}`,
      );
    }
    total += s.size;
  }
  if (total > maxBytes) tooLarge("externalData", total, maxBytes);
  const graphBytes = raw.length;
  raw = inlineExternalData(raw, (loc) => Deno.readFileSync(join(dirname(path), loc)));
  return { bytes: raw, externalData: { files, tensors: refs.length, bytes: total - graphBytes } };
}

function tooLarge(field: string, bytes: number, max: number): never {
  const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
  throw new PackageError(
    "MODEL_TOO_LARGE",
    field,
    `the model with its external data is ${mib(bytes)}, over the ${mib(max)} limit: a package is one ONNX ` +
      `protobuf (2 GiB at most), a browser holds it twice while creating a session in a 4 GiB wasm32 heap, ` +
      `and WebGPU adapters cap one buffer at 1 GiB (raise --max-bytes only for CLI-only use)`,
  );
}

export async function buildPackage(modelPath: string, opts: PackageOptions): Promise<PackageReport> {
  const log = opts.log ?? (() => {});
  const file = `${opts.id}.onnx`;
  const { bytes: original, externalData } = await readModel(modelPath, opts.maxBytes);
  if (externalData) {
    log(`external data: ${externalData.tensors} tensors from ${externalData.files.join(", ")} inlined`);
  }
  const sig = readOnnxSignature(original);
  const drafted = draftManifest(sig, opts.id, file, opts.draft);
  drafted.files = { [file]: { sha256: "0".repeat(64), bytes: original.length } };
  const manifest = validateManifest(drafted);
  checkManifestAgainstOnnx(manifest, sig, file);
  const feeds = probeFeeds(manifest);

  const before = await audit(original, feeds, opts.browser);
  for (const r of before.results) log(`before rewrites: ${fmtAudit(r)}`);
  if (!before.reference) {
    const r = before.results[0];
    throw new PackageError(
      "MODEL_DOES_NOT_RUN",
      "model",
      `neither onnxruntime-node nor WASM runs the probe window: ${r.error}`,
    );
  }

  // rewrites, each kind kept only if the probe output stays within REWRITE_TOLERANCE on native and WASM
  let model = original;
  const rewrites: RewriteResult[] = [];
  if (opts.rewrite !== false) {
    const missing = pythonOnnxMissing();
    if (missing) log(`rewrites skipped: ${missing}`);
    for (const rw of missing ? [] : REWRITES) {
      const r = await applyRewrite(model, rw);
      rewrites.push(...r.skipped);
      if (!r.applied.length) continue;
      let diff = 0;
      for (const p of ["native", "wasm"] as const) {
        const a = await runInProcess(p, model, feeds);
        const b = await runInProcess(p, r.bytes, feeds);
        diff = Math.max(
          diff,
          a.output && b.output ? maxAbsDiff(a.output, b.output) : a.output ? Infinity : 0,
        );
      }
      const kept = diff <= REWRITE_TOLERANCE;
      for (const a of r.applied) rewrites.push({ ...a, kept, maxAbsDiff: diff });
      log(
        `rewrite ${rw}: ${r.applied.length} node(s), max abs diff ${diff.toExponential(2)} → ${
          kept ? "kept" : "dropped"
        }`,
      );
      if (kept) model = r.bytes;
    }
  }
  const after = model === original ? before : await audit(model, feeds, opts.browser);
  if (after !== before) { for (const r of after.results) log(`after rewrites: ${fmtAudit(r)}`); }

  const byName = new Map(after.results.map((r) => [r.provider, r]));
  const webgpu = byName.get("webgpu")!;
  let providers: ("webgpu" | "wasm")[] | undefined;
  if (!webgpu.skipped) {
    providers = [];
    const okWithin = (r: AuditResult, tol: number) =>
      r.ok && (r.maxAbsDiff === undefined || r.maxAbsDiff <= tol);
    if (okWithin(webgpu, 1e-3)) providers.push("webgpu");
    if (okWithin(byName.get("wasm")!, 1e-3)) providers.push("wasm");
    if (!providers.length) {
      throw new PackageError(
        "MODEL_DOES_NOT_RUN",
        "providers",
        "the probe window ran on no browser provider",
      );
    }
  } else if (!byName.get("wasm")!.ok) {
    throw new PackageError(
      "MODEL_DOES_NOT_RUN",
      "providers",
      `WASM cannot run the model: ${byName.get("wasm")!.error}`,
    );
  }

  // final manifest: real sha256/bytes, providers; validated and checked against the final graph
  const sha256 = await sha256Hex(model);
  const finalJson = { ...drafted, files: { [file]: { sha256, bytes: model.length } } } as Record<
    string,
    unknown
  >;
  if (providers) finalJson.providers = providers;
  else delete finalJson.providers;
  const finalManifest = validateManifest(finalJson);
  checkManifestAgainstOnnx(finalManifest, readOnnxSignature(model), file);

  // atomic write: a temp folder beside the destination, renamed into place
  const out = resolve(opts.out);
  await Deno.mkdir(dirname(out), { recursive: true });
  const tmp = await Deno.makeTempDir({ dir: dirname(out), prefix: `.${opts.id}.tmp-` });
  const report: PackageReport = {
    id: opts.id,
    out,
    file,
    sha256,
    bytes: model.length,
    ...(externalData ? { externalData } : {}),
    ...(model !== original ? { auditBefore: before.results } : {}),
    rewrites,
    audit: after.results,
    ...(providers ? { providers } : {}),
    manifest: finalManifest,
  };
  try {
    await Deno.writeFile(join(tmp, file), model);
    await Deno.writeTextFile(join(tmp, "manifest.json"), JSON.stringify(finalJson, null, 2) + "\n");
    await Deno.writeTextFile(
      join(tmp, "package-report.json"),
      JSON.stringify({ ...report, manifest: undefined, out: undefined }, null, 2) + "\n",
    );
    await Deno.remove(out, { recursive: true }).catch(() => {});
    await Deno.rename(tmp, out);
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
  return report;
}

export function fmtAudit(r: AuditResult): string {
  if (r.skipped) return `${r.provider}: skipped (${r.skipped})`;
  if (!r.ok) {
    return `${r.provider}: FAILED at ${r.op ?? "?"} node "${r.node ?? "?"}": ${
      (r.error ?? "").split("\n")[0].slice(0, 200)
    }`;
  }
  const d = r.maxAbsDiff === undefined ? "reference" : `max abs diff ${r.maxAbsDiff.toExponential(2)}`;
  return `${r.provider}: ok (${d}, ${r.ms ?? "?"} ms)`;
}

export { ManifestError };
