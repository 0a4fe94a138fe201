/**
 * The CLI end to end on synthetic data: segment writes what it promises for DICOM, NIfTI and image
 * inputs, and eval scores the model against an independent reference with the right numbers.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { normalTwoSidedP, signTestP } from "../../src/cli/eval_stats.ts";
import { parseUncertainty } from "../../src/cli/common.ts";
import { InputError } from "../../src/core/errors.ts";
import { phantomSeries } from "../../src/dicom/phantom.ts";
import { readSegmentation } from "../../src/dicom/mod.ts";
import { readImage, readNifti, writePng } from "../../src/io/mod.ts";
import { runScript, type ScriptRun, writeHalfBrightNifti } from "../helpers/cli.ts";
import { PROJECT_ROOT } from "../helpers/paths.ts";

/** Runs the CLI task `task` (src/cli/<task>.ts). */
function run(task: string, args: string[]): Promise<ScriptRun> {
  return runScript(`src/cli/${task}.ts`, args);
}

Deno.test("--uncertainty accepts the documented grammar and refuses anything else", () => {
  assert.deepEqual(parseUncertainty(undefined), { uncertainty: "none" });
  assert.deepEqual(parseUncertainty("mc:20"), { uncertainty: "mc", passes: 20 });
  assert.deepEqual(parseUncertainty("mc:8+tta"), { uncertainty: "mc+tta", passes: 8 });
  assert.deepEqual(parseUncertainty("tta"), { uncertainty: "tta", passes: undefined });
  assert.deepEqual(parseUncertainty("ensemble"), { uncertainty: "ensemble", passes: undefined });
  assert.throws(() => parseUncertainty("mc:1"), InputError);
  assert.throws(() => parseUncertainty("dropout"), InputError);
});

Deno.test("the significance helpers match hand-computed values", () => {
  assert.ok(Math.abs(normalTwoSidedP(1.959964) - 0.05) < 1e-4);
  assert.ok(Math.abs(normalTwoSidedP(0) - 1) < 1e-6);
  assert.equal(signTestP(5, 5), 2 / 32);
  assert.equal(signTestP(0, 0), 1);
  assert.ok(Math.abs(signTestP(8, 10) - 0.109375) < 1e-12);
});

