/**
 * Reading manifest fields: each reader checks one JSON value's type and range and returns it typed,
 * or throws a `ManifestError` naming the JSON path, what was expected and what was found. Unknown
 * fields are refused (`noUnknown`); fields whose name starts with "x-" are the author's own notes.
 */
import type { Code } from "../types.ts";
import { ManifestError } from "../errors.ts";

/** A JSON object. */
export type Obj = Record<string, unknown>;

function describe(v: unknown): string {
  if (v === undefined) return "nothing";
  if (v === null) return "null";
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === "string") return JSON.stringify(v.length > 60 ? v.slice(0, 57) + "..." : v);
  if (typeof v === "object") return "an object";
  return `${typeof v} ${String(v)}`;
}

/** Throws the `ManifestError` for the field at `path`: what is wrong, what was expected, what was found. */
export function fail(code: string, path: string, what: string, expected: string, actual: unknown): never {
  throw new ManifestError(code, `manifest ${path}: ${what}`, {
    expected,
    actual: typeof actual === "string" && code !== "MANIFEST_TYPE" ? actual : describe(actual),
  });
}

/** A JSON object (not null, not an array). */
export function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The value as an object, or MANIFEST_TYPE. */
export function obj(v: unknown, path: string): Obj {
  if (!isObj(v)) fail("MANIFEST_TYPE", path, "must be an object", "an object", v);
  return v;
}

/** The JSON path of `key` inside `path`. */
function sub(path: string, key: string): string {
  return path === "(root)" ? key : `${path}.${key}`;
}

/** Refuses fields not in `allowed`, except "x-" notes. */
export function noUnknown(o: Obj, path: string, allowed: readonly string[]): void {
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

/** A required field, or MANIFEST_MISSING_FIELD. */
export function req(o: Obj, key: string, path: string): unknown {
  if (!(key in o) || o[key] === undefined) {
    fail("MANIFEST_MISSING_FIELD", sub(path, key), "is required", "a value", undefined);
  }
  return o[key];
}

/** A non-empty string, of the form `pattern` when given. */
export function str(v: unknown, path: string, opts: { pattern?: RegExp; hint?: string } = {}): string {
  if (typeof v !== "string") fail("MANIFEST_TYPE", path, "must be a string", "a string", v);
  if (v.trim() === "") fail("MANIFEST_VALUE", path, "must not be empty", "a non-empty string", v);
  if (opts.pattern && !opts.pattern.test(v)) {
    fail("MANIFEST_VALUE", path, "has the wrong form", opts.hint ?? String(opts.pattern), v);
  }
  return v;
}

/** A finite number in the range the options give (integer when `int`). */
export function num(
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

/** One of the allowed strings. */
export function oneOf<T extends string>(v: unknown, path: string, values: readonly T[]): T {
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

/** An array, non-empty or of a given length when asked. */
export function arr(v: unknown, path: string, opts: { nonEmpty?: boolean; length?: number } = {}): unknown[] {
  if (!Array.isArray(v)) fail("MANIFEST_TYPE", path, "must be an array", "an array", v);
  if (opts.nonEmpty && v.length === 0) {
    fail("MANIFEST_VALUE", path, "must not be empty", "at least one item", v);
  }
  if (opts.length !== undefined && v.length !== opts.length) {
    fail("MANIFEST_VALUE", path, "has the wrong length", `${opts.length} items`, `${v.length} items`);
  }
  return v;
}

/** An array of non-empty strings. */
export function strArr(v: unknown, path: string, nonEmpty = false): string[] {
  return arr(v, path, { nonEmpty }).map((x, i) => str(x, `${path}[${i}]`));
}

/** Refuses a repeated value. */
export function unique<T>(values: T[], path: string, what: string): void {
  const seen = new Set<T>();
  for (const v of values) {
    if (seen.has(v)) fail("MANIFEST_VALUE", path, `has a duplicate ${what}`, `unique ${what}s`, String(v));
    seen.add(v);
  }
}

/** Patterns of the string fields: semantic version, id, file name, digest, DICOM modality. */
export const SEMVER = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;
export const ID = /^[a-z0-9][a-z0-9_-]{0,63}$/;
/** A plain file name inside the package: no folders, no "..", no leading dot. */
export const FILE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
export const SHA256 = /^[0-9a-f]{64}$/;
export const MODALITY = /^[A-Z0-9]{1,16}$/;

/** A coded concept (value, scheme, meaning); the retired SNOMED designator SRT is refused. */
export function code(v: unknown, path: string): Code {
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

/** An RGB colour, three integers 0..255. */
export function color(v: unknown, path: string): [number, number, number] {
  const a = arr(v, path, { length: 3 });
  return [0, 1, 2].map((i) => num(a[i], `${path}[${i}]`, { int: true, min: 0, max: 255 })) as [
    number,
    number,
    number,
  ];
}
