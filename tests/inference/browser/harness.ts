/**
 * Page-side harness for tests/inference/browser_test.ts: bundled with esbuild, loaded by index.html,
 * exposes `edgesegHarness` for page.evaluate. Runs src/inference/browser.ts as the extension would.
 */
import { browserCache, sha256Hex } from "../../../src/inference/package.ts";
import { browserCapabilities, loadBrowserModel } from "../../../src/inference/browser.ts";
import { requestTransferables, serializeError } from "../../../src/inference/protocol.ts";
import type { RunRequest, WorkerResponse } from "../../../src/inference/protocol.ts";
import { makeChestPhantom, makeTestVolume } from "./volume.ts";
import type { ExecutionProvider } from "../../../src/core/types.ts";

function refInput(shape: number[]): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = 0.5 + 0.5 * Math.sin(0.01 * i);
  return x;
}

async function run(modelUrl: string, providers: ExecutionProvider[], shape: number[], useCache = false) {
  try {
    const t0 = performance.now();
    const { pkg, runtime } = await loadBrowserModel(modelUrl, { providers, useCache, loadMembers: false });
    const loadMs = performance.now() - t0;
    const y = await runtime.members[0](refInput(shape), shape);
    const out = {
      ok: true as const,
      provider: runtime.provider,
      fallbackReasons: runtime.fallbackReasons,
      threads: runtime.sessions[0].numThreads ?? null,
      gpu: runtime.sessions[0].gpu?.description ?? null,
      fromCache: pkg.main.fromCache,
      cacheRejected: pkg.cacheRejected,
      sha256: pkg.main.sha256,
      loadMs,
      output: Array.from(y),
    };
    await runtime.release();
    return out;
  } catch (e) {
    return { ok: false as const, error: serializeError(e) };
  }
}

/** Overwrites a cached model with damaged bytes, as a corrupted disk cache would look. */
async function corruptCache(sha256: string) {
  const cache = browserCache();
  const bytes = await cache.get(sha256);
  if (!bytes) return false;
  bytes[bytes.length >> 1] ^= 0xff;
  await cache.put(sha256, bytes);
  return (await sha256Hex((await cache.get(sha256))!)) !== sha256;
}

/** Runs segment() in the inference Worker through protocol.ts; optionally cancels right after posting. */
function runWorker(modelUrl: string, dims: [number, number, number], cancel = false, chest = false) {
  const worker = new Worker("/harness/worker.js", { type: "module" });
  const req: RunRequest = {
    type: "run",
    id: "run-1",
    volume: chest ? makeChestPhantom() : makeTestVolume(dims),
    modelUrl,
    providers: ["wasm"],
    options: {},
  };
  const phases = new Set<string>();
  const inferenceTotals = new Set<number>();
  return new Promise((resolve) => {
    worker.onmessage = (ev: MessageEvent<WorkerResponse>) => {
      const m = ev.data;
      if (m.type === "progress") {
        phases.add(m.progress.phase);
        if (m.progress.phase === "inference") inferenceTotals.add(m.progress.total);
      } else if (m.type === "result") {
        resolve({
          ok: true,
          labelmap: Array.from(m.result.labelmap.data),
          labelmapType: m.result.labelmap.data.constructor.name,
          provider: m.result.provenance.provider,
          windows: m.result.provenance.windows,
          roi: m.result.provenance.roi,
          inferenceTotals: [...inferenceTotals],
          phases: [...phases],
          volumeDetached: req.volume.data.byteLength === 0,
        });
        worker.terminate();
      } else if (m.type === "error") {
        resolve({ ok: false, error: m.error, phases: [...phases] });
        worker.terminate();
      }
    };
    worker.onerror = (ev) =>
      resolve({ ok: false, error: { name: "WorkerError", code: "WORKER", message: ev.message } });
    worker.postMessage(req, requestTransferables(req));
    if (cancel) worker.postMessage({ type: "cancel", id: "run-1" });
  });
}

(globalThis as Record<string, unknown>).edgesegHarness = {
  run,
  runWorker,
  corruptCache,
  capabilities: browserCapabilities,
  crossOriginIsolated: () => (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true,
};
(globalThis as Record<string, unknown>).edgesegReady = true;
