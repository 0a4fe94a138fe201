/**
 * How the model sees the volume: the `spatial` block (2D slices, 2D images or 3D patches, the window,
 * overlap and blending) and the `inputs` / `outputs` tensors, whose rank and fixed sizes must agree
 * with it.
 */
import type { ModelManifest, TensorSpec } from "../types.ts";
import { arr, fail, noUnknown, num, type Obj, obj, oneOf, req, str, unique } from "./fields.ts";

/** Spatial axes of a mode's window: x, y (and z for patch3d); tensors add batch and channel axes. */
export function spatialAxes(mode: ModelManifest["spatial"]["mode"]): number {
  return mode === "patch3d" ? 3 : 2;
}

/** Reads `spatial`. */
export function spatialField(v: unknown, sp: string): ModelManifest["spatial"] {
  const s = obj(v, sp);
  noUnknown(s, sp, ["mode", "window", "overlap", "blending", "sigmaScale", "batch", "cropToRoi"]);
  const mode = oneOf(req(s, "mode", sp), `${sp}.mode`, ["image2d", "slice2d", "patch3d"] as const);
  const axes = spatialAxes(mode);
  // -1 = the whole extent of that axis (MONAI's roi_size -1), e.g. a whole fundus photograph
  const window = arr(req(s, "window", sp), `${sp}.window`, { length: axes }).map((w, i) =>
    w === -1 ? -1 : num(w, `${sp}.window[${i}]`, { int: true, min: 1, max: 4096 })
  );
  const spatial: ModelManifest["spatial"] = {
    mode,
    window,
    overlap: num(req(s, "overlap", sp), `${sp}.overlap`, { min: 0, maxExclusive: 1 }),
    blending: oneOf(req(s, "blending", sp), `${sp}.blending`, ["gaussian", "constant"] as const),
  };
  if (s.sigmaScale !== undefined) {
    spatial.sigmaScale = num(s.sigmaScale, `${sp}.sigmaScale`, { minExclusive: 0, max: 1 });
  }
  if (s.batch !== undefined) spatial.batch = num(s.batch, `${sp}.batch`, { int: true, min: 1, max: 256 });
  if (s.cropToRoi !== undefined) {
    if (typeof s.cropToRoi !== "boolean") {
      fail("MANIFEST_TYPE", `${sp}.cropToRoi`, "must be true or false", "a boolean", s.cropToRoi);
    }
    spatial.cropToRoi = s.cropToRoi;
  }
  return spatial;
}

/** One tensor: its name, float32, and a shape of fixed sizes or axis names. */
function tensorSpec(v: unknown, path: string): TensorSpec {
  const o = obj(v, path);
  noUnknown(o, path, ["name", "dtype", "shape"]);
  const shape = arr(req(o, "shape", path), `${path}.shape`, { nonEmpty: true }).map((d, i) => {
    const p = `${path}.shape[${i}]`;
    if (typeof d === "string") {
      return str(d, p, { pattern: /^[A-Za-z_][A-Za-z0-9_]*$/, hint: "an axis name" });
    }
    return num(d, p, { int: true, min: 1 });
  });
  return {
    name: str(req(o, "name", path), `${path}.name`),
    dtype: oneOf(req(o, "dtype", path), `${path}.dtype`, ["float32"] as const),
    shape,
  };
}

/**
 * Reads `inputs` and `outputs` of the manifest object `m`: names unique, and the first input and
 * output of the rank the spatial mode implies, with a fixed channel count and fixed spatial sizes
 * equal to the window.
 */
export function tensorsField(
  m: Obj,
  spatial: ModelManifest["spatial"],
): { inputs: TensorSpec[]; outputs: TensorSpec[] } {
  const { mode, window } = spatial;
  const axes = spatialAxes(mode);
  const rank = axes + 2;
  const inputs = arr(req(m, "inputs", "(root)"), "inputs", { nonEmpty: true }).map((t, i) =>
    tensorSpec(t, `inputs[${i}]`)
  );
  const outputs = arr(req(m, "outputs", "(root)"), "outputs", { nonEmpty: true }).map((t, i) =>
    tensorSpec(t, `outputs[${i}]`)
  );
  unique(inputs.map((t) => t.name), "inputs", "name");
  unique(outputs.map((t) => t.name), "outputs", "name");
  for (const [list, name] of [[inputs, "inputs"], [outputs, "outputs"]] as const) {
    const t = list[0];
    if (t.shape.length !== rank) {
      fail(
        "MANIFEST_INCONSISTENT",
        `${name}[0].shape`,
        `must have rank ${rank} for spatial.mode ${mode}`,
        mode === "patch3d" ? "[batch, C, D, H, W]" : "[batch, C, H, W]",
        JSON.stringify(t.shape),
      );
    }
    if (typeof t.shape[1] !== "number") {
      fail(
        "MANIFEST_VALUE",
        `${name}[0].shape[1]`,
        "is the channel axis and must be a fixed number",
        "a positive integer",
        String(t.shape[1]),
      );
    }
    // tensor spatial axes run [.., D, H, W]; window runs [x, y(, z)]
    for (let a = 0; a < axes; a++) {
      const d = t.shape[rank - 1 - a];
      if (typeof d === "number" && d !== window[a]) {
        fail(
          "MANIFEST_INCONSISTENT",
          `${name}[0].shape[${rank - 1 - a}]`,
          `is fixed, so it must equal spatial.window[${a}]`,
          String(window[a]),
          String(d),
        );
      }
    }
  }
  return { inputs, outputs };
}
