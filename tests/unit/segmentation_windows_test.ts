import assert from "node:assert/strict";
import type { SpatialMode } from "../../src/core/types.ts";
import {
  axisStarts,
  constantImportance,
  type Dims3,
  gaussianImportance,
  planWindows,
  sweepWindows,
} from "../../src/segmentation/mod.ts";
import { identityPredictor, plusOnePredictor } from "./segmentation_fakes.ts";

function ramp(n: number, channels = 1): Float32Array {
  const a = new Float32Array(n * channels);
  for (let i = 0; i < a.length; i++) a[i] = Math.sin(i * 0.37) * 10 + i * 0.01;
  return a;
}

async function sweep(
  dims: Dims3,
  window: number[],
  overlap: number,
  mode: SpatialMode,
  f = identityPredictor,
  batch = 1,
  channels = 1,
  gaussian = true,
) {
  const plan = planWindows(dims, window, overlap, mode);
  const image = ramp(dims[0] * dims[1] * dims[2], channels);
  let calls = 0;
  const out = await sweepWindows(image, {
    predictor: f,
    plan,
    dims,
    inChannels: channels,
    outChannels: channels,
    padValue: -7,
    importance: gaussian ? gaussianImportance(plan.window) : constantImportance(plan.window),
    batch,
    mode: mode === "patch3d" ? "3d" : "2d",
    onWindows: (n) => (calls += n),
  });
  return { plan, image, out, calls };
}

function maxAbsDiff(a: Float32Array, b: Float32Array, offset = 0): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] + offset - b[i]));
  return m;
}

Deno.test("axis starts follow MONAI: the last window is flush with the end", () => {
  assert.deepEqual(axisStarts(10, 4, 0), [0, 4, 6]);
  assert.deepEqual(axisStarts(10, 4, 0.5), [0, 2, 4, 6]);
  assert.deepEqual(axisStarts(4, 4, 0.5), [0]);
  assert.deepEqual(axisStarts(3, 4, 0.5), [0]);
  assert.deepEqual(axisStarts(9, 4, 0.75), [0, 1, 2, 3, 4, 5]);
});

Deno.test("slice2d plans one set of 2D tiles per slice", () => {
  const plan = planWindows([10, 6, 3], [4, 4], 0.5, "slice2d");
  assert.deepEqual(plan.window, [4, 4, 1]);
  assert.equal(plan.windows.length, 4 * 2 * 3);
  assert.ok(plan.windows.every((w) => w.size[2] === 1));
});

Deno.test("a volume smaller than the window is padded symmetrically to the window", () => {
  const plan = planWindows([5, 3, 2], [8, 8, 4], 0.5, "patch3d");
  assert.deepEqual(plan.paddedDims, [8, 8, 4]);
  assert.deepEqual(plan.padBefore, [1, 2, 1]);
  assert.equal(plan.windows.length, 1);
});

Deno.test("padMultiple rounds the window up and a non-positive window entry means the whole axis", () => {
  const plan = planWindows([13, 7, 1], [-1, 6], 0, "image2d", 4);
  assert.deepEqual(plan.window, [16, 8, 1]);
  assert.equal(plan.windows.length, 1);
});

Deno.test("the Gaussian importance map peaks at 1 in the centre and is positive everywhere", () => {
  const w = gaussianImportance([9, 7, 1]);
  assert.equal(Math.max(...w), 1);
  assert.equal(w[4 + 9 * 3], 1);
  assert.ok(Math.min(...w) > 0);
  // symmetric
  assert.equal(w[0], w[8]);
  const tiny = gaussianImportance([64, 64, 64], 0.01);
  assert.ok(tiny.reduce((m, x) => Math.min(m, x), Infinity) > 0, "corner weights are clamped above zero");
});

for (const mode of ["image2d", "slice2d", "patch3d"] as SpatialMode[]) {
  for (const overlap of [0, 0.25, 0.5, 0.75]) {
    Deno.test(`${mode} windows with overlap ${overlap} reproduce an identity predictor exactly on an odd-sized volume`, async () => {
      const dims: Dims3 = mode === "image2d" ? [23, 17, 1] : mode === "slice2d" ? [19, 13, 3] : [13, 11, 9];
      const window = mode === "patch3d" ? [6, 5, 4] : [8, 6];
      const { out, image, plan, calls } = await sweep(dims, window, overlap, mode);
      assert.equal(calls, plan.windows.length);
      assert.ok(maxAbsDiff(image, out) < 1e-4, `max error ${maxAbsDiff(image, out)}`);
    });
    Deno.test(`${mode} windows with overlap ${overlap} reproduce x + 1 exactly, batched by 3`, async () => {
      const dims: Dims3 = mode === "image2d" ? [21, 9, 1] : mode === "slice2d" ? [11, 15, 2] : [9, 10, 7];
      const window = mode === "patch3d" ? [4, 4, 4] : [5, 7];
      const { out, image } = await sweep(dims, window, overlap, mode, plusOnePredictor, 3);
      assert.ok(maxAbsDiff(image, out, 1) < 1e-4);
    });
  }
}

