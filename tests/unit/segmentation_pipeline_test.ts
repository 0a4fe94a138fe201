import assert from "node:assert/strict";
import { CancelledError, InputError, ManifestError } from "../../src/core/errors.ts";
import type { Geometry, Progress } from "../../src/core/types.ts";
import {
  applyActivation,
  applyIntensity,
  decide,
  decisionRule,
  resampleLinear,
  resampleNearest,
  segment,
  selectChannels,
  targetGeometry,
} from "../../src/segmentation/mod.ts";
import { geometry, manifest, runtime, thresholdPredictor, volume } from "./segmentation_fakes.ts";

// ---- preprocessing -------------------------------------------------------------------------------

Deno.test("channel selection picks the green channel of an RGB image", () => {
  const rgb = new Uint8Array([1, 2, 10, 20, 100, 200]); // 2 voxels × 3 channels, planar
  assert.deepEqual([...selectChannels(rgb, 2, 3, { channels: [1] }, 1)], [10, 20]);
});

Deno.test("a single channel is repeated when the model wants three and the recipe says repeat", () => {
  const grey = new Int16Array([5, -5]);
  assert.deepEqual([...selectChannels(grey, 2, 1, { expandChannels: "repeat" }, 3)], [5, -5, 5, -5, 5, -5]);
  assert.throws(
    () => selectChannels(grey, 2, 1, {}, 3),
    (e) => e instanceof InputError && e.code === "CHANNEL_COUNT",
  );
  assert.throws(
    () => selectChannels(grey, 2, 1, { channels: [2] }, 1),
    (e) => e instanceof InputError && e.code === "CHANNEL_MISSING",
  );
});

Deno.test("a CT window clips and maps to the output range", () => {
  const a = new Float32Array([-1000, -160, 40, 240, 3000]);
  applyIntensity(a, 5, { kind: "window", center: 40, width: 400, outMin: 0, outMax: 1 });
  assert.deepEqual([...a], [0, 0, 0.5, 1, 1]);
});

Deno.test("clipScale and scale transforms are linear maps", () => {
  const a = new Float32Array([0, 50, 100, 200]);
  applyIntensity(a, 4, { kind: "clipScale", min: 0, max: 100, outMin: -1, outMax: 1 });
  assert.deepEqual([...a], [-1, 0, 1, 1]);
  const b = new Float32Array([1, 2]);
  applyIntensity(b, 2, { kind: "scale", scale: 2, offset: 1 });
  assert.deepEqual([...b], [3, 5]);
});

Deno.test("z-score over nonzero voxels leaves zeros alone and clips", () => {
  const a = new Float32Array([0, 2, 4, 0, 6]); // nonzero mean 4, population sd sqrt(8/3)
  applyIntensity(a, 5, { kind: "zscore", mask: "nonzero", clip: [-1, 1] });
  const sd = Math.sqrt(8 / 3);
  assert.equal(a[0], 0);
  assert.ok(Math.abs(a[1] - -1) < 1e-6); // -2/sd = -1.22 clipped to -1
  assert.equal(a[2], 0);
  assert.ok(Math.abs(a[4] - 1) < 1e-6);
  const b = new Float32Array([1, 3]);
  applyIntensity(b, 2, { kind: "zscore", mask: "all" });
  assert.deepEqual([...b], [-1, 1]);
  assert.ok(sd > 0);
});

// ---- resampling -----------------------------------------------------------------------------------

Deno.test("resampling to the native spacing returns the same array without a copy", () => {
  const g = geometry([4, 4, 4], [1, 1, 2]);
  assert.equal(targetGeometry(g, [1, null, 2]), g);
  const a = new Float32Array(64);
  assert.equal(resampleLinear(a, [4, 4, 4], [4, 4, 4]), a);
  const l = new Uint8Array(64);
  assert.equal(resampleNearest(l, [4, 4, 4], [4, 4, 4]), l);
});

