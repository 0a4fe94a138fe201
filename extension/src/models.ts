/** The model packages the edge server offers (`<base>models/index.json`, see base.ts). */
import { DicomWebError, InputError } from "../../src/core/errors.ts";
import { assetUrl } from "./base.ts";
import type {
  ModelSummary,
  UncertaintyChoice,
  VariantSummary,
  VariantValidation,
} from "../../src/core/contract.ts";
import type { SpatialMode, UncertaintyMethod } from "../../src/core/types.ts";

/**
 * One entry of the model index: the `ModelSummary` the server built from a validated manifest
 * (src/core/contract.ts), with `url` and `manifest` made absolute against the index's own URL.
 */
export type ModelIndexEntry = ModelSummary;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

const strings = (v: unknown): string[] =>
  Array.isArray(v) ? v.filter((s): s is string => typeof s === "string") : [];

const METHODS = new Set<UncertaintyMethod>(["none", "tta", "mc", "ensemble", "mc+tta", "mc+ensemble"]);
const MODES = new Set<SpatialMode>(["image2d", "slice2d", "patch3d"]);

function parseChoices(raw: unknown): UncertaintyChoice[] {
  const out: UncertaintyChoice[] = [];
  for (const c of Array.isArray(raw) ? raw.filter(isRecord) : []) {
    if (typeof c.method !== "string" || !METHODS.has(c.method as UncertaintyMethod)) continue;
    const p = isRecord(c.passes) ? c.passes : undefined;
    const passes = p && [p.min, p.max, p.default].every((n) => typeof n === "number")
      ? { min: p.min as number, max: p.max as number, default: p.default as number }
      : undefined;
    out.push({
      method: c.method as UncertaintyMethod,
      label: typeof c.label === "string" ? c.label : c.method,
      ...(passes ? { passes } : {}),
    });
  }
  if (!out.some((c) => c.method === "none")) out.unshift({ method: "none", label: "Uncertainty off" });
  return out;
}

const validation = (v: unknown): boolean =>
  isRecord(v) && typeof v.metric === "string" &&
  [v.value, v.main, v.difference].every((n) => typeof n === "number" && Number.isFinite(n));

const PRECISIONS = new Set<VariantSummary["precision"]>(["fp32", "fp16", "int8"]);

/** The entry's variants; one without an id or with an unknown precision is left out (it cannot be run). */
function parseVariants(raw: unknown): VariantSummary[] {
  const out: VariantSummary[] = [];
  for (const v of Array.isArray(raw) ? raw.filter(isRecord) : []) {
    if (typeof v.id !== "string" || v.id === "" || v.id === "main") continue;
    if (!PRECISIONS.has(v.precision as VariantSummary["precision"])) continue;
    const when = isRecord(v.when)
      ? Object.fromEntries(
        Object.entries(v.when).filter((e): e is [string, string] => typeof e[1] === "string"),
      )
      : undefined;
    out.push({
      id: v.id,
      precision: v.precision as VariantSummary["precision"],
      ...(typeof v.description === "string" && v.description !== "" ? { description: v.description } : {}),
      ...(when && Object.keys(when).length > 0 ? { when } : {}),
      ...(validation(v.validated) ? { validated: v.validated as VariantValidation } : {}),
    });
  }
  return out;
}

/**
 * Narrows one index entry (it came over the network); returns a message naming the bad field when it
 * does not fit. Optional facts the server may leave out get the neutral value (no body parts, no
 * minimum, greyscale).
 */
export function parseModelIndexEntry(raw: unknown, position: number): ModelIndexEntry | string {
  if (!isRecord(raw)) {
    return `entry ${position}: expected an object, found ${raw === null ? "null" : typeof raw}`;
  }
  const { id, name, version, labels } = raw;
  if (typeof id !== "string" || id === "") return `entry ${position}: expected a non-empty string "id"`;
  const spatialMode = raw.spatialMode ?? "slice2d";
  if (typeof spatialMode !== "string" || !MODES.has(spatialMode as SpatialMode)) {
    return `entry ${position} (${id}): expected "spatialMode" image2d, slice2d or patch3d, found ${
      JSON.stringify(spatialMode)
    }`;
  }
  const labelList = Array.isArray(labels)
    ? labels.filter(isRecord).map((l, i) => ({
      value: typeof l.value === "number" ? l.value : i + 1,
      name: typeof l.name === "string" ? l.name : String(l.value ?? "?"),
      color: Array.isArray(l.color) && l.color.length === 3
        ? l.color as [number, number, number]
        : [128, 128, 128] as [number, number, number],
    }))
    : [];
  const variants = parseVariants(raw.variants);
  return {
    id,
    name: typeof name === "string" && name !== "" ? name : id,
    version: typeof version === "string" ? version : String(version ?? "?"),
    description: typeof raw.description === "string" ? raw.description : "",
    modalities: strings(raw.modalities),
    bodyParts: strings(raw.bodyParts),
    channels: typeof raw.channels === "number" ? raw.channels : 1,
    ...(typeof raw.minSlices === "number" ? { minSlices: raw.minSlices } : {}),
    spatialMode: spatialMode as SpatialMode,
    labels: labelList,
    uncertainty: parseChoices(raw.uncertainty),
    ...(Array.isArray(raw.providers)
      ? { providers: raw.providers.filter((p): p is "webgpu" | "wasm" => p === "webgpu" || p === "wasm") }
      : {}),
    ...(variants.length > 0 ? { variants } : {}),
    url: typeof raw.url === "string" ? raw.url : "",
    manifest: typeof raw.manifest === "string" ? raw.manifest : "",
  };
}

function resolveEntryUrls(entry: ModelIndexEntry, indexUrl: string): ModelIndexEntry {
  const base = new URL(indexUrl, (globalThis as { location?: { href?: string } }).location?.href);
  const packageUrl = entry.url !== ""
    ? new URL(entry.url, base).href
    : new URL(`${encodeURIComponent(entry.id)}/`, base).href;
  const manifest = entry.manifest !== ""
    ? new URL(entry.manifest, base).href
    : new URL("manifest.json", packageUrl).href;
  return { ...entry, url: packageUrl, manifest };
}

export interface ModelIndex {
  models: ModelIndexEntry[];
  /** Entries that were skipped, each with the reason. */
  rejected: string[];
}

/**
 * Fetches and validates the model index. Each entry's `url` and `manifest` are made absolute against
 * the index's own URL, so an index that lists packages relatively ("tiny-2d/") works wherever it is
 * served. Throws with the HTTP status or the JSON problem.
 */
export async function fetchModelIndex(
  url = assetUrl("models/index.json"),
  signal?: AbortSignal,
): Promise<ModelIndex> {
  const res = await fetch(url, { signal, headers: { accept: "application/json" } });
  if (!res.ok) {
    throw new DicomWebError(
      res.status,
      `GET ${url}: HTTP ${res.status} (expected 200 with a JSON array of model packages)`,
    );
  }
  const body: unknown = await res.json();
  const list = Array.isArray(body) ? body : isRecord(body) && Array.isArray(body.models) ? body.models : null;
  if (!list) {
    throw new InputError(
      "MODEL_INDEX",
      `GET ${url}: expected a JSON array of model packages, found ${typeof body}`,
    );
  }
  const models: ModelIndexEntry[] = [];
  const rejected: string[] = [];
  list.forEach((raw, i) => {
    const parsed = parseModelIndexEntry(raw, i);
    if (typeof parsed === "string") rejected.push(parsed);
    else models.push(resolveEntryUrls(parsed, url));
  });
  return { models, rejected };
}
