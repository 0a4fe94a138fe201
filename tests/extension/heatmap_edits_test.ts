import assert from "node:assert/strict";
import type { Labelmap, UncertaintyMap } from "../../src/core/types.ts";
import { binAlpha, binLow, heatmapBins, measureText } from "../../extension/src/heatmap.ts";
import { editedSegments, withEdits } from "../../extension/src/labelmap.ts";

const geometry = {
  dims: [4, 1, 1] as [number, number, number],
  spacing: [1, 1, 1] as [number, number, number],
  origin: [0, 0, 0] as [number, number, number],
  direction: [1, 0, 0, 0, 1, 0, 0, 0, 1] as Labelmap["geometry"]["direction"],
};
const code = { value: "", scheme: "", meaning: "" };

function labelmap(data: number[]): Labelmap {
  return {
    geometry,
    data: Uint8Array.from(data),
    segments: [1, 2].map((n) => ({
      number: n,
      label: `s${n}`,
      category: code,
      type: code,
      color: [255, 0, 0] as [number, number, number],
      algorithmType: "AUTOMATIC" as const,
    })),
  };
}

Deno.test("the heatmap leaves the certain floor transparent and puts the maximum in the top bin", () => {
  const map: UncertaintyMap = {
    geometry,
    data: Float32Array.from([0, 0.08, 0.55, 1]),
    measure: "entropy",
    method: "mc",
    passes: 4,
  };
  const h = heatmapBins(map, { bins: 10 });
  assert.deepEqual([...h.labelmap.data], [0, 1, 6, 10]);
  assert.deepEqual(h.range, [0, 1]);
  assert.equal(h.labelmap.segments.length, 10);
  assert.ok(Math.abs(binLow(h, 6) - 0.5) < 1e-9);
  assert.match(h.labelmap.segments[0].label, /^Predictive entropy 0\.0–0\.10$/);
  assert.equal(measureText("mutualInformation"), "Mutual information");
});

Deno.test("an unchanged labelmap exports as the model wrote it, AUTOMATIC", () => {
  const lm = labelmap([0, 1, 2, 2]);
  const out = withEdits(lm, [0, 1, 2, 2]);
  assert.equal(out.labelmap, lm);
  assert.deepEqual(out.edited, []);
});

Deno.test("a segment the user painted or erased is exported SEMIAUTOMATIC with the edited voxels", () => {
  const lm = labelmap([0, 1, 2, 2]);
  assert.deepEqual([...editedSegments(lm.data, [1, 1, 2, 2])], [1]);
  const out = withEdits(lm, [1, 1, 2, 0]);
  assert.deepEqual(out.edited, [1, 2]);
  assert.deepEqual([...out.labelmap.data], [1, 1, 2, 0]);
  assert.deepEqual(out.labelmap.segments.map((s) => s.algorithmType), ["SEMIAUTOMATIC", "SEMIAUTOMATIC"]);
  const one = withEdits(lm, [0, 0, 2, 2]);
  assert.deepEqual(one.labelmap.segments.map((s) => s.algorithmType), ["SEMIAUTOMATIC", "AUTOMATIC"]);
  assert.deepEqual([...lm.data], [0, 1, 2, 2], "the run's own labelmap is not modified");
});

Deno.test("voxels painted with a label the model does not know are dropped from the export", () => {
  const out = withEdits(labelmap([0, 1, 2, 2]), [7, 1, 2, 2]);
  assert.deepEqual([...out.labelmap.data], [0, 1, 2, 2]);
  assert.deepEqual(out.edited, []);
});

Deno.test("compare with reference counts TP/FP/FN per segment and marks the overlay green/red/blue", async () => {
  const { compareLabelmaps, compareOverlayLabelmap } = await import("../../extension/src/compare.ts");
  const pred = [0, 1, 1, 2, 0, 1];
  const ref = [0, 1, 0, 2, 2, 2];
  const cmp = compareLabelmaps(pred, ref, [{ number: 1, label: "a" }, { number: 2, label: "b" }]);
  assert.deepEqual([...cmp.overlay], [0, 1, 2, 1, 3, 2]);
  const [a, b] = cmp.perSegment;
  assert.deepEqual([a.tp, a.fp, a.fn], [1, 2, 0]);
  assert.deepEqual([b.tp, b.fp, b.fn], [1, 0, 2]);
  assert.ok(Math.abs(a.dice - 0.5) < 1e-12 && Math.abs(a.precision - 1 / 3) < 1e-12 && a.recall === 1);
  assert.ok(Math.abs(b.dice - 0.5) < 1e-12 && b.precision === 1 && Math.abs(b.recall - 1 / 3) < 1e-12);
  const lm = compareOverlayLabelmap(geometry, cmp.overlay);
  assert.deepEqual(lm.segments.map((s) => s.color), [[0, 200, 0], [230, 0, 0], [0, 90, 255]]);
});

Deno.test("heatmap bins fade in: the lowest bin is nearly clear, the highest opaque, and the ramp rises", () => {
  const alphas = Array.from({ length: 16 }, (_, i) => binAlpha(i + 1, 16));
  assert.ok(alphas[0] <= 25, `bin 1 only tints the image (alpha ${alphas[0]})`);
  assert.equal(alphas[15], 255);
  for (let b = 1; b < 16; b++) {
    assert.ok(alphas[b] > alphas[b - 1], `bin ${b + 1} is more opaque than bin ${b}`);
  }
  assert.equal(binAlpha(1, 1), 255, "a single bin is opaque");
});
