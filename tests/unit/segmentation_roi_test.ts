import assert from "node:assert/strict";
import type { Predictor, Progress, RoiSpec } from "../../src/core/types.ts";
import { computeRoi, morph1d, segment, sourceRange } from "../../src/segmentation/mod.ts";
import { slabOrder } from "../../src/segmentation/passes.ts";
import { isolateSlice } from "../../src/segmentation/plan.ts";
import { planWindowsInBox } from "../../src/segmentation/windows.ts";
import { manifest, runtime, thresholdPredictor, volume } from "./segmentation_fakes.ts";

/**
 * A small chest phantom in HU on a 2 mm × 2 mm × 5 mm grid (the ROI's analysis grid, so no block
 * averaging): air outside, an elliptic body (40 HU) on every slice, two lungs (-850 HU) on slices
 * 4..11, a bowel-gas pocket (-1000 HU, 3 × 3 × 2 voxels) on slices 1..2, and a dense lesion
 * (30 HU) inside the right lung.
 */
const DIMS: [number, number, number] = [64, 48, 16];
const SPACING: [number, number, number] = [2, 2, 5];
const inBody = (i: number, j: number) => ((i - 32) / 28) ** 2 + ((j - 24) / 20) ** 2 <= 1;
const inLung = (i: number, j: number, k: number) =>
  k >= 4 && k <= 11 && (((i - 20) / 8) ** 2 + ((j - 24) / 10) ** 2 <= 1 ||
    ((i - 44) / 8) ** 2 + ((j - 24) / 10) ** 2 <= 1);
const inGas = (i: number, j: number, k: number) => k >= 1 && k <= 2 && i >= 30 && i < 33 && j >= 30 && j < 33;
const inLesion = (i: number, j: number, k: number) =>
  k >= 6 && k <= 7 && i >= 42 && i < 46 && j >= 22 && j < 26;
const phantom = () =>
  volume(DIMS, (i, j, k) => {
    if (!inBody(i, j)) return -1000;
    if (inLesion(i, j, k)) return 30;
    if (inLung(i, j, k)) return -850;
    if (inGas(i, j, k)) return -1000;
    return 40;
  }, { spacing: SPACING });

const LUNGS: RoiSpec = { kind: "lungs-from-hu", marginMm: 0 };
const at = (i: number, j: number, k: number) => i + DIMS[0] * (j + DIMS[1] * k);

Deno.test("the lung region is the air inside the body, never the air around it", () => {
  const v = phantom();
  const roi = computeRoi(v.data, DIMS, SPACING, LUNGS);
  for (let k = 0; k < DIMS[2]; k++) {
    for (let j = 0; j < DIMS[1]; j++) {
      for (let i = 0; i < DIMS[0]; i++) {
        const want = inLung(i, j, k) && !inLesion(i, j, k) || inGas(i, j, k);
        assert.equal(roi.mask[at(i, j, k)], want ? 1 : 0, `voxel ${i},${j},${k}`);
      }
    }
  }
  assert.equal(roi.slices, 2 + 8);
  assert.equal(roi.croppedSlices, 0);
});

Deno.test("enclosed air smaller than minComponentMl (bowel gas) is not lung", () => {
  // the gas pocket is 18 voxels × 0.02 mL = 0.36 mL; each lung is about 8 mL
  const roi = computeRoi(phantom().data, DIMS, SPACING, { ...LUNGS, minComponentMl: 1 });
  assert.equal(roi.mask[at(31, 31, 1)], 0);
  assert.equal(roi.mask[at(20, 24, 8)], 1);
  assert.equal(roi.mask[at(44, 20, 8)], 1);
  assert.equal(roi.slices, 8);
});

