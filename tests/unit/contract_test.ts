/** Issue #18: the run contract (src/core/contract.ts) decided once for the server, panel and CLI. */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  clampPasses,
  MC_PASSES,
  modelFit,
  summarizeManifest,
  uncertaintyChoices,
  variantLabel,
  variantValidation,
} from "../../src/core/contract.ts";
import { validateManifest } from "../../src/core/manifest.ts";
import { parseUncertainty } from "../../src/cli/common.ts";

const FIXTURES = new URL("../fixtures/models/", import.meta.url).pathname;
const manifestOf = async (id: string) =>
  validateManifest(JSON.parse(await Deno.readTextFile(join(FIXTURES, id, "manifest.json"))));

const mc = { input: "mask", shape: [1, 4, 1, 1], rate: 0.2, defaultPasses: 6 };

Deno.test("uncertainty choices follow the manifest: none first, MC with its pass bounds, combinations", () => {
  assert.deepEqual(uncertaintyChoices(undefined).map((c) => c.method), ["none"]);
  const all = uncertaintyChoices({ mcDropout: mc, tta: { flips: [[0]] }, ensemble: { members: ["b.onnx"] } });
  assert.deepEqual(all.map((c) => c.method), ["none", "tta", "mc", "ensemble", "mc+tta", "mc+ensemble"]);
  assert.deepEqual(all.find((c) => c.method === "mc")?.passes, { min: 2, max: 200, default: 6 });
  assert.equal(all.find((c) => c.method === "tta")?.passes, undefined, "TTA has a fixed number of passes");
  assert.equal(all.find((c) => c.method === "mc+ensemble")?.label, "MC dropout + ensemble");
  assert.deepEqual(uncertaintyChoices({ ensemble: { members: [] } }).map((c) => c.method), ["none"]);
  assert.deepEqual(uncertaintyChoices({ tta: { flips: [] } }).map((c) => c.method), ["none"]);
});

Deno.test("pass counts are clamped into one set of bounds, shared by the CLI", () => {
  const b = { ...MC_PASSES, default: 8 };
  assert.equal(clampPasses(1, b), 2);
  assert.equal(clampPasses(500, b), 200);
  assert.equal(clampPasses(Number.NaN, b), 8);
  assert.equal(clampPasses(7.4, b), 7);
  assert.deepEqual(parseUncertainty("mc:200"), { uncertainty: "mc", passes: 200 });
  assert.throws(() => parseUncertainty("mc:201"), /2 ≤ N ≤ 200/);
  assert.throws(() => parseUncertainty("mc:1"), /2 ≤ N ≤ 200/);
});

Deno.test("a summary is built from a validated manifest, with URLs relative to the index", async () => {
  const s = summarizeManifest(await manifestOf("tiny-2d"), "tiny-2d");
  assert.equal(s.id, "tiny-2d");
  assert.equal(s.url, "tiny-2d/");
  assert.equal(s.manifest, "tiny-2d/manifest.json");
  assert.equal(s.spatialMode, "slice2d");
  assert.ok(s.uncertainty.some((c) => c.method === "mc"), "the fixture declares MC dropout");
  assert.equal(s.labels[0].color.length, 3);
});

Deno.test("a summary lists the manifest's variants with their precision and description, nothing added", async () => {
  const s = summarizeManifest(await manifestOf("tiny-2d"), "tiny-2d");
  assert.deepEqual(s.variants, [{
    id: "int8",
    precision: "int8",
    description: "weight-only int8, per-channel DequantizeLinear",
  }]);
  assert.equal(summarizeManifest(await manifestOf("tiny-3d")).variants, undefined, "no variants, no list");
});

