/**
 * The shipped `oct-fluid-demo` package (models/training/oct.py, packaged by `deno task package`):
 * both ensemble members reproduce the PyTorch outputs recorded at export (validation.json `parity`,
 * every 257th value of the 4×256×256 logits for a fixed input, with the all-ones and a seeded
 * MC-dropout mask) on onnxruntime-node and on onnxruntime-web WASM within 1e-4; the manifest holds
 * together with every file; the INT8 variant stays close to float; the recorded validation Dice are there.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { checkManifestAgainstOnnx, validateManifest } from "../../src/core/manifest.ts";
import { mulberry32 } from "../../src/core/random.ts";
import { readOnnxSignature } from "../../src/inference/onnx_signature.ts";
import { sha256Hex } from "../../src/inference/package.ts";
import { runInProcess } from "../../src/inference/package_tool/audit.ts";
import type { ProbeFeeds } from "../../src/inference/package_tool/types.ts";
import { PROJECT_ROOT } from "../helpers/paths.ts";

const PKG = join(PROJECT_ROOT, "models", "oct-fluid-demo");
const TOLERANCE = 1e-4;
const opts = { sanitizeOps: false, sanitizeResources: false };

interface Reference {
  shape: number[];
  maskSeed: number;
  rate: number;
  sampleStride: number;
  ones: { sample: number[]; sum: number };
  seeded: { sample: number[]; sum: number };
}

const manifestJson = JSON.parse(Deno.readTextFileSync(join(PKG, "manifest.json")));
const validation = JSON.parse(Deno.readTextFileSync(join(PKG, "validation.json")));

function feeds(ref: Reference, mask: "ones" | "seeded"): ProbeFeeds {
  const n = ref.shape.reduce((a, b) => a * b, 1);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.sin(i * 0.001);
  const shape: number[] = manifestJson.uncertainty.mcDropout.shape;
  const m = new Float32Array(shape[1]).fill(1);
  if (mask === "seeded") {
    const r = mulberry32(ref.maskSeed);
    for (let c = 0; c < m.length; c++) m[c] = r() < ref.rate ? 0 : 1 / (1 - ref.rate);
  }
  return { input: { data: x, dims: ref.shape }, mc_mask: { data: m, dims: shape } };
}

function sampleDiff(out: Float32Array, ref: Reference, mask: "ones" | "seeded"): number {
  const want = ref[mask].sample;
  assert.equal(Math.ceil(out.length / ref.sampleStride), want.length, "sample count");
  let d = 0;
  want.forEach((v, i) => d = Math.max(d, Math.abs(out[i * ref.sampleStride] - v)));
  return d;
}

const members: [string, Reference][] = [
  [manifestJson.model, validation.parity],
  ...Object.entries(validation.parityMembers as Record<string, Reference>),
];

Deno.test("the package's manifest validates and matches every ONNX file (sha256, inputs, outputs)", async () => {
  const m = validateManifest(manifestJson);
  assert.deepEqual(m.uncertainty?.ensemble?.members, ["oct-fluid-demo.large.onnx"]);
  assert.equal(m.preprocessing.intensityByManufacturer?.["Topcon"]?.kind, "scale");
  assert.deepEqual(m.triage?.centre, { radiusMm: 0.5, weight: 2, axes: [0, 2] });
  for (const [file, entry] of Object.entries(m.files)) {
    const bytes = await Deno.readFile(join(PKG, file));
    assert.equal(bytes.length, entry.bytes, file);
    assert.equal(await sha256Hex(bytes), entry.sha256, file);
    assert.ok(bytes.length < 30 * 1024 * 1024, `${file} is under 30 MB`);
    checkManifestAgainstOnnx(m, readOnnxSignature(bytes), file);
  }
});

for (const [file, ref] of members) {
  for (const provider of ["native", "wasm"] as const) {
    Deno.test({
      name:
        `${file} on ${provider} reproduces the PyTorch logits within 1e-4, with and without a dropout mask`,
      ...opts,
      fn: async () => {
        const bytes = await Deno.readFile(join(PKG, file));
        const diffs: number[] = [];
        for (const mask of ["ones", "seeded"] as const) {
          const r = await runInProcess(provider, bytes, feeds(ref, mask));
          assert.ok(r.output, `${file} runs on ${provider}: ${r.result.error}`);
          const d = sampleDiff(r.output, ref, mask);
          assert.ok(d <= TOLERANCE, `${file} ${provider} ${mask}: max |onnx − torch| ${d} > ${TOLERANCE}`);
          diffs.push(d);
        }
        console.log(
          `${file} ${provider}: max |onnx − torch| ${diffs.map((d) => d.toExponential(2)).join(", ")}`,
        );
      },
    });
  }
}

Deno.test({
  name: "the dropout mask changes the output and the two members differ (a real ensemble)",
  ...opts,
  fn: async () => {
    const [mainFile, ref] = members[0];
    const main = await Deno.readFile(join(PKG, mainFile));
    const a = (await runInProcess("native", main, feeds(ref, "ones"))).output!;
    const b = (await runInProcess("native", main, feeds(ref, "seeded"))).output!;
    const large =
      (await runInProcess("native", await Deno.readFile(join(PKG, members[1][0])), feeds(ref, "ones")))
        .output!;
    let dm = 0, de = 0;
    for (let i = 0; i < a.length; i++) {
      dm = Math.max(dm, Math.abs(a[i] - b[i]));
      de = Math.max(de, Math.abs(a[i] - large[i]));
    }
    assert.ok(dm > 1e-3, `mask effect ${dm}`);
    assert.ok(de > 1e-3, `member difference ${de}`);
  },
});

Deno.test({
  name: "the INT8 variant, kept only within 0.01 Dice, stays within 5 % of the float logits' range",
  ignore: !manifestJson.variants,
  ...opts,
  fn: async () => {
    assert.equal(validation.int8.kept, true);
    for (const c of ["IRF", "SRF", "PED"]) {
      assert.ok(Math.abs(validation.int8.dice[c] - validation.small.dice[c]) <= 0.01, c);
    }
    const [mainFile, ref] = members[0];
    const f = feeds(ref, "ones");
    const fp = (await runInProcess("native", await Deno.readFile(join(PKG, mainFile)), f)).output!;
    const q = (await runInProcess("wasm", await Deno.readFile(join(PKG, manifestJson.variants[0].file)), f))
      .output!;
    let d = 0, range = 0;
    for (let i = 0; i < fp.length; i++) {
      d = Math.max(d, Math.abs(fp[i] - q[i]));
      range = Math.max(range, Math.abs(fp[i]));
    }
    assert.ok(d <= 0.05 * range, `int8 vs fp32 ${d} of ${range}`);
  },
});

Deno.test("validation.json records per-class Dice for small, large and the ensemble on held-out phantoms", () => {
  for (const k of ["small", "large", "ensemble"]) {
    for (const c of ["IRF", "SRF", "PED"]) {
      const d = validation[k].dice[c];
      assert.ok(typeof d === "number" && d >= 0 && d <= 1, `${k} ${c}: ${d}`);
    }
  }
  assert.ok(validation.split.validation.length >= 4);
  assert.ok(!validation.split.train.some((s: string) => validation.split.validation.includes(s)));
});
