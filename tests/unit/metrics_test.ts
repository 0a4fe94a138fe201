import assert from "node:assert/strict";
import {
  aucRoc,
  confusion,
  edtSquared,
  evaluateSegmentation,
  expectedCalibrationError,
  overlapMetrics,
  surfaceDistances,
  surfaceMask,
} from "../../src/segmentation/mod.ts";

const close = (a: number, b: number, tol = 1e-9) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

/** 6×5 image: prediction is the 2×2 square at x 1..2, y 1..2; reference the 3×2 block at x 1..3, y 1..2. */
function pair(): { pred: Uint8Array; ref: Uint8Array } {
  const pred = new Uint8Array(30), ref = new Uint8Array(30);
  for (let y = 1; y <= 2; y++) {
    for (let x = 1; x <= 3; x++) {
      ref[x + 6 * y] = 1;
      if (x <= 2) pred[x + 6 * y] = 1;
    }
  }
  return { pred, ref };
}

Deno.test("overlap metrics match hand-computed counts", () => {
  const { pred, ref } = pair();
  const c = confusion(pred, ref);
  assert.deepEqual(c, { tp: 4, fp: 0, fn: 2, tn: 24 });
  const m = overlapMetrics(c);
  close(m.dice, 0.8);
  close(m.iou, 4 / 6);
  close(m.precision, 1);
  close(m.recall, 4 / 6);
  close(m.specificity, 1);
  close(m.accuracy, 28 / 30);
});

Deno.test("HD95 and ASSD of the hand-made pair are 1 and 1/6 voxel, scaled by spacing", () => {
  const { pred, ref } = pair();
  const d = surfaceDistances(pred, ref, [6, 5, 1], [1, 1, 1]);
  close(d.hd95Mm, 1, 1e-6);
  close(d.assdMm, 1 / 6, 1e-6);
  const d2 = surfaceDistances(pred, ref, [6, 5, 1], [2, 0.5, 1]);
  close(d2.hd95Mm, 2, 1e-6);
  close(d2.assdMm, 1 / 3, 1e-6);
});

Deno.test("the exact EDT equals brute force on a random anisotropic 3D mask", () => {
  const dims: [number, number, number] = [7, 6, 5], spacing: [number, number, number] = [0.7, 1.3, 2.1];
  const f = new Uint8Array(7 * 6 * 5);
  let seed = 3;
  for (let p = 0; p < f.length; p++) {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    f[p] = seed % 17 === 0 ? 1 : 0;
  }
  f[0] = 1;
  const d = edtSquared(f, dims, spacing);
  const pts: number[][] = [];
  for (let p = 0; p < f.length; p++) if (f[p]) pts.push([p % 7, Math.floor(p / 7) % 6, Math.floor(p / 42)]);
  for (let p = 0; p < f.length; p++) {
    const q = [p % 7, Math.floor(p / 7) % 6, Math.floor(p / 42)];
    const best = Math.min(...pts.map((s) => s.reduce((a, v, i) => a + ((v - q[i]) * spacing[i]) ** 2, 0)));
    close(d[p], best, 1e-4);
  }
  assert.ok(edtSquared(new Uint8Array(8), [2, 2, 2], [1, 1, 1]).every((x) => x === Infinity));
});

Deno.test("surface voxels include mask voxels on the volume border", () => {
  const m = new Uint8Array(27).fill(1);
  const s = surfaceMask(m, [3, 3, 3]);
  assert.equal(s.reduce((a, b) => a + b, 0), 26); // all but the centre
});

Deno.test("empty-mask conventions: both empty → Dice 1, HD95 0; one empty → Dice 0, HD95 NaN", () => {
  const empty = new Uint8Array(30), { ref } = pair();
  const both = overlapMetrics(confusion(empty, empty));
  assert.equal(both.dice, 1);
  assert.equal(both.precision, 1);
  assert.equal(both.recall, 1);
  assert.equal(surfaceDistances(empty, empty, [6, 5, 1], [1, 1, 1]).hd95Mm, 0);
  const one = overlapMetrics(confusion(empty, ref));
  assert.equal(one.dice, 0);
  assert.equal(one.precision, 0);
  assert.equal(one.recall, 0);
  assert.ok(Number.isNaN(surfaceDistances(empty, ref, [6, 5, 1], [1, 1, 1]).hd95Mm));
  assert.ok(Number.isNaN(surfaceDistances(ref, empty, [6, 5, 1], [1, 1, 1]).assdMm));
});

Deno.test("AUC is exact, with ties counted as one half", () => {
  close(aucRoc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]), 0.75);
  close(aucRoc([0.5, 0.5], [1, 0]), 0.5);
  close(aucRoc([0.2, 0.5, 0.5, 0.9], [0, 1, 0, 1]), (1 + 0.5 + 1 + 1) / 4);
  assert.ok(Number.isNaN(aucRoc([0.1, 0.2], [1, 1])));
});

Deno.test("expected calibration error over 10 bins matches the hand computation", () => {
  const { ece, bins } = expectedCalibrationError([0.05, 0.15, 0.95, 0.95], [0, 1, 1, 1]);
  close(ece, 0.25);
  assert.equal(bins.length, 10);
  assert.equal(bins[9].count, 2);
  close(expectedCalibrationError([1, 0], [1, 0]).ece, 0);
});

Deno.test("a field-of-view mask restricts every metric", () => {
  const { pred, ref } = pair();
  const fov = new Uint8Array(30);
  for (let y = 0; y < 5; y++) for (let x = 0; x < 3; x++) fov[x + 6 * y] = 1; // drops the column x = 3
  const m = overlapMetrics(confusion(pred, ref, fov));
  assert.equal(m.dice, 1);
  assert.equal(surfaceDistances(pred, ref, [6, 5, 1], [1, 1, 1], fov).hd95Mm, 0);
  close(aucRoc(pred, ref, fov), 1);
});

Deno.test("evaluateSegmentation gives per-label and NaN-skipping mean metrics", () => {
  const { pred, ref } = pair();
  const p = Uint8Array.from(pred), r = Uint8Array.from(ref);
  p[29] = 2; // label 2 predicted, absent from the reference
  const res = evaluateSegmentation(p, r, { dims: [6, 5, 1], spacing: [1, 1, 1] }, [1, 2], {
    probabilities: { 1: Float32Array.from(pred, (x) => x * 0.9) },
  });
  close(res.perLabel[0].dice, 0.8);
  assert.equal(res.perLabel[1].dice, 0);
  assert.ok(Number.isNaN(res.perLabel[1].hd95Mm));
  close(res.mean.dice, 0.4);
  close(res.mean.hd95Mm, 1, 1e-6);
  assert.ok(res.perLabel[0].auc! > 0.5);
});
