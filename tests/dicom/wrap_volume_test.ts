/**
 * src/dicom/wrap_volume.ts: a NIfTI volume wrapped as a single-frame MR series reads back through
 * readSeries with the NIfTI's dims, spacing and voxel values (to the rescale's precision), its corners
 * at the same LPS positions as the NIfTI's sform says (RAS negated in x and y), and every file passes
 * dciodvfy. Covered: the LA LGE-MRI case (uint8 + scl_slope, kept lossless), a float volume on an
 * oblique left-handed grid (quantised to 16 bits), signed integers, and the refusals.
 */
import assert from "node:assert/strict";
import { InputError } from "../../src/core/errors.ts";
import type { Geometry, Vec3, Volume } from "../../src/core/types.ts";
import { readSeries } from "../../src/dicom/read.ts";
import { caseIdOf, wrapNifti, wrapVolume } from "../../src/dicom/wrap_volume.ts";
import { readNifti, writeNifti } from "../../src/io/nifti.ts";
import { laMriCase } from "../../src/harness/paths.ts";
import { artifacts, conformanceTest, dciodvfy } from "./tools.ts";

/** LPS position of voxel (i, j, k). */
function worldOf(g: Geometry, i: number, j: number, k: number): Vec3 {
  const d = g.direction, s = [i * g.spacing[0], j * g.spacing[1], k * g.spacing[2]];
  return [0, 1, 2].map((r) =>
    g.origin[r] + d[3 * r] * s[0] + d[3 * r + 1] * s[1] + d[3 * r + 2] * s[2]
  ) as Vec3;
}

/** The 8 corner voxels of a grid. */
function corners(dims: Vec3): Vec3[] {
  const out: Vec3[] = [];
  for (const k of [0, dims[2] - 1]) {
    for (const j of [0, dims[1] - 1]) for (const i of [0, dims[0] - 1]) out.push([i, j, k]);
  }
  return out;
}

function assertClose(actual: number[], expected: number[], tol: number, what: string): void {
  assert.equal(actual.length, expected.length, what);
  actual.forEach((v, n) =>
    assert.ok(Math.abs(v - expected[n]) <= tol, `${what}[${n}]: expected ${expected[n]}, found ${v}`)
  );
}

/**
 * For each slice the reader returns, the input slice at the same position (readSeries orders slices
 * along the normal, so a left-handed input comes back reversed).
 */
function sliceMap(input: Geometry, read: Geometry): number[] {
  return Array.from({ length: read.dims[2] }, (_, kr) => {
    const p = worldOf(read, 0, 0, kr);
    const k = Array.from({ length: input.dims[2] }, (_, k) => k).find((k) =>
      Math.hypot(...worldOf(input, 0, 0, k).map((v, r) => v - p[r])) < 1e-3
    );
    assert.ok(k !== undefined, `read slice ${kr} lies on an input slice`);
    return k;
  });
}

/** Asserts the read volume holds the input's values at the same world positions, within `tol`. */
function assertSameVoxels(input: Volume, read: Volume, tol: number): number {
  const [cols, rows] = input.geometry.dims;
  assert.deepEqual(read.geometry.dims, input.geometry.dims, "dims");
  assertClose(read.geometry.spacing, input.geometry.spacing, 1e-5, "spacing");
  const map = sliceMap(input.geometry, read.geometry);
  const size = cols * rows;
  let worst = 0;
  for (let kr = 0; kr < map.length; kr++) {
    for (let p = 0; p < size; p++) {
      const e = Math.abs(read.data[kr * size + p] - input.data[map[kr] * size + p]);
      if (e > worst) worst = e;
    }
  }
  assert.ok(worst <= tol, `voxel values within ${tol}, worst ${worst}`);
  // Corners: the voxel at each input corner's world position holds the same value in both.
  for (const [i, j, k] of corners(input.geometry.dims)) {
    const kr = map.indexOf(k);
    assertClose(
      worldOf(read.geometry, i, j, kr),
      worldOf(input.geometry, i, j, k),
      1e-3,
      `corner ${i},${j},${k}`,
    );
  }
  return worst;
}

/** Writes the files to artifacts and asserts dciodvfy reports no error in any. */
async function assertDciodvfyClean(name: string, files: Uint8Array[]): Promise<void> {
  const dir = `${artifacts}${name}/`;
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  await Deno.mkdir(dir, { recursive: true });
  const errors: string[] = [];
  for (let k = 0; k < files.length; k++) {
    const path = `${dir}${String(k + 1).padStart(4, "0")}.dcm`;
    await Deno.writeFile(path, files[k]);
    errors.push(...dciodvfy(path).errors.map((e) => `${k + 1}: ${e}`));
  }
  assert.deepEqual(errors, [], `every one of the ${files.length} files passes dciodvfy`);
}

/** The sform of a NIfTI file (3×4 row-major, RAS), read straight from the header bytes. */
async function sformOf(bytes: Uint8Array): Promise<number[]> {
  const raw = new Uint8Array(
    await new Response(new Blob([bytes as BlobPart]).stream().pipeThrough(new DecompressionStream("gzip")))
      .arrayBuffer(),
  );
  const view = new DataView(raw.buffer);
  return Array.from({ length: 12 }, (_, n) => view.getFloat32(280 + 4 * n, true));
}

const la = laMriCase();
if (!la) console.log("skip: ../shared/data/la-mri is absent, the LA case is not wrapped");

