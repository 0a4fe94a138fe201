/**
 * `deno task package` (src/inference/package_tool/) on the fixtures of
 * models/training/make_package_fixtures.py: manifest draft, op audit on onnxruntime-node / WASM (and
 * WebGPU in Chromium when it exists), the exact rewrites with their numeric check, sha256, external
 * data, refusals with typed errors naming the field.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ManifestError } from "../../src/core/errors.ts";
import { validateManifest } from "../../src/core/manifest.ts";
import { startBrowserAuditor } from "../../src/inference/browser_audit.ts";
import {
  maxAbsDiff,
  parseOrtError,
  probeFeeds,
  runInProcess,
} from "../../src/inference/package_tool/audit.ts";
import { buildPackage } from "../../src/inference/package_tool/build.ts";
import { draftManifest } from "../../src/inference/package_tool/draft.ts";
import { readModel } from "../../src/inference/package_tool/read.ts";
import { REWRITE_TOLERANCE } from "../../src/inference/package_tool/rewrite.ts";
import { PackageError } from "../../src/inference/package_tool/types.ts";
import { readOnnxSignature } from "../../src/inference/onnx_signature.ts";
import { sha256Hex } from "../../src/inference/package.ts";
import { requireTool } from "../helpers/tools.ts";

const FIX = new URL("../fixtures/onnx/", import.meta.url).pathname;
const DRAFT_3D = {
  spatial: { window: [16, 16, 16], batch: 1 },
  preprocessing: { padMultiple: 4 },
  uncertainty: { mcDropout: { rate: 0.25, defaultPasses: 4 } },
};
const DRAFT_2D = { spatial: { window: [32, 32] }, preprocessing: { padMultiple: 4 } };
const noRewrite = requireTool("python-onnx");
const chromium = requireTool("chromium");
const opts = { sanitizeOps: false, sanitizeResources: false };

async function tmp(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "edgeseg-package-test-" });
}

Deno.test({
  name:
    "3D attention U-Net (ConvTranspose3d k=s, MaxPool3d): audit fails on WebGPU, exact rewrites make it run",
  ignore: noRewrite.ignore,
  ...opts,
  fn: async () => {
    const dir = await tmp();
    const browser = chromium.ignore ? chromium.reason : await startBrowserAuditor();
    try {
      const out = join(dir, "attn-unet-3d");
      const report = await buildPackage(join(FIX, "attn-unet-3d.onnx"), {
        id: "attn-unet-3d",
        out,
        draft: DRAFT_3D,
        browser,
      });
      // the graph as exported: native and WASM run it; the WebGPU EPs fail at the named node and op
      const before = Object.fromEntries(report.auditBefore!.map((r) => [r.provider, r]));
      assert.ok(before.native.ok && before.wasm.ok);
      assert.ok(before.wasm.maxAbsDiff! <= 1e-4, `wasm vs native ${before.wasm.maxAbsDiff}`);
      if (!chromium.ignore) {
        assert.equal(before.webgpu.ok, false);
        assert.equal(before.webgpu.op, "ConvTranspose");
        assert.match(before.webgpu.node!, /^\/up\d\/ConvTranspose$/);
        assert.equal(before["webgpu-jsep"].ok, false);
        assert.equal(before["webgpu-jsep"].op, "MaxPool");
      }
      // each rewrite applied to both nodes and kept after its numeric check
      const kept = report.rewrites.filter((r) => r.kept);
      assert.deepEqual(kept.map((r) => r.rewrite).sort(), [
        "convtranspose",
        "convtranspose",
        "maxpool3d",
        "maxpool3d",
      ]);
      for (const r of kept) assert.ok(r.maxAbsDiff! <= REWRITE_TOLERANCE, `${r.node}: ${r.maxAbsDiff}`);
      const after = Object.fromEntries(report.audit.map((r) => [r.provider, r]));
      assert.ok(after.native.ok && after.wasm.ok);
      if (!chromium.ignore) {
        assert.ok(after.webgpu.ok, String(after.webgpu.error));
        assert.ok(after.webgpu.maxAbsDiff! <= 1e-3);
        assert.ok(after["webgpu-jsep"].ok, String(after["webgpu-jsep"].error));
        assert.deepEqual(report.providers, ["webgpu", "wasm"]);
      }
      // the folder: manifest valid, sha256/bytes true, MC-dropout mask found, window from the draft
      const bytes = await Deno.readFile(join(out, "attn-unet-3d.onnx"));
      const manifest = validateManifest(JSON.parse(await Deno.readTextFile(join(out, "manifest.json"))));
      assert.equal(manifest.files["attn-unet-3d.onnx"].sha256, await sha256Hex(bytes));
      assert.equal(manifest.files["attn-unet-3d.onnx"].bytes, bytes.length);
      assert.equal(manifest.uncertainty?.mcDropout?.input, "mask");
      assert.deepEqual(manifest.uncertainty?.mcDropout?.shape, [1, 4, 1, 1, 1]);
      assert.equal(manifest.spatial.mode, "patch3d");
      assert.deepEqual(manifest.inputs[0].shape, ["batch", 1, "depth", "height", "width"]);
      // no temp folders left beside the package (atomic write)
      const left = [...Deno.readDirSync(dir)].map((e) => e.name);
      assert.deepEqual(left, ["attn-unet-3d"]);
    } finally {
      if (typeof browser !== "string") await browser.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "reference 002's Attention-ResUNet (ResBlocks, MaxPool, ConvTranspose k=s, attention gates, 3 classes) packages and matches PyTorch on native and WASM; runs on WebGPU",
  ...opts,
  fn: async () => {
    const dir = await tmp();
    const browser = chromium.ignore ? chromium.reason : await startBrowserAuditor();
    try {
      const report = await buildPackage(join(FIX, "attn-resunet-2d.onnx"), {
        id: "attn-resunet-2d",
        out: join(dir, "p"),
        draft: { spatial: { window: [32, 32] }, preprocessing: { padMultiple: 16 } },
        browser,
      });
      assert.equal(report.manifest.labels.length, 2, "3 output channels: background and two labels");
      for (const provider of ["native", "wasm"]) {
        const r = report.audit.find((a) => a.provider === provider)!;
        assert.ok(r.ok, `${provider}: ${r.error}`);
      }
      if (!chromium.ignore) {
        // the 2D ConvTranspose with k = s runs on WebGPU as exported; no rewrite is needed in 2D
        const gpu = report.audit.find((a) => a.provider === "webgpu")!;
        assert.ok(gpu.ok, String(gpu.error));
        assert.ok(gpu.maxAbsDiff! <= 1e-3, `webgpu vs native ${gpu.maxAbsDiff}`);
      }
      // the packaged file against PyTorch's output recorded by make_package_fixtures.py
      const ref = JSON.parse(await Deno.readTextFile(join(FIX, "attn-resunet-2d.reference.json")));
      const n = 32 * 32;
      const feeds = {
        input: {
          data: Float32Array.from({ length: n }, (_, i) => 0.5 + 0.5 * Math.sin(0.01 * i)),
          dims: [1, 1, 32, 32],
        },
        mask: { data: new Float32Array(4).fill(1), dims: [1, 4, 1, 1] },
      };
      const bytes = await Deno.readFile(join(dir, "p", "attn-resunet-2d.onnx"));
      for (const provider of ["native", "wasm"] as const) {
        const { result, output } = await runInProcess(provider, bytes, feeds);
        assert.ok(result.ok && output, `${provider}: ${result.error}`);
        assert.equal(output.length, 3 * n);
        const every97 = Array.from({ length: Math.ceil(output.length / 97) }, (_, k) => output[k * 97]);
        const diff = Math.max(
          maxAbsDiff(output.subarray(0, 32), ref.output.first),
          maxAbsDiff(every97, ref.output.every97),
        );
        assert.ok(diff <= 1e-4, `${provider} vs PyTorch: max abs difference ${diff}`);
        const sum = output.reduce((a, v) => a + v, 0);
        assert.ok(
          Math.abs(sum - ref.output.sum) <= 1e-4 * ref.output.absSum,
          `${provider} sum ${sum} vs ${ref.output.sum}`,
        );
      }
    } finally {
      if (typeof browser !== "string") await browser.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "2D attention U-Net runs as exported: no rewrite applies, WASM matches onnxruntime-node",
  ...opts,
  fn: async () => {
    const dir = await tmp();
    try {
      const report = await buildPackage(join(FIX, "attn-unet-2d.onnx"), {
        id: "attn-unet-2d",
        out: join(dir, "p"),
        draft: DRAFT_2D,
        browser: null,
      });
      assert.equal(report.rewrites.filter((r) => r.kept).length, 0);
      assert.equal(report.auditBefore, undefined);
      const wasm = report.audit.find((r) => r.provider === "wasm")!;
      assert.ok(wasm.ok && wasm.maxAbsDiff! <= 1e-4, String(wasm.maxAbsDiff));
      assert.equal(report.providers, undefined); // WebGPU not audited: nothing recorded
      assert.equal(report.manifest.spatial.mode, "slice2d");
      assert.equal(report.manifest.activation, "softmax");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "ensemble members and variants the draft names are packaged beside the main file, checked and audited",
  ...opts,
  fn: async () => {
    const dir = await tmp();
    try {
      const src = join(dir, "export");
      await Deno.mkdir(src);
      const bytes = await Deno.readFile(join(FIX, "attn-unet-2d.onnx"));
      for (const f of ["main.onnx", "member.onnx", "fast.onnx"]) await Deno.writeFile(join(src, f), bytes);
      const draft = {
        ...DRAFT_2D,
        uncertainty: { ensemble: { members: ["member.onnx"] } },
        variants: [{ id: "fast", file: "fast.onnx", precision: "fp32" }],
      };
      const report = await buildPackage(join(src, "main.onnx"), {
        id: "two",
        out: join(dir, "two"),
        draft,
        browser: null,
      });
      assert.deepEqual(report.companions?.map((c) => c.file), ["member.onnx", "fast.onnx"]);
      for (const c of report.companions!) {
        const wasm = c.audit.find((r) => r.provider === "wasm")!;
        assert.ok(wasm.ok && wasm.maxAbsDiff! <= 1e-4, `${c.file}: ${wasm.maxAbsDiff}`);
        const written = await Deno.readFile(join(dir, "two", c.file));
        assert.equal(await sha256Hex(written), c.sha256);
      }
      const m = JSON.parse(await Deno.readTextFile(join(dir, "two", "manifest.json")));
      assert.deepEqual(Object.keys(m.files).sort(), ["fast.onnx", "member.onnx", "two.onnx"]);
      assert.equal(m.files["member.onnx"].sha256, report.companions![0].sha256);
      // a member that is not beside the export, or names a folder, is refused naming the field
      await assert.rejects(
        buildPackage(join(src, "main.onnx"), {
          id: "bad",
          out: join(dir, "bad"),
          draft: { ...DRAFT_2D, uncertainty: { ensemble: { members: ["absent.onnx"] } } },
          browser: null,
        }),
        (e: unknown) =>
          e instanceof PackageError && e.code === "COMPANION_MISSING" &&
          e.field === "uncertainty.ensemble.members[0]",
      );
      await assert.rejects(
        buildPackage(join(src, "main.onnx"), {
          id: "bad",
          out: join(dir, "bad"),
          draft: { ...DRAFT_2D, variants: [{ id: "x", file: "../fast.onnx", precision: "int8" }] },
          browser: null,
        }),
        (e: unknown) =>
          e instanceof PackageError && e.code === "DRAFT_INVALID" && e.field === "variants[0].file",
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "external data (.onnx.data) is inlined and gives the same output; over --max-bytes it is refused naming the field",
  ...opts,
  fn: async () => {
    const { bytes, externalData } = await readModel(join(FIX, "tiny-ext.onnx"));
    assert.ok(externalData && externalData.tensors > 0 && externalData.files[0] === "tiny-ext.onnx.data");
    const plain = await Deno.readFile(join(FIX, "attn-unet-2d.onnx"));
    const manifest = validateManifest({
      ...draftManifest(readOnnxSignature(plain), "x", "x.onnx", DRAFT_2D),
      files: { "x.onnx": { sha256: "0".repeat(64), bytes: 1 } },
    });
    const feeds = probeFeeds(manifest);
    const a = await runInProcess("wasm", plain, feeds), b = await runInProcess("wasm", bytes, feeds);
    assert.ok(a.output && b.output);
    assert.equal(maxAbsDiff(a.output, b.output), 0);
    await assert.rejects(
      readModel(join(FIX, "tiny-ext.onnx"), 10_000),
      (e: unknown) => e instanceof PackageError && e.code === "MODEL_TOO_LARGE" && e.field === "externalData",
    );
  },
});

Deno.test({
  name: "refusals: a classifier, an unknown opset, not ONNX, a draft that contradicts the graph",
  ...opts,
  fn: async () => {
    const dir = await tmp();
    const build = (model: string, draft: Record<string, unknown> = {}) =>
      buildPackage(model, { id: "bad", out: join(dir, "bad"), draft, browser: null });
    try {
      await assert.rejects(
        build(join(FIX, "classifier.onnx")),
        (e: unknown) =>
          e instanceof PackageError && e.code === "GRAPH_UNSUPPORTED" && e.field === "outputs[0].shape",
      );
      await assert.rejects(
        build(join(FIX, "bad-opset.onnx")),
        (e: unknown) => e instanceof ManifestError && /opset/.test(e.message) && e.actual === "99",
      );
      const text = join(dir, "notes.onnx");
      await Deno.writeTextFile(text, "this is not a model\n");
      await assert.rejects(
        build(text),
        (e: unknown) => e instanceof ManifestError && e.code === "ONNX_INVALID",
      );
      await assert.rejects(
        build(join(FIX, "attn-unet-2d.onnx"), { ...DRAFT_2D, constraints: { channels: 3 } }),
        (e: unknown) => e instanceof ManifestError && /inputs\[0\]\.shape\[1\]|channels/.test(e.message),
      );
      await assert.rejects(
        build(join(FIX, "attn-unet-2d.onnx"), { ...DRAFT_2D, providers: ["cuda"] }),
        (e: unknown) => e instanceof ManifestError && /providers\[0\]/.test(e.message),
      );
      assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["notes.onnx"]); // nothing written
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("parseOrtError names the node and op for the WASM/native, JSEP and missing-kernel messages", () => {
  assert.deepEqual(
    parseOrtError(
      "Non-zero status code returned while running ConvTranspose node. Name:'/up2/ConvTranspose_token_25' Status",
    ),
    { op: "ConvTranspose", node: "/up2/ConvTranspose" },
  );
  assert.deepEqual(
    parseOrtError(
      '[WebGPU] Kernel "[MaxPool] /pool/MaxPool_token_11" failed. Error: Pooling with kernelShape',
    ),
    { op: "MaxPool", node: "/pool/MaxPool" },
  );
  assert.deepEqual(
    parseOrtError("Could not find an implementation for Dropout(13) node with name '/drop/Dropout'"),
    { op: "Dropout", node: "/drop/Dropout" },
  );
});
