/**
 * The shipped `oct-fluid-demo` package from the command line on a synthetic OCT phantom (a held-out
 * validation seed of models/training/oct.py, written by `deno task phantom-oct` as an Ophthalmic
 * Tomography instance with its ground truth as a SEG):
 * - `segment --uncertainty ensemble` writes a SEG and an uncertainty Parametric Map, normalises by the
 *   Topcon recipe, runs both members, and reports a UCUS triage band with its terms (foveal zone included);
 * - `eval --reference` scores it against the phantom's truth per class, and the per-class Dice equal
 *   what the PyTorch validation recorded for the same phantom (validation.json) within 0.01.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { readParametricMap, readSegmentation } from "../../src/dicom/mod.ts";
import { formatVolumeMl } from "../../src/segmentation/mod.ts";
import { runScript } from "../helpers/cli.ts";
import { PROJECT_ROOT } from "../helpers/paths.ts";

const validation = JSON.parse(
  Deno.readTextFileSync(join(PROJECT_ROOT, "models", "oct-fluid-demo", "validation.json")),
);
// a validation seed of oct.py: seed 102 is the Topcon profile, left eye (manufacturer_of / eye_of)
const SEED = 102, MANUFACTURER = "Topcon", EYE = "L";
const opts = { sanitizeOps: false, sanitizeResources: false };

async function phantom(dir: string): Promise<{ input: string; reference: string }> {
  const input = join(dir, "in"), reference = join(dir, "ref");
  const r = await runScript("src/cli/phantom_oct.ts", [
    "--out",
    join(input, `s${SEED}`, "oct.dcm"),
    "--labels",
    join(reference, `s${SEED}.dcm`),
    "--seed",
    String(SEED),
    "--manufacturer",
    MANUFACTURER,
    "--eye",
    EYE,
  ]);
  assert.equal(r.code, 0, r.stderr);
  return { input, reference };
}

Deno.test({
  name:
    "segment --model oct-fluid-demo --uncertainty ensemble on an OCT phantom writes a SEG, an uncertainty PM and a UCUS triage band",
  ...opts,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "edgeseg-cli-oct-" });
    try {
      const { input } = await phantom(dir);
      const out = join(dir, "out");
      const r = await runScript("src/cli/segment.ts", [
        "--model",
        "oct-fluid-demo",
        "--input",
        join(input, `s${SEED}`),
        "--uncertainty",
        "ensemble",
        "--out",
        out,
        "--device",
        "wasm",
      ]);
      assert.equal(r.code, 0, r.stderr);
      const c = JSON.parse(await Deno.readTextFile(join(out, "report.json"))).cases[0];
      const segFile = c.files.find((f: string) => f.endsWith("_seg.dcm"));
      const pmFile = c.files.find((f: string) => f.endsWith("_uncertainty_pm.dcm"));
      assert.ok(segFile && pmFile, `a SEG and an uncertainty PM among ${c.files.join(", ")}`);
      assert.equal(c.provenance.uncertainty, "ensemble");
      assert.equal(c.provenance.passes, 2, "both members ran");
      assert.equal(c.provenance.intensityManufacturer, MANUFACTURER, "the Topcon intensity recipe was used");

      const seg = await readSegmentation(await Deno.readFile(join(out, segFile)));
      for (const s of c.statistics) {
        assert.equal(seg.counts[s.number] ?? 0, s.voxels, `the SEG holds the reported ${s.label} voxels`);
      }
      const found = c.statistics.reduce((a: number, s: { voxels: number }) => a + s.voxels, 0);
      assert.ok(found > 0, "fluid is found");
      const pm = await readParametricMap(await Deno.readFile(join(out, pmFile)));
      assert.equal(pm.frames.length, 25, "one uncertainty frame per B-scan");
      assert.ok(pm.frames.every((f) => f.every((v) => Number.isFinite(v) && v >= 0)));
      assert.ok(pm.frames.some((f) => f.some((v) => v > 0)), "the members disagree somewhere");

      const t = c.triage;
      assert.ok(["Monitor", "Review", "Urgent"].includes(t.band), t.band);
      for (
        const k of [
          "totalVolumeMl",
          "volumeScore",
          "locationMultiplier",
          "centralVolumeMl",
          "boundaryUncertainty",
          "overallUncertainty",
          "discount",
        ]
      ) assert.equal(typeof t.terms[k], "number", `triage term ${k}`);
      const central = c.statistics.reduce(
        (a: number, s: { centralVolumeMl: number }) => a + s.centralVolumeMl,
        0,
      );
      assert.ok(Math.abs(t.terms.centralVolumeMl - central) < 1e-12);
      // M = (V + (2 − 1)·C) / V with no per-label weights
      const v = t.terms.totalVolumeMl;
      assert.ok(Math.abs(t.terms.locationMultiplier - (v + central) / v) < 1e-9, "foveal multiplier");
      assert.ok(
        t.reasons.some((s: string) => /within 0\.5 mm of the centre × 2/.test(s)),
        t.reasons.join("\n"),
      );
      assert.match(r.stdout + r.stderr, new RegExp(`triage ${t.band}`));
      // Fluid pockets are far under 1 mL: the summary line states them in mm³, never as "0.0 mL".
      for (const s of c.statistics.filter((s: { voxels: number }) => s.voxels > 0)) {
        const text = formatVolumeMl(s.volumeMl, s.volumeSdMl);
        assert.match(text, /mm³/, `${s.label}: ${s.volumeMl} mL`);
        assert.ok(
          (r.stdout + r.stderr).includes(`${s.label} ${text}`),
          `the summary states ${s.label} ${text}`,
        );
      }
      assert.doesNotMatch(r.stdout + r.stderr, /\b0\.0 mL/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "eval --model oct-fluid-demo against the phantom's truth SEG gives per-class Dice equal to the PyTorch validation",
  ...opts,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "edgeseg-cli-oct-eval-" });
    try {
      const { input, reference } = await phantom(dir);
      const json = join(dir, "eval.json");
      const r = await runScript("src/cli/eval.ts", [
        "--model",
        "oct-fluid-demo",
        "--input",
        input,
        "--reference",
        reference,
        "--json",
        json,
        "--device",
        "wasm",
      ]);
      assert.equal(r.code, 0, r.stderr);
      const e = JSON.parse(await Deno.readTextFile(json));
      assert.equal(e.cases.length, 1, "the phantom pairs with its truth");
      const per = e.cases[0].perLabel;
      const want = validation.small.perPhantom[`s${SEED} (${MANUFACTURER})`];
      assert.ok(want, "validation.json has this phantom");
      for (const cls of ["IRF", "SRF", "PED"]) {
        assert.ok(
          Math.abs(per[cls].dice - want[cls]) <= 0.01,
          `${cls}: eval Dice ${per[cls].dice} vs PyTorch ${want[cls]}`,
        );
      }
      console.log(
        `oct-fluid-demo on phantom s${SEED}: ${
          ["IRF", "SRF", "PED"].map((k) => `${k} ${per[k].dice.toFixed(3)} (torch ${want[k]})`).join(", ")
        }`,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