Deno.test("segment on a DICOM series writes a SEG that maps back onto the series with the reported voxel count", async () => {
  const dir = await Deno.makeTempDir();
  const series = phantomSeries({ slices: 6, size: 64 });
  const inDir = join(dir, "in");
  await Deno.mkdir(inDir);
  for (const [i, f] of series.files.entries()) await Deno.writeFile(join(inDir, `${i}.dcm`), f);
  await Deno.writeTextFile(join(inDir, "README.txt"), "not DICOM");
  const r = await run("segment", [
    "--model",
    "tiny-2d",
    "--input",
    inDir,
    "--out",
    join(dir, "out"),
    "--uncertainty",
    "mc:3",
    "--seed",
    "7",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(await Deno.readTextFile(join(dir, "out", "report.json")));
  const c = report.cases[0];
  assert.deepEqual(c.files.sort(), ["in_seg.dcm", "in_uncertainty_pm.dcm"]);
  assert.equal(c.provenance.seed, 7);
  assert.equal(c.provenance.passes, 3);
  assert.ok(c.notes.some((n: string) => /1 non-DICOM/.test(n)));
  const seg = await readSegmentation(await Deno.readFile(join(dir, "out", "in_seg.dcm")));
  const voxels = c.statistics.reduce((n: number, s: { voxels: number }) => n + s.voxels, 0);
  assert.equal(Object.values(seg.counts).reduce((a, b) => a + b, 0), voxels);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("segment on a NIfTI volume writes a labelmap NIfTI on the same grid", async () => {
  const dir = await Deno.makeTempDir();
  const geometry = await writeHalfBrightNifti(join(dir, "case1_image.nii.gz"), 5, [1, 1.5, 3], [5, -3, 12]);
  const r = await run("segment", [
    "--model",
    "tiny-2d",
    "--input",
    join(dir, "case1_image.nii.gz"),
    "--out",
    join(dir, "out"),
  ]);
  assert.equal(r.code, 0, r.stderr);
  const seg = await readNifti(await Deno.readFile(join(dir, "out", "case1_image_seg.nii.gz")));
  assert.deepEqual(seg.volume.geometry.dims, geometry.dims);
  assert.deepEqual(Array.from(seg.volume.geometry.origin), geometry.origin);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("segment --variant runs the named manifest variant and records it; an unknown id is refused", async () => {
  const dir = await Deno.makeTempDir();
  await writeHalfBrightNifti(join(dir, "case1_image.nii.gz"), 3, [1, 1, 3]);
  const input = join(dir, "case1_image.nii.gz");
  const r = await run("segment", [
    "--model",
    "tiny-2d",
    "--input",
    input,
    "--out",
    join(dir, "out"),
    "--variant",
    "int8",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(await Deno.readTextFile(join(dir, "out", "report.json")));
  const p = report.cases[0].provenance;
  assert.equal(p.variant, "int8");
  assert.equal(p.precision, "int8");
  // the report's model block names the variant as eval's JSON does, and so does the printed summary
  assert.equal(report.model.variant, "int8");
  assert.equal(report.model.precision, "int8");
  assert.match(r.stdout + r.stderr, /case1_image: .* · variant int8 \(INT8\) · /);
  const bad = await run("segment", [
    "--model",
    "tiny-2d",
    "--input",
    input,
    "--out",
    join(dir, "o2"),
    "--variant",
    "fp64",
  ]);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /UNKNOWN_VARIANT/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("eval scores the model against an independently drawn reference and writes JSON and an HTML report", async () => {
  const dir = await Deno.makeTempDir();
  for (const d of ["img", "ref", "pred"]) await Deno.mkdir(join(dir, d));
  // An RGB photograph-like image: a bright disc on a dark background.
  const w = 48, h = 40, rgb = new Uint8Array(w * h * 3);
  // The reference is drawn from the scene, not from any model output: the disc, plus a second
  // "annotated" blob the image does not show, so a perfect score is impossible by construction.
  const truth = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const disc = (x - 24) ** 2 + (y - 20) ** 2 < 120;
      const v = disc ? 220 : 30;
      for (let c = 0; c < 3; c++) rgb[c * w * h + y * w + x] = v;
      truth[y * w + x] = disc || (x >= 2 && x < 8 && y >= 2 && y < 6) ? 255 : 0;
    }
  }
  rgb[0] = 31; // keep it RGB (not grey) so the colour model takes it
  await Deno.writeFile(join(dir, "img", "03_test.png"), writePng(w, h, rgb, 3));
  const s = await run("segment", [
    "--model",
    "tiny-2d-rgb",
    "--input",
    join(dir, "img"),
    "--out",
    join(dir, "pred"),
  ]);
  assert.equal(s.code, 0, s.stderr);
  const mask = readImage(await Deno.readFile(join(dir, "pred", "03_test_mask.png")), { channels: 1 });
  assert.ok(mask.data.some((v) => v > 0), "the model found the disc");
  await Deno.writeFile(join(dir, "ref", "03_manual1.png"), writePng(w, h, truth, 1));
  // The scores eval must report, counted here from the prediction and the drawn reference.
  let tp = 0, fp = 0, fn = 0;
  for (let i = 0; i < w * h; i++) {
    const p = mask.data[i] > 0, t = truth[i] > 0;
    if (p && t) tp++;
    else if (p) fp++;
    else if (t) fn++;
  }
  assert.ok(fn >= 24, "the extra reference blob is missed by construction");
  const e = await run("eval", [
    "--model",
    "tiny-2d-rgb",
    "--input",
    join(dir, "img"),
    "--reference",
    join(dir, "ref"),
    "--json",
    join(dir, "eval.json"),
    "--report",
    join(dir, "eval.html"),
  ]);
  assert.equal(e.code, 0, e.stderr);
  const json = JSON.parse(await Deno.readTextFile(join(dir, "eval.json")));
  assert.equal(json.cases.length, 1);
  assert.equal(json.cases[0].case, "3");
  const dice = (2 * tp) / (2 * tp + fp + fn);
  assert.ok(Math.abs(json.mean.dice - dice) < 1e-9, `Dice ${json.mean.dice}, counted ${dice}`);
  assert.ok(Math.abs(json.mean.precision - tp / (tp + fp)) < 1e-9, "precision");
  assert.ok(Math.abs(json.mean.recall - tp / (tp + fn)) < 1e-9, "recall");
  assert.ok(dice > 0.5 && dice < 1, `the model finds the disc but not the unseen blob (Dice ${dice})`);
  assert.ok(json.mean.hd95_mm > 0, "a missed blob 15+ px away gives a positive HD95");
  assert.match(e.stdout, new RegExp(`mean\\s+${dice.toFixed(4).replace(".", "\\.")}`));
  // What a model card states comes from here: an interval, calibration and a threshold sweep.
  assert.ok(Math.abs(json.meanInterval.dice.estimate - dice) < 1e-9);
  assert.ok(json.calibration.ece >= 0 && json.calibration.ece <= 1, `ECE ${json.calibration.ece}`);
  assert.equal(json.thresholdSweep.points.length, 19);
  assert.ok(json.thresholdSweep.best.f1 >= json.thresholdSweep.points[9].f1, "best F1 ≥ F1 at 0.5");
  const html = await Deno.readTextFile(join(dir, "eval.html"));
  assert.match(html, /data:image\/png;base64,/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("segment refuses a missing input with a typed error and a non-zero exit", async () => {
  const r = await run("segment", ["--model", "tiny-2d", "--input", "/nonexistent/folder"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /INPUT_NOT_FOUND/);
});

Deno.test("eval --variant int8 scores the manifest's variant and names it in the JSON; an undeclared variant is refused", async () => {
  const dir = await Deno.makeTempDir({ prefix: "edgeseg-cli-variant-" });
  try {
    await writeHalfBrightNifti(join(dir, "normal_image.nii.gz"), 3, [2, 2, 4]);
    const args = ["--model", "tiny-2d", "--negative", join(dir, "normal_image.nii.gz"), "--json"];
    const r = await run("eval", [...args, join(dir, "int8.json"), "--variant", "int8"]);
    assert.equal(r.code, 0, r.stderr);
    const { model } = JSON.parse(await Deno.readTextFile(join(dir, "int8.json")));
    const manifest = JSON.parse(
      await Deno.readTextFile(join(PROJECT_ROOT, "tests", "fixtures", "models", "tiny-2d", "manifest.json")),
    );
    const file = manifest.variants.find((v: { id: string }) => v.id === "int8").file;
    assert.equal(model.variant, "int8");
    assert.equal(model.precision, "int8");
    assert.equal(model.sha256, manifest.files[file].sha256, "the sha256 is the variant file's");

    const bad = await run("eval", [...args, join(dir, "bad.json"), "--variant", "fp16"]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /UNKNOWN_VARIANT/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