Deno.test("the target grid keeps the physical extent and moves the origin by half a voxel", () => {
  const g: Geometry = {
    dims: [10, 10, 5],
    spacing: [1, 1, 4],
    origin: [0, 0, 0],
    direction: [1, 0, 0, 0, 0, 1, 0, -1, 0],
  };
  const t = targetGeometry(g, [null, null, 2]);
  assert.deepEqual(t.dims, [10, 10, 10]);
  assert.deepEqual(t.spacing, [1, 1, 2]);
  // k runs along +y here (third column); the first centre moves 1 mm back along k: edge at −2, centre at −1
  assert.deepEqual(t.origin, [0, -1, 0]);
  assert.equal(t.direction, g.direction);
});

Deno.test("upsampling then downsampling a linear ramp returns it exactly away from the clamped edges", () => {
  const src = new Float32Array(5 * 3 * 2).map((_, i) => Math.cos(i));
  const up = resampleLinear(src, [5, 3, 2], [10, 9, 4]);
  // going back averages the two neighbours around each original centre, which lie symmetric for
  // even factors only in the interior; constant fields are exact everywhere
  const c = new Float32Array(30).fill(3.5);
  const cu = resampleLinear(c, [5, 3, 2], [15, 7, 5]);
  assert.ok(cu.every((x) => Math.abs(x - 3.5) < 1e-6));
  assert.equal(up.length, 10 * 9 * 4);
  const ramp = new Float32Array(8).map((_, i) => i * 2);
  const r = resampleLinear(resampleLinear(ramp, [8, 1, 1], [16, 1, 1]), [16, 1, 1], [8, 1, 1]);
  // edge voxels see the clamped (constant-extended) border, as in align_corners=False resizers
  assert.ok(r.every((x, i) => i === 0 || i === 7 || Math.abs(x - ramp[i]) < 1e-5), `${[...r]}`);
  assert.ok(Math.abs(r[0] - 0.25) < 1e-6);
});

Deno.test("nearest-neighbour label resampling round-trips integer factors exactly", () => {
  const l = new Uint8Array([0, 1, 2, 3, 4, 5]);
  const up = resampleNearest(l, [6, 1, 1], [18, 1, 1]);
  assert.deepEqual([...up.slice(0, 6)], [0, 0, 0, 1, 1, 1]);
  assert.deepEqual([...resampleNearest(up, [18, 1, 1], [6, 1, 1])], [...l]);
});

// ---- activations and decisions ----------------------------------------------------------------------

Deno.test("softmax sums to one per voxel and argmax maps channels to label values", () => {
  const logits = new Float32Array([0, 0, 0, /* c1 */ 1, -1, 0, /* c2 */ 0, 2, 5]);
  applyActivation(logits, 3, 3, "softmax");
  for (let v = 0; v < 3; v++) assert.ok(Math.abs(logits[v] + logits[3 + v] + logits[6 + v] - 1) < 1e-6);
  const labels = decide(logits, 3, 3, [{ ...manifest().labels[0], value: 7, channel: 1 }, {
    ...manifest().labels[0],
    value: 9,
    channel: 2,
  }], "argmax");
  assert.deepEqual([...labels], [7, 9, 9]);
});

Deno.test("sigmoid thresholds are per label and the most probable passing label wins", () => {
  const p = new Float32Array([0.6, 0.9, 0.2, /* c1 */ 0.7, 0.3, 0.1]);
  const base = manifest().labels[0];
  const labels = decide(p, 3, 2, [{ ...base, value: 1, channel: 0, threshold: 0.5 }, {
    ...base,
    value: 2,
    channel: 1,
    threshold: 0.25,
  }], "threshold");
  assert.deepEqual([...labels], [2, 1, 0]);
});

Deno.test("a softmax label threshold decides on that label's probability; without one, argmax", () => {
  const base = manifest().labels[0];
  assert.equal(decisionRule("softmax", 2, [base]), "argmax");
  assert.equal(decisionRule("softmax", 2, [{ ...base, threshold: 0.7 }]), "threshold");
  assert.equal(decisionRule("sigmoid", 1, [{ ...base, channel: 0 }]), "threshold");
  // two classes: background 1 - p, foreground p
  const p = new Float32Array([0.45, 0.35, 0.2, 0.05, /* c1 */ 0.55, 0.65, 0.8, 0.95]);
  assert.deepEqual([...decide(p, 4, 2, [base], "argmax")], [1, 1, 1, 1]);
  assert.deepEqual([...decide(p, 4, 2, [{ ...base, threshold: 0.7 }], "threshold")], [0, 0, 1, 1]);
});

