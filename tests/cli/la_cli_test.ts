/**
 * The shipped 3D package from the command line on DICOM: an LA LGE-MRI validation case wrapped by
 * the wrap_volume entry point (`deno task wrap-volume <nii.gz> <folder>`), then
 * `segment --model la-mri-3d --input <folder>` writes a SEG that passes dciodvfy, references the
 * wrapped series and holds the voxel count the report states.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { readSegmentation } from "../../src/dicom/mod.ts";
import { conformanceTest, dciodvfy } from "../dicom/tools.ts";
import { runScript } from "../helpers/cli.ts";
import { LA_CASE, laMriCase } from "../../src/harness/paths.ts";

const la = laMriCase();
if (!la) console.log(`skip: ../shared/data/la-mri/${LA_CASE}_* is absent, la-mri-3d is not run from the CLI`);

conformanceTest({
  name:
    "segment --model la-mri-3d on a wrapped LA MRI series writes a dciodvfy-clean SEG with the reported voxels",
  ignore: !la,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "edgeseg-cli-la-" });
    try {
      const series = join(dir, LA_CASE);
      const w = await runScript("src/cli/wrap_volume.ts", [la!.image, series, "--body-part", "HEART"]);
      assert.equal(w.code, 0, w.stderr);
      const seriesUID = /88 MR instances, series ([0-9.]+)/.exec(w.stdout)?.[1];
      assert.ok(seriesUID, `the wrap names 88 instances and the series: ${w.stdout}`);
      const r = await runScript("src/cli/segment.ts", [
        "--model",
        "la-mri-3d",
        "--input",
        series,
        "--out",
        join(dir, "out"),
        "--device",
        "wasm",
      ]);
      assert.equal(r.code, 0, r.stderr);
      const report = JSON.parse(await Deno.readTextFile(join(dir, "out", "report.json")));
      const c = report.cases[0];
      const segFile = c.files.find((f: string) => f.endsWith("_seg.dcm"));
      assert.ok(segFile, `a SEG among ${c.files.join(", ")}`);
      const atrium = c.statistics.find((s: { number: number }) => s.number === 1);
      assert.ok(atrium.voxels > 0, "the left atrium is found");
      const path = join(dir, "out", segFile);
      const seg = await readSegmentation(await Deno.readFile(path));
      assert.equal(seg.counts[1], atrium.voxels, "the SEG holds the reported voxels");
      assert.equal(seg.referencedSeriesUID, seriesUID, "the SEG references the wrapped series");
      assert.deepEqual(dciodvfy(path).errors, [], "the SEG passes dciodvfy");
      console.log(`CLI: ${atrium.volumeMl.toFixed(1)} mL, ${atrium.voxels} voxels, SEG ${segFile}`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
