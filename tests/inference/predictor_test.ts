/** createPredictor and createSession against a fake onnxruntime module: batching, masks, ordering, probes. */
import assert from "node:assert/strict";
import { validateManifest } from "../../src/core/manifest.ts";
import { ManifestError, ProviderError } from "../../src/core/errors.ts";
import type { OrtModuleLike, OrtSessionLike, OrtTensorLike } from "../../src/inference/ort.ts";
import { createPredictor } from "../../src/inference/predictor.ts";
import { createSession } from "../../src/inference/session.ts";
import type { SessionHandle } from "../../src/inference/session.ts";

const manifestJson = JSON.parse(
  Deno.readTextFileSync(new URL("../fixtures/models/tiny-2d/manifest.json", import.meta.url)),
);

class FakeTensor implements OrtTensorLike {
  constructor(readonly type: string, readonly data: Float32Array, readonly dims: readonly number[]) {}
}

/** y[b, k, ...] = x[b, 0, ...] * (k + 1) + sum(mask[b]); records every call's feeds. */
function fakeOrt(opts: { batchFixed?: boolean; runFails?: string; delayMs?: number } = {}) {
  const calls: { input: number[]; mask: number[]; maskDims: number[] }[] = [];
  let active = 0, maxActive = 0;
  const session: OrtSessionLike = {
    inputNames: ["input", "mask"],
    outputNames: ["logits"],
    async run(feeds) {
      active++;
      maxActive = Math.max(maxActive, active);
      if (opts.delayMs) await new Promise((r) => setTimeout(r, opts.delayMs));
      active--;
      if (opts.runFails) throw new Error(opts.runFails);
      const x = feeds.input as FakeTensor, m = feeds.mask as FakeTensor;
      if (opts.batchFixed && x.dims[0] !== 1) throw new Error("fixed batch 1");
      calls.push({ input: [...x.dims], mask: Array.from(m.data), maskDims: [...m.dims] });
      const [b, , ...sp] = x.dims;
      const vox = sp.reduce((a, c) => a * c, 1);
      const perMask = m.data.length / b;
      const y = new Float32Array(b * 2 * vox);
      for (let i = 0; i < b; i++) {
        let ms = 0;
        for (let q = 0; q < perMask; q++) ms += m.data[i * perMask + q];
        for (let k = 0; k < 2; k++) {
          for (let v = 0; v < vox; v++) y[(i * 2 + k) * vox + v] = x.data[i * vox + v] * (k + 1) + ms;
        }
      }
      return { logits: new FakeTensor("float32", y, [b, 2, ...sp]) };
    },
    release: () => Promise.resolve(),
  };
  const ort: OrtModuleLike = {
    InferenceSession: { create: () => Promise.resolve(session) },
    Tensor: FakeTensor as unknown as OrtModuleLike["Tensor"],
    env: { wasm: {} },
  };
  return { ort, session, calls, maxActive: () => maxActive };
}

function handle(ort: OrtModuleLike, session: OrtSessionLike): SessionHandle {
  return { ort, session, provider: "wasm", failures: [], fallbackReasons: [] };
}

Deno.test("a fixed batch axis is served by one call per window, with the batch-1 mask reused", async () => {
  const j = structuredClone(manifestJson);
  j.inputs[0].shape[0] = 1;
  j.inputs[1].shape[0] = 1;
  j.outputs[0].shape[0] = 1;
  const m = validateManifest(j);
  const f = fakeOrt({ batchFixed: true });
  const predict = createPredictor(handle(f.ort, f.session), m);
  const x = new Float32Array(3 * 4).map((_, i) => i);
  const mask = new Float32Array([1, 0, 2, 0]);
  const y = await predict(x, [3, 1, 2, 2], undefined, { mask: { data: mask, shape: [1, 4, 1, 1] } });
  assert.equal(f.calls.length, 3);
  assert.deepEqual(f.calls.map((c) => c.input), [[1, 1, 2, 2], [1, 1, 2, 2], [1, 1, 2, 2]]);
  assert.deepEqual(f.calls[2].mask, [1, 0, 2, 0]);
  // window 2, channel 1: x * 2 + sum(mask) = 2 * x + 3
  assert.deepEqual(Array.from(y.subarray(2 * 8 + 4, 2 * 8 + 8)), [8, 9, 10, 11].map((v) => 2 * v + 3));
});

Deno.test("a dynamic batch axis gets one call with the mask repeated per window, and ones when no mask is given", async () => {
  const m = validateManifest(structuredClone(manifestJson));
  const f = fakeOrt();
  const predict = createPredictor(handle(f.ort, f.session), m);
  const x = new Float32Array(2 * 4);
  await predict(x, [2, 1, 2, 2], undefined, {
    mask: { data: new Float32Array([0, 2, 0, 2]), shape: [1, 4, 1, 1] },
  });
  assert.equal(f.calls.length, 1);
  assert.deepEqual(f.calls[0].maskDims, [2, 4, 1, 1]);
  assert.deepEqual(f.calls[0].mask, [0, 2, 0, 2, 0, 2, 0, 2]);
  await predict(x, [2, 1, 2, 2]);
  assert.deepEqual(f.calls[1].mask, new Array(8).fill(1));
});

Deno.test("concurrent predictor calls run one at a time on the session", async () => {
  const m = validateManifest(structuredClone(manifestJson));
  const f = fakeOrt({ delayMs: 5 });
  const predict = createPredictor(handle(f.ort, f.session), m);
  const x = new Float32Array(4);
  await Promise.all([1, 2, 3, 4].map(() => predict(x, [1, 1, 2, 2])));
  assert.equal(f.calls.length, 4);
  assert.equal(f.maxActive(), 1);
});

Deno.test("an output with the wrong shape is reported as a manifest mismatch", async () => {
  const j = structuredClone(manifestJson);
  j.outputs[0].shape[1] = 3;
  j.labels.push({ ...j.labels[0], value: 2, channel: 2, name: "Two" });
  const m = validateManifest(j);
  const f = fakeOrt();
  const predict = createPredictor(handle(f.ort, f.session), m);
  await assert.rejects(predict(new Float32Array(4), [1, 1, 2, 2]), (e) => {
    assert.ok(e instanceof ManifestError);
    assert.equal(e.code, "OUTPUT_SHAPE");
    assert.equal(e.expected, "[1, 3, 2, 2]");
    assert.equal(e.actual, "[1, 2, 2, 2]");
    return true;
  });
});

Deno.test("a GPU session whose test run fails falls back to WASM with the run's error as the reason", async () => {
  const m = validateManifest(structuredClone(manifestJson));
  const bad = fakeOrt({ runFails: "Only Conv2d or Conv1d are supported" });
  const good = fakeOrt();
  const h = await createSession(new Uint8Array(1), {
    providers: ["webgpu", "wasm"],
    loadOrt: (p) => Promise.resolve(p === "webgpu" ? bad.ort : good.ort),
    gpuLimits: () => Promise.resolve({ maxBufferSize: 1 << 30, maxStorageBufferBindingSize: 1 << 30 }),
    manifest: m,
    windowShape: [1, 1, 32, 32],
    numThreads: 3,
  });
  assert.equal(h.provider, "wasm");
  assert.match(h.fallbackReasons[0], /^webgpu: a test run failed .*Only Conv2d/);
  assert.equal(good.ort.env.wasm?.numThreads, 3, "WASM threads set before the session");
  await assert.rejects(
    createSession(new Uint8Array(1), { providers: [], loadOrt: () => Promise.resolve(good.ort) }),
    (e) => e instanceof ProviderError && e.failures[0].provider === "(none)",
  );
});