conformanceTest({
  name:
    "an LA LGE-MRI NIfTI wraps to an MR series with its dims, spacing, values and LPS corners, dciodvfy-clean",
  ignore: !la,
  async fn() {
    const bytes = await Deno.readFile(la!.image);
    const nifti = await readNifti(bytes);
    const wrapped = await wrapNifti(bytes, la!.image, { bodyPart: "HEART" });
    assert.equal(wrapped.files.length, nifti.volume.geometry.dims[2], "one instance per slice");
    assert.equal(wrapped.rescale.kind, "source-scaling", "uint8 + scl_slope keeps its integers");
    const { volume, instances } = await readSeries(wrapped.files);
    assert.equal(volume.modality, "MR");
    assert.equal(instances[0].BodyPartExamined, "HEART");
    assert.equal(instances[0].PatientID, caseIdOf(la!.image));
    assert.equal(instances[0].SOPClassUID, "1.2.840.10008.5.1.4.1.1.4", "MR Image Storage");
    assert.equal(volume.frameOfReferenceUID, wrapped.frameOfReferenceUID);
    // Lossless up to float32 rounding of the NIfTI's own scaling.
    const worst = assertSameVoxels(nifti.volume, volume, 1e-5);
    console.log(`LA case: ${volume.geometry.dims.join("×")}, worst |Δ| ${worst.toExponential(2)}`);
    // Corners against the header's own sform, RAS → LPS by hand: (x, y, z) → (−x, −y, z).
    const s = await sformOf(bytes);
    const [nx, ny, nz] = nifti.volume.geometry.dims;
    for (const [i, j, k] of corners([nx, ny, nz])) {
      const ras = [0, 1, 2].map((r) => s[4 * r] * i + s[4 * r + 1] * j + s[4 * r + 2] * k + s[4 * r + 3]);
      assertClose(
        worldOf(volume.geometry, i, j, k),
        [-ras[0], -ras[1], ras[2]],
        1e-3,
        `LPS corner ${i},${j},${k}`,
      );
    }
    await assertDciodvfyClean("wrap-la", wrapped.files);
  },
});

conformanceTest(
  "a float volume on an oblique left-handed grid is quantised to 16 bits within half a step",
  async () => {
    // i along −y, j along +z, k along +x: i × j = −x, so k runs against the slice normal.
    const geometry: Geometry = {
      dims: [7, 5, 6],
      spacing: [0.8, 1.1, 2.5],
      origin: [12.5, -30, 41],
      direction: [0, 0, 1, -1, 0, 0, 0, 1, 0],
    };
    const n = 7 * 5 * 6;
    const data = new Float32Array(n).map((_, i) => Math.sin(i * 0.37) * 123.456 + i * 0.01);
    const nifti = await writeNifti(geometry, data);
    const wrapped = await wrapNifti(nifti, "synthetic_image.nii.gz", { modality: "MR" });
    assert.equal(wrapped.rescale.kind, "quantised");
    const range = Math.max(...data) - Math.min(...data);
    assert.ok(wrapped.maxError <= wrapped.rescale.slope / 2 + 1e-9, `max error ${wrapped.maxError}`);
    assert.ok(wrapped.rescale.slope <= range / 65535 * 1.0001, "the 16 bits span the range");
    const { volume, instances } = await readSeries(wrapped.files);
    assert.equal(instances[0].PatientID, "synthetic");
    const input = (await readNifti(nifti)).volume;
    assert.equal(
      sliceMap(input.geometry, volume.geometry)[0],
      5,
      "ordered along the normal: k comes back reversed",
    );
    assertSameVoxels(input, volume, wrapped.maxError + 1e-4);
    await assertDciodvfyClean("wrap-oblique", wrapped.files);
  },
);

Deno.test("signed integers are stored exactly with the minimum as intercept", async () => {
  const geometry: Geometry = {
    dims: [4, 3, 2],
    spacing: [1, 1, 3],
    origin: [0, 0, 0],
    direction: [1, 0, 0, 0, 1, 0, 0, 0, 1],
  };
  const data = new Int16Array(24).map((_, i) => i * 97 - 1024);
  const volume: Volume = { geometry, channels: 1, data, modality: "MR" };
  const wrapped = wrapVolume(volume, { patientId: "INT" });
  assert.deepEqual(wrapped.rescale, { slope: 1, intercept: -1024, kind: "integer" });
  assert.equal(wrapped.maxError, 0);
  const back = await readSeries(wrapped.files);
  assert.deepEqual(Array.from(back.volume.data), Array.from(data));
});

Deno.test("colour volumes, sheared in-plane axes and non-finite values are refused with a typed error", () => {
  const geometry: Geometry = {
    dims: [2, 2, 2],
    spacing: [1, 1, 1],
    origin: [0, 0, 0],
    direction: [1, 0, 0, 0, 1, 0, 0, 0, 1],
  };
  const volume = (over: Partial<Volume>): Volume => ({
    geometry,
    channels: 1,
    data: new Float32Array(8),
    modality: "MR",
    ...over,
  });
  assert.throws(
    () => wrapVolume(volume({ channels: 3, data: new Float32Array(24) })),
    (e: unknown) =>
      e instanceof InputError && e.code === "VOLUME_CHANNELS" && /found 3 channels/.test(e.message),
  );
  const sheared = { ...geometry, direction: [1, 0.5, 0, 0, 0.866, 0, 0, 0, 1] as Geometry["direction"] };
  assert.throws(
    () => wrapVolume(volume({ geometry: sheared })),
    (e: unknown) => e instanceof InputError && e.code === "VOLUME_SHEARED",
  );
  assert.throws(
    () => wrapVolume(volume({ data: new Float32Array(8).fill(Number.NaN) })),
    (e: unknown) => e instanceof InputError && e.code === "VOLUME_NOT_FINITE" && /found NaN/.test(e.message),
  );
});
