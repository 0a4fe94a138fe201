/**
 * The run contract, decided once for every caller (edge server, viewer panel, Worker, CLI):
 *
 * - `summarizeManifest`: the typed `ModelSummary` a model index lists, built only from a manifest
 *   that `validateManifest` accepted;
 * - `modelFit`: whether a model can take a series (refusals) and what the user should know
 *   (warnings), from facts any caller can gather about a series;
 * - `uncertaintyChoices`: which uncertainty methods a model offers and the bounds of its passes;
 * - `variantLabel`: how a run names the variant it ran (panel, SEG, CLI alike).
 *
 * The panel renders what these return; `segment()` throws the first refusal as an `InputError` with
 * the same code. Pure: no DOM, no Deno.
 */
import type { ModelManifest, SpatialMode, UncertaintyMethod, UncertaintySpec } from "./types.ts";

/** What a model index entry says about a package: the parts of its manifest a picker needs. */
export interface ModelSummary {
  id: string;
  name: string;
  version: string;
  description: string;
  modalities: string[];
  bodyParts: string[];
  /** 1 greyscale, 3 colour */
  channels: number;
  minSlices?: number;
  spatialMode: SpatialMode;
  labels: { value: number; name: string; color: [number, number, number] }[];
  /** the uncertainty methods the package supports, with pass bounds */
  uncertainty: UncertaintyChoice[];
  /** browser providers the package was verified on (manifest.providers); absent when not audited */
  providers?: ("webgpu" | "wasm")[];
  /** alternative files of the model the user may run instead of the main one (manifest.variants) */
  variants?: VariantSummary[];
  /** package folder URL, relative to the index it was listed in (e.g. "tiny-2d/") */
  url: string;
  /** manifest URL, relative to the index */
  manifest: string;
}

/** One of a package's variants, as a picker offers it: the manifest's words, nothing added. */
export interface VariantSummary {
  id: string;
  precision: "fp32" | "fp16" | "int8";
  description?: string;
  /** the input the variant was made for (e.g. { manufacturer: "SIEMENS" }) */
  when?: Record<string, string>;
  /** the package's own scoring of this very file (eval.json, matched by sha256), when it has one */
  validated?: VariantValidation;
}

/** A variant's headline figure against the main model's, as the package's `eval.json` states it. */
export interface VariantValidation {
  /** the metric's name in eval.json, e.g. "infection Dice, mean over slices" */
  metric: string;
  value: number;
  main: number;
  /** value − main */
  difference: number;
}

/** One uncertainty option a model offers. */
export interface UncertaintyChoice {
  method: UncertaintyMethod;
  label: string;
  /** for methods with stochastic passes (MC dropout): the allowed range and the manifest's default */
  passes?: PassBounds;
}

export interface PassBounds {
  min: number;
  max: number;
  default: number;
}

/**
 * MC dropout passes: at least 2 (one pass has no spread), at most 200 (the spread's standard error
 * is then below 5 % of itself; more only costs time). The one bound the CLI, the panel and the
 * pipeline share.
 */
export const MC_PASSES = { min: 2, max: 200 } as const;

const UNCERTAINTY_LABELS: Record<UncertaintyMethod, string> = {
  none: "Uncertainty off",
  tta: "Test-time augmentation",
  mc: "MC dropout",
  ensemble: "Ensemble",
  "mc+tta": "MC dropout + TTA",
  "mc+ensemble": "MC dropout + ensemble",
};

/** Clamps a requested pass count into the bounds (for an input box); NaN gives the default. */
export function clampPasses(value: number, bounds: PassBounds): number {
  if (!Number.isFinite(value)) return bounds.default;
  return Math.max(bounds.min, Math.min(bounds.max, Math.round(value)));
}

/**
 * The uncertainty methods a manifest's `uncertainty` block supports, "none" first. Ensemble methods
 * need at least one further member file (the main model is the first member).
 */
