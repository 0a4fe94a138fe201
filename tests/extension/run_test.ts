import assert from "node:assert/strict";
import { describeProgress } from "../../extension/src/run.ts";
import { providersFor } from "../../src/inference/devices.ts";
import { geometryFromCornerstone, planarFromInterleaved } from "../../extension/src/viewer_volume.ts";
import { sliceIndexByImageId } from "../../extension/src/labelmap.ts";

Deno.test("inference progress reads as 'window k of n' with an ETA from the phase's own pace", () => {
  const p = describeProgress({ phase: "inference", done: 10, total: 40 }, 1000, 6000);
  assert.equal(p.text, "Window 11 of 40");
  assert.equal(p.fraction, 0.25);
  assert.equal(p.etaSeconds, 15); // 5 s for 10 windows → 15 s for the other 30
});

Deno.test("progress without work done has no ETA, and an unknown total has no fraction", () => {
  assert.equal(describeProgress({ phase: "inference", done: 0, total: 40 }, 0, 5000).etaSeconds, undefined);
  const p = describeProgress({ phase: "postprocessing", done: 0, total: 0, message: "components" }, 0, 1);
  assert.equal(p.fraction, null);
  assert.equal(p.text, "Post-processing — components");
});

Deno.test("model download progress is shown in MiB", () => {
  const p = describeProgress(
    { phase: "loading", done: 1048576, total: 4194304, message: "model.onnx" },
    0,
    1000,
  );
  assert.equal(p.text, "Loading model (1.0 of 4.0 MiB)");
});

Deno.test("the device choice maps to the worker's provider list", () => {
  assert.deepEqual(providersFor("webgpu"), ["webgpu"]);
  assert.deepEqual(providersFor("wasm"), ["wasm"]);
  assert.deepEqual(providersFor("auto"), ["webgpu", "webnn", "wasm"]);
});

Deno.test("Cornerstone's axis-vector direction becomes EdgeSeg's column matrix (a transpose)", () => {
  // i along +y, j along -x, k along +z (a rotated in-plane orientation)
  const g = geometryFromCornerstone({
    dimensions: [4, 3, 2],
    spacing: [0.5, 0.7, 3],
    origin: [10, 20, 30],
    direction: [0, 1, 0, -1, 0, 0, 0, 0, 1],
  });
  assert.deepEqual(g.dims, [4, 3, 2]);
  assert.deepEqual(g.direction, [0, -1, 0, 1, 0, 0, 0, 0, 1]);
  // voxel (1, 0, 0) lies one i-step along +y: origin + column 0 × spacing[0]
  const col0 = [g.direction[0], g.direction[3], g.direction[6]];
  assert.deepEqual(col0, [0, 1, 0]);
});

Deno.test("interleaved RGB voxels become planar channels, and grey volumes pass through untouched", () => {
  const rgb = new Uint8Array([1, 2, 3, 4, 5, 6]);
  assert.deepEqual(Array.from(planarFromInterleaved(rgb, 3)), [1, 4, 2, 5, 3, 6]);
  const grey = new Int16Array([7, 8]);
  assert.equal(planarFromInterleaved(grey, 1), grey);
});

Deno.test("result slices are found by the imageId they came from, whatever the display order", () => {
  const map = sliceIndexByImageId(["img:c", "img:a", "img:b"]);
  assert.equal(map.get("img:a"), 1);
  assert.equal(map.get("img:c"), 0);
  assert.equal(map.get("img:z"), undefined);
});
