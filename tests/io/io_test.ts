import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { fileURLToPath as fromFileUrl } from "node:url";
import { InputError } from "../../src/core/errors.ts";
import type { Geometry } from "../../src/core/types.ts";
import { deflateSync } from "node:zlib";
import {
  readImage,
  readLabelImage,
  readNifti,
  sniffImageFormat,
  writeNifti,
  writePng,
} from "../../src/io/mod.ts";

const drive = fromFileUrl(new URL("../../../shared/data/drive/training/", import.meta.url));
const haveDrive = existsSync(drive);
if (!haveDrive) console.log("skipping DRIVE image tests: ../shared/data/drive is absent");

const oblique: Geometry = {
  dims: [5, 4, 3],
  spacing: [0.7, 0.8, 2.5],
  origin: [-10.5, 20.25, 33],
  direction: [0, 0, 1, 1, 0, 0, 0, 1, 0],
};

Deno.test("a NIfTI written from LPS geometry reads back with the same geometry and voxels", async () => {
  const data = new Float32Array(60).map((_, i) => i * 0.5 - 3);
  const back = await readNifti(await writeNifti(oblique, data));
  assert.deepEqual(back.volume.geometry.dims, oblique.dims);
  for (let i = 0; i < 3; i++) {
    assert.ok(Math.abs(back.volume.geometry.spacing[i] - oblique.spacing[i]) < 1e-6);
    assert.ok(Math.abs(back.volume.geometry.origin[i] - oblique.origin[i]) < 1e-5);
  }
  back.volume.geometry.direction.forEach((v, i) => assert.ok(Math.abs(v - oblique.direction[i]) < 1e-6));
  assert.deepEqual(Array.from(back.volume.data), Array.from(data));
});

Deno.test("uint8 and int16 NIfTI data keep their values", async () => {
  const u8 = new Uint8Array(60).map((_, i) => i);
  assert.deepEqual(
    Array.from((await readNifti(await writeNifti(oblique, u8, false))).volume.data),
    Array.from(u8),
  );
  const i16 = new Int16Array(60).map((_, i) => -1000 + 37 * i);
  const r = await readNifti(await writeNifti(oblique, i16));
  assert.equal(r.datatype, "int16");
  assert.deepEqual(Array.from(r.volume.data), Array.from(i16));
});

Deno.test("a truncated NIfTI is refused with an InputError naming the declared size", async () => {
  const bytes = await writeNifti(oblique, new Float32Array(60), false);
  await assert.rejects(
    () => readNifti(bytes.slice(0, 400)),
    (e: unknown) => e instanceof InputError && e.code === "NIFTI_TRUNCATED" && /60 voxels/.test(e.message),
  );
  await assert.rejects(() => readNifti(new Uint8Array(10)), InputError);
  const bad = bytes.slice();
  bad[344] = 0x78;
  await assert.rejects(
    () => readNifti(bad),
    (e: unknown) => e instanceof InputError && e.code === "NIFTI_BAD_MAGIC",
  );
});

Deno.test("a voxel count that does not match the grid is refused before writing", async () => {
  await assert.rejects(
    () => writeNifti(oblique, new Float32Array(59)),
    (e: unknown) => e instanceof InputError && e.code === "NIFTI_SIZE",
  );
});

Deno.test("PNG grey and RGB rasters round-trip exactly and are sniffed by magic bytes", () => {
  const grey = new Uint8Array([0, 50, 100, 150, 200, 250]);
  const g = readImage(writePng(3, 2, grey));
  assert.equal(g.channels, 1);
  assert.deepEqual(Array.from(g.data), Array.from(grey));
  const rgb = new Uint8Array(18).map((_, i) => (i * 13) % 256);
  const png = writePng(3, 2, rgb, 3);
  assert.equal(sniffImageFormat(png), "png");
  const c = readImage(png);
  assert.equal(c.channels, 3);
  assert.deepEqual(Array.from(c.data), Array.from(rgb));
  assert.equal(c.modality, "OP");
});

Deno.test("unknown bytes are refused as an image with a clear error", () => {
  assert.throws(
    () => readImage(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])),
    (e: unknown) => e instanceof InputError && e.code === "IMAGE_FORMAT",
  );
});

Deno.test({
  name: "DRIVE fundus TIFF reads as RGB and its GIF labels and masks as one channel",
  ignore: !haveDrive,
  fn: async () => {
    const img = readImage(await Deno.readFile(drive + "images/21_training.tif"));
    assert.deepEqual(img.geometry.dims, [565, 584, 1]);
    assert.equal(img.channels, 3);
    const label = readImage(await Deno.readFile(drive + "1st_manual/21_manual1.gif"));
    assert.equal(label.channels, 1);
    const values = new Set(label.data);
    assert.ok(values.has(0) && values.size === 2);
    const mask = readImage(await Deno.readFile(drive + "mask/21_training_mask.gif"));
    assert.equal(mask.channels, 1);
  },
});

/** CRC-32 of a PNG chunk's type and data (ISO 3309, as PNG requires). */
function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

/** A palette PNG (colour type 3, 8 bits) of `indices` drawn with `palette` (RGB triplets). */
function palettePng(width: number, height: number, indices: number[], palette: number[]): Uint8Array {
  const chunk = (type: string, data: Uint8Array) => {
    const out = new Uint8Array(12 + data.length);
    const view = new DataView(out.buffer);
    view.setUint32(0, data.length);
    out.set(new TextEncoder().encode(type), 4);
    out.set(data, 8);
    view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
    return out;
  };
  const ihdr = new Uint8Array(13);
  new DataView(ihdr.buffer).setUint32(0, width);
  new DataView(ihdr.buffer).setUint32(4, height);
  ihdr.set([8, 3, 0, 0, 0], 8);
  const raw = new Uint8Array(height * (width + 1));
  for (let y = 0; y < height; y++) raw.set(indices.slice(y * width, (y + 1) * width), y * (width + 1) + 1);
  const parts = [
    Uint8Array.from([137, 80, 78, 71, 13, 10, 26, 10]),
    chunk("IHDR", ihdr),
    chunk("PLTE", Uint8Array.from(palette)),
    chunk("IDAT", new Uint8Array(deflateSync(raw))),
    chunk("IEND", new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

Deno.test("a palette PNG label mask reads as its palette indices, not as one colour channel", () => {
  // COVID-SemiSeg's GT palette: 0 black, 1 (128, 0, 0) ground glass, 2 (0, 128, 0) consolidation
  const indices = [0, 1, 2, 2, 1, 0];
  const png = palettePng(3, 2, indices, [0, 0, 0, 128, 0, 0, 0, 128, 0]);
  assert.deepEqual(
    [...readImage(png, { channels: 1 }).data],
    [0, 128, 0, 0, 128, 0],
    "red alone drops label 2",
  );
  const labels = readLabelImage(png);
  assert.deepEqual([...labels.data], indices);
  assert.deepEqual(labels.geometry.dims, [3, 2, 1]);
  assert.equal(labels.channels, 1);
});

Deno.test("a grey PNG label mask reads as its grey levels", () => {
  const png = writePng(2, 2, Uint8Array.from([0, 1, 2, 255]), 1);
  assert.deepEqual([...readLabelImage(png).data], [0, 1, 2, 255]);
});
