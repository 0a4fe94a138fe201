/**
 * The panel's model-file choice (extension/src/panel/variant_picker.ts): offered only when the package
 * declares variants, the main model first and the default, each variant by its precision and the
 * package's own words and figures, and a choice the selected model lacks falls back to the main model.
 */
import assert from "node:assert/strict";
import { type ModelIndexEntry, parseModelIndexEntry } from "../../extension/src/models.ts";
import {
  chosenVariant,
  MAIN_MODEL,
  shortDescription,
  signedFigure,
  variantNote,
  variantOptions,
} from "../../extension/src/panel/variant_picker.ts";
import { summarizeManifest } from "../../src/core/contract.ts";
import { validateManifest } from "../../src/core/manifest.ts";

const entry = (raw: Record<string, unknown>): ModelIndexEntry => {
  const e = parseModelIndexEntry(raw, 0);
  if (typeof e === "string") throw new Error(e);
  return e;
};

const qdq = {
  id: "int8",
  precision: "int8",
  description:
    "static INT8 (QDQ): int8 per-channel weights, uint8 activations calibrated on training slices; onnxruntime fuses it into QLinearConv",
  validated: {
    metric: "infection Dice, mean over slices",
    value: 0.667344,
    main: 0.668799,
    difference: -0.001455,
  },
};

Deno.test("a model without variants gets no model-file control", () => {
  assert.deepEqual(variantOptions(entry({ id: "a" })), []);
  assert.deepEqual(variantOptions(entry({ id: "a", variants: [] })), []);
  assert.deepEqual(variantOptions(undefined), []);
});

Deno.test("the main model comes first as full precision, then each variant by precision, description and validated figure", () => {
  const options = variantOptions(entry({ id: "ct", variants: [qdq] }));
  assert.deepEqual(options, [
    [MAIN_MODEL, "Full precision (fp32)"],
    ["int8", "INT8 — static INT8 (QDQ), infection Dice \u22120.0015"],
  ]);
  // a variant its package has not scored: its precision and description only
  const drive = variantOptions(entry({
    id: "retina",
    variants: [{
      id: "int8",
      precision: "int8",
      description: "weight-only per-channel INT8 (DequantizeLinear + float Conv)",
    }],
  }));
  assert.equal(drive[1][1], "INT8 — weight-only per-channel INT8…");
  assert.equal(
    variantOptions(entry({ id: "x", variants: [{ id: "half", precision: "fp16" }] }))[1][1],
    "FP16",
  );
});

Deno.test("the note under the choice gives the package's full description and its measured figures", () => {
  const v = entry({ id: "ct", variants: [qdq] }).variants![0];
  assert.equal(
    variantNote(v),
    `${qdq.description}. Validated by the package on its own split: infection Dice, mean over slices 0.6673 ` +
      "(full precision 0.6688, \u22120.0015).",
  );
  const unscored = variantNote({ id: "int8", precision: "int8", when: { manufacturer: "SIEMENS" } });
  assert.equal(
    unscored,
    "The package states no validation figure for this file. Made for manufacturer SIEMENS.",
  );
});

Deno.test("a variant choice the newly selected model lacks runs that model's main file", () => {
  const ct = entry({ id: "ct", variants: [qdq] });
  assert.equal(chosenVariant(ct, "int8")?.id, "int8");
  assert.equal(chosenVariant(ct, MAIN_MODEL), undefined);
  assert.equal(chosenVariant(entry({ id: "plain" }), "int8"), undefined);
  assert.equal(chosenVariant(ct, "fp64"), undefined);
});

Deno.test("index entries keep well-formed variants and drop ones that cannot be run", () => {
  const e = entry({
    id: "m",
    variants: [
      qdq,
      { id: "", precision: "int8" },
      { id: "main", precision: "int8" },
      { id: "bf16", precision: "bf16" },
      { id: "odd", precision: "fp16", validated: { metric: "Dice", value: "high" } },
    ],
  });
  assert.deepEqual(e.variants?.map((v) => v.id), ["int8", "odd"]);
  assert.deepEqual(e.variants?.[0].validated, qdq.validated);
  assert.equal(e.variants?.[1].validated, undefined, "a malformed figure is left out, not shown");
});

Deno.test("the server's summary of a package with a variant reaches the panel intact", async () => {
  const dir = new URL("../fixtures/models/tiny-2d/", import.meta.url);
  const manifest = validateManifest(JSON.parse(await Deno.readTextFile(new URL("manifest.json", dir))));
  const summary = JSON.parse(JSON.stringify(summarizeManifest(manifest, "tiny-2d")));
  assert.deepEqual(variantOptions(entry(summary)), [
    [MAIN_MODEL, "Full precision (fp32)"],
    ["int8", "INT8 — weight-only int8, per-channel…"],
  ]);
});

Deno.test("figures are signed with a real minus, four decimals, and a rounded zero has no minus", () => {
  assert.equal(signedFigure(-0.001456), "\u22120.0015");
  assert.equal(signedFigure(0.001), "+0.0010");
  assert.equal(signedFigure(-0.00001), "+0.0000");
  assert.equal(shortDescription(undefined), undefined);
  assert.equal(shortDescription("static INT8 (QDQ): details"), "static INT8 (QDQ)");
});
