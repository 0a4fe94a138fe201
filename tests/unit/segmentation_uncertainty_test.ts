import assert from "node:assert/strict";
import type { ModelManifest, Predictor } from "../../src/core/types.ts";
import {
  dropoutMask,
  flipVolume,
  mulberry32,
  planPasses,
  segment,
  StreamingAggregator,
} from "../../src/segmentation/mod.ts";
import { manifest, runtime, volume } from "./segmentation_fakes.ts";

const close = (a: number, b: number, tol = 1e-5) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);
const H = (p: number) => -(p > 0 ? p * Math.log(p) : 0) - (p < 1 ? (1 - p) * Math.log(1 - p) : 0);
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

Deno.test("mulberry32 is deterministic per seed and spreads over [0, 1)", () => {
  const a = mulberry32(42), b = mulberry32(42), c = mulberry32(43);
  const xs = Array.from({ length: 1000 }, () => a());
  assert.deepEqual(xs.slice(0, 5), Array.from({ length: 5 }, () => b()));
  assert.notEqual(xs[0], c());
  const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
  assert.ok(mean > 0.45 && mean < 0.55 && xs.every((x) => x >= 0 && x < 1));
});

Deno.test("dropout masks hold only 0 and 1/(1−p), with about p zeros", () => {
  const m = dropoutMask({ shape: [1, 1000, 1, 1], rate: 0.25 }, mulberry32(1));
  assert.ok(m.every((x) => x === 0 || Math.abs(x - 4 / 3) < 1e-6));
  const zeros = m.filter((x) => x === 0).length;
  assert.ok(zeros > 200 && zeros < 300, `${zeros}`);
});

Deno.test("flipping twice along the same axes is the identity", () => {
  const a = new Float32Array(4 * 3 * 2 * 2).map((_, i) => i);
  const f = flipVolume(a, [4, 3, 2], 2, [0, 2]);
  assert.equal(f[0], a[3 + 4 * 3 * 1]);
  assert.deepEqual(flipVolume(f, [4, 3, 2], 2, [0, 2]), a);
});

Deno.test("the streaming aggregator matches closed-form mean, variance, entropy and mutual information", () => {
  const passes = [0.2, 0.4, 0.9];
  const agg = new StreamingAggregator(1, 2, [1], "categorical");
  for (const p of passes) agg.add(new Float32Array([1 - p, p]));
  close(agg.mean[1], 0.5);
  close(agg.variance()[0], (0.09 + 0.01 + 0.16) / 3);
  close(agg.measure("sd")[0], Math.sqrt(0.26 / 3));
  close(agg.entropy()[0], Math.LN2);
  close(agg.mutualInformation()[0], Math.LN2 - (H(0.2) + H(0.4) + H(0.9)) / 3);
});

Deno.test("binary (sigmoid) entropy sums the label channels", () => {
  const agg = new StreamingAggregator(1, 2, [0, 1], "binary");
  agg.add(new Float32Array([0.5, 0.1]));
  agg.add(new Float32Array([0.5, 0.3]));
  close(agg.entropy()[0], Math.LN2 + H(0.2));
  close(agg.variance()[0], (0 + 0.01) / 2);
});

// A model with a 4-channel dropout mask: foreground logit = (mean of the mask) · x, so each pass's
// probability is sigmoid(s · x) with s known from the mask the test can regenerate from the seed.
function mcManifest(over: Partial<ModelManifest> = {}): ModelManifest {
  return manifest({
    uncertainty: {
      mcDropout: { input: "mask", shape: [1, 4, 1, 1], rate: 0.5, defaultPasses: 5 },
      tta: { flips: [[0], [1]] },
    },
    ...over,
  });
}
const seen: number[][] = [];
const maskedPredictor: Predictor = (input, shape, _signal, extra) => {
  const mask = extra?.mask;
  if (!mask) throw new Error("no mask");
  assert.deepEqual(mask.shape, [shape[0], 4, 1, 1]);
  seen.push([...mask.data.slice(0, 4)]);
  const s = (mask.data[0] + mask.data[1] + mask.data[2] + mask.data[3]) / 4;
  const per = input.length / shape[0];
  const out = new Float32Array(input.length * 2);
  for (let b = 0; b < shape[0]; b++) {
    for (let p = 0; p < per; p++) out[b * 2 * per + per + p] = s * input[b * per + p];
  }
  return Promise.resolve(out);
};

