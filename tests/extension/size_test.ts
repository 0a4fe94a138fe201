/**
 * The segment list's size column: mL only for slices with a real pixel size, mm² for one image
 * with a real pixel size, pixel counts for a photograph without PixelSpacing (never "82 mL").
 */
import assert from "node:assert/strict";
import { segmentSize, spacingSource } from "../../extension/src/run.ts";
import { formatVolumeMl } from "../../src/segmentation/statistics.ts";

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

Deno.test("an OCT fluid volume under 1 mL is written in mm³ to 3 significant digits, not as 0.0 mL", () => {
  // 310 voxels of 11.7 × 3.9 × 120 µm (a B-scan stack as Spectralis writes it): 1.70e-3 mm³
  const volumeMl = 310 * 0.0117 * 0.12 * 0.0039 / 1000;
  const size = segmentSize(
    { voxels: 310, volumeMl, volumeSdMl: volumeMl / 8 },
    { dims: [512, 496, 25], spacing: [0.0117, 0.0039, 0.12] },
    true,
  );
  assert.equal(size.unit, "mL", "the value stays in mL (report.json's statistics are volumeMl)");
  assert.equal(size.value, volumeMl);
  assert.equal(size.text, "0.00170 mm³ ± 0.00021");
});

Deno.test("volumes switch from mm³ to mL at 1 mL, after rounding", () => {
  assert.equal(formatVolumeMl(45), "45.0 mL");
  assert.equal(formatVolumeMl(1), "1.0 mL");
  assert.equal(formatVolumeMl(0.9997), "1.0 mL", "999.7 mm³ rounds to 1000: written as mL");
  assert.equal(formatVolumeMl(0.268), "268 mm³", "a Lung-RADS nodule threshold");
  assert.equal(formatVolumeMl(0.09996), "100 mm³", "3 significant digits, not 100.0");
  assert.equal(formatVolumeMl(0.0234, 0.0012), "23.4 mm³ ± 1.2");
  assert.equal(formatVolumeMl(0.000512), "0.512 mm³");
  assert.equal(formatVolumeMl(0), "0.0 mL", "nothing found is 0 mL");
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