Deno.test("the margin grows the region by at least marginMm along every axis, and covers a dense lesion", () => {
  const roi = computeRoi(phantom().data, DIMS, SPACING, { ...LUNGS, minComponentMl: 1, marginMm: 10 });
  // 10 mm = 5 voxels in-plane, 2 slices through-plane (a box)
  assert.equal(roi.mask[at(20 - 8 - 5, 24, 8)], 1);
  assert.equal(roi.mask[at(20 - 8 - 6, 24, 8)], 0);
  assert.equal(roi.mask[at(20, 24, 4 - 2)], 1);
  assert.equal(roi.mask[at(20, 24, 4 - 3)], 0);
  assert.equal(roi.mask[at(20, 24, 11 + 2)], 1);
  assert.equal(roi.mask[at(20, 24, 11 + 3)], 0);
  assert.equal(roi.mask[at(43, 23, 6)], 1, "the lesion (not air) is inside the margin");
  assert.equal(roi.slices, 12);
});

Deno.test("a slice cropped inside the body is kept whole: outside air cannot be told from lung there", () => {
  // one slice whose field of view lies inside the body: soft tissue on the whole border
  const v = volume([32, 32, 1], (i, j) => ((i - 16) ** 2 + (j - 16) ** 2 < 64 ? -850 : 40), {
    spacing: [2, 2, 5],
  });
  const roi = computeRoi(v.data, [32, 32, 1], [2, 2, 5], LUNGS);
  assert.equal(roi.croppedSlices, 1);
  assert.equal(roi.voxels, 32 * 32);
  const strict = computeRoi(v.data, [32, 32, 1], [2, 2, 5], { ...LUNGS, croppedBorderFraction: 1 });
  assert.equal(strict.croppedSlices, 0);
  // without the fallback only the enclosed air is kept (here the lung happens to be enclosed)
  assert.ok(strict.voxels > 150 && strict.voxels < 260, `${strict.voxels} voxels`);
});

Deno.test("the body region is the largest body with its holes filled, without the table below it", () => {
  // body ellipse with a lung hole, and a 1-voxel table plate 2 voxels below the body
  const dims: [number, number, number] = [64, 48, 2];
  const v = volume(dims, (i, j, k) => {
    if (j === 46 && i > 4 && i < 60) return 200; // table plate
    if (!inBody(i, j)) return -1000;
    return inLung(i, j, k + 4) ? -850 : 40;
  }, { spacing: [2, 2, 5] });
  const roi = computeRoi(v.data, dims, [2, 2, 5], { kind: "body-from-hu", marginMm: 0 });
  assert.equal(roi.mask[at(20, 24, 0)], 1, "the lung is a hole of the body");
  assert.equal(roi.mask[at(32, 24, 0)], 1);
  assert.equal(roi.mask[at(32, 46, 0)], 0, "the table is not body");
  assert.equal(roi.mask[at(1, 1, 0)], 0);
});

Deno.test("the region is computed on a coarser grid for fine pixels and returned on the input grid", () => {
  // 1 mm pixels: analysed at 2 mm (2 × 2 blocks), the mask comes back 1 mm
  const v = volume([64, 64, 3], (i, j) => {
    const r = Math.hypot(i - 32, j - 32);
    return r > 28 ? -1000 : r < 10 ? -850 : 40;
  }, { spacing: [1, 1, 5] });
  const roi = computeRoi(v.data, [64, 64, 3], [1, 1, 5], LUNGS);
  assert.equal(roi.mask.length, 64 * 64 * 3);
  assert.equal(roi.mask[32 + 64 * 32], 1);
  assert.equal(roi.mask[32 + 64 * 32 + 64 * 64 * 2], 1);
  assert.equal(roi.mask[2 + 64 * 2], 0);
  // a 2 × 2 block is lung when most of it is: the edge moves by at most one fine pixel
  const perSlice = roi.voxels / 3;
  assert.ok(perSlice >= Math.PI * 9 ** 2 && perSlice <= Math.PI * 12 ** 2, `${perSlice} pixels per slice`);
});

