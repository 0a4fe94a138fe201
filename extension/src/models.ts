/** The model packages the edge server offers (`<base>models/index.json`, see base.ts). */
import { assetUrl } from "./base.ts";

/** One entry of `/models/index.json`: the parts of a package's manifest the panel needs. */
export interface ModelIndexEntry {
  id: string;
  name: string;
  version: string;
  modalities: string[];
  spatialMode?: string;
  labels: { value?: number; name: string; color?: [number, number, number] }[];
  /** Anything else the server lists (body part, uncertainty support, files …) is kept as is. */
  [extra: string]: unknown;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Narrows one index entry; returns a message naming the bad field when it does not fit. */
export function parseModelIndexEntry(raw: unknown, position: number): ModelIndexEntry | string {
  if (!isRecord(raw)) {
    return `entry ${position}: expected an object, found ${raw === null ? "null" : typeof raw}`;
  }
  const { id, name, version, modalities, labels } = raw;
  if (typeof id !== "string" || id === "") return `entry ${position}: expected a non-empty string "id"`;
  const mods = Array.isArray(modalities) ? modalities.filter((m): m is string => typeof m === "string") : [];
  const labelList = Array.isArray(labels)
    ? labels.filter(isRecord).map((l) => ({
      value: typeof l.value === "number" ? l.value : undefined,
      name: typeof l.name === "string" ? l.name : String(l.value ?? "?"),
      color: Array.isArray(l.color) && l.color.length === 3 ? l.color as [number, number, number] : undefined,
    }))
    : [];
  return {
    ...raw,
    id,
    name: typeof name === "string" && name !== "" ? name : id,
    version: typeof version === "string" ? version : String(version ?? "?"),
    modalities: mods,
    spatialMode: typeof raw.spatialMode === "string" ? raw.spatialMode : undefined,
    labels: labelList,
  };
}

function resolveEntryUrls(entry: ModelIndexEntry, indexUrl: string): ModelIndexEntry {
  const base = new URL(indexUrl, (globalThis as { location?: { href?: string } }).location?.href);
  const packageUrl = typeof entry.url === "string" && entry.url !== ""
    ? new URL(entry.url, base).href
    : new URL(`${encodeURIComponent(entry.id)}/`, base).href;
  const manifest = typeof entry.manifest === "string" && entry.manifest !== ""
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
    throw new Error(`GET ${url}: HTTP ${res.status} (expected 200 with a JSON array of model packages)`);
  }
  const body: unknown = await res.json();
  const list = Array.isArray(body) ? body : isRecord(body) && Array.isArray(body.models) ? body.models : null;
  if (!list) throw new Error(`GET ${url}: expected a JSON array of model packages, found ${typeof body}`);
  const models: ModelIndexEntry[] = [];
  const rejected: string[] = [];
  list.forEach((raw, i) => {
    const parsed = parseModelIndexEntry(raw, i);
    if (typeof parsed === "string") rejected.push(parsed);
    else models.push(resolveEntryUrls(parsed, url));
  });
  return { models, rejected };
}
