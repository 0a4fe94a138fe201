import assert from "node:assert/strict";
import { flag, numberFlag, parseArgs } from "../../src/cli/args.ts";
import { caseKey, pairCases } from "../../src/cli/pairing.ts";
import { histogramSvg, reliabilitySvg, renderEvalReport } from "../../src/cli/report.ts";
import { InputError } from "../../src/core/errors.ts";

Deno.test("DRIVE file names pair by their leading case number", () => {
  assert.equal(caseKey("images/21_training.tif"), "21");
  assert.equal(caseKey("21_manual1.gif"), "21");
  assert.equal(caseKey("02_test_mask.gif"), "2");
  const pairs = pairCases(["a/22_training.tif", "a/21_training.tif", "a/23_training.tif"], [
    "m/21_manual1.gif",
    "m/22_manual1.gif",
  ], {
    fovs: ["f/21_training_mask.gif", "f/22_training_mask.gif"],
  });
  assert.deepEqual(pairs.map((p) => [p.key, p.reference, p.fov]), [
    ["21", "m/21_manual1.gif", "f/21_training_mask.gif"],
    ["22", "m/22_manual1.gif", "f/22_training_mask.gif"],
    ["23", undefined, undefined],
  ]);
});

Deno.test("NIfTI image and label files pair by case stem", () => {
  assert.equal(caseKey("06SR5RBREL16DQ6M8LWS_image.nii.gz"), "06SR5RBREL16DQ6M8LWS");
  assert.equal(caseKey("06SR5RBREL16DQ6M8LWS_label.nii.gz"), "06SR5RBREL16DQ6M8LWS");
  const pairs = pairCases(["x/AB_image.nii.gz", "x/CD_image.nii.gz"], [
    "y/CD_label.nii.gz",
    "y/AB_label.nii.gz",
  ]);
  assert.deepEqual(pairs.map((p) => p.reference), ["y/AB_label.nii.gz", "y/CD_label.nii.gz"]);
});

Deno.test("flags parse with values, equals signs, booleans and refuse a missing value", () => {
  const a = parseArgs(["--model", "m", "--out=o", "--verbose", "pos", "--n", "3"], ["verbose"]);
  assert.equal(flag(a, "model"), "m");
  assert.equal(flag(a, "out"), "o");
  assert.equal(flag(a, "verbose"), "true");
  assert.equal(numberFlag(a, "n", 1), 3);
  assert.deepEqual(a.positional, ["pos"]);
  assert.throws(() => parseArgs(["--model"]), InputError);
  assert.throws(() => numberFlag(parseArgs(["--n", "x"]), "n", 0), InputError);
});

Deno.test("the HTML report holds the metric table, the mean row, plots and escaped names", () => {
  const html = renderEvalReport({
    title: "Eval <test>",
    model: { id: "m", name: "Model", version: "1.0.0", sha256: "ab".repeat(32) },
    generatedAt: "2026-01-01T00:00:00Z",
    metricNames: ["dice", "hd95_mm"],
    cases: [{
      key: "21",
      metrics: { dice: 0.8, hd95_mm: 3.5 },
      overlayPng: new Uint8Array([137, 80, 78, 71]),
    }],
    mean: { dice: 0.8, hd95_mm: 3.5 },
    reliability: { confidence: [0.25, 0.75], frequency: [0.2, 0.8], counts: [10, 10] },
    histograms: [{
      title: "uncertainty",
      edges: [0, 0.5, 1],
      series: [{ name: "agree", color: "#00f", counts: [3, 1] }],
    }],
  });
  assert.match(html, /Eval &lt;test&gt;/);
  assert.match(html, /<td>0\.8000<\/td><td>3\.5000<\/td>/);
  assert.match(html, /class="mean"/);
  assert.match(html, /data:image\/png;base64,iVBORw==/);
  assert.match(html, /reliability diagram/);
  assert.ok(!html.includes("<script"));
});

Deno.test("an empty reliability bin draws no bar and histograms normalise each series", () => {
  const svg = reliabilitySvg({ confidence: [0.1, 0.5], frequency: [0, 0.5], counts: [0, 4] });
  assert.equal((svg.match(/<rect x="[\d.]+" y/g) ?? []).length, 2); // frame + one bar
  const h = histogramSvg({
    title: "t",
    edges: [0, 1, 2],
    series: [{ name: "a", color: "#000", counts: [1, 3] }, { name: "b", color: "#111", counts: [10, 30] }],
  });
  const paths = h.match(/<path d="([^"]+)"/g)!;
  assert.equal(paths[0], paths[1].replace('"', '"')); // same shape after normalisation
});
