/** Step 1 of `deno task package`: the ONNX file with its external data inlined, within a size limit. */
import { dirname, join } from "node:path";
import { findExternalData, inlineExternalData } from "../onnx_external.ts";
import { readOnnxSignature } from "../onnx_signature.ts";
import { PackageError, type PackageReport } from "./types.ts";

/**
 * Largest model (graph + external data) the tool packages: 1 GiB. A package is one ONNX protobuf
 * (hard limit 2 GiB); the browser holds the file as an ArrayBuffer *and* copies it into the 4 GiB
 * wasm32 heap while creating a session, next to activations; WebGPU adapters cap one buffer at 1 GiB
 * (SwiftShader: maxBufferSize 1 GiB).
 */
export const DEFAULT_MAX_MODEL_BYTES = 1024 * 1024 * 1024;

/** Reads the model and its external data (within maxBytes), returning one self-contained ONNX. */
export async function readModel(
  path: string,
  maxBytes = DEFAULT_MAX_MODEL_BYTES,
): Promise<{ bytes: Uint8Array; externalData?: PackageReport["externalData"] }> {
  const stat = await Deno.stat(path).catch(() => null);
  if (!stat?.isFile) throw new PackageError("INPUT_MISSING", "model", `${path} is not a file`);
  let raw: Uint8Array = await Deno.readFile(path);
  readOnnxSignature(raw); // typed ONNX_INVALID for anything that is not an ONNX model
  const refs = findExternalData(raw);
  if (!refs.length) {
    if (raw.length > maxBytes) tooLarge("model", raw.length, maxBytes);
    return { bytes: raw };
  }
  const files = [...new Set(refs.map((r) => r.location))];
  let total = raw.length;
  for (const f of files) {
    const s = await Deno.stat(join(dirname(path), f)).catch(() => null);
    if (!s?.isFile) {
      throw new PackageError(
        "EXTERNAL_DATA_MISSING",
        "externalData",
        `${f} (named by the graph's initializers) is not beside ${path}`,
      );
    }
    total += s.size;
  }
  if (total > maxBytes) tooLarge("externalData", total, maxBytes);
  const graphBytes = raw.length;
  raw = inlineExternalData(raw, (loc) => Deno.readFileSync(join(dirname(path), loc)));
  return { bytes: raw, externalData: { files, tensors: refs.length, bytes: total - graphBytes } };
}

function tooLarge(field: string, bytes: number, max: number): never {
  const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
  throw new PackageError(
    "MODEL_TOO_LARGE",
    field,
    `the model with its external data is ${mib(bytes)}, over the ${mib(max)} limit: a package is one ONNX ` +
      `protobuf (2 GiB at most), a browser holds it twice while creating a session in a 4 GiB wasm32 heap, ` +
      `and WebGPU adapters cap one buffer at 1 GiB (raise --max-bytes only for CLI-only use)`,
  );
}
