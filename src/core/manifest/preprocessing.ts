/**
 * The `preprocessing` recipe (channels, intensity transform, target spacing, padding) and its
 * agreement with the model's input channels and window.
 */
import type { IntensityTransform, ModelManifest, Preprocessing, TensorSpec } from "../types.ts";
import { arr, fail, noUnknown, num, obj, oneOf, req } from "./fields.ts";

/** One intensity transform, with the fields its kind takes. */
function intensity(v: unknown, path: string): IntensityTransform {
  const o = obj(v, path);
  const kind = oneOf(
    req(o, "kind", path),
    `${path}.kind`,
    ["none", "window", "clipScale", "zscore", "scale"] as const,
  );
  const n = (k: string, opts: Parameters<typeof num>[2] = {}) => num(req(o, k, path), `${path}.${k}`, opts);
  switch (kind) {
    case "none":
      noUnknown(o, path, ["kind"]);
      return { kind };
    case "window": {
      noUnknown(o, path, ["kind", "center", "width", "outMin", "outMax"]);
      return {
        kind,
        center: n("center"),
        width: n("width", { minExclusive: 0 }),
        outMin: n("outMin"),
        outMax: n("outMax"),
      };
    }
    case "clipScale": {
      noUnknown(o, path, ["kind", "min", "max", "outMin", "outMax"]);
      const min = n("min");
      const max = n("max", { minExclusive: min });
      return { kind, min, max, outMin: n("outMin"), outMax: n("outMax") };
    }
    case "zscore": {
      noUnknown(o, path, ["kind", "mask", "clip"]);
      const mask = oneOf(req(o, "mask", path), `${path}.mask`, ["all", "nonzero"] as const);
      if (o.clip === undefined) return { kind, mask };
      const c = arr(o.clip, `${path}.clip`, { length: 2 });
      const lo = num(c[0], `${path}.clip[0]`);
      const hi = num(c[1], `${path}.clip[1]`, { minExclusive: lo });
      return { kind, mask, clip: [lo, hi] };
    }
    case "scale":
      noUnknown(o, path, ["kind", "scale", "offset"]);
      return { kind, scale: n("scale"), offset: n("offset") };
  }
}

/** Reads `preprocessing`; `volumeChannels` is constraints.channels. */
export function preprocessing(v: unknown, path: string, volumeChannels: number): Preprocessing {
  const o = obj(v, path);
  noUnknown(o, path, [
    "channels",
    "expandChannels",
    "intensity",
    "intensityByManufacturer",
    "targetSpacingMm",
    "padMultiple",
    "padValue",
  ]);
  const out: Preprocessing = { intensity: intensity(req(o, "intensity", path), `${path}.intensity`) };
  if (o.intensityByManufacturer !== undefined) {
    const bp = `${path}.intensityByManufacturer`;
    const by = obj(o.intensityByManufacturer, bp);
    const keys = Object.keys(by);
    if (keys.length === 0) {
      fail(
        "MANIFEST_VALUE",
        bp,
        "must name at least one Manufacturer",
        '{ "<Manufacturer>": { kind, … } }',
        "{}",
      );
    }
    const seen = new Set<string>();
    out.intensityByManufacturer = {};
    for (const k of keys) {
      const norm = k.trim().toLowerCase();
      if (norm === "") {
        fail("MANIFEST_VALUE", `${bp}[${JSON.stringify(k)}]`, "needs a Manufacturer", "a name", k);
      }
      if (seen.has(norm)) {
        fail(
          "MANIFEST_VALUE",
          `${bp}[${JSON.stringify(k)}]`,
          "repeats a Manufacturer",
          "unique keys (case-insensitive)",
          k,
        );
      }
      seen.add(norm);
      out.intensityByManufacturer[k] = intensity(by[k], `${bp}[${JSON.stringify(k)}]`);
    }
  }
  if (o.channels !== undefined) {
    out.channels = arr(o.channels, `${path}.channels`, { nonEmpty: true }).map((c, i) =>
      num(c, `${path}.channels[${i}]`, { int: true, min: 0, max: volumeChannels - 1 })
    );
  }
  if (o.expandChannels !== undefined) {
    out.expandChannels = oneOf(o.expandChannels, `${path}.expandChannels`, ["repeat"] as const);
    if (volumeChannels !== 1) {
      fail(
        "MANIFEST_INCONSISTENT",
        `${path}.expandChannels`,
        "repeats a single channel, so the volume must have one",
        "constraints.channels = 1",
        String(volumeChannels),
      );
    }
  }
  if (o.targetSpacingMm !== undefined) {
    const a = arr(o.targetSpacingMm, `${path}.targetSpacingMm`, { length: 3 });
    out.targetSpacingMm = a.map((s, i) =>
      s === null ? null : num(s, `${path}.targetSpacingMm[${i}]`, { minExclusive: 0 })
    ) as [number | null, number | null, number | null];
  }
  if (o.padMultiple !== undefined) {
    out.padMultiple = num(o.padMultiple, `${path}.padMultiple`, { int: true, min: 1 });
  }
  if (o.padValue !== undefined) out.padValue = num(o.padValue, `${path}.padValue`);
  return out;
}

/**
 * The model's input channels must be what the recipe hands it (the picked channels, the repeated
 * one, or the volume's), and a fixed window a multiple of the padding.
 */
export function checkInputChannels(
  inputs: TensorSpec[],
  pre: Preprocessing,
  constraints: ModelManifest["constraints"],
  window: number[],
): void {
  const inC = inputs[0].shape[1] as number;
  const wantC = pre.channels ? pre.channels.length : pre.expandChannels ? inC : constraints.channels;
  if (inC !== wantC) {
    fail(
      "MANIFEST_INCONSISTENT",
      "inputs[0].shape[1]",
      pre.channels ? "must equal the number of preprocessing.channels" : "must equal constraints.channels",
      String(wantC),
      String(inC),
    );
  }
  if (pre.padMultiple !== undefined) {
    window.forEach((w, i) => {
      if (w !== -1 && w % pre.padMultiple! !== 0) {
        fail(
          "MANIFEST_INCONSISTENT",
          `spatial.window[${i}]`,
          "must be a multiple of preprocessing.padMultiple",
          `a multiple of ${pre.padMultiple}`,
          String(w),
        );
      }
    });
  }
}
