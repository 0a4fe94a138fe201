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
 */
import { ManifestError } from "./errors.ts";
import { MC_PASSES } from "./contract.ts";
import type {
  Code,
  FileEntry,
  IntensityTransform,
  LabelSpec,
  ModelManifest,
  ModelVariant,
  PostprocessingSpec,
  Preprocessing,
  RoiSpec,
  TensorSpec,
  TriageSpec,
  UncertaintySpec,
} from "./types.ts";

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

type Obj = Record<string, unknown>;

function describe(v: unknown): string {
  if (v === undefined) return "nothing";
  if (v === null) return "null";
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === "string") return JSON.stringify(v.length > 60 ? v.slice(0, 57) + "..." : v);
  if (typeof v === "object") return "an object";
  return `${typeof v} ${String(v)}`;
}

function fail(code: string, path: string, what: string, expected: string, actual: unknown): never {
  throw new ManifestError(code, `manifest ${path}: ${what}`, {
    expected,
    actual: typeof actual === "string" && code !== "MANIFEST_TYPE" ? actual : describe(actual),
  });
}

function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function obj(v: unknown, path: string): Obj {
  if (!isObj(v)) fail("MANIFEST_TYPE", path, "must be an object", "an object", v);
  return v;
}

function sub(path: string, key: string): string {
  return path === "(root)" ? key : `${path}.${key}`;
}

function noUnknown(o: Obj, path: string, allowed: readonly string[]): void {
  for (const k of Object.keys(o)) {
    if (k.startsWith("x-")) continue;
    if (!allowed.includes(k)) {
      fail(
        "MANIFEST_UNKNOWN_FIELD",
        sub(path, k),
        'is not a known field (prefix your own with "x-")',
        `one of ${allowed.join(", ")}`,
        k,
      );
    }
  }
}

function req(o: Obj, key: string, path: string): unknown {
  if (!(key in o) || o[key] === undefined) {
    fail("MANIFEST_MISSING_FIELD", sub(path, key), "is required", "a value", undefined);
  }
  return o[key];
}

function str(v: unknown, path: string, opts: { pattern?: RegExp; hint?: string } = {}): string {
  if (typeof v !== "string") fail("MANIFEST_TYPE", path, "must be a string", "a string", v);
  if (v.trim() === "") fail("MANIFEST_VALUE", path, "must not be empty", "a non-empty string", v);
  if (opts.pattern && !opts.pattern.test(v)) {
    fail("MANIFEST_VALUE", path, "has the wrong form", opts.hint ?? String(opts.pattern), v);
  }
  return v;
}

function num(
  v: unknown,
  path: string,
  opts: { int?: boolean; min?: number; max?: number; minExclusive?: number; maxExclusive?: number } = {},
): number {
  if (typeof v !== "number" || !Number.isFinite(v)) {
    fail("MANIFEST_TYPE", path, "must be a finite number", "a number", v);
  }
  const range: string[] = [];
  if (opts.min !== undefined) range.push(`>= ${opts.min}`);
  if (opts.minExclusive !== undefined) range.push(`> ${opts.minExclusive}`);
  if (opts.max !== undefined) range.push(`<= ${opts.max}`);
  if (opts.maxExclusive !== undefined) range.push(`< ${opts.maxExclusive}`);
  const want = `${opts.int ? "an integer" : "a number"}${range.length ? " " + range.join(" and ") : ""}`;
  if (
    (opts.int && !Number.isInteger(v)) ||
    (opts.min !== undefined && v < opts.min) ||
    (opts.max !== undefined && v > opts.max) ||
    (opts.minExclusive !== undefined && v <= opts.minExclusive) ||
    (opts.maxExclusive !== undefined && v >= opts.maxExclusive)
  ) fail("MANIFEST_VALUE", path, "is out of range", want, String(v));
  return v;
}

function oneOf<T extends string>(v: unknown, path: string, values: readonly T[]): T {
  if (typeof v !== "string" || !(values as readonly string[]).includes(v)) {
    fail(
      "MANIFEST_VALUE",
      path,
      "is not an allowed value",
      values.map((x) => JSON.stringify(x)).join(" | "),
      describe(v),
    );
  }
  return v as T;
}

function arr(v: unknown, path: string, opts: { nonEmpty?: boolean; length?: number } = {}): unknown[] {
  if (!Array.isArray(v)) fail("MANIFEST_TYPE", path, "must be an array", "an array", v);
  if (opts.nonEmpty && v.length === 0) {
    fail("MANIFEST_VALUE", path, "must not be empty", "at least one item", v);
  }
  if (opts.length !== undefined && v.length !== opts.length) {
    fail("MANIFEST_VALUE", path, "has the wrong length", `${opts.length} items`, `${v.length} items`);
  }
  return v;
}

