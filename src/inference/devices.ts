/**
 * The one list of what a user may choose to run on ("device") and the execution providers each means,
 * for the viewer panel and the CLI alike. Pure: no DOM, no Deno.
 *
 *   auto    the best this runtime has: in a browser WebGPU, then WebNN, then WASM; in the CLI (Deno)
 *           onnxruntime-node's native CPU provider where it loads, else WASM (each failure recorded)
 *   webgpu  WebGPU only (a failure is an error, not a silent fall back)
 *   wasm    onnxruntime-web on WebAssembly
 *   cpu     onnxruntime-node's native CPU provider (CLI only: the native baseline)
 */
import { InputError } from "../core/errors.ts";
import type { ExecutionProvider } from "../core/types.ts";

export const DEVICES = ["auto", "webgpu", "wasm", "cpu"] as const;
export type Device = (typeof DEVICES)[number];

const PROVIDERS: Record<Device, ExecutionProvider[]> = {
  auto: ["webgpu", "webnn", "wasm"],
  webgpu: ["webgpu"],
  wasm: ["wasm"],
  cpu: ["cpu"],
};

/** What "auto" means where the native runtime exists (the CLI): native speed, WASM as the fallback. */
const NATIVE_AUTO: ExecutionProvider[] = ["cpu", "wasm"];

/** The providers to try, in order, for a device choice; `where` says which runtime runs the model. */
export function providersFor(device: Device, where: "browser" | "native" = "browser"): ExecutionProvider[] {
  return [...(device === "auto" && where === "native" ? NATIVE_AUTO : PROVIDERS[device])];
}

/** Reads a device name ("native" is accepted for cpu); throws InputError naming the choices. */
export function parseDevice(value: string | undefined, fallback: Device = "wasm"): Device {
  if (value === undefined) return fallback;
  const v = value === "native" ? "cpu" : value;
  if ((DEVICES as readonly string[]).includes(v)) return v as Device;
  throw new InputError(
    "BAD_DEVICE",
    `--device expects ${DEVICES.join(", ")} (cpu: the native baseline), found ${JSON.stringify(value)}`,
  );
}
