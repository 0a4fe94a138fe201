// Loads every ONNX file of a model package with onnxruntime-node and checks it against the package:
// sha256 + size from manifest.json, input/output names, output shape, the PyTorch reference outputs
// recorded at export (validation.json "parity"; an ensemble member with its own entry in "parityMembers" is
// compared with that; where the entry holds a "sample" of every k-th output value, the maximum difference
// on it must be <= 1e-4), and that a dropout mask changes the output. A static INT8 (QDQ) file — one with
// QuantizeLinear nodes, models/training/quantize_qdq.py — must also come out of onnxruntime's graph
// optimiser with a QLinearConv for every Conv whose output it quantises (otherwise the integer kernels
// never run and the file is only slower).
//   node models/training/check_onnx.mjs [--json out.json] models/retina-vessels [more packages…]
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
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

// the nodes of an ONNX graph, read from the protobuf wire format (ModelProto.graph = 7, GraphProto.node =
// 1; NodeProto.input = 1, .output = 2, .op_type = 4) as { op, inputs, outputs }
function onnxNodes(buf) {
  const varint = (st) => {
    let v = 0, mul = 1, b;
    do {
      b = buf[st.pos++];
      v += (b & 0x7f) * mul;
      mul *= 128;
    } while (b & 0x80);
    return v;
  };
  const fields = (start, end, fn) => {
    const st = { pos: start };
    while (st.pos < end) {
      const tag = varint(st), f = Math.floor(tag / 8), w = tag & 7;
      if (w === 0) varint(st);
      else if (w === 1) st.pos += 8;
      else if (w === 5) st.pos += 4;
      else if (w === 2) {
        const len = varint(st);
        fn(f, st.pos, st.pos + len);
        st.pos += len;
      } else throw new Error(`unexpected protobuf wire type ${w}`);
    }
  };
  const text = (a, b) => new TextDecoder().decode(buf.subarray(a, b));
  const nodes = [];
  fields(0, buf.length, (f, a, b) => {
    if (f !== 7) return;
    fields(a, b, (gf, ga, gb) => {
      if (gf !== 1) return;
      const n = { op: "", inputs: [], outputs: [] };
      fields(ga, gb, (nf, na, nb) => {
        if (nf === 4) n.op = text(na, nb);
        else if (nf === 1) n.inputs.push(text(na, nb));
        else if (nf === 2) n.outputs.push(text(na, nb));
      });
      nodes.push(n);
    });
  });
  return nodes;
}

// QDQ files: how many Convs have their output quantised, and how many QLinearConv nodes onnxruntime-node's
// optimiser (level "all", one thread) leaves; null for a file without QuantizeLinear
async function qdqFusion(buf) {
  const nodes = onnxNodes(buf);
  if (!nodes.some((n) => n.op === "QuantizeLinear")) return null;
  const quantised = new Set(nodes.filter((n) => n.op === "QuantizeLinear").map((n) => n.inputs[0]));
  const expected = nodes.filter((n) => n.op === "Conv" && quantised.has(n.outputs[0])).length;
  const dir = mkdtempSync(join(tmpdir(), "check-onnx-"));
  try {
    const optimizedModelFilePath = join(dir, "optimized.onnx");
    await ort.InferenceSession.create(buf, {
      graphOptimizationLevel: "all",
      intraOpNumThreads: 1,
      optimizedModelFilePath,
      logSeverityLevel: 3, // not the warning that an optimised file is specific to this machine: it is read here
    });
    const ops = {};
    for (const n of onnxNodes(readFileSync(optimizedModelFilePath))) ops[n.op] = (ops[n.op] ?? 0) + 1;
    return { expected, qlinearConv: ops.QLinearConv ?? 0, floatConv: ops.Conv ?? 0, ops };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
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
    const fused = await qdqFusion(buf);
    if (fused) {
      measured[man.id][file].qdqFusion = fused;
      console.log(
        `  ${file}: static QDQ, ${fused.qlinearConv} QLinearConv after onnxruntime's optimiser ` +
          `(${fused.expected} quantised Convs; float Convs left: ${fused.floatConv})`,
      );
      if (fused.qlinearConv < fused.expected) {
        fail(`${file}: only ${fused.qlinearConv} of ${fused.expected} quantised Convs fused to QLinearConv`);
      }
    }
  }
}
if (jsonPath) {
  writeFileSync(jsonPath, JSON.stringify({ runtime: "onnxruntime-node", measured }, null, 2) + "\n");
}
console.log(failures ? `${failures} failure(s)` : "all packages OK");
process.exit(failures ? 1 : 0);
