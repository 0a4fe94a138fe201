/**
 * Step 4 of `deno task package`, the op audit: the probe window on onnxruntime-node (the reference),
 * onnxruntime-web WASM in this process and, through a `BrowserAuditor` (browser_audit.ts), WebGPU in
 * headless Chromium; each result names the node and op ORT failed at, or the difference from the
 * reference.
 */
import type { ModelManifest } from "../../core/types.ts";
import type { OrtModuleLike } from "../ort.ts";
import { windowShapeOf } from "../runtime.ts";
import type { AuditResult, BrowserAuditor, ProbeFeeds } from "./types.ts";

/** A deterministic, non-constant probe window (whole-extent axes at 64) and a mask of ones. */
export function probeFeeds(manifest: ModelManifest): ProbeFeeds {
  const shape = windowShapeOf(manifest, 1, 64);
  const n = shape.reduce((a, b) => a * b, 1);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.sin(0.01 * i) + 0.25 * Math.cos(0.37 * i);
  const feeds: ProbeFeeds = {
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

async function runOrt(
  ort: OrtModuleLike,
  model: Uint8Array,
  feeds: ProbeFeeds,
  options: Record<string, unknown>,
) {
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

async function loadOrt(which: "onnxruntime-node" | "onnxruntime-web"): Promise<OrtModuleLike> {
  const m: unknown = which === "onnxruntime-node"
    ? await import("onnxruntime-node")
    : await import("onnxruntime-web");
  return ((m as { default?: unknown }).default ?? m) as OrtModuleLike;
}

/** Each ORT build is loaded once per process (onnxruntime-web's WASM thread count is fixed at start). */
let ortNode: OrtModuleLike | undefined;
let ortWeb: OrtModuleLike | undefined;

/** Runs the probe on one in-process provider; errors become an AuditResult, never a throw. */
export async function runInProcess(
  provider: "native" | "wasm",
  model: Uint8Array,
  feeds: ProbeFeeds,
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

/** Audits one model on every provider; diffs against native (or WASM when native failed). */
export async function audit(
  model: Uint8Array,
  feeds: ProbeFeeds,
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

/** One line of the audit for people: ok with its difference, the failing node and op, or why skipped. */
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