Deno.test("a variant's validated figure comes from the package's eval.json only for the very file listed", async () => {
  const manifest = await manifestOf("tiny-2d");
  const sha256 = manifest.files["tiny-2d-int8.onnx"].sha256;
  const headline = [{ name: "Dice, mean", eval: 0.6673, main: 0.6688, difference: -0.0015 }];
  const evalJson = { variants: [{ id: "int8", sha256, headline }] };
  const v = variantValidation(manifest, manifest.variants![0], evalJson);
  assert.equal(v?.metric, "Dice, mean");
  assert.deepEqual([v?.value, v?.main], [0.6673, 0.6688]);
  assert.ok(Math.abs(v!.difference - -0.0015) < 1e-12);
  assert.equal(
    summarizeManifest(manifest, "tiny-2d", evalJson).variants?.[0].validated?.metric,
    "Dice, mean",
  );
  // scored on another file (an older int8), or not scored: no figure
  const stale = { variants: [{ id: "int8", sha256: "0".repeat(64), headline }] };
  assert.equal(variantValidation(manifest, manifest.variants![0], stale), undefined);
  assert.equal(variantValidation(manifest, manifest.variants![0], { variants: [] }), undefined);
  assert.equal(variantValidation(manifest, manifest.variants![0], "not json"), undefined);
});

Deno.test("ct-lung-infection's static INT8 variant carries the figure its eval.json measured", async () => {
  const dir = new URL("../../models/ct-lung-infection/", import.meta.url).pathname;
  const manifest = validateManifest(JSON.parse(await Deno.readTextFile(join(dir, "manifest.json"))));
  const evalJson = JSON.parse(await Deno.readTextFile(join(dir, "eval.json")));
  const [int8] = summarizeManifest(manifest, "ct-lung-infection", evalJson).variants ?? [];
  const scored = evalJson.variants.find((v: { id: string }) => v.id === "int8").headline[0];
  assert.equal(int8.precision, "int8");
  assert.deepEqual(int8.validated, {
    metric: scored.name,
    value: scored.eval,
    main: scored.main,
    difference: scored.eval - scored.main,
  });
});

Deno.test("a variant is named by id and precision; the main model by nothing", () => {
  assert.equal(variantLabel({ variant: "int8", precision: "int8" }), "variant int8 (INT8)");
  assert.equal(variantLabel({ variant: "siemens", precision: "fp16" }), "variant siemens (FP16)");
  assert.equal(variantLabel({ precision: "fp32" }), undefined);
  assert.equal(variantLabel({ variant: "main", precision: "fp32" }), undefined);
});

Deno.test("modelFit: refusals with the codes segment() throws, and a body part only warns", () => {
  const model = {
    modalities: ["CT", "MR"],
    channels: 1,
    minSlices: 8,
    spatialMode: "slice2d" as const,
    bodyParts: ["CHEST"],
  };
  assert.deepEqual(modelFit(model, { modality: "CT", channels: 1, images: 40, bodyPart: "chest" }), {
    ok: true,
    refusals: [],
    warnings: [],
  });
  const bad = modelFit(model, {
    modality: "OP",
    channels: 3,
    images: 2,
    missingGeometry: ["ImagePositionPatient"],
  });
  assert.equal(bad.ok, false);
  assert.deepEqual(bad.refusals.map((r) => r.code), [
    "MODALITY",
    "CHANNELS",
    "TOO_FEW_SLICES",
    "MISSING_GEOMETRY",
  ]);
  assert.equal(bad.refusals[0].message, "needs CT/MR, series is OP");
  assert.equal(bad.refusals[1].message, "needs greyscale images, series is colour");
  const warned = modelFit(model, { modality: "CT", images: 40, bodyPart: "ABDOMEN" });
  assert.equal(warned.ok, true);
  assert.deepEqual(warned.warnings, [{
    code: "BODY_PART",
    message: "made for CHEST, series is tagged ABDOMEN",
  }]);
  assert.deepEqual(modelFit(model, {}).refusals, [], "facts not known are not judged");
  const threeD = modelFit({ ...model, spatialMode: "patch3d", minSlices: undefined }, { images: 1 });
  assert.deepEqual(threeD.refusals.map((r) => r.code), ["NOT_A_VOLUME"]);
});
