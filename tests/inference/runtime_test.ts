/**
 * Package loading, integrity, provider fallback and the Predictor in Deno, with parity against
 * onnxruntime-node (native) and PyTorch's recorded output for the generated tiny models.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  CancelledError,
  InputError,
  IntegrityError,
  ManifestError,
  ProviderError,
} from "../../src/core/errors.ts";
import { fileCache, folderReader, loadModel, openPackage } from "../../src/inference/deno.ts";
import { createNativeRuntime } from "../../src/inference/node_native.ts";
import { httpReader, loadPackage, memoryCache, selectVariant } from "../../src/inference/package.ts";
import type { OrtModuleLike } from "../../src/inference/ort.ts";
import { createRuntime } from "../../src/inference/runtime.ts";
import { createSession } from "../../src/inference/session.ts";

const FIXTURES = new URL("../fixtures/models/", import.meta.url).pathname;
// one thread: multi-threaded WASM in Deno was seen to hang (see defaultThreads in src/inference/deno.ts)
const THREADS = 1;

function refInput(shape: number[]): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = 0.5 + 0.5 * Math.sin(0.01 * i);
  return x;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

async function copyPackage(name: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "edgeseg-pkg-" });
  for await (const e of Deno.readDir(join(FIXTURES, name))) {
    if (e.isFile) await Deno.copyFile(join(FIXTURES, name, e.name), join(dir, e.name));
  }
  return dir;
}

function serveFolder(dir: string, tamper?: (name: string, bytes: Uint8Array) => Uint8Array) {
  const ac = new AbortController();
  const requests: string[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} },
    async (req) => {
      const name = decodeURIComponent(new URL(req.url).pathname.split("/").pop() ?? "");
      requests.push(name);
      try {
        let bytes: Uint8Array = await Deno.readFile(join(dir, name));
        if (tamper) bytes = tamper(name, bytes);
        return new Response(bytes as Uint8Array<ArrayBuffer>);
      } catch {
        return new Response("not found", { status: 404 });
      }
    },
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}/pkg/`,
    requests,
    close: async () => {
      ac.abort();
      await server.finished;
    },
  };
}

for (const name of ["tiny-2d", "tiny-2d-rgb", "tiny-sigmoid", "tiny-3d", "tiny-oct"]) {
  Deno.test(`${name} gives the same output through onnxruntime-web WASM in Deno, onnxruntime-node and PyTorch`, async () => {
    const ref = JSON.parse(await Deno.readTextFile(join(FIXTURES, name, "reference.json")));
    const shape: number[] = ref.input.shape;
    const x = refInput(shape);
    const { pkg, runtime } = await loadModel(join(FIXTURES, name), {
      numThreads: THREADS,
      loadMembers: false,
    });
    const native = await createNativeRuntime(pkg, THREADS);
    try {
      assert.equal(runtime.provider, "wasm");
      assert.equal(native.provider, "cpu");
      const yWasm = await runtime.members[0](x, shape);
      const yNode = await native.members[0](x, shape);
      const d = maxAbsDiff(yWasm, yNode);
      assert.ok(d <= 1e-5, `WASM vs native max abs diff ${d}`);
      let sum = 0;
      for (const v of yWasm) sum += v;
      assert.deepEqual(
        Array.from(yWasm.subarray(0, 16), (v) => Math.round(v * 1e4) / 1e4),
        ref.output.first.map((v: number) => Math.round(v * 1e4) / 1e4),
      );
      assert.ok(
        Math.abs(sum - ref.output.sum) <= 1e-3 * Math.max(1, Math.abs(ref.output.sum)),
        `sum ${sum} vs torch ${ref.output.sum}`,
      );
    } finally {
      await runtime.release();
      await native.release();
    }
  });
}

Deno.test("the predictor batches windows on a dynamic batch axis and matches single calls", async () => {
  // batching on: in Deno it is off by default with WASM threads (they hang on batch > 1 there)
  const { runtime } = await loadModel(join(FIXTURES, "tiny-2d"), {
    numThreads: THREADS,
    loadMembers: false,
    maxCallBatch: 8,
  });
  try {
    const one = [1, 1, 32, 32];
    const a = refInput(one), b = a.map((v) => 1 - v), c = a.map((v) => v * 0.5);
    const batch = new Float32Array(a.length * 3);
    batch.set(a, 0);
    batch.set(b, a.length);
    batch.set(c, 2 * a.length);
    const before = runtime.stats.runs;
    const y = await runtime.members[0](batch, [3, 1, 32, 32]);
    assert.equal(runtime.stats.runs - before, 1, "one call for the whole batch");
    const split = await loadModel(join(FIXTURES, "tiny-2d"), {
      numThreads: THREADS,
      loadMembers: false,
      maxCallBatch: 1,
    });
    const before2 = split.runtime.stats.runs;
    const y2 = await split.runtime.members[0](batch, [3, 1, 32, 32]);
    assert.equal(split.runtime.stats.runs - before2, 3, "maxCallBatch 1: one call per window");
    assert.ok(maxAbsDiff(y, y2) <= 1e-6);
    await split.runtime.release();
    const per = y.length / 3;
    for (const [i, x] of [a, b, c].entries()) {
      const yi = await runtime.members[0](x, one);
      assert.ok(maxAbsDiff(y.subarray(i * per, (i + 1) * per), yi) <= 1e-6);
    }
  } finally {
    await runtime.release();
  }
});

Deno.test("an MC dropout mask changes the output, and the same mask reproduces it", async () => {
  const { pkg, runtime } = await loadModel(join(FIXTURES, "tiny-2d"), {
    numThreads: THREADS,
    loadMembers: false,
  });
  try {
    const shape = [2, 1, 16, 16];
    const x = refInput(shape);
    const mc = pkg.manifest.uncertainty!.mcDropout!;
    const ones = await runtime.members[0](x, shape);
    const m = new Float32Array([0, 1 / 0.75, 1 / 0.75, 0]);
    const y1 = await runtime.members[0](x, shape, undefined, { [mc.input]: { data: m, shape: mc.shape } });
    const y2 = await runtime.members[0](x, shape, undefined, {
      [mc.input]: { data: m.slice(), shape: mc.shape },
    });
    assert.ok(maxAbsDiff(ones, y1) > 1e-4, "a dropout mask must change the logits");
    assert.equal(maxAbsDiff(y1, y2), 0);
  } finally {
    await runtime.release();
  }
});

Deno.test("the predictor refuses unknown extra inputs and a cancelled signal", async () => {
  const { runtime } = await loadModel(join(FIXTURES, "tiny-2d"), { numThreads: THREADS, loadMembers: false });
  try {
    const shape = [1, 1, 8, 8];
    const x = refInput(shape);
    await assert.rejects(
      runtime.members[0](x, shape, undefined, { seed: { data: new Float32Array(1), shape: [1] } }),
      (e) => e instanceof InputError && e.code === "UNKNOWN_INPUT",
    );
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(runtime.members[0](x, shape, ac.signal), (e) => e instanceof CancelledError);
    await assert.rejects(
      runtime.members[0](x, [1, 1, 8, 9]),
      (e) => e instanceof InputError && e.code === "TENSOR_SIZE",
    );
  } finally {
    await runtime.release();
  }
});

Deno.test("ensemble members load and run as separate predictors with different weights", async () => {
  const { runtime } = await loadModel(join(FIXTURES, "tiny-2d"), { numThreads: THREADS });
  try {
    assert.equal(runtime.members.length, 2);
    assert.equal(runtime.sha256s.length, 2);
    const shape = [1, 1, 16, 16];
    const x = refInput(shape);
    const d = maxAbsDiff(await runtime.members[0](x, shape), await runtime.members[1](x, shape));
    assert.ok(d > 1e-4, `members differ (${d})`);
  } finally {
    await runtime.release();
  }
});

Deno.test("the int8 variant is chosen by id or precision and stays close to fp32", async () => {
  const fp32 = await loadModel(join(FIXTURES, "tiny-2d"), { numThreads: THREADS, loadMembers: false });
  const int8 = await loadModel(join(FIXTURES, "tiny-2d"), {
    numThreads: THREADS,
    loadMembers: false,
    precision: "int8",
  });
  try {
    assert.equal(int8.runtime.precision, "int8");
    assert.equal(int8.runtime.variant, "int8");
    assert.equal(int8.pkg.main.file, "tiny-2d-int8.onnx");
    assert.equal(selectVariant(fp32.pkg.manifest, { variant: "int8" })?.file, "tiny-2d-int8.onnx");
    assert.equal(selectVariant(fp32.pkg.manifest, {}), undefined);
    assert.throws(
      () => selectVariant(fp32.pkg.manifest, { variant: "siemens" }),
      (e) => e instanceof ManifestError && e.code === "UNKNOWN_VARIANT",
    );
    const shape = [1, 1, 16, 16];
    const x = refInput(shape);
    const d = maxAbsDiff(await fp32.runtime.members[0](x, shape), await int8.runtime.members[0](x, shape));
    assert.ok(d < 0.05, `int8 vs fp32 max abs diff ${d}`);
  } finally {
    await fp32.runtime.release();
    await int8.runtime.release();
  }
});

Deno.test("a variant restricted to a scanner manufacturer is picked from the input's context", async () => {
  const { pkg } = await loadModel(join(FIXTURES, "tiny-2d"), { numThreads: THREADS, loadMembers: false })
    .then(async (r) => {
      await r.runtime.release();
      return r;
    });
  const m = structuredClone(pkg.manifest);
  m.variants!.push({
    id: "siemens",
    file: "tiny-2d-member2.onnx",
    precision: "fp32",
    when: { manufacturer: "SIEMENS" },
  });
  assert.equal(selectVariant(m, { context: { Manufacturer: "Siemens Healthineers" } })?.id, "siemens");
  assert.equal(selectVariant(m, { context: { manufacturer: "GE MEDICAL SYSTEMS" } }), undefined);
});

Deno.test("a model file whose sha256 does not match the manifest is refused with IntegrityError", async () => {
  const dir = await copyPackage("tiny-2d");
  try {
    const path = join(dir, "tiny-2d.onnx");
    const bytes = await Deno.readFile(path);
    bytes[bytes.length - 5] ^= 0xff; // same size, different content
    await Deno.writeFile(path, bytes);
    await assert.rejects(
      openPackage(dir),
      (e) =>
        e instanceof IntegrityError && e.code === "SHA256_MISMATCH" && e.message.includes("tiny-2d.onnx"),
    );
    await Deno.writeFile(path, bytes.subarray(0, 100));
    await assert.rejects(openPackage(dir), (e) => e instanceof IntegrityError && e.code === "SIZE_MISMATCH");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a manifest that does not match its ONNX is refused when the package loads", async () => {
  const dir = await copyPackage("tiny-2d");
  try {
    const mpath = join(dir, "manifest.json");
    const m = JSON.parse(await Deno.readTextFile(mpath));
    m.outputs[0].shape[1] = 3;
    m.labels.push({ ...m.labels[0], value: 2, channel: 2, name: "Other" });
    await Deno.writeTextFile(mpath, JSON.stringify(m));
    await assert.rejects(openPackage(dir), (e) => {
      assert.ok(e instanceof ManifestError);
      assert.equal(e.code, "MANIFEST_ONNX_MISMATCH");
      assert.equal(e.expected, "3");
      assert.ok(e.actual?.startsWith("2"), String(e.actual));
      return true;
    });
    await Deno.writeTextFile(mpath, "{ not json");
    await assert.rejects(openPackage(dir), (e) => e instanceof ManifestError && e.code === "MANIFEST_JSON");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("no usable execution provider gives a ProviderError listing each provider's failure", async () => {
  const pkg = await openPackage(join(FIXTURES, "tiny-2d"), { loadMembers: false });
  // Deno has no WebNN; its onnxruntime-web build has no WebGPU backend; the fake wasm build cannot load
  const failingLoader = (p: string) =>
    p === "wasm"
      ? Promise.reject(new Error("wasm file missing"))
      : import("onnxruntime-web") as Promise<unknown> as Promise<OrtModuleLike>;
  await assert.rejects(
    createRuntime(pkg, {
      providers: ["webgpu", "webnn", "wasm"],
      loadOrt: failingLoader,
      gpuLimits: () => Promise.resolve(null),
    }),
    (e) => {
      assert.ok(e instanceof ProviderError);
      assert.equal(e.code, "NO_PROVIDER");
      assert.deepEqual(e.failures.map((f) => f.provider), ["webgpu", "webnn", "wasm"]);
      assert.match(e.failures[0].reason, /adapter|WebGPU/);
      assert.match(e.failures[1].reason, /navigator\.ml/);
      assert.match(e.failures[2].reason, /wasm file missing/);
      assert.ok(e.message.includes("webgpu:") && e.message.includes("wasm:"));
      return true;
    },
  );
});

Deno.test("a failing provider falls back to the next with its reason recorded", async () => {
  const pkg = await openPackage(join(FIXTURES, "tiny-2d"), { loadMembers: false });
  const limits = { maxBufferSize: 1 << 30, maxStorageBufferBindingSize: 1 << 30 };
  // an adapter exists, but this onnxruntime-web build cannot create a webgpu session
  const rt = await loadModel(join(FIXTURES, "tiny-2d"), {
    providers: ["webgpu", "wasm"],
    gpuLimits: () => Promise.resolve(limits),
    loadMembers: false,
    numThreads: THREADS,
  });
  try {
    assert.equal(rt.runtime.provider, "wasm");
    assert.equal(rt.runtime.fallbackReasons.length, 1);
    assert.match(rt.runtime.fallbackReasons[0], /^webgpu: session creation failed/);
  } finally {
    await rt.runtime.release();
  }
  // the pre-flight refuses a window that does not fit the adapter's buffers, before any session exists
  let created = 0;
  const countingLoader = async (_provider: string) => {
    created++;
    return (await import("onnxruntime-web")) as unknown as OrtModuleLike;
  };
  await assert.rejects(
    createSession(pkg.main.bytes, {
      providers: ["webgpu"],
      loadOrt: countingLoader,
      manifest: pkg.manifest,
      windowShape: [4, 1, 4096, 4096],
      gpuLimits: () => Promise.resolve({ maxBufferSize: 256 << 20, maxStorageBufferBindingSize: 128 << 20 }),
    }),
    (e) =>
      e instanceof ProviderError &&
      /MiB per tensor but the adapter allows 128 MiB/.test(e.failures[0].reason),
  );
  assert.equal(created, 0, "no ORT build loaded for a provider refused by the pre-flight");
});

Deno.test("packages from a URL report download progress, are cached, and the cache is re-verified", async () => {
  const dir = await copyPackage("tiny-2d");
  const srv = serveFolder(dir);
  const cacheDir = await Deno.makeTempDir({ prefix: "edgeseg-cache-" });
  try {
    const cache = fileCache(cacheDir);
    const progress: number[] = [];
    const first = await loadPackage(httpReader(srv.url), {
      cache,
      loadMembers: false,
      onProgress: (p) => p.file === "tiny-2d.onnx" && progress.push(p.loadedBytes),
    });
    assert.equal(first.main.fromCache, false);
    assert.equal(progress.at(-1), first.manifest.files["tiny-2d.onnx"].bytes);
    assert.ok(progress.every((v, i) => i === 0 || v >= progress[i - 1]));
    const cachedPath = join(cacheDir, `${first.main.sha256}.onnx`);
    assert.ok((await Deno.stat(cachedPath)).isFile);

    srv.requests.length = 0;
    const second = await loadPackage(httpReader(srv.url), { cache, loadMembers: false });
    assert.equal(second.main.fromCache, true);
    assert.deepEqual(srv.requests, ["manifest.json"], "the model came from the cache");

    // a damaged cache entry is detected, dropped and downloaded again
    const bytes = await Deno.readFile(cachedPath);
    bytes[200] ^= 0x55;
    await Deno.writeFile(cachedPath, bytes);
    const third = await loadPackage(httpReader(srv.url), { cache, loadMembers: false });
    assert.equal(third.main.fromCache, false);
    assert.equal(third.cacheRejected.length, 1);
    assert.match(third.cacheRejected[0], /sha256/);
    assert.deepEqual(await Deno.readFile(cachedPath), await Deno.readFile(join(dir, "tiny-2d.onnx")));
  } finally {
    await srv.close();
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(cacheDir, { recursive: true });
  }
});

Deno.test("a server that sends tampered model bytes is refused and nothing is cached", async () => {
  const dir = await copyPackage("tiny-2d");
  const srv = serveFolder(dir, (name, bytes) => {
    if (name.endsWith(".onnx")) bytes[bytes.length - 1] ^= 1;
    return bytes;
  });
  try {
    const cache = memoryCache();
    await assert.rejects(
      loadPackage(httpReader(srv.url), { cache, loadMembers: false }),
      (e) => e instanceof IntegrityError && e.code === "SHA256_MISMATCH",
    );
    assert.equal(cache.entries.size, 0);
    await assert.rejects(
      loadPackage(httpReader(srv.url.replace("/pkg/", "/missing/x/")), { cache }),
      (e) => e instanceof IntegrityError,
    );
  } finally {
    await srv.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a local folder is read without a cache", async () => {
  const pkg = await loadPackage(folderReader(join(FIXTURES, "tiny-3d")), { cache: memoryCache() });
  assert.equal(pkg.main.fromCache, false);
  assert.equal(pkg.manifest.spatial.mode, "patch3d");
  assert.deepEqual(pkg.main.signature.inputs[0].shape, ["batch", 1, "depth", "height", "width"]);
});