// ---- segment() --------------------------------------------------------------------------------------

const ct = (dims: [number, number, number], g?: Partial<Geometry>) =>
  volume(dims, (i, j) => (i + j) % 7 < 3 ? 300 : -100, g);

Deno.test("segment() with a threshold predictor labels exactly the bright voxels and keeps geometry", async () => {
  const direction: Geometry["direction"] = [0, 0, 1, 1, 0, 0, 0, 1, 0]; // sagittal: non-axial
  const v = ct([13, 11, 3], { spacing: [0.7, 0.7, 3], origin: [10, -20, 30], direction });
  const m = manifest({
    spatial: { mode: "slice2d", window: [8, 8], overlap: 0.25, blending: "gaussian", batch: 2 },
  });
  const progress: Progress[] = [];
  const r = await segment(v, runtime(m, [thresholdPredictor(100)]), { onProgress: (p) => progress.push(p) });
  for (let p = 0; p < v.data.length; p++) assert.equal(r.labelmap.data[p], v.data[p] > 100 ? 1 : 0);
  assert.deepEqual(r.labelmap.geometry, v.geometry);
  assert.equal(r.labelmap.segments[0].algorithmType, "AUTOMATIC");
  assert.equal(r.labelmap.segments[0].algorithmName, "Fake model");
  assert.equal(r.labelmap.segments[0].algorithmVersion, "1.2.3");
  assert.equal(r.provenance.windows, 4 * 3);
  assert.equal(r.provenance.provider, "fake");
  assert.deepEqual(r.provenance.fallbackReasons, ["webgpu: not in tests"]);
  assert.ok(progress.some((p) => p.phase === "inference" && p.done === p.total && p.total === 12));
  assert.equal(r.uncertainty, undefined);
  const bright = [...v.data].filter((x) => x > 100).length;
  assert.equal(r.statistics[0].voxels, bright);
  assert.ok(Math.abs(r.statistics[0].volumeMl - (bright * 0.7 * 0.7 * 3) / 1000) < 1e-9);
  assert.equal(r.statistics[0].meanIntensity, 300);
});

Deno.test("patch3d with anisotropic target spacing gets uniform regions right and returns on the original grid", async () => {
  const v = volume([12, 10, 6], (i) => (i < 6 ? 500 : -500), { spacing: [1, 1, 2.5] });
  const m = manifest({
    inputs: [{ name: "input", dtype: "float32", shape: ["batch", 1, "d", "h", "w"] }],
    outputs: [{ name: "logits", dtype: "float32", shape: ["batch", 2, "d", "h", "w"] }],
    preprocessing: { intensity: { kind: "none" }, targetSpacingMm: [null, null, 1.25] },
    spatial: { mode: "patch3d", window: [8, 8, 8], overlap: 0.5, blending: "gaussian" },
  });
  const r = await segment(v, runtime(m, [thresholdPredictor(0)]), { keepProbabilities: true });
  assert.deepEqual(r.labelmap.geometry.dims, [12, 10, 6]);
  for (let p = 0; p < v.data.length; p++) assert.equal(r.labelmap.data[p], v.data[p] > 0 ? 1 : 0);
  assert.equal(r.probabilities?.data.length, 12 * 10 * 6);
  assert.equal(r.probabilities?.data[0], 255);
  assert.equal(r.probabilities?.data[11], 0);
});

