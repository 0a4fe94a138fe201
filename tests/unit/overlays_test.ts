import assert from "node:assert/strict";
import {
  colorBar,
  colorBarTicks,
  colormapTable,
  compareOverlayRGBA,
  compositeOnGray,
  heatmapRGBA,
  niceStep,
  sampleColormap,
  sliceOf,
} from "../../src/overlays/mod.ts";

Deno.test("colormap tables hold 256 colours with the known ends of viridis, inferno and hot", () => {
  for (const name of ["viridis", "inferno", "hot"] as const) assert.equal(colormapTable(name).length, 768);
  assert.deepEqual(sampleColormap("viridis", 0), [0x44, 0x01, 0x54]);
  assert.deepEqual(sampleColormap("viridis", 1), [0xfd, 0xe7, 0x25]);
  assert.deepEqual(sampleColormap("inferno", 0), [0, 0, 4]);
  assert.deepEqual(sampleColormap("hot", 1), [255, 255, 255]);
  assert.deepEqual(sampleColormap("hot", -3), sampleColormap("hot", 0), "clamped below");
});

Deno.test("viridis brightens monotonically (perceptual ordering holds)", () => {
  const t = colormapTable("viridis");
  let prev = -1;
  for (let i = 0; i < 256; i++) {
    const luma = 0.2126 * t[3 * i] + 0.7152 * t[3 * i + 1] + 0.0722 * t[3 * i + 2];
    assert.ok(luma >= prev - 0.5, `index ${i}`);
    prev = luma;
  }
});

Deno.test("a heatmap maps the range ends to the colormap ends with the given opacity", () => {
  const rgba = heatmapRGBA(new Float32Array([0, 0.5, 1, 2]), {
    colormap: "hot",
    range: [0, 1],
    opacity: 0.5,
  });
  assert.deepEqual([...rgba.slice(0, 4)], [...sampleColormap("hot", 0), 128]);
  assert.deepEqual([...rgba.slice(8, 12)], [255, 255, 255, 128]);
  assert.deepEqual([...rgba.slice(12, 16)], [255, 255, 255, 128], "above the range clamps to the top colour");
});

Deno.test("show-only-above-τ and NaN leave pixels transparent", () => {
  const rgba = heatmapRGBA([0.1, 0.3, NaN, 0.9], { threshold: 0.3 });
  assert.deepEqual([0, 1, 2, 3].map((p) => rgba[p * 4 + 3]), [0, 0, 0, 153]);
});

Deno.test("the default range is the map's finite min and max", () => {
  const rgba = heatmapRGBA(new Float32Array([2, 4]), { colormap: "viridis", opacity: 1 });
  assert.deepEqual([...rgba.slice(0, 3)], sampleColormap("viridis", 0));
  assert.deepEqual([...rgba.slice(4, 7)], sampleColormap("viridis", 1));
});

Deno.test("sliceOf returns the k-th slice of a planar volume without copying", () => {
  const v = new Float32Array(2 * 2 * 3).map((_, i) => i);
  const s = sliceOf(v, [2, 2, 3], 2);
  assert.deepEqual([...s], [8, 9, 10, 11]);
  assert.equal(s.buffer, v.buffer);
  assert.throws(() => sliceOf(v, [2, 2, 3], 3), RangeError);
});

Deno.test("colour-bar ticks sit at nice values with matching labels", () => {
  assert.equal(niceStep(1, 5), 0.2);
  assert.equal(niceStep(0.69, 5), 0.2);
  const ticks = colorBarTicks([0, 0.693], 5);
  assert.deepEqual(ticks.map((t) => t.label), ["0.0", "0.2", "0.4", "0.6"]);
  assert.ok(Math.abs(ticks[1].position - 0.2 / 0.693) < 1e-9);
  assert.deepEqual(colorBarTicks([-50, 150], 4).map((t) => t.label), ["-50", "0", "50", "100", "150"]);
});

Deno.test("a vertical colour bar has the high end of the colormap at the top", () => {
  const bar = colorBar("inferno", [0, 1], 3, 10);
  assert.equal(bar.rgba.length, 3 * 10 * 4);
  assert.deepEqual([...bar.rgba.slice(0, 3)], sampleColormap("inferno", 1));
  assert.deepEqual([...bar.rgba.slice((9 * 3) * 4, (9 * 3) * 4 + 3)], sampleColormap("inferno", 0));
  const h = colorBar("hot", [0, 1], 10, 2, "horizontal");
  assert.deepEqual([...h.rgba.slice(36, 39)], sampleColormap("hot", 1));
});

Deno.test("the compare overlay colours TP green, FP red, FN blue and counts them", () => {
  const pred = [1, 1, 0, 0], ref = [1, 0, 1, 0];
  const { rgba, counts } = compareOverlayRGBA(pred, ref, { opacity: 1 });
  assert.deepEqual(counts, { tp: 1, fp: 1, fn: 1, tn: 1 });
  assert.deepEqual([...rgba], [0, 200, 0, 255, 230, 0, 0, 255, 0, 90, 255, 255, 0, 0, 0, 0]);
  const labelled = compareOverlayRGBA([2, 1], [2, 2], { label: 2, fov: [1, 0] });
  assert.deepEqual(labelled.counts, { tp: 1, fp: 0, fn: 0, tn: 0 });
});

Deno.test("compositing an overlay on a grey image blends by alpha", () => {
  const out = compositeOnGray([100, 100], new Uint8ClampedArray([255, 0, 0, 255, 0, 0, 0, 0]));
  assert.deepEqual([...out], [255, 0, 0, 255, 100, 100, 100, 255]);
});
