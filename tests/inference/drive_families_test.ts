/**
 * The two reference families of issue #17 trained on DRIVE (models/training/drive_families.py):
 * `retina-deeplabv3` (DeepLabV3, ASPP) and `retina-mae-vit` (MAE-pretrained ViT, fixed 128² window).
 * Each shipped package verifies (sha256, manifest against the graph), the package tool's op audit runs
 * it on onnxruntime-node and WASM, its output matches the PyTorch outputs recorded at export
 * (validation.json "parity": x[i] = sin(0.001 i), mask of ones) within 1e-4 on WASM and within 1e-3 on
 * WebGPU (headless Chromium; skipped with the reason where Chromium is missing), the server's model
 * list offers it, and the CLI segments a DRIVE validation photograph with it (skipped without
 * ../shared/data). Each INT8 variant (weight-only, models/training/drive_families.py `int8`) verifies, was
 * kept by its F1 rule, stays near fp32 on the probe, and runs on WebGPU as on WASM (DequantizeLinear
 * per output channel, also along axis 1 for the ViT's MatMul weights).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { validateManifest } from "../../src/core/manifest.ts";
import { sharedData } from "../../src/harness/paths.ts";
import { startBrowserAuditor } from "../../src/inference/browser_audit.ts";
import { loadModel } from "../../src/inference/deno.ts";
import { readOnnxSignature } from "../../src/inference/onnx_signature.ts";
import { sha256Hex } from "../../src/inference/package.ts";
import { maxAbsDiff, runInProcess } from "../../src/inference/package_tool/audit.ts";
import { buildPackage } from "../../src/inference/package_tool/build.ts";
import type { ProbeFeeds } from "../../src/inference/package_tool/types.ts";
import { modelIndex } from "../../src/server/model_index.ts";
import { runScript } from "../helpers/cli.ts";
import { PROJECT_ROOT } from "../helpers/paths.ts";
import { requireTool } from "../helpers/tools.ts";

const FAMILIES = ["retina-deeplabv3", "retina-mae-vit"] as const;
const WASM_TOLERANCE = 1e-4;
const WEBGPU_TOLERANCE = 1e-3;
/**
 * INT8 weights move the probe's logits (|max| 6.0 DeepLabV3, 4.2 ViT) by 0.087 and 0.077 (WASM): the
 * bound is about twice that, far below what a wrong scale axis or a dropped DequantizeLinear gives.
 */
const INT8_PROBE_TOLERANCE = 0.2;
const chromium = requireTool("chromium");
const opts = { sanitizeOps: false, sanitizeResources: false };

interface Parity {
  shape: number[];
  ones: { sum: number; absMax: number; first: number[]; len: number };
  sample: { stride: number; values: number[] };
}

interface Package {
  dir: string;
  manifest: ReturnType<typeof validateManifest>;
  file: string;
  bytes: Uint8Array;
  parity: Parity;
  int8: { file: string; bytes: Uint8Array; kept: boolean; f1Difference: number };
}

async function readPackage(id: string): Promise<Package> {
  const dir = join(PROJECT_ROOT, "models", id);
  const manifest = validateManifest(JSON.parse(await Deno.readTextFile(join(dir, "manifest.json"))));
  const validation = JSON.parse(await Deno.readTextFile(join(dir, "validation.json")));
  const bytes = await Deno.readFile(join(dir, manifest.model));
  const variant = manifest.variants?.find((v) => v.id === "int8");
  assert.ok(variant, `${id} declares an int8 variant`);
  const int8 = {
    ...validation.int8,
    file: variant.file,
    bytes: await Deno.readFile(join(dir, variant.file)),
  };
  return { dir, manifest, file: manifest.model, bytes, parity: validation.parity, int8 };
}

/** The export's parity probe: x[i] = sin(0.001 i) in the recorded shape, an all-ones MC mask. */
function parityFeeds(p: Package): ProbeFeeds {
  const n = p.parity.shape.reduce((a, b) => a * b, 1);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.sin(i * 0.001);
  const mc = p.manifest.uncertainty!.mcDropout!;
  return {
    [p.manifest.inputs[0].name]: { data: x, dims: p.parity.shape },
    [mc.input]: { data: new Float32Array(mc.shape.reduce((a, b) => a * b, 1)).fill(1), dims: mc.shape },
  };
}