Deno.test("segment() refuses a wrong modality, missing spacing, too few slices and wrong channels", async () => {
  const rt = runtime(manifest({ constraints: { modalities: ["CT"], channels: 1, minSlices: 4 } }), [
    thresholdPredictor(0),
  ]);
  const code = (c: string) => (e: unknown) => e instanceof InputError && e.code === c;
  await assert.rejects(segment({ ...ct([8, 8, 4]), modality: "MR" }, rt), code("MODALITY"));
  await assert.rejects(segment(ct([8, 8, 4], { spacing: [1, 0, 1] }), rt), code("SPACING"));
  await assert.rejects(segment(ct([8, 8, 4], { spacing: [1, NaN, 1] }), rt), code("SPACING"));
  await assert.rejects(segment(ct([8, 8, 2]), rt), code("TOO_FEW_SLICES"));
  await assert.rejects(segment({ ...ct([8, 8, 4]), channels: 3 }, rt), code("CHANNELS"));
  await assert.rejects(segment(ct([8, 8, 4]), rt, { uncertainty: "mc" }), code("UNCERTAINTY_UNSUPPORTED"));
});

Deno.test("a volume over the memory budget is refused before the predictor runs", async () => {
  let calls = 0;
  const rt = runtime(manifest(), [(x) => {
    calls++;
    return Promise.resolve(new Float32Array(x.length * 2));
  }]);
  await assert.rejects(
    segment(ct([64, 64, 16]), rt, { memoryBudgetBytes: 100_000 }),
    (e) => e instanceof InputError && e.code === "MEMORY_BUDGET" && /MiB/.test(e.message),
  );
  assert.equal(calls, 0);
});

Deno.test("an aborted signal stops segment() with CancelledError between windows", async () => {
  const ctrl = { aborted: false, reason: undefined as unknown };
  let calls = 0;
  const rt = runtime(manifest(), [(x, shape) => {
    calls++;
    if (calls === 2) {
      ctrl.aborted = true;
      ctrl.reason = "user closed the study";
    }
    return thresholdPredictor(0)(x, shape);
  }]);
  await assert.rejects(
    segment(ct([16, 16, 4]), rt, { signal: ctrl }),
    (e) => e instanceof CancelledError && /user closed/.test(e.message),
  );
  assert.equal(calls, 2);
});

Deno.test("a predictor returning the wrong size is a ManifestError naming expected and found", async () => {
  const rt = runtime(manifest(), [(x) => Promise.resolve(x.slice())]);
  await assert.rejects(
    segment(ct([8, 8, 1]), rt),
    (e) => e instanceof ManifestError && e.code === "OUTPUT_SHAPE" && /expected/.test(e.message),
  );
});

Deno.test("post-processing runs inside segment(): the largest component is kept", async () => {
  const v = volume([12, 12, 1], (i, j) => ((i < 2 && j < 2) || (i > 4 && j > 4) ? 100 : 0));
  const m = manifest({ postprocessing: { largestComponent: [1] } });
  const r = await segment(v, runtime(m, [thresholdPredictor(50)]));
  assert.equal(r.statistics[0].components, 1);
  assert.equal(r.statistics[0].voxels, 49);
});

Deno.test("an RGB image2d model reads the green channel, thresholds a sigmoid and keeps its probabilities", async () => {
  const dims: [number, number, number] = [10, 6, 1];
  const n = 60;
  const data = new Uint8Array(3 * n);
  for (let p = 0; p < n; p++) {
    data[p] = 255; // red saturated everywhere: must be ignored
    data[n + p] = p % 10 < 4 ? 200 : 20; // green carries the structure
  }
  const v = { geometry: geometry(dims), channels: 3, data, modality: "OP" };
  const m = manifest({
    constraints: { modalities: ["OP"], channels: 3 },
    outputs: [{ name: "logits", dtype: "float32", shape: ["batch", 1, "height", "width"] }],
    activation: "sigmoid",
    preprocessing: {
      channels: [1],
      intensity: { kind: "clipScale", min: 0, max: 255, outMin: 0, outMax: 1 },
    },
    spatial: { mode: "image2d", window: [-1, -1], overlap: 0, blending: "constant" },
    labels: [{ ...manifest().labels[0], channel: 0, value: 300, threshold: 0.6 }],
  });
  // logit = 10·(x − 0.5): green 200 → x 0.78 → p 0.94; green 20 → p 0.01
  const r = await segment(v, runtime(m, [(x) => Promise.resolve(x.map((t) => 10 * (t - 0.5)))]), {
    keepProbabilities: true,
  });
  assert.ok(r.labelmap.data instanceof Uint16Array, "label values above 255 need 16 bits");
  for (let p = 0; p < n; p++) assert.equal(r.labelmap.data[p], p % 10 < 4 ? 300 : 0);
  assert.equal(r.probabilities!.channels, 1);
  assert.equal(r.probabilities!.data[0], Math.round(255 / (1 + Math.exp(-10 * (200 / 255 - 0.5)))));
  assert.equal(r.provenance.windows, 1);
});