Deno.test("MC dropout: mean, variance and per-pass volumes match the closed form from the seeded masks", async () => {
  const v = volume([6, 5, 2], (i, j) => (i - 2.5) * 0.8 + j * 0.1);
  const passes = 6, seed = 1234;
  seen.length = 0;
  const rt = runtime(
    mcManifest({
      spatial: { mode: "slice2d", window: [4, 4], overlap: 0.5, blending: "gaussian", batch: 3 },
    }),
    [maskedPredictor],
  );
  const r = await segment(v, rt, { uncertainty: "mc", passes, seed, measure: "variance" });
  const rng = mulberry32(seed);
  const masks = Array.from({ length: passes }, () => dropoutMask({ shape: [1, 4, 1, 1], rate: 0.5 }, rng));
  const scales = masks.map((m) => m.reduce((a, b) => a + b, 0) / 4);
  assert.equal(r.provenance.seed, seed);
  assert.equal(r.provenance.passes, passes);
  assert.equal(r.uncertainty?.method, "mc");
  for (let p = 0; p < v.data.length; p++) {
    const ps = scales.map((s) => sigmoid(s * v.data[p]));
    const m = ps.reduce((a, b) => a + b, 0) / passes;
    const varPop = ps.reduce((a, b) => a + (b - m) ** 2, 0) / passes;
    close(r.uncertainty!.data[p], varPop);
    assert.equal(r.labelmap.data[p], m > 0.5 ? 1 : 0);
  }
  const perPass = scales.map((s) => [...v.data].filter((x) => sigmoid(s * x) > 0.5).length);
  const mu = perPass.reduce((a, b) => a + b, 0) / passes / 1000;
  const sd = Math.sqrt(perPass.reduce((a, b) => a + (b / 1000 - mu) ** 2, 0) / (passes - 1));
  close(r.statistics[0].volumeSdMl!, sd, 1e-9);
  // 8 windows per pass in batches of 3 → 3 calls per pass, each with that pass's mask
  assert.equal(seen.length, passes * 3);
  seen.forEach((m, call) => assert.deepEqual(m, [...masks[Math.floor(call / 3)]]));
});

Deno.test("MC dropout with the same seed is reproducible and a different seed differs", async () => {
  const v = volume([6, 6, 1], (i, j) => i - j);
  const rt = runtime(mcManifest(), [maskedPredictor]);
  const a = await segment(v, rt, { uncertainty: "mc", passes: 4, seed: 7 });
  const b = await segment(v, rt, { uncertainty: "mc", passes: 4, seed: 7 });
  const c = await segment(v, rt, { uncertainty: "mc", passes: 4, seed: 8 });
  assert.deepEqual(a.uncertainty!.data, b.uncertainty!.data);
  assert.notDeepEqual(a.uncertainty!.data, c.uncertainty!.data);
});

Deno.test("without MC the dropout input is all ones (dropout off)", async () => {
  seen.length = 0;
  await segment(volume([4, 4, 1], () => 1), runtime(mcManifest(), [maskedPredictor]));
  assert.ok(seen.length > 0 && seen.every((m) => m.every((x) => x === 1)));
});

Deno.test("TTA with a translation-equivariant predictor has zero variance and the un-flipped answer", async () => {
  const v = volume([7, 5, 3], (i, j, k) => i - 3 + 0.3 * j - 0.2 * k);
  const rt = runtime(mcManifest({ uncertainty: { tta: { flips: [[0], [1], [0, 1]] } } }), [(x, shape) => {
    const per = x.length / shape[0];
    const out = new Float32Array(x.length * 2);
    for (let b = 0; b < shape[0]; b++) out.set(x.subarray(b * per, (b + 1) * per), b * 2 * per + per);
    return Promise.resolve(out);
  }]);
  const r = await segment(v, rt, { uncertainty: "tta", measure: "variance", keepProbabilities: true });
  assert.equal(r.provenance.passes, 4);
  assert.ok(r.uncertainty!.data.every((x) => x < 1e-10));
  for (let p = 0; p < v.data.length; p++) assert.equal(r.labelmap.data[p], v.data[p] > 0 ? 1 : 0);
});