function strArr(v: unknown, path: string, nonEmpty = false): string[] {
  return arr(v, path, { nonEmpty }).map((x, i) => str(x, `${path}[${i}]`));
}

function unique<T>(values: T[], path: string, what: string): void {
  const seen = new Set<T>();
  for (const v of values) {
    if (seen.has(v)) fail("MANIFEST_VALUE", path, `has a duplicate ${what}`, `unique ${what}s`, String(v));
    seen.add(v);
  }
}

const SEMVER = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;
const ID = /^[a-z0-9][a-z0-9_-]{0,63}$/;
/** A plain file name inside the package: no folders, no "..", no leading dot. */
const FILE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const SHA256 = /^[0-9a-f]{64}$/;
const MODALITY = /^[A-Z0-9]{1,16}$/;

function code(v: unknown, path: string): Code {
  const o = obj(v, path);
  noUnknown(o, path, ["value", "scheme", "meaning"]);
  const scheme = str(req(o, "scheme", path), `${path}.scheme`);
  if (scheme === "SRT") {
    fail("MANIFEST_VALUE", `${path}.scheme`, "uses the retired SNOMED designator", '"SCT"', scheme);
  }
  return {
    value: str(req(o, "value", path), `${path}.value`),
    scheme,
    meaning: str(req(o, "meaning", path), `${path}.meaning`),
  };
}

function color(v: unknown, path: string): [number, number, number] {
  const a = arr(v, path, { length: 3 });
  return [0, 1, 2].map((i) => num(a[i], `${path}[${i}]`, { int: true, min: 0, max: 255 })) as [
    number,
    number,
    number,
  ];
}

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