Deno.test("one-dimensional dilation and erosion match their definitions, edges included", () => {
  const src = new Uint8Array([0, 0, 1, 0, 0, 0, 1, 1, 1, 1]);
  const dst = new Uint8Array(10);
  morph1d(src, dst, [10, 1, 1], 0, 1, true);
  assert.deepEqual([...dst], [0, 1, 1, 1, 0, 1, 1, 1, 1, 1]);
  morph1d(src, dst, [10, 1, 1], 0, 1, false);
  // outside the line counts as set for erosion, so the run at the end survives there
  assert.deepEqual([...dst], [0, 0, 0, 0, 0, 0, 0, 1, 1, 1]);
});

Deno.test("a resampled window range maps back to every source voxel it can touch", () => {
  assert.deepEqual(sourceRange(3, 7, 10, 10), [3, 7]);
  const [lo, hi] = sourceRange(2, 4, 20, 10); // target 2..3 covers source 4..7
  assert.ok(lo <= 3 && hi >= 9, `${lo}..${hi}`);
});

// ---- segment() with a region of interest -----------------------------------------------------------

/** A threshold predictor that counts its calls and windows. */
function counting(): { predictor: Predictor; calls: number; windows: number } {
  const inner = thresholdPredictor(-500);
  const c = {
    calls: 0,
    windows: 0,
    predictor: ((input, shape, signal, extra) => {
      c.calls++;
      c.windows += shape[0];
      return inner(input, shape, signal, extra);
    }) as Predictor,
  };
  return c;
}

const roiManifest = (over: Partial<RoiSpec> = {}) =>
  manifest({
    roi: { kind: "lungs-from-hu", marginMm: 0, minComponentMl: 1, ...over },
    spatial: { mode: "slice2d", window: [16, 16], overlap: 0, blending: "constant" },
    uncertainty: { tta: { flips: [[0]] } },
  });

Deno.test("segment() runs only the windows that touch the region and says so in provenance", async () => {
  const v = phantom();
  const m = roiManifest();
  const c = counting();
  const progress: Progress[] = [];
  const r = await segment(v, runtime(m, [c.predictor]), { onProgress: (p) => progress.push(p) });
  // 4 × 3 windows of 16² per slice; lungs on 8 slices touch windows in columns 0..3 and rows 0..2
  const perSlice = 4 * 3;
  assert.ok(c.windows > 0 && c.windows < perSlice * 8, `${c.windows} windows`);
  assert.equal(r.provenance.windows, c.windows);
  assert.equal(r.provenance.roi?.windowsRun, c.windows);
  assert.equal(r.provenance.roi?.windowsPlanned, perSlice * DIMS[2]);
  assert.equal(r.provenance.roi?.slicesSkipped, DIMS[2] - 8);
  assert.match(
    r.provenance.roi!.summary,
    new RegExp(`^${c.windows} of 192 windows run; 8 of 16 slices outside`),
  );
  const inference = progress.filter((p) => p.phase === "inference");
  assert.ok(inference.every((p) => p.total === c.windows), "progress counts only the windows that run");
  assert.equal(inference.at(-1)?.done, c.windows);
  const off = await segment(v, runtime(m, [counting().predictor]), { roi: false });
  assert.equal(off.provenance.windows, perSlice * DIMS[2]);
  assert.equal(off.provenance.roi, undefined);
});

Deno.test("inside the region the result is exactly the full run's; outside it is background with zero probability and uncertainty", async () => {
  const v = phantom();
  const m = roiManifest({ marginMm: 4 });
  const opts = { keepProbabilities: true, uncertainty: "tta" as const };
  const withRoi = await segment(v, runtime(m, [counting().predictor]), opts);
  const full = await segment(v, runtime(m, [counting().predictor]), { ...opts, roi: false });
  const roi = computeRoi(v.data, DIMS, SPACING, m.roi!);
  const n = roi.mask.length;
  let inside = 0, outsideFull = 0;
  for (let p = 0; p < n; p++) {
    if (roi.mask[p]) {
      inside++;
      assert.equal(withRoi.labelmap.data[p], full.labelmap.data[p]);
      assert.equal(withRoi.probabilities!.data[p], full.probabilities!.data[p]);
      assert.equal(withRoi.uncertainty!.data[p], full.uncertainty!.data[p]);
    } else {
      assert.equal(withRoi.labelmap.data[p], 0);
      assert.equal(withRoi.probabilities!.data[p], 0);
      assert.equal(withRoi.uncertainty!.data[p], 0);
      if (full.labelmap.data[p]) outsideFull++;
    }
  }
  assert.ok(inside > 0);
  assert.ok(outsideFull > 0, "the full run marks the body outside the lungs; the region removes it");
});

