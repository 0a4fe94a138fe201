import assert from "node:assert/strict";
import {
  boundaryMask,
  connectedComponents,
  fillHoles,
  keepLargestComponent,
  percentile,
  postprocessLabels,
  removeSmallComponents,
  segmentStatistics,
} from "../../src/segmentation/mod.ts";

/** Parse slices of ASCII art ('.' = 0, digits = labels) into a labelmap. */
function art(...slices: string[][]): { data: Uint8Array; dims: [number, number, number] } {
  const ny = slices[0].length, nx = slices[0][0].length;
  const data = new Uint8Array(nx * ny * slices.length);
  slices.forEach((rows, k) =>
    rows.forEach((row, j) =>
      [...row].forEach((ch, i) => (data[i + nx * (j + ny * k)] = ch === "." ? 0 : Number(ch)))
    )
  );
  return { data, dims: [nx, ny, slices.length] };
}

Deno.test("components use 4-connectivity in a slice (diagonals are separate)", () => {
  const { data, dims } = art(["1.1", ".1.", "1.."]);
  const cc = connectedComponents(data, dims);
  assert.equal(cc.count, 4);
});

Deno.test("3D components join through slices; 2D connectivity keeps slices apart", () => {
  const { data, dims } = art(["1..", "..."], ["1..", "..1"]);
  assert.equal(connectedComponents(data, dims, "3d").count, 2);
  assert.equal(connectedComponents(data, dims, "2d").count, 3);
  assert.deepEqual([...connectedComponents(data, dims, "3d").sizes], [0, 2, 1]);
});

Deno.test("keeping the largest component removes the others of that label only", () => {
  const { data, dims } = art(["11.2", "1..2", "...1"]);
  keepLargestComponent(data, dims, 1);
  assert.deepEqual([...data], [...art(["11.2", "1..2", "...."]).data]);
});

Deno.test("small components below the minimum are removed for every label", () => {
  const { data, dims } = art(["11.2", "1...", "..22"]);
  removeSmallComponents(data, dims, 2);
  assert.deepEqual([...data], [...art(["11..", "1...", "..22"]).data]);
});

Deno.test("minComponentMl removes 3D components under that volume on the series' spacing, never on one image", () => {
  // voxels of 2 × 2 × 5 mm = 0.02 mL: a 0.05 mL minimum needs 3 voxels
  const series = () => art(["11.2", "....", "..3."], ["1...", "....", "..3."]);
  const a = series();
  postprocessLabels(a.data, a.dims, { minComponentMl: 0.05 }, "2d", [2, 2, 5]);
  assert.deepEqual([...a.data], [...art(["11..", "....", "...."], ["1...", "....", "...."]).data]);
  const b = series();
  postprocessLabels(b.data, b.dims, { minComponentMl: 0.04 }, "2d", [2, 2, 5]);
  assert.deepEqual(
    [...b.data],
    [...art(["11..", "....", "..3."], ["1...", "....", "..3."]).data],
    "2 voxels = 0.04 mL stay",
  );
  const c = series();
  postprocessLabels(c.data, c.dims, { minComponentMl: 0.05, minComponentVoxels: 4 }, "2d", [2, 2, 5]);
  assert.ok(c.data.every((v) => v === 0), "the larger of the two minimums wins");
  const single = art(["11.2", "....", "..3."]);
  const before = [...single.data];
  postprocessLabels(single.data, single.dims, { minComponentMl: 10 }, "2d", [2, 2, 5]);
  assert.deepEqual([...single.data], before, "a single image is not filtered by volume");
});

Deno.test("holes are filled per label; border-touching background and other labels are not", () => {
  const { data, dims } = art(["11111.", "1.1.1.", "1.121.", "11111."]);
  fillHoles(data, dims, 1);
  assert.deepEqual([...data], [...art(["11111.", "11111.", "11121.", "11111."]).data]);
});

Deno.test("2D hole filling works per slice where 3D would see the hole open through the stack", () => {
  const ring = ["111", "1.1", "111"];
  const a = art(ring, ring);
  fillHoles(a.data, a.dims, 1, "3d");
  assert.equal(a.data[4], 0, "in 3D the centre column touches the top and bottom faces");
  fillHoles(a.data, a.dims, 1, "2d");
  assert.equal(a.data[4], 1);
  assert.equal(a.data[13], 1);
});

Deno.test("boundary voxels are the segment voxels with a neighbour outside it", () => {
  const { data, dims } = art(["....", ".11.", ".11.", "...."], [".111", ".111", ".111", "...."]);
  const b = boundaryMask(data, dims, 1);
  // slice 0: all 4; slice 1: all but (2, 1), whose 4 in-plane neighbours and the voxel below are inside
  assert.equal(b.reduce((s, x) => s + x, 0), 4 + 8);
  assert.equal(b[2 + 4 * (1 + 4 * 1)], 0);
});

