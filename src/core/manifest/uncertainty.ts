/**
 * The `uncertainty` block: MC dropout (an extra mask input of the graph), test-time augmentation
 * flips and ensemble members, and the rule that every extra graph input is the dropout mask.
 */
import { MC_PASSES } from "../contract.ts";
import type { FileEntry, McDropoutSpec, TensorSpec, UncertaintySpec } from "../types.ts";
import { fileRef } from "./files.ts";
import { arr, fail, noUnknown, num, obj, req, str, unique } from "./fields.ts";

/** What the uncertainty block is checked against. */
interface UncertaintyContext {
  inputs: TensorSpec[];
  rank: number;
  spatialAxes: number;
  files: Record<string, FileEntry>;
  model: string;
}

/** Reads `uncertainty`. */
export function uncertaintyField(v: unknown, path: string, ctx: UncertaintyContext): UncertaintySpec {
  const o = obj(v, path);
  noUnknown(o, path, ["mcDropout", "tta", "ensemble"]);
  const out: UncertaintySpec = {};
  if (o.mcDropout !== undefined) out.mcDropout = mcDropout(o.mcDropout, `${path}.mcDropout`, ctx);
  if (o.tta !== undefined) {
    const p = `${path}.tta`;
    const t = obj(o.tta, p);
    noUnknown(t, p, ["flips"]);
    const flips = arr(req(t, "flips", p), `${p}.flips`, { nonEmpty: true }).map((f, i) => {
      const axes = arr(f, `${p}.flips[${i}]`, { nonEmpty: true }).map((a, j) =>
        num(a, `${p}.flips[${i}][${j}]`, { int: true, min: 0, max: ctx.spatialAxes - 1 })
      );
      unique(axes, `${p}.flips[${i}]`, "axis");
      return axes;
    });
    out.tta = { flips };
  }
  if (o.ensemble !== undefined) {
    const p = `${path}.ensemble`;
    const e = obj(o.ensemble, p);
    noUnknown(e, p, ["members"]);
    const members = arr(req(e, "members", p), `${p}.members`, { nonEmpty: true }).map((f, i) =>
      fileRef(f, `${p}.members[${i}]`, ctx.files)
    );
    unique([ctx.model, ...members], `${p}.members`, "file (the main model is member 0)");
    out.ensemble = { members };
  }
  return out;
}

/** `uncertainty.mcDropout`: an extra model input taking a batch-1 mask of the input's shape. */
function mcDropout(v: unknown, p: string, ctx: UncertaintyContext): McDropoutSpec {
  const m = obj(v, p);
  noUnknown(m, p, ["input", "shape", "rate", "defaultPasses"]);
  const input = str(req(m, "input", p), `${p}.input`);
  const idx = ctx.inputs.findIndex((t) => t.name === input);
  if (idx < 1) {
    fail(
      "MANIFEST_INCONSISTENT",
      `${p}.input`,
      "must name an extra model input (not the image input)",
      `one of ${ctx.inputs.slice(1).map((t) => t.name).join(", ") || "(no extra inputs declared)"}`,
      input,
    );
  }
  const shape = arr(req(m, "shape", p), `${p}.shape`, { length: ctx.rank }).map((d, i) =>
    num(d, `${p}.shape[${i}]`, { int: true, min: 1 })
  );
  if (shape[0] !== 1) {
    fail("MANIFEST_VALUE", `${p}.shape[0]`, "is the batch axis for one window", "1", String(shape[0]));
  }
  const spec = ctx.inputs[idx];
  for (let i = 1; i < shape.length; i++) {
    const d = spec.shape[i];
    if (typeof d === "number" && d !== shape[i]) {
      fail(
        "MANIFEST_INCONSISTENT",
        `${p}.shape[${i}]`,
        `differs from inputs[${idx}].shape[${i}]`,
        String(d),
        String(shape[i]),
      );
    }
  }
  return {
    input,
    shape,
    rate: num(req(m, "rate", p), `${p}.rate`, { minExclusive: 0, maxExclusive: 1 }),
    defaultPasses: num(req(m, "defaultPasses", p), `${p}.defaultPasses`, {
      int: true,
      min: MC_PASSES.min,
      max: MC_PASSES.max,
    }),
  };
}

/** Every extra input must be something the pipeline knows how to feed: the MC-dropout mask. */
export function checkExtraInputs(inputs: TensorSpec[], uncertainty: UncertaintySpec | undefined): void {
  inputs.slice(1).forEach((t, i) => {
    if (uncertainty?.mcDropout?.input !== t.name) {
      fail(
        "MANIFEST_INCONSISTENT",
        `inputs[${i + 1}].name`,
        "is an extra input EdgeSeg cannot feed",
        "the uncertainty.mcDropout.input",
        t.name,
      );
    }
  });
}