/** The phantom with only the left lung: not mirror-symmetric, so flipped passes must map windows. */
const oneLung = () =>
  volume(DIMS, (i, j, k) => {
    if (!inBody(i, j)) return -1000;
    return inLung(i, j, k) && i < 32 ? -850 : 40;
  }, { spacing: SPACING });

/** Runs with and without the region and checks the region's voxels agree exactly, the rest is 0. */
async function assertExactInside(
  m: ReturnType<typeof roiManifest>,
  v = phantom(),
  uncertainty: "none" | "tta" = "none",
): Promise<{ run: number; planned: number }> {
  const opts = { keepProbabilities: true, uncertainty };
  const withRoi = await segment(v, runtime(m, [counting().predictor]), opts);
  const full = await segment(v, runtime(m, [counting().predictor]), { ...opts, roi: false });
  const roi = computeRoi(v.data, DIMS, SPACING, m.roi!);
  for (let p = 0; p < roi.mask.length; p++) {
    const want = roi.mask[p] ? full.probabilities!.data[p] : 0;
    assert.equal(withRoi.probabilities!.data[p], want, `voxel ${p} (${roi.mask[p] ? "inside" : "outside"})`);
    if (uncertainty !== "none") {
      assert.equal(
        withRoi.uncertainty!.data[p],
        roi.mask[p] ? full.uncertainty!.data[p] : 0,
        `uncertainty ${p}`,
      );
    }
  }
  return { run: withRoi.provenance.roi!.windowsRun, planned: withRoi.provenance.roi!.windowsPlanned };
}

Deno.test("a flipped TTA pass runs the mirrored windows, so an asymmetric region still matches a full run", async () => {
  const m = roiManifest({ marginMm: 4 });
  m.spatial = { mode: "slice2d", window: [8, 8], overlap: 0.5, blending: "gaussian" };
  const { run, planned } = await assertExactInside(m, oneLung(), "tta");
  assert.ok(run < planned, `${run} of ${planned} windows`);
});

Deno.test("with resampling to a target spacing the region's voxels still come out exactly as in a full run", async () => {
  const m = roiManifest({ marginMm: 4 });
  m.preprocessing = { intensity: { kind: "none" }, targetSpacingMm: [3, 3, null] };
  m.spatial = { mode: "slice2d", window: [8, 8], overlap: 0.5, blending: "gaussian" };
  const { run, planned } = await assertExactInside(m);
  assert.ok(run < planned, `${run} of ${planned} windows`);
});

Deno.test("a patch3d model skips patches outside the region and matches a full run inside it, flips included", async () => {
  const m = roiManifest({ marginMm: 4 });
  m.inputs = [{ name: "input", dtype: "float32", shape: ["batch", 1, "d", "h", "w"] }];
  m.outputs = [{ name: "logits", dtype: "float32", shape: ["batch", 2, "d", "h", "w"] }];
  m.spatial = { mode: "patch3d", window: [8, 8, 2], overlap: 0.5, blending: "gaussian" };
  m.uncertainty = { tta: { flips: [[0], [2]] } };
  const { run, planned } = await assertExactInside(m, oneLung(), "tta");
  assert.ok(run < planned, `${run} of ${planned} windows`);
});

// ---- spatial.cropToRoi: windows tile only the region's bounding box ---------------------------------

