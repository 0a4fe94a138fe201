/**
 * What the model finds: the `labels` (values, output channels, codes, colours, thresholds) and the
 * blocks that refer to them by value, `postprocessing` and `triage`.
 */
import type { LabelSpec, ModelManifest, PostprocessingSpec, TriageSpec } from "../types.ts";
import { arr, code, color, fail, noUnknown, num, obj, req, str, unique } from "./fields.ts";

/** One label. */
function label(v: unknown, path: string): LabelSpec {
  const o = obj(v, path);
  noUnknown(o, path, ["value", "name", "channel", "category", "type", "color", "threshold"]);
  const out: LabelSpec = {
    value: num(req(o, "value", path), `${path}.value`, { int: true, min: 1, max: 65535 }),
    name: str(req(o, "name", path), `${path}.name`),
    channel: num(req(o, "channel", path), `${path}.channel`, { int: true, min: 0 }),
    category: code(req(o, "category", path), `${path}.category`),
    type: code(req(o, "type", path), `${path}.type`),
    color: color(req(o, "color", path), `${path}.color`),
  };
  if (o.threshold !== undefined) {
    out.threshold = num(o.threshold, `${path}.threshold`, { minExclusive: 0, maxExclusive: 1 });
  }
  return out;
}

/**
 * Reads `labels`: values and channels unique, each channel an output channel of a kind the
 * activation can decide (softmax keeps channel 0 for background; thresholds are for sigmoid and
 * softmax outputs, not for probabilities the model computes itself).
 */
export function labelsField(v: unknown, activation: ModelManifest["activation"], outC: number): LabelSpec[] {
  const labels = arr(v, "labels", { nonEmpty: true }).map((l, i) => label(l, `labels[${i}]`));
  unique(labels.map((l) => l.value), "labels", "value");
  unique(labels.map((l) => l.channel), "labels", "channel");
  labels.forEach((l, i) => {
    if (l.channel >= outC) {
      fail(
        "MANIFEST_INCONSISTENT",
        `labels[${i}].channel`,
        "must be an output channel",
        `0..${outC - 1}`,
        String(l.channel),
      );
    }
    if (activation === "softmax" && l.channel === 0) {
      fail(
        "MANIFEST_INCONSISTENT",
        `labels[${i}].channel`,
        "is the softmax background channel",
        "1 or more",
        "0",
      );
    }
    if (activation === "none" && l.threshold !== undefined) {
      fail(
        "MANIFEST_INCONSISTENT",
        `labels[${i}].threshold`,
        "applies to sigmoid and softmax outputs only",
        'activation "sigmoid" or "softmax"',
        activation,
      );
    }
  });
  if (activation === "softmax" && outC < 2) {
    fail(
      "MANIFEST_INCONSISTENT",
      "outputs[0].shape[1]",
      "softmax needs a background channel and at least one label",
      ">= 2",
      String(outC),
    );
  }
  return labels;
}

/** Label values referred to by another block; each must be declared in `labels`. */
function labelRefs(v: unknown, path: string, values: Set<number>): number[] {
  return arr(v, path).map((x, i) => {
    const n = num(x, `${path}[${i}]`, { int: true, min: 1 });
    if (!values.has(n)) {
      fail(
        "MANIFEST_INCONSISTENT",
        `${path}[${i}]`,
        "refers to a label that is not declared",
        `one of ${[...values].join(", ")}`,
        String(n),
      );
    }
    return n;
  });
}

/** Reads `postprocessing`; `values` are the declared label values. */
export function postprocessing(v: unknown, path: string, values: Set<number>): PostprocessingSpec {
  const o = obj(v, path);
  noUnknown(o, path, ["largestComponent", "fillHoles", "minComponentVoxels", "minComponentMl"]);
  const out: PostprocessingSpec = {};
  if (o.largestComponent !== undefined) {
    out.largestComponent = labelRefs(o.largestComponent, `${path}.largestComponent`, values);
  }
  if (o.fillHoles !== undefined) out.fillHoles = labelRefs(o.fillHoles, `${path}.fillHoles`, values);
  if (o.minComponentVoxels !== undefined) {
    out.minComponentVoxels = num(o.minComponentVoxels, `${path}.minComponentVoxels`, { int: true, min: 0 });
  }
  if (o.minComponentMl !== undefined) {
    out.minComponentMl = num(o.minComponentMl, `${path}.minComponentMl`, { min: 0 });
  }
  return out;
}

/** Reads `triage`; `values` are the declared label values. */
export function triage(v: unknown, path: string, values: Set<number>): TriageSpec {
  const o = obj(v, path);
  noUnknown(o, path, [
    "labels",
    "referenceVolumeMl",
    "locationWeights",
    "boundaryWeight",
    "uncertaintyDiscount",
    "thresholds",
    "centre",
  ]);
  const labels = labelRefs(req(o, "labels", path), `${path}.labels`, values);
  if (labels.length === 0) {
    fail("MANIFEST_VALUE", `${path}.labels`, "must not be empty", "at least one label", "[]");
  }
  const out: TriageSpec = {
    labels,
    referenceVolumeMl: num(req(o, "referenceVolumeMl", path), `${path}.referenceVolumeMl`, {
      minExclusive: 0,
    }),
    boundaryWeight: num(req(o, "boundaryWeight", path), `${path}.boundaryWeight`, { min: 0 }),
    uncertaintyDiscount: num(req(o, "uncertaintyDiscount", path), `${path}.uncertaintyDiscount`, {
      min: 0,
      max: 1,
    }),
    thresholds: { review: 0, urgent: 0 },
  };
  const tp = `${path}.thresholds`;
  const t = obj(req(o, "thresholds", path), tp);
  noUnknown(t, tp, ["review", "urgent"]);
  const review = num(req(t, "review", tp), `${tp}.review`, { min: 0 });
  out.thresholds = { review, urgent: num(req(t, "urgent", tp), `${tp}.urgent`, { min: review }) };
  if (o.locationWeights !== undefined) {
    const w = obj(o.locationWeights, `${path}.locationWeights`);
    const lw: Record<string, number> = {};
    for (const [k, val] of Object.entries(w)) {
      if (!values.has(Number(k))) {
        fail(
          "MANIFEST_INCONSISTENT",
          `${path}.locationWeights.${k}`,
          "is keyed by a label value that is not declared",
          `one of ${[...values].join(", ")}`,
          k,
        );
      }
      lw[k] = num(val, `${path}.locationWeights.${k}`, { min: 0 });
    }
    out.locationWeights = lw;
  }
  if (o.centre !== undefined) {
    const cp = `${path}.centre`;
    const c = obj(o.centre, cp);
    noUnknown(c, cp, ["radiusMm", "weight", "axes"]);
    out.centre = {
      radiusMm: num(req(c, "radiusMm", cp), `${cp}.radiusMm`, { minExclusive: 0 }),
      weight: num(req(c, "weight", cp), `${cp}.weight`, { min: 0 }),
    };
    if (c.axes !== undefined) {
      const axes = arr(c.axes, `${cp}.axes`, { nonEmpty: true }).map((a, i) =>
        num(a, `${cp}.axes[${i}]`, { int: true, min: 0, max: 2 })
      );
      if (new Set(axes).size !== axes.length) {
        fail(
          "MANIFEST_VALUE",
          `${cp}.axes`,
          "must not repeat an axis",
          "distinct axes of 0, 1, 2",
          JSON.stringify(axes),
        );
      }
      out.centre.axes = axes;
    }
  }
  return out;
}
