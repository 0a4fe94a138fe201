/**
 * Step 2 of `deno task package`: manifest.json drafted from the graph (inputs, outputs, dynamic axes →
 * window, an MC-dropout mask input), with the user's partial manifest merged over it.
 */
import { ONNX_ELEM_TYPES } from "../../core/manifest.ts";
import type { OnnxSignature } from "../../core/manifest.ts";
import { PackageError } from "./types.ts";

const TISSUE = { value: "85756007", scheme: "SCT", meaning: "Tissue" };

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Objects merge recursively; arrays and scalars in `over` replace. */
export function deepMerge(base: unknown, over: unknown): unknown {
  if (!isObj(base) || !isObj(over)) return over === undefined ? base : over;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = deepMerge(base[k], v);
  return out;
}

function specOf(v: OnnxSignature["inputs"][number], field: string, axisNames: string[]) {
  const dtype = ONNX_ELEM_TYPES[v.elemType];
  if (dtype !== "float32") {
    throw new PackageError(
      "GRAPH_UNSUPPORTED",
      `${field}.dtype`,
      `"${v.name}" is ${dtype ?? "untyped"}, EdgeSeg feeds float32`,
    );
  }
  if (!v.shape) {
    throw new PackageError("GRAPH_UNSUPPORTED", `${field}.shape`, `"${v.name}" declares no shape`);
  }
  return {
    name: v.name,
    dtype,
    shape: v.shape.map((d, i) => d ?? axisNames[i] ?? `axis${i}`),
  };
}

/** A manifest drafted from the graph alone; `draft` (the user's partial manifest) is merged over it. */
export function draftManifest(
  sig: OnnxSignature,
  id: string,
  file: string,
  draft: Record<string, unknown> = {},
): Record<string, unknown> {
  const [x, ...extra] = sig.inputs;
  if (!x) throw new PackageError("GRAPH_UNSUPPORTED", "inputs", "the graph has no input to feed");
  const y = sig.outputs[0];
  if (!y) throw new PackageError("GRAPH_UNSUPPORTED", "outputs", "the graph has no output");
  const rank = x.shape?.length ?? 0;
  if (rank !== 4 && rank !== 5) {
    throw new PackageError(
      "GRAPH_UNSUPPORTED",
      "inputs[0].shape",
      `"${x.name}" has rank ${rank}; EdgeSeg feeds [batch, channels, (depth,) height, width]`,
    );
  }
  if ((y.shape?.length ?? 0) !== rank) {
    throw new PackageError(
      "GRAPH_UNSUPPORTED",
      "outputs[0].shape",
      `"${y.name}" has rank ${
        y.shape?.length ?? "unknown"
      }, not ${rank}: a segmentation output keeps the input's spatial axes (is this a classifier?)`,
    );
  }
  const names = rank === 5
    ? ["batch", "channels", "depth", "height", "width"]
    : ["batch", "channels", "height", "width"];
  const input = specOf(x, "inputs[0]", names);
  const output = specOf(y, "outputs[0]", names);
  const channels = typeof x.shape![1] === "number" ? x.shape![1] as number : 1;
  const outC = typeof y.shape![1] === "number" ? y.shape![1] as number : 2;
  const spatialAxes = rank - 2;
  // window runs [x, y(, z)] while tensor axes run [.., (D,) H, W]; dynamic axes get a default size
  const window = x.shape!.slice(2).reverse().map((d) =>
    typeof d === "number" ? d : spatialAxes === 3 ? 96 : 256
  );
  const manifest: Record<string, unknown> = {
    schemaVersion: 1,
    id,
    name: id,
    version: "0.1.0",
    task: "segmentation",
    description: `Drafted by deno task package from ${file}.`,
    intendedUse: "Research and software testing; not validated for diagnosis.",
    license: "UNSPECIFIED",
    constraints: { modalities: spatialAxes === 3 ? ["CT", "MR"] : ["OT"], channels },
    model: file,
    inputs: [input],
    outputs: [output],
    activation: outC === 1 ? "sigmoid" : "softmax",
    preprocessing: {
      intensity: { kind: "zscore", mask: "all" },
      targetSpacingMm: [null, null, null],
      padMultiple: 16,
      padValue: 0,
    },
    spatial: {
      mode: spatialAxes === 3 ? "patch3d" : channels === 1 ? "slice2d" : "image2d",
      window,
      overlap: 0.25,
      blending: "gaussian",
      sigmaScale: 0.125,
    },
    labels: (outC === 1 ? [1] : Array.from({ length: outC - 1 }, (_, i) => i + 1)).map((v, i) => ({
      value: v,
      name: `Class ${v}`,
      channel: outC === 1 ? 0 : v,
      category: TISSUE,
      type: TISSUE,
      color: [[230, 80, 80], [80, 160, 255], [90, 200, 120], [240, 200, 60]][i % 4],
    })),
  };
  // an extra input shaped [batch, C, 1, …] is an MC-dropout mask (docs/platform: ORT drops Dropout nodes)
  if (extra.length === 1) {
    const m = extra[0];
    const s = m.shape ?? [];
    if (s.length === rank && typeof s[1] === "number" && s.slice(2).every((d) => d === 1)) {
      (manifest.inputs as unknown[]).push(specOf(m, "inputs[1]", ["batch"]));
      manifest.uncertainty = {
        mcDropout: { input: m.name, shape: [1, s[1], ...s.slice(2)], rate: 0.5, defaultPasses: 8 },
      };
    }
  }
  return deepMerge(manifest, draft) as Record<string, unknown>;
}