Deno.test("planWindowsInBox tiles the box, keeps windows inside the grid, and centres one larger than it", () => {
  const p = planWindowsInBox([64, 48, 3], [10, 5, 0], [40, 30, 3], [16, 16], 0.5, "slice2d", 1);
  assert.deepEqual(p.padBefore, [0, 0, 0]);
  for (const w of p.windows) {
    assert.ok(w.start[0] >= 0 && w.start[0] + 16 <= 64 && w.start[1] >= 0 && w.start[1] + 16 <= 48);
  }
  // every voxel of the box is covered on every slice
  for (let z = 0; z < 3; z++) {
    for (let y = 5; y < 30; y++) {
      for (let x = 10; x < 40; x++) {
        assert.ok(
          p.windows.some((w) =>
            w.start[2] === z && x >= w.start[0] && x < w.start[0] + 16 && y >= w.start[1] &&
            y < w.start[1] + 16
          ),
          `${x},${y},${z} uncovered`,
        );
      }
    }
  }
  // -1 spans the box (rounded up to padMultiple), one window per slice, placed inside the grid
  const whole = planWindowsInBox([64, 48, 2], [50, 2, 0], [63, 20, 2], [-1, -1], 0, "slice2d", 16);
  assert.deepEqual(whole.window, [16, 32, 1]);
  // y: a 32-row window centred on rows 2..19 would start at -5: moved inside the grid to 0
  assert.deepEqual(whole.windows.map((w) => w.start), [[48, 0, 0], [48, 0, 1]]);
  // a window larger than the grid is centred on it (padding both sides)
  const big = planWindowsInBox([10, 10, 1], [2, 2, 0], [8, 8, 1], [16, 16], 0, "slice2d", 1);
  assert.deepEqual(big.windows.map((w) => w.start), [[-3, -3, 0]]);
});

Deno.test("cropToRoi with a -1 window: one window per region slice spans the region's box, and the region's voxels match a full run", async () => {
  const m = roiManifest({ marginMm: 4 });
  m.spatial = { mode: "slice2d", window: [-1, -1], overlap: 0, blending: "constant", cropToRoi: true };
  const c = counting();
  const r = await segment(phantom(), runtime(m, [c.predictor]), {});
  const roi = computeRoi(phantom().data, DIMS, SPACING, m.roi!);
  assert.equal(c.windows, roi.slices, "one window per slice of the region");
  const p = r.provenance.roi!;
  assert.ok(p.cropBox && p.cropBox[0] < DIMS[0] && p.cropBox[1] < DIMS[1], `box ${p.cropBox}`);
  assert.ok(p.voxelsRun < p.voxelsPlanned, `${p.voxelsRun} of ${p.voxelsPlanned} voxels`);
  assert.match(
    p.summary,
    /^\d+ windows of \d+×\d+ run over the lung region's \d+×\d+ box \(\d+% of the voxels/,
  );
  const { run } = await assertExactInside(m);
  assert.equal(run, roi.slices);
});

Deno.test("cropToRoi with fixed overlapping windows and mirrored TTA passes still matches a full run inside the region", async () => {
  const m = roiManifest({ marginMm: 4 });
  m.spatial = { mode: "slice2d", window: [8, 8], overlap: 0.5, blending: "gaussian", cropToRoi: true };
  const cropped = await assertExactInside(m, oneLung(), "tta");
  const plain = await assertExactInside(
    { ...m, spatial: { ...m.spatial, cropToRoi: false } },
    oneLung(),
    "tta",
  );
  assert.ok(cropped.run <= plain.run, `${cropped.run} vs ${plain.run} windows`);
});

Deno.test("cropToRoi on a patch3d model crops along z too, flips included", async () => {
  const m = roiManifest({ marginMm: 4 });
  m.inputs = [{ name: "input", dtype: "float32", shape: ["batch", 1, "d", "h", "w"] }];
  m.outputs = [{ name: "logits", dtype: "float32", shape: ["batch", 2, "d", "h", "w"] }];
  m.spatial = { mode: "patch3d", window: [-1, -1, -1], overlap: 0, blending: "constant", cropToRoi: true };
  m.uncertainty = { tta: { flips: [[0], [2]] } };
  const { run } = await assertExactInside(m, oneLung(), "tta");
  assert.equal(run, 3, "one patch spanning the box per pass");
});