/** Max abs difference between an output and the PyTorch values recorded at export (sampled + first). */
function diffVsTorch(p: Package, out: Float32Array): number {
  assert.equal(out.length, p.parity.ones.len, "output size differs from the PyTorch output");
  const sampled = p.parity.sample.values.map((_, k) => out[k * p.parity.sample.stride]);
  return Math.max(
    maxAbsDiff(sampled, p.parity.sample.values),
    maxAbsDiff(out.subarray(0, p.parity.ones.first.length), p.parity.ones.first),
  );
}

for (const id of FAMILIES) {
  Deno.test(`${id}: the shipped package verifies (sha256, size, manifest against the graph, one window runs)`, async () => {
    const p = await readPackage(id);
    const entry = p.manifest.files[p.file];
    assert.equal(entry.sha256, await sha256Hex(p.bytes));
    assert.equal(entry.bytes, p.bytes.length);
    assert.ok(p.bytes.length < 30e6, `${p.file} is ${p.bytes.length} bytes`);
    const sig = readOnnxSignature(p.bytes);
    assert.deepEqual(sig.inputs.map((i) => i.name), p.manifest.inputs.map((i) => i.name));
    // loadModel checks the manifest against the graph and refuses a file whose sha256 differs
    const { runtime } = await loadModel(p.dir, { numThreads: 1 });
    await runtime.release();
  });

  Deno.test({
    name: `${id}: the package tool's op audit runs the export on onnxruntime-node and WASM within 1e-4`,
    ...opts,
    fn: async () => {
      const p = await readPackage(id);
      const tmp = await Deno.makeTempDir({ prefix: "edgeseg-drive-family-" });
      try {
        const src = join(tmp, `${id}.onnx`);
        await Deno.writeFile(src, p.bytes);
        // the draft (the shipped manifest) names the int8 variant: the tool packages it from beside the export
        await Deno.writeFile(join(tmp, p.int8.file), p.int8.bytes);
        const { files: _files, model: _model, providers: _providers, ...draft } = p.manifest;
        const report = await buildPackage(src, {
          id,
          out: join(tmp, "pkg"),
          draft: draft as Record<string, unknown>,
          browser: "not asked here (the WebGPU parity test below runs it)",
        });
        const audit = Object.fromEntries(report.audit.map((r) => [r.provider, r]));
        assert.ok(audit.native.ok, audit.native.error ?? "native failed");
        assert.ok(audit.wasm.ok, audit.wasm.error ?? "wasm failed");
        assert.ok(audit.wasm.maxAbsDiff! <= WASM_TOLERANCE, `wasm vs native ${audit.wasm.maxAbsDiff}`);
        assert.ok(audit.webgpu.skipped);
        // nothing to rewrite: the tool packages the very graph that is shipped
        assert.deepEqual(report.rewrites.filter((r) => r.kept), []);
        assert.equal(report.sha256, p.manifest.files[p.file].sha256);
      } finally {
        await Deno.remove(tmp, { recursive: true });
      }
    },
  });

  Deno.test({
    name:
      `${id}: the int8 variant verifies, was kept by its F1 rule (within 0.01 of fp32), is under a third of the fp32 file, and stays near fp32 on the probe`,
    ...opts,
    fn: async () => {
      const p = await readPackage(id);
      const entry = p.manifest.files[p.int8.file];
      assert.equal(entry.sha256, await sha256Hex(p.int8.bytes));
      assert.equal(entry.bytes, p.int8.bytes.length);
      assert.ok(
        p.int8.kept && Math.abs(p.int8.f1Difference) <= 0.01,
        `validation.json int8 ${p.int8.f1Difference}`,
      );
      assert.ok(
        p.int8.bytes.length < p.bytes.length / 3,
        `${p.int8.bytes.length} vs ${p.bytes.length} bytes`,
      );
      const { runtime } = await loadModel(p.dir, { numThreads: 1, variant: "int8" });
      assert.equal(runtime.precision, "int8");
      await runtime.release();
      const fp32 = await runInProcess("wasm", p.bytes, parityFeeds(p));
      const int8 = await runInProcess("wasm", p.int8.bytes, parityFeeds(p));
      assert.ok(fp32.result.ok && int8.result.ok, int8.result.error ?? fp32.result.error ?? "failed");
      const d = maxAbsDiff(fp32.output!, int8.output!);
      assert.ok(d > 0, "the int8 file holds other weights than fp32");
      assert.ok(d <= INT8_PROBE_TOLERANCE, `int8 vs fp32 max abs diff ${d} on the probe`);
    },
  });

  Deno.test({
    name: `${id}: onnxruntime-web WASM matches the PyTorch outputs recorded at export within 1e-4`,
    ...opts,
    fn: async () => {
      const p = await readPackage(id);
      const { result, output } = await runInProcess("wasm", p.bytes, parityFeeds(p));
      assert.ok(result.ok, result.error ?? "failed");
      const d = diffVsTorch(p, output!);
      assert.ok(d <= WASM_TOLERANCE, `WASM vs PyTorch max abs diff ${d}`);
      let sum = 0;
      for (const v of output!) sum += v;
      assert.ok(Math.abs(sum - p.parity.ones.sum) <= 1e-4 * Math.max(1, Math.abs(p.parity.ones.sum)));
    },
  });

  Deno.test({
    name:
      `${id}: WebGPU (headless Chromium) matches the PyTorch outputs recorded at export within 1e-3, and its int8 variant matches int8 on WASM`,
    ignore: chromium.ignore,
    ...opts,
    fn: async () => {
      const p = await readPackage(id);
      const browser = await startBrowserAuditor();
      try {
        const { result, output } = await browser.run(p.bytes, parityFeeds(p), "webgpu");
        assert.ok(result.ok, result.error ?? "failed");
        const d = diffVsTorch(p, output!);
        assert.ok(d <= WEBGPU_TOLERANCE, `WebGPU vs PyTorch max abs diff ${d}`);
        // the int8 variant in the same browser: WebGPU as WASM (per-channel DequantizeLinear on the GPU)
        const gpu8 = await browser.run(p.int8.bytes, parityFeeds(p), "webgpu");
        assert.ok(gpu8.result.ok, gpu8.result.error ?? "int8 failed on WebGPU");
        const wasm8 = await runInProcess("wasm", p.int8.bytes, parityFeeds(p));
        assert.ok(wasm8.result.ok, wasm8.result.error ?? "int8 failed on WASM");
        const d8 = maxAbsDiff(gpu8.output!, wasm8.output!);
        assert.ok(d8 <= WEBGPU_TOLERANCE, `int8 WebGPU vs WASM max abs diff ${d8}`);
      } finally {
        await browser.close();
      }
    },
  });
}

