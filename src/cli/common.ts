/** Shared CLI plumbing: the --uncertainty and --device grammars and model loading. */
import { MC_PASSES } from "../core/contract.ts";
import { InputError } from "../core/errors.ts";
import type { ExecutionProvider, SegmentOptions, UncertaintyMethod } from "../core/types.ts";
import { loadModel } from "../inference/deno.ts";
import { parseDevice, providersFor as devicesProvidersFor } from "../inference/devices.ts";

export const UNCERTAINTY_GRAMMAR = "none | tta | mc:N | ensemble | mc:N+tta | mc:N+ensemble";

/** Parses `--uncertainty` into segment() options. */
export function parseUncertainty(spec: string | undefined): Pick<SegmentOptions, "uncertainty" | "passes"> {
  if (!spec || spec === "none") return { uncertainty: "none" };
  const m = spec.match(/^(?:(mc)(?::(\d+))?)?(?:\+?(tta|ensemble))?$/);
  if (!m || (!m[1] && !m[3])) {
    throw new InputError(
      "BAD_UNCERTAINTY",
      `--uncertainty expects ${UNCERTAINTY_GRAMMAR}, found ${JSON.stringify(spec)}`,
    );
  }
  const passes = m[2] ? Number(m[2]) : undefined;
  if (passes !== undefined && !(passes >= MC_PASSES.min && passes <= MC_PASSES.max)) {
    throw new InputError(
      "BAD_UNCERTAINTY",
      `--uncertainty mc:N expects ${MC_PASSES.min} ≤ N ≤ ${MC_PASSES.max}, found ${passes}`,
    );
  }
  const method = (m[1] && m[3] ? `mc+${m[3]}` : m[1] ? "mc" : m[3]) as UncertaintyMethod;
  return { uncertainty: method, passes };
}

/**
 * The providers for `--device` (src/inference/devices.ts). The CLI's default is auto: onnxruntime-node
 * where it loads (about 5× the speed of WASM here, see PLATFORM notes), WASM otherwise; the provider
 * used is in every report's provenance.
 */
export function providersFor(device: string | undefined): ExecutionProvider[] {
  return devicesProvidersFor(parseDevice(device, "auto"), "native");
}

/**
 * Loads a package for the CLI. `variant` is a variant id of the manifest (`--variant`, e.g. "int8") or
 * "main"; left out, the main model runs (nothing picks a variant on its own).
 */
export async function openModel(
  model: string,
  device: string | undefined,
  threads?: number,
  variant?: string,
) {
  return await loadModel(model, {
    providers: providersFor(device),
    ...(threads ? { numThreads: threads } : {}),
    ...(variant ? { variant } : {}),
  });
}

/** Prints an error the way a user should see it (typed errors: code and message, no stack). */
export function reportError(e: unknown): never {
  if (e instanceof Error && "code" in e) {
    console.error(`error [${(e as { code: string }).code}]: ${e.message}`);
  } else {
    console.error(e instanceof Error ? e.stack ?? e.message : String(e));
  }
  Deno.exit(1);
}