// ---- focusSlice / onSlices: the slices in view first, reported as they are decided ------------------

Deno.test("slabOrder starts at the slab holding the focus and alternates outward", () => {
  const ranges: [number, number][] = [[0, 4], [4, 8], [8, 12], [12, 16], [16, 18]];
  assert.deepEqual(slabOrder(ranges), [0, 1, 2, 3, 4]);
  assert.deepEqual(slabOrder(ranges, 9), [2, 3, 1, 4, 0]);
  assert.deepEqual(slabOrder(ranges, 0), [0, 1, 2, 3, 4]);
  assert.deepEqual(slabOrder(ranges, 17), [4, 3, 2, 1, 0]);
  assert.deepEqual(slabOrder(ranges, 99), [4, 3, 2, 1, 0], "past the end: the last slab first");
  assert.deepEqual(slabOrder(ranges, -3), [0, 1, 2, 3, 4]);
});

Deno.test("isolateSlice splits the slice in view out of its streamed slab, and nothing else", () => {
  const slabs = { ranges: [[0, 4], [4, 8], [8, 10]] as [number, number][], streamed: true };
  assert.deepEqual(isolateSlice(slabs, 5).ranges, [[0, 4], [4, 5], [5, 6], [6, 8], [8, 10]]);
  assert.deepEqual(isolateSlice(slabs, 4).ranges, [[0, 4], [4, 5], [5, 8], [8, 10]]);
  assert.deepEqual(isolateSlice(slabs, 7).ranges, [[0, 4], [4, 7], [7, 8], [8, 10]]);
  assert.deepEqual(isolateSlice(slabs, 99).ranges, slabs.ranges, "outside the volume: unchanged");
  assert.deepEqual(isolateSlice(slabs, undefined).ranges, slabs.ranges);
  assert.deepEqual(isolateSlice(slabs, 2.5).ranges, slabs.ranges, "not a slice index: unchanged");
  const whole = { ranges: [[0, 10]] as [number, number][], streamed: false };
  assert.equal(isolateSlice(whole, 5), whole, "a 3D plan is never split");
});

Deno.test("with focusSlice the slabs around it are decided and reported first, and the result is unchanged", async () => {
  const m = roiManifest({ marginMm: 4 });
  const v = phantom();
  const tuning = { slabVoxels: DIMS[0] * DIMS[1] * 2 }; // slabs of 2 slices
  const seen: [number, number, number[]][] = [];
  const focused = await segment(v, runtime(m, [counting().predictor]), {
    focusSlice: 9,
    onSlices: (z0, z1, labels) => seen.push([z0, z1, Array.from(labels)]),
  }, tuning);
  const plain = await segment(v, runtime(m, [counting().predictor]), {}, tuning);
  assert.deepEqual(focused.labelmap.data, plain.labelmap.data, "the order does not change the labels");
  assert.deepEqual(seen[0].slice(0, 2), [9, 10], "slice 9 first, split out of its slab [8, 10)");
  assert.deepEqual(seen.map(([z0]) => z0), [9, 10, 8, 12, 6, 14, 4, 2, 0], "then outward, every slab once");
  const sliceVox = DIMS[0] * DIMS[1];
  for (const [z0, z1, labels] of seen) {
    assert.equal(labels.length, (z1 - z0) * sliceVox);
    assert.deepEqual(labels, Array.from(plain.labelmap.data.subarray(z0 * sliceVox, z1 * sliceVox)));
  }
  // slabs outside the region (slices 0..3 and 12..15 hold no lung) are reported too, all background
  const outside = seen.filter(([z0]) => z0 < 2 || z0 >= 14);
  assert.equal(outside.length, 2);
  assert.ok(outside.every(([, , l]) => l.every((x) => x === 0)));
});
