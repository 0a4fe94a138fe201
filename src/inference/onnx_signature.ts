/**
 * Reads the signature of an ONNX model (ModelProto) without ONNX Runtime: IR version, opsets, the
 * graph's inputs and outputs (element type and shape with dim_value / dim_param) and initializer names.
 * A minimal protobuf wire-format reader: it walks only the fields it needs and skips the rest, so
 * weights (TensorProto raw_data) are never copied. Pure TypeScript; runs in Deno, browsers and Workers.
 *
 * Field numbers are from onnx/onnx.proto (IR version 3 and later).
 */
import { ManifestError } from "../core/errors.ts";
import type { OnnxSignature, OnnxValueInfo } from "../core/manifest.ts";

export const WIRE_VARINT = 0, WIRE_I64 = 1, WIRE_LEN = 2, WIRE_I32 = 5;

export class Reader {
  pos: number;
  constructor(readonly buf: Uint8Array, start: number, readonly end: number) {
    this.pos = start;
  }
  done(): boolean {
    return this.pos >= this.end;
  }
  varint(): number {
    // int64 values above 2^53 lose precision; the fields read here (sizes, versions, types) never get there
    let result = 0, mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) bad("varint runs past the end of its message", this.pos);
      const b = this.buf[this.pos++];
      result += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) return result;
      mul *= 128;
    }
    bad("varint longer than 10 bytes", this.pos);
  }
  /** returns [fieldNumber, wireType] */
  tag(): [number, number] {
    const t = this.varint();
    return [Math.floor(t / 8), t & 7];
  }
  /** a length-delimited field as a sub-reader over the same bytes */
  sub(): Reader {
    const len = this.varint();
    const start = this.pos;
    if (start + len > this.end) bad(`length ${len} runs past the end of its message`, start);
    this.pos += len;
    return new Reader(this.buf, start, start + len);
  }
  string(): string {
    const r = this.sub();
    return new TextDecoder().decode(this.buf.subarray(r.pos, r.end));
  }
  skip(wire: number): void {
    switch (wire) {
      case WIRE_VARINT:
        this.varint();
        return;
      case WIRE_I64:
        this.pos += 8;
        break;
      case WIRE_LEN:
        this.sub();
        return;
      case WIRE_I32:
        this.pos += 4;
        break;
      default:
        bad(`unsupported protobuf wire type ${wire}`, this.pos);
    }
    if (this.pos > this.end) bad("field runs past the end of its message", this.pos);
  }
}

function bad(what: string, at: number): never {
  throw new ManifestError("ONNX_INVALID", `not a readable ONNX model: ${what} at byte ${at}`, {
    expected: "an ONNX ModelProto (protobuf)",
    actual: what,
  });
}

function readDim(r: Reader): number | string | null {
  let out: number | string | null = null;
  while (!r.done()) {
    const [f, w] = r.tag();
    if (f === 1 && w === WIRE_VARINT) out = r.varint();
    else if (f === 2 && w === WIRE_LEN) out = r.string();
    else r.skip(w);
  }
  // dim_value 0 / empty dim_param both mean "unknown" in practice
  return out === 0 || out === "" ? null : out;
}

function readShape(r: Reader): (number | string | null)[] {
  const dims: (number | string | null)[] = [];
  while (!r.done()) {
    const [f, w] = r.tag();
    if (f === 1 && w === WIRE_LEN) dims.push(readDim(r.sub()));
    else r.skip(w);
  }
  return dims;
}

function readTensorType(r: Reader, into: OnnxValueInfo): void {
  while (!r.done()) {
    const [f, w] = r.tag();
    if (f === 1 && w === WIRE_VARINT) into.elemType = r.varint();
    else if (f === 2 && w === WIRE_LEN) into.shape = readShape(r.sub());
    else r.skip(w);
  }
}

function readValueInfo(r: Reader): OnnxValueInfo {
  const out: OnnxValueInfo = { name: "", elemType: 0, shape: null };
  while (!r.done()) {
    const [f, w] = r.tag();
    if (f === 1 && w === WIRE_LEN) out.name = r.string();
    else if (f === 2 && w === WIRE_LEN) {
      const t = r.sub();
      while (!t.done()) {
        const [tf, tw] = t.tag();
        if (tf === 1 && tw === WIRE_LEN) readTensorType(t.sub(), out);
        else t.skip(tw);
      }
    } else r.skip(w);
  }
  return out;
}

/** TensorProto.name is field 8. */
function readTensorName(r: Reader): string {
  let name = "";
  while (!r.done()) {
    const [f, w] = r.tag();
    if (f === 8 && w === WIRE_LEN) name = r.string();
    else r.skip(w);
  }
  return name;
}

/** SparseTensorProto.values (field 1) is a TensorProto that carries the name. */
function readSparseName(r: Reader): string {
  let name = "";
  while (!r.done()) {
    const [f, w] = r.tag();
    if (f === 1 && w === WIRE_LEN) name = readTensorName(r.sub());
    else r.skip(w);
  }
  return name;
}

/** Reads the signature of an ONNX model from its bytes; throws ManifestError("ONNX_INVALID") if unreadable. */
export function readOnnxSignature(bytes: Uint8Array): OnnxSignature {
  const r = new Reader(bytes, 0, bytes.length);
  const sig: OnnxSignature = {
    irVersion: 0,
    opset: 0,
    opsets: {},
    producer: "",
    inputs: [],
    outputs: [],
    initializers: [],
  };
  let sawGraph = false;
  const allInputs: OnnxValueInfo[] = [];
  while (!r.done()) {
    const [f, w] = r.tag();
    if (f === 1 && w === WIRE_VARINT) sig.irVersion = r.varint();
    else if (f === 2 && w === WIRE_LEN) sig.producer = r.string();
    else if (f === 8 && w === WIRE_LEN) {
      const o = r.sub();
      let domain = "", version = 0;
      while (!o.done()) {
        const [of, ow] = o.tag();
        if (of === 1 && ow === WIRE_LEN) domain = o.string();
        else if (of === 2 && ow === WIRE_VARINT) version = o.varint();
        else o.skip(ow);
      }
      sig.opsets[domain] = version;
    } else if (f === 7 && w === WIRE_LEN) {
      sawGraph = true;
      const g = r.sub();
      while (!g.done()) {
        const [gf, gw] = g.tag();
        if (gf === 11 && gw === WIRE_LEN) allInputs.push(readValueInfo(g.sub()));
        else if (gf === 12 && gw === WIRE_LEN) sig.outputs.push(readValueInfo(g.sub()));
        else if (gf === 5 && gw === WIRE_LEN) sig.initializers.push(readTensorName(g.sub()));
        else if (gf === 15 && gw === WIRE_LEN) sig.initializers.push(readSparseName(g.sub()));
        else g.skip(gw);
      }
    } else r.skip(w);
  }
  if (!sawGraph || sig.irVersion === 0) bad(sawGraph ? "no ir_version" : "no graph", bytes.length);
  // IR < 4 lists initializers among the inputs; those need not be fed
  const init = new Set(sig.initializers);
  sig.inputs = allInputs.filter((v) => !init.has(v.name));
  sig.opset = sig.opsets[""] ?? sig.opsets["ai.onnx"] ?? 0;
  return sig;
}