Deno.test("segment() reports inference progress per batch up to the total and ends with post-processing", async () => {
  const progress: Progress[] = [];
  const m = manifest({
    spatial: { mode: "slice2d", window: [8, 8], overlap: 0, blending: "gaussian", batch: 3 },
  });
  await segment(ct([16, 16, 2]), runtime(m, [thresholdPredictor(0)]), {
    onProgress: (p) => progress.push(p),
  });
  const inf = progress.filter((p) => p.phase === "inference").map((p) => p.done);
  assert.deepEqual(inf, [3, 6, 8]);
  assert.equal(progress.at(-1)!.phase, "postprocessing");
  assert.equal(progress.at(-1)!.done, 1);
});

Deno.test("provenance separates model time from the pipeline's own time", async () => {
  const r = await segment(ct([8, 8, 2]), runtime(manifest(), [thresholdPredictor(0)]));
  const t = r.provenance.timingsMs;
  for (
    const key of [
      "preprocessing",
      "model",
      "windowing",
      "aggregation",
      "postprocessing",
      "statistics",
      "total",
    ]
  ) {
    assert.ok(typeof t[key] === "number" && t[key] >= 0, key);
  }
  assert.equal(r.provenance.modelSha256, "ab".repeat(32));
  assert.equal(r.provenance.seed, undefined, "no seed without MC");
  assert.match(r.provenance.software, /EdgeSeg/);
});

Deno.test("a single-pass patch3d model streams z-rows and matches the multi-pass whole-volume path", async () => {
  const v = volume([10, 9, 14], (i, j, k) => (i - 5) * 30 + (j - 4) * 10 + (k - 7) * 20);
  const m = manifest({
    inputs: [{ name: "input", dtype: "float32", shape: ["batch", 1, "d", "h", "w"] }],
    outputs: [{ name: "logits", dtype: "float32", shape: ["batch", 2, "d", "h", "w"] }],
    preprocessing: { intensity: { kind: "zscore", mask: "all" } },
    spatial: { mode: "patch3d", window: [6, 6, 5], overlap: 0.5, blending: "gaussian", batch: 3 },
    uncertainty: { tta: { flips: [[0]] } },
  });
  const streamed = await segment(v, runtime(m, [thresholdPredictor(0, 3)]), { keepProbabilities: true });
  // TTA with a translation-equivariant predictor averages identical passes on the whole-volume path
  const whole = await segment(v, runtime(m, [thresholdPredictor(0, 3)]), {
    uncertainty: "tta",
    keepProbabilities: true,
  });
  assert.deepEqual(streamed.labelmap.data, whole.labelmap.data);
  let maxDiff = 0;
  for (let p = 0; p < streamed.probabilities!.data.length; p++) {
    maxDiff = Math.max(maxDiff, Math.abs(streamed.probabilities!.data[p] - whole.probabilities!.data[p]));
  }
  assert.ok(maxDiff <= 1, `quantised probabilities differ by ${maxDiff}`);
  assert.equal(streamed.provenance.windows * 2, whole.provenance.windows);
});

