// Loads every ONNX file of a model package with onnxruntime-node and checks it against the package:
// sha256 + size from manifest.json, input/output names, output shape, the PyTorch reference outputs
// recorded at export (validation.json "parity"; an ensemble member with its own entry in "parityMembers" is
// compared with that; where the entry holds a "sample" of every k-th output value, the maximum difference
// on it must be <= 1e-4), and that a dropout mask changes the output.
//   node models/training/check_onnx.mjs [--json out.json] models/retina-vessels [more packages…]
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as ort from "onnxruntime-node";

function mulberry32(seed) {
  return () => {
    seed |= 0;
    seed = (seed + 0x6D2B79F5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

let failures = 0;
const fail = (msg) => {
  failures++;
  console.log("  FAIL " + msg);
};

const args = process.argv.slice(2);
const jsonAt = args.indexOf("--json");
const jsonPath = jsonAt >= 0 ? args.splice(jsonAt, 2)[1] : null;
const measured = {};
const SAMPLE_TOLERANCE = 1e-4;

for (const dir of args) {
  const man = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8"));
  const val = JSON.parse(readFileSync(join(dir, "validation.json"), "utf8"));
  const ref = val.parity;
  console.log(`${man.id}:`);
  const n = ref.shape.reduce((a, b) => a * b, 1);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.sin(i * 0.001);
  const mshape = man.uncertainty.mcDropout.shape;
  const c = mshape[1];
  const ones = new Float32Array(c).fill(1);
  const r = mulberry32(ref.maskSeed), seeded = new Float32Array(c);
  for (let i = 0; i < c; i++) seeded[i] = r() < ref.rate ? 0 : 1 / (1 - ref.rate);
  for (const [file, entry] of Object.entries(man.files)) {
    const buf = readFileSync(join(dir, file));
    const sha = createHash("sha256").update(buf).digest("hex");
    if (sha !== entry.sha256 || buf.length !== entry.bytes) {
      fail(`${file}: sha256/bytes differ from manifest`);
    }
    const s = await ort.InferenceSession.create(buf);
    const inNames = man.inputs.map((t) => t.name).join(","),
      outNames = man.outputs.map((t) => t.name).join(",");
    if (s.inputNames.join(",") !== inNames) fail(`${file}: inputs ${s.inputNames} expected ${inNames}`);
    if (s.outputNames.join(",") !== outNames) fail(`${file}: outputs ${s.outputNames} expected ${outNames}`);
    const run = async (mask) => {
      const t0 = performance.now();
      const out = await s.run({
        input: new ort.Tensor("float32", x, ref.shape),
        mc_mask: new ort.Tensor("float32", mask, mshape),
      });
      return { y: out[s.outputNames[0]], ms: performance.now() - t0 };
    };
    const a = await run(ones), b = await run(seeded);
    const expectShape = [1, man.outputs[0].shape[1], ...ref.shape.slice(2)].join("x");
    if (a.y.dims.join("x") !== expectShape) {
      fail(`${file}: output ${a.y.dims.join("x")} expected ${expectShape}`);
    }
    let sum = 0, maxDiffMask = 0;
    for (let i = 0; i < a.y.data.length; i++) {
      sum += a.y.data[i];
      maxDiffMask = Math.max(maxDiffMask, Math.abs(a.y.data[i] - b.y.data[i]));
    }
    let sumB = 0;
    for (let i = 0; i < b.y.data.length; i++) sumB += b.y.data[i];
    const own = val.parityMembers?.[file];
    const fr = own ?? ref;
    const firstDiff = Math.max(...fr.ones.first.map((v, i) => Math.abs(v - a.y.data[i])));
    const tol = file.includes("int8") ? 0.05 * fr.ones.absMax : 1e-3 * Math.max(1, fr.ones.absMax);
    const relSum = Math.abs(sum - fr.ones.sum) / Math.max(1, Math.abs(fr.ones.sum));
    const relSumB = Math.abs(sumB - fr.seeded.sum) / Math.max(1, Math.abs(fr.seeded.sum));
    console.log(
      `  ${file}: ${a.ms.toFixed(0)} ms, first-values diff vs torch ${firstDiff.toExponential(2)}, ` +
        `rel. sum diff ${relSum.toExponential(2)} (seeded mask ${relSumB.toExponential(2)}), mask effect ${
          maxDiffMask.toFixed(3)
        }`,
    );
    const isMain = file === man.model || own !== undefined, isInt8 = file.includes("int8");
    let sampleDiff = null;
    if (fr.sample && isMain) {
      sampleDiff = 0;
      fr.sample.values.forEach((v, k) => {
        sampleDiff = Math.max(sampleDiff, Math.abs(v - a.y.data[k * fr.sample.stride]));
      });
      console.log(
        `  ${file}: max abs diff vs torch on ${fr.sample.values.length} sampled outputs ${
          sampleDiff.toExponential(2)
        }`,
      );
      if (!(sampleDiff <= SAMPLE_TOLERANCE)) {
        fail(`${file}: sampled outputs differ from PyTorch by ${sampleDiff}`);
      }
    }
    (measured[man.id] ??= {})[file] = {
      firstDiff,
      sampleDiff,
      relSum,
      relSumSeeded: relSumB,
      maskEffect: maxDiffMask,
    };
    if ((isMain || isInt8) && firstDiff > tol) {
      fail(`${file}: differs from PyTorch by ${firstDiff} (tolerance ${tol})`);
    }
    if (isMain && (relSum > 1e-3 || relSumB > 1e-3)) fail(`${file}: output sum differs from PyTorch`);
    if (maxDiffMask === 0) fail(`${file}: the dropout mask has no effect`);
  }
}
if (jsonPath) {
  writeFileSync(jsonPath, JSON.stringify({ runtime: "onnxruntime-node", measured }, null, 2) + "\n");
}
console.log(failures ? `${failures} failure(s)` : "all packages OK");
process.exit(failures ? 1 : 0);