Deno.test("TTA intensity scales average sigmoid(s·x) over the scales (closed form)", async () => {
  const v = volume([4, 4, 1], (i, j) => i - j * 0.5);
  const rt = runtime(mcManifest({ uncertainty: { tta: { flips: [] } } }), [(x, shape) => {
    const out = new Float32Array(x.length * 2);
    out.set(x, x.length / shape[0]);
    return Promise.resolve(out);
  }]);
  const r = await segment(v, rt, { uncertainty: "tta", ttaIntensityScales: [0.5, 2], measure: "variance" });
  for (let p = 0; p < v.data.length; p++) {
    const ps = [1, 0.5, 2].map((s) => sigmoid(s * v.data[p]));
    const m = ps.reduce((a, b) => a + b) / 3;
    close(r.uncertainty!.data[p], ps.reduce((a, b) => a + (b - m) ** 2, 0) / 3);
  }
});

Deno.test("an ensemble of two constant members has variance (p1 − p2)² / 4", async () => {
  const constant = (logit: number): Predictor => (x) => {
    const out = new Float32Array(x.length * 2);
    out.fill(logit, x.length);
    return Promise.resolve(out);
  };
  const v = volume([5, 4, 2], () => 0);
  const r = await segment(v, runtime(manifest(), [constant(1), constant(-2)]), {
    uncertainty: "ensemble",
    measure: "variance",
  });
  const p1 = sigmoid(1), p2 = sigmoid(-2);
  assert.equal(r.provenance.passes, 2);
  assert.ok(r.uncertainty!.data.every((x) => Math.abs(x - (p1 - p2) ** 2 / 4) < 1e-6));
  const mi = await segment(v, runtime(manifest(), [constant(1), constant(-2)]), {
    uncertainty: "ensemble",
    measure: "mutualInformation",
  });
  close(mi.uncertainty!.data[0], H((p1 + p2) / 2) - (H(p1) + H(p2)) / 2);
});

Deno.test("combined methods plan the documented passes", () => {
  const m = mcManifest();
  assert.equal(planPasses("mc+ensemble", m, 2, 3).length, 6);
  const mt = planPasses("mc+tta", m, 1, 5);
  assert.equal(mt.length, 5);
  assert.deepEqual(mt.map((p) => p.flips), [[], [0], [1], [], [0]]);
  assert.ok(mt.every((p) => p.mc));
  assert.equal(planPasses("tta", m, 1, 1, [1.1]).length, 4);
});

Deno.test("mc+ensemble uses both members with fresh masks and records the seed", async () => {
  const calls = [0, 0];
  const member = (i: number): Predictor => (x, s, sig, extra) => {
    calls[i]++;
    return maskedPredictor(x, s, sig, extra);
  };
  const r = await segment(volume([4, 4, 1], (i) => i - 2), runtime(mcManifest(), [member(0), member(1)]), {
    uncertainty: "mc+ensemble",
    passes: 3,
    seed: 5,
  });
  assert.equal(r.provenance.passes, 6);
  assert.equal(r.provenance.uncertainty, "mc+ensemble");
  assert.ok(calls[0] === 3 && calls[1] === 3);
  assert.ok(r.statistics[0].meanUncertainty !== undefined);
});

Deno.test("slice-wise models give identical results whether streamed slab by slab or in one piece", async () => {
  const v = volume([9, 7, 5], (i, j, k) => (i - 4) * 0.7 + (j - 3) * 0.2 + k * 10 - 20);
  const m = mcManifest({
    preprocessing: { intensity: { kind: "zscore", mask: "all" } },
    spatial: { mode: "slice2d", window: [4, 4], overlap: 0.5, blending: "gaussian", batch: 2 },
  });
  const opts = {
    uncertainty: "mc+tta" as const,
    passes: 4,
    seed: 11,
    keepProbabilities: true,
    measure: "mutualInformation" as const,
  };
  const whole = await segment(v, runtime(m, [maskedPredictor]), opts);
  const streamed = await segment(v, runtime(m, [maskedPredictor]), opts, { slabVoxels: 1 });
  assert.deepEqual(streamed.labelmap.data, whole.labelmap.data);
  assert.deepEqual(streamed.probabilities!.data, whole.probabilities!.data);
  for (let p = 0; p < v.data.length; p++) {
    close(streamed.uncertainty!.data[p], whole.uncertainty!.data[p], 1e-6);
  }
  assert.deepEqual(streamed.statistics, whole.statistics);
  assert.equal(streamed.provenance.windows, whole.provenance.windows);
});

