/**
 * The segment list's size column: mL only for slices with a real pixel size, mm² for one image
 * with a real pixel size, pixel counts for a photograph without PixelSpacing (never "82 mL").
 */
import assert from "node:assert/strict";
import { segmentSize, spacingSource } from "../../extension/src/run.ts";

const photo = {
  dims: [565, 584, 1] as [number, number, number],
  spacing: [1, 1, 1] as [number, number, number],
};

Deno.test("a photograph without PixelSpacing reports pixels, not mL or mm²", () => {
  assert.equal(spacingSource({ Modality: "OP", SamplesPerPixel: 3 }), null);
  const size = segmentSize({ voxels: 82_113, volumeMl: 82.113 }, photo, false);
  assert.equal(size.unit, "px");
  assert.equal(size.value, 82_113);
  assert.equal(size.text, "82,113 px");
  assert.doesNotMatch(size.text, /mL|mm/);
});

Deno.test("one image with real PixelSpacing reports its area in mm²", () => {
  assert.equal(spacingSource({ PixelSpacing: [0.5, 0.25] }), "PixelSpacing");
  const size = segmentSize(
    { voxels: 1000, volumeMl: 0.125 },
    { dims: [100, 100, 1], spacing: [0.25, 0.5, 1] },
    true,
  );
  assert.equal(size.unit, "mm²");
  assert.equal(size.value, 125);
  assert.equal(size.text, "125 mm²");
});

Deno.test("a series of slices with real spacing reports mL with the spread across passes", () => {
  const size = segmentSize(
    { voxels: 8000, volumeMl: 45, volumeSdMl: 1.25 },
    { dims: [256, 256, 64], spacing: [1.5, 1.5, 2.5] },
    true,
  );
  assert.equal(size.unit, "mL");
  assert.equal(size.text, "45.0 mL ± 1.3");
});

Deno.test("a multi-frame series without spacing reports voxels", () => {
  const size = segmentSize({ voxels: 12, volumeMl: 0.012 }, { dims: [4, 4, 3], spacing: [1, 1, 1] }, false);
  assert.deepEqual(size, { unit: "voxels", value: 12, text: "12 voxels" });
});

Deno.test("ImagerPixelSpacing counts as a real size; zero, negative or malformed spacing does not", () => {
  assert.equal(spacingSource({ ImagerPixelSpacing: [0.1, 0.1] }), "ImagerPixelSpacing");
  assert.equal(spacingSource({ PixelSpacing: [0, 0.5] }), null);
  assert.equal(spacingSource({ PixelSpacing: [-1, 1] }), null);
  assert.equal(spacingSource({ PixelSpacing: "0.5\\0.5" }), null);
  assert.equal(spacingSource({ PixelSpacing: ["0.5", "0.5"] }), "PixelSpacing");
  assert.equal(spacingSource(undefined), null);
});