Deno.test("volumes smaller than the window come back exactly, without the padding", async () => {
  const { out, image } = await sweep([5, 3, 2], [8, 8, 4], 0.5, "patch3d", plusOnePredictor);
  assert.equal(out.length, image.length);
  assert.ok(maxAbsDiff(image, out, 1) < 1e-5);
});

Deno.test("constant blending and several channels are exact too", async () => {
  const { out, image } = await sweep([12, 10, 2], [5, 5], 0.25, "slice2d", identityPredictor, 2, 3, false);
  assert.ok(maxAbsDiff(image, out) < 1e-5);
});

Deno.test("the predictor sees NCHW for 2D modes and NCDHW for patch3d, with the batch size", async () => {
  const shapes: number[][] = [];
  const spy = (input: Float32Array, shape: number[]) => {
    shapes.push(shape);
    return Promise.resolve(input.slice());
  };
  await sweep([10, 8, 1], [4, 4], 0, "image2d", spy, 4);
  assert.deepEqual(shapes[0], [4, 1, 4, 4]);
  assert.deepEqual(shapes.at(-1), [2, 1, 4, 4]); // 6 windows in batches of 4
  shapes.length = 0;
  await sweep([6, 6, 6], [4, 4, 3], 0, "patch3d", spy, 1);
  assert.deepEqual(shapes[0], [1, 1, 3, 4, 4]);
});

Deno.test("plans whose windows never overlap are recognised as disjoint (blending becomes a copy)", async () => {
  const { isDisjoint } = await import("../../src/segmentation/mod.ts");
  assert.equal(isDisjoint(planWindows([16, 8, 3], [8, 8], 0, "slice2d")), true);
  assert.equal(isDisjoint(planWindows([5, 3, 2], [8, 8, 4], 0.5, "patch3d")), true, "one padded window");
  assert.equal(
    isDisjoint(planWindows([17, 8, 1], [8, 8], 0, "image2d")),
    false,
    "the flush last window overlaps",
  );
  assert.equal(isDisjoint(planWindows([16, 8, 1], [8, 8], 0.5, "image2d")), false);
  const { out, image } = await sweep([16, 8, 3], [8, 8], 0, "slice2d", plusOnePredictor, 2);
  assert.deepEqual(out, image.map((x) => x + 1), "a disjoint plan is bit-exact");
});

Deno.test("streaming patch3d rows gives the same blend as the whole-volume sweep, for any overlap and padding", async () => {
  const { sweepRows } = await import("../../src/segmentation/mod.ts");
  // output depends on the position inside the window, so the blend weights matter
  const positional = (input: Float32Array, shape: number[]) => {
    const per = input.length / shape[0];
    return Promise.resolve(input.map((x, p) => x + 0.01 * (p % per)));
  };
  const cases: [Dims3, number[], number][] = [
    [[9, 7, 13], [4, 4, 4], 0.5],
    [[9, 7, 13], [4, 4, 5], 0.25],
    [[6, 6, 11], [4, 4, 4], 0],
    [[6, 5, 3], [4, 4, 6], 0.5],
    [[7, 6, 10], [3, 3, 3], 0.75],
  ];
  for (const [dims, window, overlap] of cases) {
    const plan = planWindows(dims, window, overlap, "patch3d");
    const image = ramp(dims[0] * dims[1] * dims[2], 2);
    const ctx = {
      predictor: positional,
      plan,
      dims,
      inChannels: 2,
      outChannels: 2,
      padValue: 0,
      importance: gaussianImportance(plan.window),
      batch: 2,
      mode: "3d" as const,
      onWindows: () => {},
    };
    const whole = await sweepWindows(image, ctx);
    const sliceVox = dims[0] * dims[1], nVox = sliceVox * dims[2];
    let next = 0;
    for await (
      const chunk of sweepRows((z0, z1) => {
        const out = new Float32Array(2 * (z1 - z0) * sliceVox);
        for (let c = 0; c < 2; c++) {
          out.set(
            image.subarray(c * nVox + z0 * sliceVox, c * nVox + z1 * sliceVox),
            c * (z1 - z0) * sliceVox,
          );
        }
        return out;
      }, ctx)
    ) {
      assert.equal(chunk.z0, next, "chunks are contiguous");
      const n = (chunk.z1 - chunk.z0) * sliceVox;
      for (let c = 0; c < 2; c++) {
        for (let v = 0; v < n; v++) {
          const d = Math.abs(chunk.out[c * n + v] - whole[c * nVox + chunk.z0 * sliceVox + v]);
          assert.ok(d < 1e-5, `${dims} ${window} ${overlap}: channel ${c} voxel ${v} differs by ${d}`);
        }
      }
      next = chunk.z1;
    }
    assert.equal(next, dims[2], "every slice is handed out");
  }
});
