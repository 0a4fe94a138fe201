/**
 * A GPU device lost mid-run, against fake onnxruntime modules: the runtime moves to WASM once, redoes
 * the failed window there and records why; without WASM among the chosen providers it ends with a
 * clear DeviceLostError; a device loss that leaves run() pending for ever still ends the call.
 */
import assert from "node:assert/strict";
import { validateManifest } from "../../src/core/manifest.ts";
import type { ModelManifest } from "../../src/core/types.ts";
import type { OrtModuleLike, OrtSessionLike, OrtTensorLike } from "../../src/inference/ort.ts";
import { DeviceLostError } from "../../src/inference/predictor.ts";
import { createRuntime } from "../../src/inference/runtime.ts";
import type { LoadedFile, ModelPackage } from "../../src/inference/package.ts";

const manifest: ModelManifest = validateManifest(
  JSON.parse(Deno.readTextFileSync(new URL("../fixtures/models/tiny-2d/manifest.json", import.meta.url))),
);

class FakeTensor implements OrtTensorLike {
  constructor(readonly type: string, readonly data: Float32Array, readonly dims: readonly number[]) {}
}

/**
 * An ORT module whose sessions answer y[k] = x * (k + 1) + offset. With `gpu`, it owns a device whose
 * `destroy()` settles `lost`; after that, run() rejects (or, with `hangWhenLost`, never settles).
 */
function fakeOrt(offset: number, gpu?: { hangWhenLost?: boolean }) {
  let lost = false;
  let signalLost: (info: { reason: string; message: string }) => void = () => {};
  const device = {
    lost: new Promise<{ reason: string; message: string }>((r) => (signalLost = r)),
    destroy() {
      lost = true;
      signalLost({ reason: "destroyed", message: "Device was destroyed." });
    },
  };
  let runs = 0;
  const session: OrtSessionLike = {
    inputNames: ["input", "mask"],
    outputNames: ["logits"],
    run(feeds) {
      if (lost) {
        return gpu?.hangWhenLost ? new Promise(() => {}) : Promise.reject(new Error("GPU device lost"));
      }
      runs++;
      const x = feeds.input as FakeTensor;
      const [b, , ...sp] = x.dims;
      const vox = sp.reduce((a, c) => a * c, 1);
      const y = new Float32Array(b * 2 * vox);
      for (let i = 0; i < b; i++) {
        for (let k = 0; k < 2; k++) {
          for (let v = 0; v < vox; v++) y[(i * 2 + k) * vox + v] = x.data[i * vox + v] * (k + 1) + offset;
        }
      }
      return Promise.resolve({ logits: new FakeTensor("float32", y, [b, 2, ...sp]) });
    },
    release: () => Promise.resolve(),
  };
  const ort: OrtModuleLike = {
    InferenceSession: { create: () => Promise.resolve(session) },
    Tensor: FakeTensor as unknown as OrtModuleLike["Tensor"],
    env: gpu ? { webgpu: { device } } : { wasm: {} },
  };
  return { ort, device, runs: () => runs };
}

function fakePackage(): ModelPackage {
  const file = { file: "tiny-2d.onnx", bytes: new Uint8Array(1), sha256: "0".repeat(64) } as LoadedFile;
  return { manifest, location: "fake", main: file, members: [], precision: "fp32", cacheRejected: [] };
}

const limits = () => Promise.resolve({ maxBufferSize: 1 << 30, maxStorageBufferBindingSize: 1 << 30 });

Deno.test("a WebGPU device lost after a window: the runtime moves to WASM, redoes the window and says why", async () => {
  const gpu = fakeOrt(0, {}), cpu = fakeOrt(0);
  const rt = await createRuntime(fakePackage(), {
    providers: ["webgpu", "wasm"],
    loadOrt: (p) => Promise.resolve(p === "webgpu" ? gpu.ort : cpu.ort),
    gpuLimits: limits,
  });
  assert.equal(rt.provider, "webgpu");
  const x = new Float32Array([1, 2, 3, 4]);
  const first = await rt.members[0](x, [1, 1, 2, 2]);
  gpu.device.destroy();
  const second = await rt.members[0](x, [1, 1, 2, 2]);
  assert.deepEqual(Array.from(second), Array.from(first), "the redone window gives the same answer");
  assert.equal(rt.provider, "wasm");
  assert.equal(rt.sessions[0].provider, "wasm");
  assert.equal(cpu.runs(), 1, "the failed window ran again on WASM");
  assert.equal(rt.fallbackReasons.length, 1);
  assert.match(
    rt.fallbackReasons[0],
    /^webgpu: .*lost.* after 1 window; the remaining windows ran on WASM$/,
  );
  await rt.members[0](x, [1, 1, 2, 2]);
  assert.equal(cpu.runs(), 2, "later windows stay on WASM");
  assert.equal(rt.fallbackReasons.length, 1, "the switch happens once");
});

Deno.test("a lost device that leaves run() pending still ends the call, and it finishes on WASM", async () => {
  const gpu = fakeOrt(0, { hangWhenLost: true }), cpu = fakeOrt(0);
  const rt = await createRuntime(fakePackage(), {
    providers: ["webgpu", "webnn", "wasm"],
    loadOrt: (p) => Promise.resolve(p === "webgpu" ? gpu.ort : cpu.ort),
    gpuLimits: limits,
  });
  gpu.device.destroy();
  const y = await rt.members[0](new Float32Array(4), [1, 1, 2, 2]);
  assert.equal(y.length, 8);
  assert.equal(rt.provider, "wasm");
  assert.match(rt.fallbackReasons.at(-1)!, /WebGPU device was lost \(destroyed: Device was destroyed\.\)/);
});

Deno.test("with WebGPU chosen alone, a lost device ends the run with a clear DeviceLostError", async () => {
  const gpu = fakeOrt(0, {});
  const rt = await createRuntime(fakePackage(), {
    providers: ["webgpu"],
    loadOrt: () => Promise.resolve(gpu.ort),
    gpuLimits: limits,
  });
  gpu.device.destroy();
  await assert.rejects(rt.members[0](new Float32Array(4), [1, 1, 2, 2]), (e) => {
    assert.ok(e instanceof DeviceLostError);
    assert.equal(e.code, "GPU_DEVICE_LOST");
    assert.match(e.message, /webgpu failed mid-run .*WASM was not among the chosen devices \(webgpu\)/);
    return true;
  });
  assert.equal(rt.provider, "webgpu", "nothing was switched");
});

Deno.test("an error on WASM itself is not retried", async () => {
  const cpu = fakeOrt(0, {});
  // a WASM-only runtime whose session fails: the error goes to the caller unchanged
  const rt = await createRuntime(fakePackage(), {
    providers: ["wasm"],
    loadOrt: () => Promise.resolve({ ...cpu.ort, env: { wasm: {} } }),
  });
  cpu.device.destroy();
  await assert.rejects(rt.members[0](new Float32Array(4), [1, 1, 2, 2]), /GPU device lost/);
  assert.equal(rt.fallbackReasons.length, 0);
});
