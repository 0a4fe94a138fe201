/** Issue #19: the intervals, calibration inputs and threshold sweep a model card's numbers come from. */
import assert from "node:assert/strict";
import { bootstrap, meanInterval, ratioInterval, ThresholdSweep } from "../../src/segmentation/bootstrap.ts";

Deno.test("the bootstrap interval of a mean contains the mean, narrows with more cases, and is reproducible", () => {
  const few = [0.7, 0.8, 0.75, 0.9, 0.65];
  const a = meanInterval(few);
  const b = meanInterval(few);
  assert.deepEqual(a, b, "seeded: the same numbers every time");
  assert.ok(Math.abs(a.estimate - 0.76) < 1e-12);
  assert.ok(a.low <= a.estimate && a.estimate <= a.high && a.low < a.high);
  assert.ok(a.low >= 0.65 && a.high <= 0.9, "within the range of the data");
  const many = meanInterval(Array.from({ length: 80 }, (_, i) => few[i % few.length]));
  assert.ok(many.high - many.low < (a.high - a.low) / 2, "more cases, a narrower interval");
  const one = meanInterval([0.5]);
  assert.deepEqual([one.low, one.high], [0.5, 0.5], "one case: a zero-width interval");
  assert.ok(Number.isNaN(meanInterval([]).estimate));
  assert.deepEqual(meanInterval([0.5, NaN, 0.7]).estimate, 0.6, "NaN cases are left out");
});

Deno.test("a ratio interval resamples cases, keeping each case's numerator and denominator together", () => {
  const wrong = [0.4, 0.5, 0.6, 0.5], right = [0.1, 0.1, 0.2, 0.1];
  const r = ratioInterval(wrong, right);
  assert.ok(Math.abs(r.estimate - 2.0 / 0.5) < 1e-12);
  assert.ok(r.low > 1, "uncertainty is higher on wrong pixels in every resample");
  assert.ok(r.low <= r.estimate && r.estimate <= r.high);
  const s = bootstrap(3, (idx) => idx.length, { resamples: 10 });
  assert.equal(s.resamples, 10);
});

Deno.test("the threshold sweep counts F1, precision and recall at each threshold and picks the best", () => {
  const sweep = new ThresholdSweep([0.25, 0.5, 0.75]);
  const p = [0.9, 0.6, 0.3, 0.1, 0.8, 0.4];
  const y = [1, 1, 1, 0, 0, 0];
  sweep.add(p, (i) => y[i] === 1);
  const pts = sweep.points();
  // t = 0.5: predicted 0, 1, 4 → TP 2, FP 1, FN 1
  assert.deepEqual(pts[1], { threshold: 0.5, f1: 4 / 6, precision: 2 / 3, recall: 2 / 3 });
  // t = 0.25: predicted 0, 1, 2, 4, 5 → TP 3, FP 2, FN 0
  assert.ok(Math.abs(pts[0].f1 - 6 / 8) < 1e-12);
  assert.equal(sweep.best()!.threshold, 0.25);
  const fov = new Uint8Array([1, 1, 1, 1, 0, 0]);
  const masked = new ThresholdSweep([0.5]);
  masked.add(p, (i) => y[i] === 1, fov);
  assert.deepEqual(masked.points()[0].precision, 1, "pixels outside the field of view are not counted");
});