function preprocessing(v: unknown, path: string, volumeChannels: number): Preprocessing {
  const o = obj(v, path);
  noUnknown(o, path, [
    "channels",
    "expandChannels",
    "intensity",
    "targetSpacingMm",
    "padMultiple",
    "padValue",
  ]);
  const out: Preprocessing = { intensity: intensity(req(o, "intensity", path), `${path}.intensity`) };
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

function postprocessing(v: unknown, path: string, values: Set<number>): PostprocessingSpec {
  const o = obj(v, path);
  noUnknown(o, path, ["largestComponent", "fillHoles", "minComponentVoxels"]);
  const out: PostprocessingSpec = {};
  if (o.largestComponent !== undefined) {
    out.largestComponent = labelRefs(o.largestComponent, `${path}.largestComponent`, values);
  }
  if (o.fillHoles !== undefined) out.fillHoles = labelRefs(o.fillHoles, `${path}.fillHoles`, values);
  if (o.minComponentVoxels !== undefined) {
    out.minComponentVoxels = num(o.minComponentVoxels, `${path}.minComponentVoxels`, { int: true, min: 0 });
  }
  return out;
}

/** CT numbers a threshold may take: air is about -1000 HU, dense bone and metal reach a few thousand. */
const HU_RANGE = { min: -2000, max: 4000 };

function roi(v: unknown, path: string, constraints: ModelManifest["constraints"]): RoiSpec {
  const o = obj(v, path);
  const kind = oneOf(req(o, "kind", path), `${path}.kind`, ["lungs-from-hu", "body-from-hu"] as const);
  const common = ["kind", "bodyHu", "openingMm", "marginMm", "croppedBorderFraction"];
  noUnknown(o, path, kind === "lungs-from-hu" ? [...common, "airHu", "minComponentMl"] : common);
  // the region is computed from Hounsfield units of a single channel: CT only
  const notCt = constraints.modalities.filter((m) => m !== "CT");
  if (notCt.length) {
    fail(
      "MANIFEST_INCONSISTENT",
      `${path}.kind`,
      `"${kind}" reads Hounsfield units, so every constraints.modalities entry must be CT`,
      '["CT"]',
      JSON.stringify(constraints.modalities),
    );
  }
  if (constraints.channels !== 1) {
    fail(
      "MANIFEST_INCONSISTENT",
      `${path}.kind`,
      `"${kind}" reads one channel of CT numbers`,
      "constraints.channels = 1",
      String(constraints.channels),
    );
  }
  const out: RoiSpec = {
    kind,
    marginMm: num(req(o, "marginMm", path), `${path}.marginMm`, { min: 0, max: 200 }),
  };
  if (o.bodyHu !== undefined) out.bodyHu = num(o.bodyHu, `${path}.bodyHu`, HU_RANGE);
  if (o.airHu !== undefined) out.airHu = num(o.airHu, `${path}.airHu`, HU_RANGE);
  if (o.openingMm !== undefined) out.openingMm = num(o.openingMm, `${path}.openingMm`, { min: 0, max: 50 });
  if (o.minComponentMl !== undefined) {
    out.minComponentMl = num(o.minComponentMl, `${path}.minComponentMl`, { min: 0 });
  }
  if (o.croppedBorderFraction !== undefined) {
    out.croppedBorderFraction = num(o.croppedBorderFraction, `${path}.croppedBorderFraction`, {
      min: 0,
      max: 1,
    });
  }
  return out;
}

function fileRef(v: unknown, path: string, files: Record<string, FileEntry>): string {
  const f = str(v, path, { pattern: FILE_NAME, hint: "a file name inside the package (no folders)" });
  if (!(f in files)) {
    fail(
      "MANIFEST_INCONSISTENT",
      path,
      "names a file with no sha256 in files",
      `a key of files (${Object.keys(files).join(", ")})`,
      f,
    );
  }
  return f;
}

function uncertainty(
  v: unknown,
  path: string,
  ctx: {
    inputs: TensorSpec[];
    rank: number;
    spatialAxes: number;
    files: Record<string, FileEntry>;
    model: string;
  },
): UncertaintySpec {
  const o = obj(v, path);
  noUnknown(o, path, ["mcDropout", "tta", "ensemble"]);
  const out: UncertaintySpec = {};
  if (o.mcDropout !== undefined) {
    const p = `${path}.mcDropout`;
    const m = obj(o.mcDropout, p);
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
    out.mcDropout = {
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

function variants(v: unknown, path: string, files: Record<string, FileEntry>): ModelVariant[] {
  const list = arr(v, path).map((x, i) => {
    const p = `${path}[${i}]`;
    const o = obj(x, p);
    noUnknown(o, p, ["id", "file", "precision", "description", "when"]);
    const out: ModelVariant = {
      id: str(req(o, "id", p), `${p}.id`, { pattern: ID, hint: "lower-case letters, digits, - and _" }),
      file: fileRef(req(o, "file", p), `${p}.file`, files),
      precision: oneOf(req(o, "precision", p), `${p}.precision`, ["fp32", "fp16", "int8"] as const),
    };
    if (o.description !== undefined) out.description = str(o.description, `${p}.description`);
    if (o.when !== undefined) {
      const w = obj(o.when, `${p}.when`);
      const when: Record<string, string> = {};
      for (const [k, val] of Object.entries(w)) when[k] = str(val, `${p}.when.${k}`);
      out.when = when;
    }
    return out;
  });
  unique(list.map((x) => x.id), path, "variant id");
  return list;
}

function triage(v: unknown, path: string, values: Set<number>): TriageSpec {
  const o = obj(v, path);
  noUnknown(o, path, [
    "labels",
    "referenceVolumeMl",
    "locationWeights",
    "boundaryWeight",
    "uncertaintyDiscount",
    "thresholds",
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
  return out;
}

function filesField(v: unknown, path: string): Record<string, FileEntry> {
  const o = obj(v, path);
  const names = Object.keys(o);
  if (names.length === 0) {
    fail("MANIFEST_VALUE", path, "must list at least the model file", "one entry per ONNX file", "{}");
  }
  const out: Record<string, FileEntry> = {};
  for (const name of names) {
    const p = `${path}.${name}`;
    str(name, `${path} key`, { pattern: FILE_NAME, hint: "a file name inside the package (no folders)" });
    const e = obj(o[name], p);
    noUnknown(e, p, ["sha256", "bytes"]);
    out[name] = {
      sha256: str(req(e, "sha256", p), `${p}.sha256`, { pattern: SHA256, hint: "64 lower-case hex digits" }),
      bytes: num(req(e, "bytes", p), `${p}.bytes`, { int: true, min: 1 }),
    };
  }
  return out;
}

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
  if (!isObj(json)) fail("MANIFEST_NOT_OBJECT", "(root)", "must be a JSON object", "an object", json);
  const m = json;
  noUnknown(m, "(root)", TOP_FIELDS);

  const schemaVersion = num(req(m, "schemaVersion", "(root)"), "schemaVersion", { int: true });
  if (schemaVersion !== 1) {
    fail("MANIFEST_VALUE", "schemaVersion", "is not supported by this EdgeSeg", "1", String(schemaVersion));
  }
  const files = filesField(req(m, "files", "(root)"), "files");

  // constraints first: the channel count it declares is used by preprocessing
  const cp = "constraints";
  const c = obj(req(m, "constraints", "(root)"), cp);
  noUnknown(c, cp, ["modalities", "bodyParts", "channels", "minSlices", "maxVoxels"]);
  const constraints: ModelManifest["constraints"] = {
    modalities: strArr(req(c, "modalities", cp), `${cp}.modalities`, true).map((s, i) =>
      str(s, `${cp}.modalities[${i}]`, {
        pattern: MODALITY,
        hint: "a DICOM modality code such as CT, MR or OP",
      })
    ),
    channels: num(req(c, "channels", cp), `${cp}.channels`, { int: true, min: 1, max: 4 }),
  };
  if (c.bodyParts !== undefined) constraints.bodyParts = strArr(c.bodyParts, `${cp}.bodyParts`, true);
  if (c.minSlices !== undefined) {
    constraints.minSlices = num(c.minSlices, `${cp}.minSlices`, { int: true, min: 1 });
  }
  if (c.maxVoxels !== undefined) {
    constraints.maxVoxels = num(c.maxVoxels, `${cp}.maxVoxels`, { int: true, min: 1 });
  }

  const model = fileRef(req(m, "model", "(root)"), "model", files);
  if (!model.endsWith(".onnx")) {
    fail("MANIFEST_VALUE", "model", "must be an ONNX file", 'a name ending in ".onnx"', model);
  }

  // spatial
  const sp = "spatial";
  const s = obj(req(m, "spatial", "(root)"), sp);
  noUnknown(s, sp, ["mode", "window", "overlap", "blending", "sigmaScale", "batch"]);
  const mode = oneOf(req(s, "mode", sp), `${sp}.mode`, ["image2d", "slice2d", "patch3d"] as const);
  const spatialAxes = mode === "patch3d" ? 3 : 2;
  const rank = spatialAxes + 2;
  // -1 = the whole extent of that axis (MONAI's roi_size -1), e.g. a whole fundus photograph
  const window = arr(req(s, "window", sp), `${sp}.window`, { length: spatialAxes }).map((w, i) =>
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

  // tensors
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
    for (let a = 0; a < spatialAxes; a++) {
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
  const activation = oneOf(
    req(m, "activation", "(root)"),
    "activation",
    ["softmax", "sigmoid", "none"] as const,
  );
  const pre = preprocessing(req(m, "preprocessing", "(root)"), "preprocessing", constraints.channels);
  const inC = inputs[0].shape[1] as number;
  const outC = outputs[0].shape[1] as number;
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

  // labels
  const labels = arr(req(m, "labels", "(root)"), "labels", { nonEmpty: true }).map((l, i) =>
    label(l, `labels[${i}]`)
  );
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
    if (activation !== "sigmoid" && l.threshold !== undefined) {
      fail(
        "MANIFEST_INCONSISTENT",
        `labels[${i}].threshold`,
        "applies to sigmoid outputs only",
        'activation "sigmoid"',
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
  const values = new Set(labels.map((l) => l.value));

  const out: ModelManifest = {
    schemaVersion: 1,
    id: str(req(m, "id", "(root)"), "id", {
      pattern: ID,
      hint: "lower-case letters, digits, - and _ (max 64)",
    }),
    name: str(req(m, "name", "(root)"), "name"),
    version: str(req(m, "version", "(root)"), "version", {
      pattern: SEMVER,
      hint: "a semantic version such as 1.2.0",
    }),
    task: oneOf(req(m, "task", "(root)"), "task", ["segmentation"] as const),
    description: str(req(m, "description", "(root)"), "description"),
    intendedUse: str(req(m, "intendedUse", "(root)"), "intendedUse"),
    license: str(req(m, "license", "(root)"), "license"),
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
  if (m.roi !== undefined) out.roi = roi(m.roi, "roi", constraints);
  if (m.uncertainty !== undefined) {
    out.uncertainty = uncertainty(m.uncertainty, "uncertainty", { inputs, rank, spatialAxes, files, model });
  }
  // every extra input must be something the pipeline knows how to feed
  inputs.slice(1).forEach((t, i) => {
    if (out.uncertainty?.mcDropout?.input !== t.name) {
      fail(
        "MANIFEST_INCONSISTENT",
        `inputs[${i + 1}].name`,
        "is an extra input EdgeSeg cannot feed",
        "the uncertainty.mcDropout.input",
        t.name,
      );
    }
  });
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

// ---------------------------------------------------------------------------------------------
// manifest ⇄ ONNX graph

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
  manifest.inputs.forEach((spec, i) => {
    const info = gIn.get(spec.name);
    if (!info) {
      mismatch(
        `inputs[${i}]`,
        `input name not found in ${file}`,
        spec.name,
        sig.inputs.map((v) => v.name).join(", ") || "no inputs",
      );
    }
    compareTensor(spec, info, `inputs[${i}]`, file);
  });
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
  manifest.outputs.forEach((spec, i) => {
    const info = gOut.get(spec.name);
    if (!info) {
      mismatch(
        `outputs[${i}]`,
        `output name not found in ${file}`,
        spec.name,
        sig.outputs.map((v) => v.name).join(", ") || "no outputs",
      );
    }
    compareTensor(spec, info, `outputs[${i}]`, file);
  });
  const mc = manifest.uncertainty?.mcDropout;
  if (mc) {
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
}
