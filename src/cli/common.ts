/** Shared CLI plumbing: the --uncertainty and --device grammars and model loading. */
import { InputError } from "../core/errors.ts";
import type { ExecutionProvider, SegmentOptions, UncertaintyMethod } from "../core/types.ts";
import { loadModel } from "../inference/deno.ts";

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
  if (passes !== undefined && !(passes >= 2 && passes <= 200)) {
    throw new InputError("BAD_UNCERTAINTY", `--uncertainty mc:N expects 2 ≤ N ≤ 200, found ${passes}`);
  }
  const method = (m[1] && m[3] ? `mc+${m[3]}` : m[1] ? "mc" : m[3]) as UncertaintyMethod;
  return { uncertainty: method, passes };
}

export function providersFor(device: string | undefined): ExecutionProvider[] {
  switch (device ?? "wasm") {
    case "wasm":
      return ["wasm"];
    case "webgpu":
      return ["webgpu", "wasm"];
    case "cpu":
    case "native":
      return ["cpu"];
    default:
      throw new InputError(
        "BAD_DEVICE",
        `--device expects wasm, webgpu or cpu (native baseline), found ${JSON.stringify(device)}`,
      );
  }
}

export async function openModel(model: string, device: string | undefined, threads?: number) {
  return await loadModel(model, {
    providers: providersFor(device),
    ...(threads ? { numThreads: threads } : {}),
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