Deno.test("statistics: volume from spacing, intensity mean/SD, components, uncertainty inside and on the boundary", () => {
  const { data, dims } = art(["111.", "111.", "111.", "...1"]);
  const intensity = new Int16Array(16).map((_, p) => p);
  const u = new Float32Array(16).fill(0.5);
  u[5] = 0.1; // the centre of the 3×3 block is its only interior voxel
  const [s] = segmentStatistics({
    labels: data,
    geometry: { dims, spacing: [0.5, 0.5, 2], origin: [0, 0, 0], direction: [1, 0, 0, 0, 1, 0, 0, 0, 1] },
    segments: [{ value: 1, name: "Lesion" }],
    intensity,
    uncertainty: u,
    passVoxels: [[10], [8], [12]],
  });
  assert.equal(s.voxels, 10);
  assert.ok(Math.abs(s.volumeMl - 10 * 0.5 / 1000) < 1e-12);
  const vals = [0, 1, 2, 4, 5, 6, 8, 9, 10, 15];
  const mean = vals.reduce((a, b) => a + b) / 10;
  assert.ok(Math.abs(s.meanIntensity - mean) < 1e-9);
  assert.ok(Math.abs(s.sdIntensity - Math.sqrt(vals.reduce((a, b) => a + (b - mean) ** 2, 0) / 9)) < 1e-9);
  assert.equal(s.components, 2);
  assert.ok(Math.abs(s.meanUncertainty! - (9 * 0.5 + 0.1) / 10) < 1e-7);
  assert.ok(Math.abs(s.meanBoundaryUncertainty! - 0.5) < 1e-7);
  assert.ok(Math.abs(s.volumeSdMl! - 2 * 0.0005) < 1e-12);
  assert.deepEqual(s.volumeCi95Ml!.map((x) => +x.toFixed(8)), [
    +(8.1 * 0.0005).toFixed(8),
    +(11.9 * 0.0005).toFixed(8),
  ]);
});

Deno.test("percentile interpolates linearly like NumPy", () => {
  assert.equal(percentile([1, 2, 3, 4], 50), 2.5);
  assert.equal(percentile([0, 0, 0, 0, 1, 1], 95), 1);
  assert.ok(Math.abs(percentile([10, 20], 2.5) - 10.25) < 1e-12);
});

Deno.test("connected components agree with a flood fill on random 3D masks, in 2D and 3D connectivity", () => {
  let seed = 99;
  const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  for (let trial = 0; trial < 5; trial++) {
    const dims: [number, number, number] = [7, 6, 5];
    const n = 7 * 6 * 5;
    const mask = Uint8Array.from({ length: n }, () => (rand() < 0.45 ? 1 : 0));
    for (const conn of ["2d", "3d"] as const) {
      const cc = connectedComponents(mask, dims, conn);
      // reference: flood fill
      const ref = new Int32Array(n);
      let count = 0;
      for (let s = 0; s < n; s++) {
        if (!mask[s] || ref[s]) continue;
        ref[s] = ++count;
        const stack = [s];
        while (stack.length) {
          const p = stack.pop()!;
          const i = p % 7, j = Math.floor(p / 7) % 6, k = Math.floor(p / 42);
          const nb: number[] = [];
          if (i > 0) nb.push(p - 1);
          if (i < 6) nb.push(p + 1);
          if (j > 0) nb.push(p - 7);
          if (j < 5) nb.push(p + 7);
          if (conn === "3d" && k > 0) nb.push(p - 42);
          if (conn === "3d" && k < 4) nb.push(p + 42);
          for (const q of nb) if (mask[q] && !ref[q]) (ref[q] = count), stack.push(q);
        }
      }
      assert.equal(cc.count, count);
      // same partition: ids map one-to-one
      const map = new Map<number, number>();
      for (let p = 0; p < n; p++) {
        if (!mask[p]) {
          assert.equal(cc.ids[p], 0);
          continue;
        }
        if (!map.has(cc.ids[p])) map.set(cc.ids[p], ref[p]);
        assert.equal(map.get(cc.ids[p]), ref[p]);
      }
      const sizes = new Map<number, number>();
      for (let p = 0; p < n; p++) if (mask[p]) sizes.set(cc.ids[p], (sizes.get(cc.ids[p]) ?? 0) + 1);
      for (const [id, size] of sizes) assert.equal(cc.sizes[id], size);
    }
  }
});

Deno.test("counting components slice by slice agrees with the full labelling", async () => {
  const { countComponents } = await import("../../src/segmentation/mod.ts");
  let seed = 5;
  const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  for (let trial = 0; trial < 8; trial++) {
    const dims: [number, number, number] = [9, 8, 6];
    const labels = Uint8Array.from(
      { length: 9 * 8 * 6 },
      () => (rand() < 0.5 ? 1 + Math.floor(rand() * 2) : 0),
    );
    for (const value of [1, 2]) {
      const mask = Uint8Array.from(labels, (x) => (x === value ? 1 : 0));
      assert.equal(countComponents(labels, dims, value), connectedComponents(mask, dims, "3d").count);
    }
  }
  // a U shape joins through a later slice only: provisional labels must merge
  const { data, dims } = art(["1.1", "..."], ["1.1", "..."], ["111", "..."]);
  assert.equal(countComponents(data, dims, 1), 1);
});
