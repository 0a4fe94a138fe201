/**
 * Step 3 of `deno task package`: exact rewrites for patterns the WebGPU EPs cannot run
 * (src/inference/onnx_rewrite.py, Debian's python3 with onnx), each kept only when the probe window
 * gives the same output as before on onnxruntime-node and WASM.
 */
import { join } from "node:path";
import { EdgeSegError } from "../../core/errors.ts";
import { maxAbsDiff, runInProcess } from "./audit.ts";
import type { ProbeFeeds, RewriteResult } from "./types.ts";

/** Max abs difference a rewrite may introduce on the probe before it is dropped. */
export const REWRITE_TOLERANCE = 1e-4;

export const PYTHON = "/usr/bin/python3";
const REWRITE_SCRIPT = new URL("../onnx_rewrite.py", import.meta.url).pathname;

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

/**
 * Applies every rewrite kind in turn, keeping each only if the probe output stays within
 * REWRITE_TOLERANCE on native and WASM; returns the model with the kept ones and what each did.
 */
export async function applyKeptRewrites(
  original: Uint8Array,
  feeds: ProbeFeeds,
  log: (line: string) => void,
): Promise<{ model: Uint8Array; rewrites: RewriteResult[] }> {
  let model = original;
  const rewrites: RewriteResult[] = [];
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
  return { model, rewrites };
}
