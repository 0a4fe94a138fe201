/**
 * The package's files: every ONNX file with its sha256 and size, the references to them (the model,
 * ensemble members, variants), and the variants themselves.
 */
import type { FileEntry, ModelVariant } from "../types.ts";
import { arr, fail, FILE_NAME, ID, noUnknown, num, obj, oneOf, req, SHA256, str, unique } from "./fields.ts";

/** The `files` block: one entry per file of the package. */
export function filesField(v: unknown, path: string): Record<string, FileEntry> {
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

/** A file name that must be a key of `files`. */
export function fileRef(v: unknown, path: string, files: Record<string, FileEntry>): string {
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

/** The `model` field: a file of the package, and an ONNX one. */
export function modelFile(v: unknown, files: Record<string, FileEntry>): string {
  const model = fileRef(v, "model", files);
  if (!model.endsWith(".onnx")) {
    fail("MANIFEST_VALUE", "model", "must be an ONNX file", 'a name ending in ".onnx"', model);
  }
  return model;
}

/** The `variants` block: alternative files of the same model (precision, hardware). */
export function variants(v: unknown, path: string, files: Record<string, FileEntry>): ModelVariant[] {
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