export function uncertaintyChoices(spec: UncertaintySpec | undefined): UncertaintyChoice[] {
  const mc = spec?.mcDropout;
  const tta = (spec?.tta?.flips.length ?? 0) > 0;
  const ensemble = (spec?.ensemble?.members.length ?? 0) > 0;
  const passes: PassBounds | undefined = mc
    ? {
      ...MC_PASSES,
      default: Math.max(MC_PASSES.min, Math.min(MC_PASSES.max, mc.defaultPasses)),
    }
    : undefined;
  const out: UncertaintyChoice[] = [{ method: "none", label: UNCERTAINTY_LABELS.none }];
  const add = (method: UncertaintyMethod, withPasses: boolean) =>
    out.push({ method, label: UNCERTAINTY_LABELS[method], ...(withPasses ? { passes } : {}) });
  if (tta) add("tta", false);
  if (mc) add("mc", true);
  if (ensemble) add("ensemble", false);
  if (mc && tta) add("mc+tta", true);
  if (mc && ensemble) add("mc+ensemble", true);
  return out;
}

const optional = <K extends string, V>(key: K, v: V | undefined) =>
  (v === undefined ? {} : { [key]: v }) as { [P in K]?: V };

/**
 * The words for the file that ran when it was one of the manifest's variants, e.g. "variant int8 (INT8)";
 * undefined for the main model. The panel's provenance line, the SEG's series description and
 * contributing equipment, and the CLI's summary line all use it, so a stored SEG, the viewer and
 * `report.json` name the same variant the same way.
 */
