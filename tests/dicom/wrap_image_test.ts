/**
 * src/dicom/wrap_image.ts: a photograph wrapped as an Ophthalmic Photography 8 Bit Image (issue #17 §4)
 * passes dciodvfy with 0 errors, reads back with its pixels, and the pipeline's SEG of it references it
 * and passes dciodvfy too; the eye must be named.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { InputError } from "../../src/core/errors.ts";
import { parseDicom } from "../../src/dicom/dataset.ts";
import { readSeries } from "../../src/dicom/read.ts";
import {
  OPHTHALMIC_PHOTOGRAPHY_8BIT_STORAGE,
  SECONDARY_CAPTURE_IMAGE_STORAGE,
  wrapImage,
} from "../../src/dicom/wrap_image.ts";
import { writePng } from "../../src/io/image2d.ts";
import { runScript } from "../helpers/cli.ts";
import { artifacts, conformanceTest, dciodvfy } from "./tools.ts";

/** A 48×40 RGB test card: a colour ramp, so a channel or row swap would show. */
function photo(): { png: Uint8Array; planar: Uint8Array } {
  const w = 48, h = 40, n = w * h;
  const planar = new Uint8Array(3 * n);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      planar[y * w + x] = x * 5;
      planar[n + y * w + x] = y * 6;
      planar[2 * n + y * w + x] = (x + y) % 256;
    }
  }
  return { png: writePng(w, h, planar, 3), planar };
}

conformanceTest(
  "a photograph wrapped as Ophthalmic Photography passes dciodvfy and reads back pixel for pixel",
  async () => {
    const { png, planar } = photo();
    const w = wrapImage(png, {
      sopClass: "op",
      laterality: "L",
      uids: { study: "2.25.7001", series: "2.25.7002" },
    });
    const path = `${artifacts}wrap-op.dcm`;
    await Deno.writeFile(path, w.bytes);
    assert.deepEqual(dciodvfy(path).errors, []);
    const ds = parseDicom(w.bytes).dataset;
    assert.equal(ds.SOPClassUID, OPHTHALMIC_PHOTOGRAPHY_8BIT_STORAGE);
    assert.equal(ds.Modality, "OP");
    assert.equal(ds.ImageLaterality, "L");
    assert.equal(Number(ds.NumberOfFrames), 1);
    assert.equal(ds.ConversionType, undefined, "Secondary Capture's attributes are not carried over");
    const { volume } = await readSeries([w.bytes]);
    assert.deepEqual(volume.geometry.dims, [48, 40, 1]);
    assert.equal(volume.channels, 3);
    assert.deepEqual(Array.from(volume.data), Array.from(planar));
    // the default stays a Secondary Capture
    assert.equal(parseDicom(wrapImage(png).bytes).dataset.SOPClassUID, SECONDARY_CAPTURE_IMAGE_STORAGE);
  },
);

Deno.test("an Ophthalmic Photography image without the eye named is refused", () => {
  assert.throws(
    () => wrapImage(photo().png, { sopClass: "op" }),
    (e: unknown) =>
      e instanceof InputError && e.code === "MISSING_LATERALITY" && /"R" or "L"/.test(e.message),
  );
});

conformanceTest(
  "segment on an Ophthalmic Photography image writes a SEG that references it and passes dciodvfy",
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "edgeseg-op-" });
    try {
      await Deno.mkdir(join(dir, "in"));
      const w = wrapImage(photo().png, { sopClass: "op", laterality: "R" });
      await Deno.writeFile(join(dir, "in", "fundus.dcm"), w.bytes);
      const r = await runScript("src/cli/segment.ts", [
        "--model",
        "retina-vessels",
        "--input",
        join(dir, "in"),
        "--out",
        join(dir, "out"),
        "--device",
        "cpu",
      ]); // deno-fmt-ignore
      assert.equal(r.code, 0, r.stderr);
      const segPath = join(dir, "out", "in_seg.dcm");
      assert.deepEqual(dciodvfy(segPath).errors, []);
      const seg = parseDicom(await Deno.readFile(segPath)).dataset;
      const ref = (seg.ReferencedSeriesSequence as Record<string, unknown>[])[0];
      assert.equal(ref.SeriesInstanceUID, w.seriesUID);
      const inst = (ref.ReferencedInstanceSequence as Record<string, unknown>[])[0];
      assert.equal(inst.ReferencedSOPClassUID, OPHTHALMIC_PHOTOGRAPHY_8BIT_STORAGE);
      assert.equal(inst.ReferencedSOPInstanceUID, w.sopInstanceUID);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
