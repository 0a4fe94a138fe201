/**
 * ONNX external data (`model.onnx` + `model.onnx.data`): find the tensors stored outside the
 * protobuf, and inline them so a package is one self-contained file EdgeSeg's loaders verify and
 * cache as a unit.
 *
 * Why a protobuf *writer* here: there is no onnx package for Deno and the tool must run without
 * Python for this step. The edit is narrow, so the encoder is too: every field of the ModelProto and
 * GraphProto is copied byte for byte except the graph's initializers (TensorProto, graph field 5)
 * that declare `data_location = EXTERNAL` (14); those lose `external_data` (13) and
 * `data_location` and gain `raw_data` (9) with the bytes read at their offset/length.
 */
import { ManifestError } from "../core/errors.ts";
import { Reader, WIRE_LEN, WIRE_VARINT } from "./onnx_signature.ts";

export interface ExternalRef {
  tensor: string;
  location: string;
  offset: number;
  /** null: to the end of the file */
  length: number | null;
}

function varint(n: number): number[] {
  const out: number[] = [];
  while (n >= 128) {
    out.push((n % 128) | 128);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}

function lenField(field: number, payload: Uint8Array): Uint8Array[] {
  return [new Uint8Array([...varint(field * 8 + WIRE_LEN), ...varint(payload.length)]), payload];
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) out.set(p, (o += p.length) - p.length);
  return out;
}

/** Parses one TensorProto's external-data description; null when its data is inside the file. */
function externalOf(r: Reader): ExternalRef | null {
  let name = "", external = false;
  const kv: Record<string, string> = {};
  while (!r.done()) {
    const [f, w] = r.tag();
    if (f === 8 && w === WIRE_LEN) name = r.string();
    else if (f === 14 && w === WIRE_VARINT) external = r.varint() === 1;
    else if (f === 13 && w === WIRE_LEN) {
      const e = r.sub();
      let k = "", v = "";
      while (!e.done()) {
        const [ef, ew] = e.tag();
        if (ef === 1 && ew === WIRE_LEN) k = e.string();
        else if (ef === 2 && ew === WIRE_LEN) v = e.string();
        else e.skip(ew);
      }
      kv[k] = v;
    } else r.skip(w);
  }
  if (!external) return null;
  if (!kv.location) {
    throw new ManifestError("ONNX_INVALID", `initializer "${name}" is external but names no location`, {
      expected: "external_data.location",
      actual: "none",
    });
  }
  return {
    tensor: name,
    location: kv.location,
    offset: Number(kv.offset ?? 0),
    length: kv.length === undefined ? null : Number(kv.length),
  };
}

/** Walks the graph's initializers; calls `visit` with each one's byte range [start, end) of the whole field. */
function walkInitializers(
  bytes: Uint8Array,
  visit: (fieldStart: number, payload: Reader) => void,
): { graphStart: number; graphEnd: number; graphPayload: number } | null {
  const r = new Reader(bytes, 0, bytes.length);
  while (!r.done()) {
    const start = r.pos;
    const [f, w] = r.tag();
    if (f === 7 && w === WIRE_LEN) {
      const g = r.sub();
      const graphPayload = g.pos;
      while (!g.done()) {
        const fs = g.pos;
        const [gf, gw] = g.tag();
        if (gf === 5 && gw === WIRE_LEN) visit(fs, g.sub());
        else g.skip(gw);
      }
      return { graphStart: start, graphEnd: g.end, graphPayload };
    }
    r.skip(w);
  }
  return null;
}

/** The graph initializers whose data lives in external files. */
export function findExternalData(bytes: Uint8Array): ExternalRef[] {
  const refs: ExternalRef[] = [];
  walkInitializers(bytes, (_s, t) => {
    const ref = externalOf(t);
    if (ref) refs.push(ref);
  });
  return refs;
}

/**
 * Returns a copy of the model with every external initializer's data inlined as raw_data.
 * `read(location)` gives the bytes of one external file (relative to the model's folder).
 */
export function inlineExternalData(bytes: Uint8Array, read: (location: string) => Uint8Array): Uint8Array {
  const files = new Map<string, Uint8Array>();
  const edits: { at: number; end: number; tensor: Uint8Array }[] = [];
  const info = walkInitializers(bytes, (fieldStart, t) => {
    const start = t.pos, end = t.end;
    const ref = externalOf(new Reader(bytes, start, end));
    if (!ref) return;
    if (!/^[^/\\]+$/.test(ref.location) || ref.location.startsWith("..")) {
      throw new ManifestError(
        "ONNX_INVALID",
        `initializer "${ref.tensor}" points outside the model's folder: ${ref.location}`,
        { expected: "a file name beside the model", actual: ref.location },
      );
    }
    let data = files.get(ref.location);
    if (!data) files.set(ref.location, data = read(ref.location));
    const len = ref.length ?? data.length - ref.offset;
    if (ref.offset + len > data.length) {
      throw new ManifestError(
        "ONNX_INVALID",
        `initializer "${ref.tensor}" reads ${len} bytes at ${ref.offset} of ${ref.location} (${data.length} bytes)`,
        { expected: `at least ${ref.offset + len} bytes in ${ref.location}`, actual: String(data.length) },
      );
    }
    // copy the tensor's fields except external_data (13) and data_location (14), then add raw_data (9)
    const kept: Uint8Array[] = [];
    const r = new Reader(bytes, start, end);
    while (!r.done()) {
      const fs = r.pos;
      const [f, w] = r.tag();
      r.skip(w);
      if (f !== 13 && f !== 14) kept.push(bytes.subarray(fs, r.pos));
    }
    kept.push(...lenField(9, data.subarray(ref.offset, ref.offset + len)));
    edits.push({ at: fieldStart, end, tensor: concat(kept) });
  });
  if (!info || edits.length === 0) return bytes;
  // rebuild the graph payload: unchanged byte ranges between the replaced initializer fields
  const payload: Uint8Array[] = [];
  let pos = info.graphPayload;
  for (const e of edits) {
    payload.push(bytes.subarray(pos, e.at), ...lenField(5, e.tensor));
    pos = e.end;
  }
  payload.push(bytes.subarray(pos, info.graphEnd));
  return concat([
    bytes.subarray(0, info.graphStart),
    ...lenField(7, concat(payload)),
    bytes.subarray(info.graphEnd),
  ]);
}