Deno.test("the server's model list offers both DRIVE reference families", async () => {
  const index = await modelIndex(join(PROJECT_ROOT, "models"));
  const ids = index.models.map((m) => m.id);
  for (const id of FAMILIES) assert.ok(ids.includes(id), `${id} missing from ${ids.join(", ")}`);
});

const photo = sharedData("drive", "training", "images", "37_training.tif");

for (const id of FAMILIES) {
  Deno.test({
    name: `${id}: deno task segment writes a vessel mask for DRIVE image 37`,
    ignore: photo === null,
    ...opts,
    fn: async () => {
      const out = await Deno.makeTempDir({ prefix: "edgeseg-drive-segment-" });
      try {
        const run = await runScript("src/cli/segment.ts", ["--model", id, "--input", photo!, "--out", out]);
        assert.equal(run.code, 0, run.stderr);
        const report = JSON.parse(await Deno.readTextFile(join(out, "report.json")));
        assert.equal(report.model.id, id);
        const [c] = report.cases;
        assert.deepEqual(c.files, ["37_training_mask.png"]);
        // DRIVE vessels cover roughly 8-14 % of a 565×584 photograph; a broken model gives ~0 or ~all
        const px = c.statistics[0].voxels;
        assert.ok(px > 0.03 * 565 * 584 && px < 0.3 * 565 * 584, `${px} vessel pixels`);
      } finally {
        await Deno.remove(out, { recursive: true });
      }
    },
  });
}
if (photo === null) {
  console.log("drive_families_test: ../shared/data/drive is absent: the CLI segment tests are skipped");
}
