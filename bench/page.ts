/**
 * Page side of `deno task bench`'s Chromium sections (bundled into bench/tmp/page.js by src/cli/bench.ts):
 * loads a model package through src/inference/browser.ts with a given provider and WASM thread count
 * and times the Predictor. One page per thread count: ORT fixes its threads when its WASM starts.
 * `open` loads a model and warms it up, `once` times one call, so the bench can interleave a browser
 * call with a native one (A B A B …); `bench` times `iters` calls in a row.
 */
import { browserOrtLoader, loadBrowserModel } from "../src/inference/browser.ts";
import { serializeError } from "../src/inference/protocol.ts";
import type { ExecutionProvider } from "../src/core/types.ts";

/**
 * Loads the package (or one of its variants) on one provider and thread count, with a deterministic input
 * of `shape`.
 */
async function load(
  modelUrl: string,
  provider: ExecutionProvider,
  threads: number,
  shape: number[],
  variant?: string,
) {
  const { runtime } = await loadBrowserModel(modelUrl, {
    variant,
    providers: [provider],
    loadOrt: browserOrtLoader("/edgeseg/ort/", threads),
    numThreads: threads,
    useCache: false,
    loadMembers: false,
    probe: false,
  });
  const n = shape.reduce((a, b) => a * b, 1);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.sin(i * 0.001);
  return { runtime, x };
}

/** What the bench reports about the session that ran. */
function sessionInfo(runtime: Awaited<ReturnType<typeof load>>["runtime"]) {
  return {
    provider: runtime.provider,
    threads: runtime.sessions[0].numThreads ?? null,
    adapter: runtime.sessions[0].gpu?.description ?? null,
  };
}

async function bench(modelUrl: string, provider: ExecutionProvider, threads: number, shape: number[], iters: number) {
  try {
    const { runtime, x } = await load(modelUrl, provider, threads, shape);
    await runtime.members[0](x, shape); // warm-up: shader compilation, first allocation
    const times: number[] = [];
    for (let i = 0; i < iters; i++) {
      const t0 = performance.now();
      await runtime.members[0](x, shape);
      times.push(performance.now() - t0);
    }
    const out = { ok: true, ...sessionInfo(runtime), times };
    await runtime.release();
    return out;
  } catch (e) {
    return { ok: false, error: serializeError(e) };
  }
}

let opened: { run: (x: Float32Array, shape: number[]) => Promise<unknown>; x: Float32Array; shape: number[]; release: () => Promise<void> } | null = null;

async function open(
  modelUrl: string,
  provider: ExecutionProvider,
  threads: number,
  shape: number[],
  variant?: string,
) {
  try {
    const { runtime, x } = await load(modelUrl, provider, threads, shape, variant);
    await runtime.members[0](x, shape); // warm-up
    opened = { run: runtime.members[0], x, shape, release: () => runtime.release() };
    return { ok: true, ...sessionInfo(runtime) };
  } catch (e) {
    return { ok: false, error: serializeError(e) };
  }
}

async function once(): Promise<number> {
  if (!opened) throw new Error("open() first");
  const t0 = performance.now();
  await opened.run(opened.x, opened.shape);
  return performance.now() - t0;
}

async function close() {
  await opened?.release();
  opened = null;
}

async function adapter() {
  const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<{ info?: Record<string, unknown> } | null> } }).gpu;
  const a = gpu ? await gpu.requestAdapter() : null;
  return a ? { vendor: a.info?.vendor, architecture: a.info?.architecture, isFallbackAdapter: a.info?.isFallbackAdapter } : null;
}

(globalThis as Record<string, unknown>).edgesegBench = { bench, adapter, open, once, close };
(globalThis as Record<string, unknown>).edgesegReady = true;
