/**
 * The WebGPU half of the op audit: headless Debian Chromium (playwright-core, `--enable-unsafe-webgpu`,
 * SwiftShader on a GPU-less machine) loads onnxruntime-web from a small local COOP/COEP server, as the
 * inference browser tests do, creates a session on one WebGPU EP and runs the probe window:
 *   webgpu      → ort.webgpu.min.mjs, the native WebGPU EP EdgeSeg ships (src/inference/browser.ts);
 *   webgpu-jsep → ort.min.mjs, the JSEP EP (the default `onnxruntime-web` import elsewhere).
 * SwiftShader is ~100× slower than WASM: correctness only, never timing.
 */
import { HTML, readServed, startIsolatedServer } from "./isolated_server.ts";
import { join } from "node:path";
import { CHROMIUM, chromiumArgs } from "../cli/chromium.ts";
import { parseOrtError } from "./package_tool/audit.ts";
import type { AuditResult, BrowserAuditor } from "./package_tool/types.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const BUNDLE = { "webgpu": "ort.webgpu.min.mjs", "webgpu-jsep": "ort.min.mjs" } as const;

export async function startBrowserAuditor(): Promise<BrowserAuditor> {
  const { chromium } = await import("playwright-core");
  const models = new Map<string, Uint8Array>();
  const ortDir = join(ROOT, "node_modules", "onnxruntime-web", "dist");
  const server = startIsolatedServer((path) => {
    if (path === "/") {
      return { body: "<!doctype html><title>edgeseg package audit</title>", type: HTML };
    }
    if (path.startsWith("/model/") && models.has(path.slice(7))) {
      return { body: models.get(path.slice(7)) as Uint8Array<ArrayBuffer>, type: "application/octet-stream" };
    }
    const name = path.startsWith("/ort/") ? path.slice(5) : "";
    return /^[\w.-]+\.(mjs|wasm)$/.test(name) ? readServed(join(ortDir, name)) : undefined;
  });
  const origin = server.origin;
  const udd = await Deno.makeTempDir({ prefix: "edgeseg-audit-chromium-" });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    ignoreDefaultArgs: true,
    headless: true,
    args: chromiumArgs(udd, { webgpu: true, extra: ["--no-startup-window"] }),
  });
  let n = 0;
  return {
    async run(model, feeds, ep) {
      const key = `m${n++}.onnx`;
      models.set(key, model);
      const page = await browser.newPage();
      const t0 = performance.now();
      try {
        await page.goto(`${origin}/`);
        const plain = Object.fromEntries(
          Object.entries(feeds).map(([k, v]) => [k, { data: Array.from(v.data), dims: v.dims }]),
        );
        const r = await page.evaluate(async ([bundle, url, feeds]) => {
          try {
            // deno-lint-ignore no-explicit-any
            const ort: any = await import(`/ort/${bundle}`);
            ort.env.wasm.wasmPaths = "/ort/";
            ort.env.wasm.numThreads = 1;
            const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
            if (!gpu || !(await gpu.requestAdapter())) return { ok: false, error: "no WebGPU adapter" };
            const buf = new Uint8Array(await (await fetch(url)).arrayBuffer());
            const s = await ort.InferenceSession.create(buf, { executionProviders: ["webgpu"] });
            const input: Record<string, unknown> = {};
            for (const [k, v] of Object.entries(feeds)) {
              input[k] = new ort.Tensor("float32", Float32Array.from(v.data), v.dims);
            }
            const out = await s.run(input);
            const data = Array.from(out[s.outputNames[0]].data as Float32Array);
            await s.release();
            return { ok: true, data };
          } catch (e) {
            return { ok: false, error: e instanceof Error ? e.message : String(e) };
          }
        }, [BUNDLE[ep], `/model/${key}`, plain] as const);
        const ms = Math.round(performance.now() - t0);
        if (!r.ok) {
          const error = r.error ?? "unknown error";
          return { result: { provider: ep, ok: false, error, ...parseOrtError(error), ms } as AuditResult };
        }
        return { result: { provider: ep, ok: true, ms }, output: Float32Array.from(r.data!) };
      } finally {
        models.delete(key);
        await page.close();
      }
    },
    async close() {
      await browser.close().catch(() => {});
      await server.close();
      await Deno.remove(udd, { recursive: true }).catch(() => {});
    },
  };
}
