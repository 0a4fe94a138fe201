/**
 * Model package manifest validation (pure: no I/O, no DOM, no Deno).
 *
 * `validateManifest(json)` checks every field of `ModelManifest` and the relations between them
 * (channels, labels, files) and returns the typed manifest or throws a `ManifestError` whose `code`
 * names the kind of problem and whose `expected` / `actual` say what was wanted and what was found,
 * with the JSON path of the field. `checkManifestAgainstOnnx(manifest, signature)` compares the
 * manifest with the graph's declared inputs and outputs, as read by `src/inference/onnx_signature.ts`.
 *
 * Unknown fields are refused (a misspelt "overlapp" would otherwise be silently ignored); fields whose
 * name starts with "x-" are free for the package author's own notes.
 *
 * Each block is read by its own module under `manifest/` (fields, files, constraints, spatial and
 * tensors, preprocessing, labels with post-processing and triage, roi, uncertainty, the ONNX check);
 * this one reads them in order, so the first problem found is always the same one.
 */
import type { ModelManifest } from "./types.ts";
import { constraintsField } from "./manifest/constraints.ts";
import {
  fail,
  ID,
  isObj,
  noUnknown,
  num,
  type Obj,
  oneOf,
  req,
  SEMVER,
  str,
  strArr,
} from "./manifest/fields.ts";
import { filesField, modelFile, variants } from "./manifest/files.ts";
import { labelsField, postprocessing, triage } from "./manifest/labels.ts";
import { checkInputChannels, preprocessing } from "./manifest/preprocessing.ts";
import { roiField } from "./manifest/roi.ts";
import { spatialAxes, spatialField, tensorsField } from "./manifest/spatial.ts";
import { checkExtraInputs, uncertaintyField } from "./manifest/uncertainty.ts";

export {
  checkManifestAgainstOnnx,
  ONNX_ELEM_TYPES,
  type OnnxSignature,
  type OnnxValueInfo,
} from "./manifest/onnx.ts";

/** Error codes thrown by this module. */
export const MANIFEST_ERROR_CODES = [
  "MANIFEST_NOT_OBJECT",
  "MANIFEST_MISSING_FIELD",
  "MANIFEST_UNKNOWN_FIELD",
  "MANIFEST_TYPE",
  "MANIFEST_VALUE",
  "MANIFEST_INCONSISTENT",
  "MANIFEST_ONNX_MISMATCH",
] as const;

const ROOT = "(root)";

const TOP_FIELDS = [
  "schemaVersion",
  "id",
  "name",
  "version",
  "task",
  "description",
  "intendedUse",
  "license",
  "authors",
  "citations",
  "constraints",
  "model",
  "inputs",
  "outputs",
  "activation",
  "preprocessing",
  "spatial",
  "labels",
  "postprocessing",
  "roi",
  "uncertainty",
  "variants",
  "triage",
  "files",
  "providers",
] as const;

/**
 * Validates a parsed manifest.json. Returns a new, typed object holding only the known fields
 * (plus nothing of the "x-" notes); throws `ManifestError` at the first problem.
 */
export function validateManifest(json: unknown): ModelManifest {
  if (!isObj(json)) fail("MANIFEST_NOT_OBJECT", ROOT, "must be a JSON object", "an object", json);
  const m = json;
  noUnknown(m, ROOT, TOP_FIELDS);

  const schemaVersion = num(req(m, "schemaVersion", ROOT), "schemaVersion", { int: true });
  if (schemaVersion !== 1) {
    fail("MANIFEST_VALUE", "schemaVersion", "is not supported by this EdgeSeg", "1", String(schemaVersion));
  }
  const files = filesField(req(m, "files", ROOT), "files");
  // constraints first: the channel count it declares is used by preprocessing
  const constraints = constraintsField(req(m, "constraints", ROOT), "constraints");
  const model = modelFile(req(m, "model", ROOT), files);
  const spatial = spatialField(req(m, "spatial", ROOT), "spatial");
  const { inputs, outputs } = tensorsField(m, spatial);
  const activation = oneOf(req(m, "activation", ROOT), "activation", ["softmax", "sigmoid", "none"] as const);
  const pre = preprocessing(req(m, "preprocessing", ROOT), "preprocessing", constraints.channels);
  checkInputChannels(inputs, pre, constraints, spatial.window);
  const labels = labelsField(req(m, "labels", ROOT), activation, outputs[0].shape[1] as number);
  const values = new Set(labels.map((l) => l.value));

  const out: ModelManifest = {
    schemaVersion: 1,
    ...identity(m),
    constraints,
    model,
    inputs,
    outputs,
    activation,
    preprocessing: pre,
    spatial,
    labels,
    files,
  };
  if (m.authors !== undefined) out.authors = strArr(m.authors, "authors");
  if (m.citations !== undefined) out.citations = strArr(m.citations, "citations");
  if (m.postprocessing !== undefined) {
    out.postprocessing = postprocessing(m.postprocessing, "postprocessing", values);
  }
  if (m.roi !== undefined) out.roi = roiField(m.roi, "roi", constraints);
  if (spatial.cropToRoi && !out.roi) {
    fail(
      "MANIFEST_INCONSISTENT",
      "spatial.cropToRoi",
      "crops to a region of interest, but the manifest declares no roi block",
      "a roi block",
      "none",
    );
  }
  if (m.uncertainty !== undefined) {
    const axes = spatialAxes(spatial.mode);
    out.uncertainty = uncertaintyField(m.uncertainty, "uncertainty", {
      inputs,
      rank: axes + 2,
      spatialAxes: axes,
      files,
      model,
    });
  }
  checkExtraInputs(inputs, out.uncertainty);
  if (m.providers !== undefined) {
    const list = strArr(m.providers, "providers", true).map((p, i) =>
      oneOf(p, `providers[${i}]`, ["webgpu", "wasm"] as const)
    );
    if (new Set(list).size !== list.length) {
      fail("MANIFEST_VALUE", "providers", "lists a provider twice", "unique names", list.join(", "));
    }
    out.providers = list;
  }
  if (m.variants !== undefined) out.variants = variants(m.variants, "variants", files);
  if (m.triage !== undefined) out.triage = triage(m.triage, "triage", values);
  return out;
}

/** What the model is and for what: id, name, version, task, description, intended use, licence. */
function identity(m: Obj) {
  return {
    id: str(req(m, "id", ROOT), "id", {
      pattern: ID,
      hint: "lower-case letters, digits, - and _ (max 64)",
    }),
    name: str(req(m, "name", ROOT), "name"),
    version: str(req(m, "version", ROOT), "version", {
      pattern: SEMVER,
      hint: "a semantic version such as 1.2.0",
    }),
    task: oneOf(req(m, "task", ROOT), "task", ["segmentation"] as const),
    description: str(req(m, "description", ROOT), "description"),
    intendedUse: str(req(m, "intendedUse", ROOT), "intendedUse"),
    license: str(req(m, "license", ROOT), "license"),
  };
}