export function variantLabel(p: { variant?: unknown; precision?: unknown }): string | undefined {
  if (typeof p.variant !== "string" || p.variant === "" || p.variant === "main") return undefined;
  const precision = typeof p.precision === "string" && p.precision !== ""
    ? ` (${p.precision.toUpperCase()})`
    : "";
  return `variant ${p.variant}${precision}`;
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * The headline of `variant` in a package's `eval.json` (its `variants[]`, written by `deno task
 * card-eval`), only when that entry scored the very file the manifest lists (same sha256): a figure
 * measured on an older file is not shown as this one's.
 */
export function variantValidation(
  manifest: ModelManifest,
  variant: { id: string; file: string },
  evalJson: unknown,
): VariantValidation | undefined {
  const list = isRecord(evalJson) && Array.isArray(evalJson.variants) ? evalJson.variants : [];
  const entry = list.find((e): e is Record<string, unknown> => isRecord(e) && e.id === variant.id);
  if (!entry || entry.sha256 !== manifest.files[variant.file]?.sha256) return undefined;
  const h = Array.isArray(entry.headline) ? entry.headline[0] : undefined;
  if (!isRecord(h) || typeof h.name !== "string") return undefined;
  const { eval: value, main } = h;
  if (typeof value !== "number" || typeof main !== "number" || !Number.isFinite(value - main)) {
    return undefined;
  }
  return { metric: h.name, value, main, difference: value - main };
}

/**
 * The summary of a validated manifest; `folder` is the package's folder name in the index, and
 * `evalJson` the package's `eval.json` when it has one (its variants' validated figures).
 */
export function summarizeManifest(
  manifest: ModelManifest,
  folder = manifest.id,
  evalJson?: unknown,
): ModelSummary {
  const c = manifest.constraints;
  const dir = `${encodeURIComponent(folder)}/`;
  return {
    id: manifest.id,
    name: manifest.name,
    version: manifest.version,
    description: manifest.description,
    modalities: [...c.modalities],
    bodyParts: [...(c.bodyParts ?? [])],
    channels: c.channels,
    ...(c.minSlices !== undefined ? { minSlices: c.minSlices } : {}),
    spatialMode: manifest.spatial.mode,
    labels: manifest.labels.map((l) => ({
      value: l.value,
      name: l.name,
      color: [l.color[0], l.color[1], l.color[2]],
    })),
    uncertainty: uncertaintyChoices(manifest.uncertainty),
    ...(manifest.providers ? { providers: [...manifest.providers] } : {}),
    ...(manifest.variants?.length
      ? {
        variants: manifest.variants.map((v) => ({
          id: v.id,
          precision: v.precision,
          ...optional("description", v.description),
          ...optional("when", v.when && { ...v.when }),
          ...optional("validated", variantValidation(manifest, v, evalJson)),
        })),
      }
      : {}),
    url: dir,
    manifest: `${dir}manifest.json`,
  };
}

/** What any caller can tell about a series before reading its pixels. Absent facts are not judged. */
export interface SeriesFacts {
  modality?: string;
  /** samples per pixel: 1 greyscale, 3 colour */
  channels?: number;
  /** number of images (slices, or frames of a multi-frame image) */
  images?: number;
  /** BodyPartExamined, as tagged */
  bodyPart?: string;
  /** attributes some images lack, in words (e.g. "ImagePositionPatient (3 of 10 images)") */
  missingGeometry?: string[];
}

/** One reason, with the code `segment()` throws it under. */
export interface FitIssue {
  code: "MODALITY" | "CHANNELS" | "NOT_A_VOLUME" | "TOO_FEW_SLICES" | "MISSING_GEOMETRY" | "BODY_PART";
  message: string;
}

export interface ModelFit {
  /** true when nothing refuses the run (warnings may remain) */
  ok: boolean;
  /** why the model cannot take the series; the first is the one to show */
  refusals: FitIssue[];
  /** what the user should know but may run anyway (a body part the model was not made for) */
  warnings: FitIssue[];
}

type FitModel = Pick<ModelSummary, "modalities" | "channels" | "minSlices" | "spatialMode" | "bodyParts">;

/**
 * Whether `model` can take the series. A body part is only a warning: BodyPartExamined is often
 * missing or wrong in real data (an abdominal CT tagged CHEST), so it cannot decide on its own.
 */
export function modelFit(model: FitModel, series: SeriesFacts): ModelFit {
  const refusals: FitIssue[] = [];
  const warnings: FitIssue[] = [];
  const modality = series.modality?.trim().toUpperCase();
  const modalities = model.modalities.map((m) => m.toUpperCase());
  if (modality && modalities.length > 0 && !modalities.includes(modality)) {
    refusals.push({
      code: "MODALITY",
      message: `needs ${model.modalities.join("/")}, series is ${modality}`,
    });
  }
  if (series.channels !== undefined && series.channels !== model.channels) {
    refusals.push({
      code: "CHANNELS",
      message: model.channels === 3
        ? "needs colour images, series is greyscale"
        : model.channels === 1 && series.channels === 3
        ? "needs greyscale images, series is colour"
        : `needs ${model.channels}-channel images, series has ${series.channels}`,
    });
  }
  const images = series.images;
  if (model.spatialMode === "patch3d" && images !== undefined && images < 2) {
    refusals.push({
      code: "NOT_A_VOLUME",
      message: `3D model, series has ${images} image${images === 1 ? "" : "s"}`,
    });
  } else if (model.minSlices !== undefined && images !== undefined && images < model.minSlices) {
    refusals.push({
      code: "TOO_FEW_SLICES",
      message: `needs at least ${model.minSlices} slices, series has ${images}`,
    });
  }
  if (series.missingGeometry && series.missingGeometry.length > 0) {
    refusals.push({
      code: "MISSING_GEOMETRY",
      message: `series lacks ${series.missingGeometry.join(" and ")}`,
    });
  }
  const bodyPart = series.bodyPart?.trim().toUpperCase();
  if (bodyPart && model.bodyParts.length > 0 && !model.bodyParts.some((b) => b.toUpperCase() === bodyPart)) {
    warnings.push({
      code: "BODY_PART",
      message: `made for ${model.bodyParts.join("/")}, series is tagged ${bodyPart}`,
    });
  }
  return { ok: refusals.length === 0, refusals, warnings };
}