Deno.test("the working-set estimate for a CT-sized slice-wise run stays under 4× the input bytes", async () => {
  const { estimateWorkingSetBytes } = await import("../../src/segmentation/mod.ts");
  const dims: [number, number, number] = [512, 512, 200];
  // no voxel data is needed to estimate: only geometry and the manifest
  const v = {
    geometry: geometry(dims, [0.7, 0.7, 1.5]),
    channels: 1,
    data: new Int16Array(0),
    modality: "CT",
  };
  const inputBytes = 2 * 512 * 512 * 200;
  const m = manifest({
    spatial: { mode: "slice2d", window: [512, 512], overlap: 0, blending: "gaussian", batch: 4 },
  });
  const plain = estimateWorkingSetBytes(v, m, "none");
  assert.ok(plain < 4 * inputBytes, `${plain} bytes`);
  const mc = estimateWorkingSetBytes(v, m, "mc");
  assert.ok(mc > plain && mc < 4 * inputBytes, `${mc} bytes with MC`);
  const m3 = manifest({
    spatial: { mode: "patch3d", window: [96, 96, 96], overlap: 0.5, blending: "gaussian" },
  });
  const cube = { ...v, geometry: geometry([256, 256, 256]) };
  assert.ok(
    estimateWorkingSetBytes(cube, m3, "none") < estimateWorkingSetBytes(cube, m3, "tta"),
    "row streaming is cheaper",
  );
});

Deno.test("cancellation also stops a streamed patch3d run", async () => {
  const v = volume([8, 8, 12], (i) => i - 4);
  const m = manifest({
    inputs: [{ name: "input", dtype: "float32", shape: ["batch", 1, "d", "h", "w"] }],
    spatial: { mode: "patch3d", window: [8, 8, 4], overlap: 0, blending: "gaussian" },
  });
  const ctrl = { aborted: false };
  let calls = 0;
  const rt = runtime(m, [(x, shape) => {
    if (++calls === 2) ctrl.aborted = true;
    return thresholdPredictor(0)(x, shape);
  }]);
  await assert.rejects(segment(v, rt, { signal: ctrl }), CancelledError);
  assert.equal(calls, 2);
});

Deno.test("slice2d with in-plane resampling streams slabs and matches the one-piece run", async () => {
  const v = volume([24, 18, 4], (i, j, k) => (i < 12 ? 400 : -400) + j * 3 + k, { spacing: [0.5, 0.5, 3] });
  const m = manifest({
    preprocessing: { intensity: { kind: "none" }, targetSpacingMm: [1, 1, null] },
    spatial: { mode: "slice2d", window: [8, 8], overlap: 0.5, blending: "gaussian", batch: 2 },
  });
  const whole = await segment(v, runtime(m, [thresholdPredictor(0, 0.02)]), { keepProbabilities: true });
  const streamed = await segment(v, runtime(m, [thresholdPredictor(0, 0.02)]), { keepProbabilities: true }, {
    slabVoxels: 1,
  });
  assert.deepEqual(streamed.labelmap.data, whole.labelmap.data);
  assert.deepEqual(streamed.probabilities!.data, whole.probabilities!.data);
  assert.deepEqual(whole.labelmap.geometry, v.geometry);
  for (let k = 0; k < 4; k++) {
    for (let j = 0; j < 18; j++) {
      assert.equal(whole.labelmap.data[2 + 24 * (j + 18 * k)], 1);
      assert.equal(whole.labelmap.data[21 + 24 * (j + 18 * k)], 0);
    }
  }
});

Deno.test("segment() with a softmax label threshold labels where the foreground probability reaches it", async () => {
  // the fake logit difference is the voxel value, so p(foreground) = sigmoid(value)
  const v = volume([10, 4, 2], (i) => (i - 4) * 0.5);
  const plain = manifest({ uncertainty: { tta: { flips: [[0]] } } });
  const strict = manifest({ ...plain, labels: [{ ...plain.labels[0], threshold: 0.8 }] });
  const a = await segment(v, runtime(plain, [thresholdPredictor(0, 1)]), { uncertainty: "tta" });
  const b = await segment(v, runtime(strict, [thresholdPredictor(0, 1)]), { uncertainty: "tta" });
  const firstLabelled = (data: ArrayLike<number>) => Array.from({ length: 10 }, (_, i) => data[i]).indexOf(1);
  assert.equal(firstLabelled(a.labelmap.data), 5, "argmax: value > 0"); // (5 - 4) * 0.5 = 0.5 > 0
  assert.equal(firstLabelled(b.labelmap.data), 7, "threshold 0.8: value ≥ ln 4 ≈ 1.39"); // 1.5
  // the uncertainty is the entropy of the same two-class distribution whatever the threshold
  assert.deepEqual(b.uncertainty!.data, a.uncertainty!.data);
});
