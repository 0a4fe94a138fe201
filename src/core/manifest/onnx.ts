/**
 * The manifest against an ONNX graph's declared signature (read by `src/inference/onnx_signature.ts`):
 * names, element types, ranks, fixed sizes, the MC-dropout mask input and the opset.
 */
import { ManifestError } from "../errors.ts";
import type { McDropoutSpec, ModelManifest, TensorSpec } from "../types.ts";

/** ONNX TensorProto.DataType numbers → names (the subset a segmentation model may use). */
export const ONNX_ELEM_TYPES: Record<number, string> = {
  1: "float32",
  2: "uint8",
  3: "int8",
  4: "uint16",
  5: "int16",
  6: "int32",
  7: "int64",
  8: "string",
  9: "bool",
  10: "float16",
  11: "float64",
  12: "uint32",
  13: "uint64",
  16: "bfloat16",
};

/** A graph input or output as the ONNX file declares it. */
export interface OnnxValueInfo {
  name: string;
  /** TensorProto.DataType; 0 when the type is not a tensor or not declared */
  elemType: number;
  /** per axis: a fixed size, an axis name (dim_param), or null (unknown); null when the shape is absent */
  shape: (number | string | null)[] | null;
}

/** What `src/inference/onnx_signature.ts` reads from a ModelProto. */
export interface OnnxSignature {
  irVersion: number;
  /** opset of the default ("" / "ai.onnx") domain */
  opset: number;
  opsets: Record<string, number>;
  producer: string;
  /** graph inputs that are not initializers: what the caller must feed */
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  initializers: string[];
}

function mismatch(path: string, what: string, expected: string, actual: string): never {
  throw new ManifestError("MANIFEST_ONNX_MISMATCH", `${path}: ${what}`, { expected, actual });
}

function fmtShape(s: (number | string | null)[] | null): string {
  return s === null ? "no shape" : `[${s.map((d) => (d === null ? "?" : String(d))).join(", ")}]`;
}

function compareTensor(spec: TensorSpec, info: OnnxValueInfo, path: string, file: string): void {
  if (info.elemType !== 1) {
    mismatch(
      `${path} "${spec.name}"`,
      `element type in ${file}`,
      "float32",
      ONNX_ELEM_TYPES[info.elemType] ?? `type ${info.elemType}`,
    );
  }
  if (info.shape === null) return; // an undeclared shape cannot contradict the manifest
  if (info.shape.length !== spec.shape.length) {
    mismatch(
      `${path} "${spec.name}"`,
      `rank in ${file}`,
      `${spec.shape.length} (${fmtShape(spec.shape)})`,
      `${info.shape.length} (${fmtShape(info.shape)})`,
    );
  }
  spec.shape.forEach((d, i) => {
    const g = info.shape![i];
    if (typeof g === "number" && typeof d === "number" && g !== d) {
      const axis = i === 1 ? "channel count" : i === 0 ? "batch size" : `axis ${i}`;
      mismatch(
        `${path} "${spec.name}"`,
        `${axis} in ${file}`,
        String(d),
        `${g} (graph shape ${fmtShape(info.shape)})`,
      );
    }
    if (typeof g === "number" && typeof d === "string") {
      mismatch(
        `${path} "${spec.name}"`,
        `axis ${i} is declared dynamic ("${d}") but ${file} fixes it`,
        `a dynamic axis`,
        `${g} (graph shape ${fmtShape(info.shape)})`,
      );
    }
  });
}

/** Each tensor the manifest declares must be in the graph under its name, with matching type and shape. */
function compareDeclared(
  specs: TensorSpec[],
  graph: OnnxValueInfo[],
  byName: Map<string, OnnxValueInfo>,
  kind: "input" | "output",
  file: string,
): void {
  specs.forEach((spec, i) => {
    const info = byName.get(spec.name);
    if (!info) {
      mismatch(
        `${kind}s[${i}]`,
        `${kind} name not found in ${file}`,
        spec.name,
        graph.map((v) => v.name).join(", ") || `no ${kind}s`,
      );
    }
    compareTensor(spec, info, `${kind}s[${i}]`, file);
  });
}

/**
 * Checks the manifest against one ONNX file's signature (the main model, an ensemble member or a
 * variant): input and output names, float32 element type, rank, channel counts, fixed spatial sizes
 * against the window, the MC-dropout mask input and its shape, and a supported opset.
 * Throws ManifestError("MANIFEST_ONNX_MISMATCH") naming what was expected and what the graph has.
 */
export function checkManifestAgainstOnnx(
  manifest: ModelManifest,
  sig: OnnxSignature,
  file = manifest.model,
): void {
  // onnxruntime-web 1.30 implements the default domain up to opset 23; below 7 Resize/Upsample semantics differ
  if (!(sig.opset >= 7 && sig.opset <= 23)) {
    mismatch(file, "default-domain opset", "7..23", sig.opset ? String(sig.opset) : "none declared");
  }
  const gIn = new Map(sig.inputs.map((v) => [v.name, v]));
  const gOut = new Map(sig.outputs.map((v) => [v.name, v]));
  // fixed spatial axes of the graph against the window; the window must fit what the graph accepts
  const rank = manifest.inputs[0].shape.length;
  const gShape = gIn.get(manifest.inputs[0].name)?.shape ?? null;
  if (gShape) {
    manifest.spatial.window.forEach((w, a) => {
      const d = gShape[rank - 1 - a];
      if (typeof d === "number" && d !== w) {
        mismatch(
          `spatial.window[${a}]`,
          `${file} fixes this axis of "${manifest.inputs[0].name}"`,
          String(d),
          String(w),
        );
      }
    });
  }
  compareDeclared(manifest.inputs, sig.inputs, gIn, "input", file);
  for (const v of sig.inputs) {
    if (!manifest.inputs.some((s) => s.name === v.name)) {
      mismatch(
        "inputs",
        `${file} has an input the manifest does not declare, so it could not be fed`,
        manifest.inputs.map((s) => s.name).join(", "),
        `${v.name} ${fmtShape(v.shape)}`,
      );
    }
  }
  compareDeclared(manifest.outputs, sig.outputs, gOut, "output", file);
  const mc = manifest.uncertainty?.mcDropout;
  if (mc) compareMcMask(mc, gIn, sig, file);
}

/** The MC-dropout mask input must be in the graph, with the manifest's rank and fixed sizes. */
function compareMcMask(
  mc: McDropoutSpec,
  gIn: Map<string, OnnxValueInfo>,
  sig: OnnxSignature,
  file: string,
): void {
  const info = gIn.get(mc.input);
  if (!info) {
    mismatch(
      "uncertainty.mcDropout.input",
      `mask input not found in ${file}`,
      mc.input,
      sig.inputs.map((v) => v.name).join(", "),
    );
  }
  if (info.shape) {
    if (info.shape.length !== mc.shape.length) {
      mismatch(
        "uncertainty.mcDropout.shape",
        `rank of "${mc.input}" in ${file}`,
        JSON.stringify(mc.shape),
        fmtShape(info.shape),
      );
    }
    mc.shape.forEach((d, i) => {
      const g = info.shape![i];
      if (typeof g === "number" && g !== d) {
        mismatch(
          `uncertainty.mcDropout.shape[${i}]`,
          `size of "${mc.input}" in ${file}`,
          String(d),
          `${g} (graph shape ${fmtShape(info.shape)})`,
        );
      }
    });
  }
}