Deno.test("a single MC pass still returns an uncertainty map: its entropy, with zero variance", async () => {
  const v = volume([5, 4, 1], (i) => i - 2);
  const e = await segment(v, runtime(mcManifest(), [maskedPredictor]), {
    uncertainty: "mc",
    passes: 1,
    seed: 2,
  });
  assert.equal(e.uncertainty!.passes, 1);
  assert.ok(e.uncertainty!.data.some((x) => x > 0.1));
  const va = await segment(v, runtime(mcManifest(), [maskedPredictor]), {
    uncertainty: "mc",
    passes: 1,
    measure: "variance",
  });
  assert.ok(va.uncertainty!.data.every((x) => x === 0));
  assert.equal(va.statistics[0].volumeSdMl, undefined, "no spread from one pass");
});

function mc3dManifest(flips: number[][]): ModelManifest {
  return mcManifest({
    inputs: [{ name: "input", dtype: "float32", shape: ["batch", 1, "d", "h", "w"] }],
    outputs: [{ name: "logits", dtype: "float32", shape: ["batch", 2, "d", "h", "w"] }],
    spatial: { mode: "patch3d", window: [4, 4, 4], overlap: 0.5, blending: "gaussian", batch: 3 },
    uncertainty: {
      mcDropout: { input: "mask", shape: [1, 4, 1, 1], rate: 0.5, defaultPasses: 3 },
      tta: { flips },
    },
  });
}

Deno.test("patch3d MC + TTA (z flips included) streams rows and matches the closed form per voxel", async () => {
  const v = volume([6, 5, 11], (i, j, k) => (i - 2.5) * 0.5 + (j - 2) * 0.3 + (k - 5) * 0.2);
  const passes = 5, seed = 77;
  const rt = runtime(mc3dManifest([[2], [0, 1, 2], [1]]), [maskedPredictor]);
  const r = await segment(v, rt, {
    uncertainty: "mc+tta",
    passes,
    seed,
    measure: "variance",
    keepProbabilities: true,
  });
  const rng = mulberry32(seed);
  const scales = Array.from({ length: passes }, () => dropoutMask({ shape: [1, 4, 1, 1], rate: 0.5 }, rng))
    .map((m) => m.reduce((a, b) => a + b, 0) / 4);
  for (let p = 0; p < v.data.length; p++) {
    const ps = scales.map((s) => sigmoid(s * v.data[p]));
    const m = ps.reduce((a, b) => a + b, 0) / passes;
    close(r.uncertainty!.data[p], ps.reduce((a, b) => a + (b - m) ** 2, 0) / passes);
    assert.equal(r.probabilities!.data[p], Math.round(m * 255));
    assert.equal(r.labelmap.data[p], m > 0.5 ? 1 : 0);
  }
  assert.equal(r.provenance.passes, passes);
});

Deno.test("patch3d TTA with a pointwise predictor maps every flipped row back to its own slices", async () => {
  const v = volume([5, 6, 9], (i, j, k) => ((i * 7 + j * 3 + k * 5) % 11) - 5);
  const m = mc3dManifest([[2], [0], [0, 2], [1, 2]]);
  const plain = await segment(v, runtime(m, [maskedPredictor]), { keepProbabilities: true });
  const tta = await segment(v, runtime(m, [maskedPredictor]), {
    uncertainty: "tta",
    keepProbabilities: true,
    measure: "variance",
  });
  assert.equal(tta.provenance.passes, 5);
  assert.deepEqual(tta.labelmap.data, plain.labelmap.data);
  assert.deepEqual(tta.probabilities!.data, plain.probabilities!.data);
  assert.ok(tta.uncertainty!.data.every((x) => x < 1e-12));
});
