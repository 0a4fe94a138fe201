/**
 * The ModelRuntime segment() takes, built on ORT sessions: the package's main model (or variant) and
 * its ensemble members, each behind a Predictor, with a one-time move to WASM when a GPU session fails
 * mid-run and the caller allowed WASM.
 */
import { CancelledError, InputError, ManifestError } from "../core/errors.ts";
import type { ModelManifest, ModelRuntime, Predictor } from "../core/types.ts";
import { ortErrorMessage } from "./ort.ts";
import type { LoadedFile, ModelPackage } from "./package.ts";
import { createPredictor, DeviceLostError, type PredictorStats } from "./predictor.ts";
import { createSession, type SessionHandle, type SessionOptions } from "./session.ts";

export interface RuntimeOptions extends Omit<SessionOptions, "manifest" | "windowShape"> {
  /** override the batch used for the pre-flight (default manifest.spatial.batch or 1) */
  batch?: number;
  /** 1 = one model call per window even when the batch axis is dynamic */
  maxCallBatch?: number;
}

export interface OrtModelRuntime extends ModelRuntime {
  sessions: SessionHandle[];
  stats: PredictorStats;
  /** every loaded file's sha256, main first */
  sha256s: string[];
  release(): Promise<void>;
}

/** [batch, C, ...spatial (D, H, W order)] of one model call for this manifest (-1 axes → wholeExtent). */
export function windowShapeOf(
  manifest: ModelManifest,
  batch = manifest.spatial.batch ?? 1,
  wholeExtent = 512,
): number[] {
  const c = manifest.inputs[0].shape[1] as number;
  // a whole-extent axis (-1) is only known per volume; the pre-flight assumes `wholeExtent`
  return [batch, c, ...[...manifest.spatial.window].reverse().map((w) => (w > 0 ? w : wholeExtent))];
}

/**
 * Creates sessions for the package's main model (or variant) and its ensemble members on the first
 * provider that works, and returns the ModelRuntime segment() takes. Members try the provider the
 * main model got first, then the rest of the preference list.
 */
export async function createRuntime(pkg: ModelPackage, opts: RuntimeOptions): Promise<OrtModelRuntime> {
  const manifest = pkg.manifest;
  const windowShape = windowShapeOf(manifest, opts.batch);
  const stats: PredictorStats = { runs: 0, windows: 0, totalMs: 0 };
  const handles: SessionHandle[] = [];
  const files: LoadedFile[] = [pkg.main, ...pkg.members];
  // a package audited by `deno task package` lists the browser providers it runs on; try only those
  // (native "cpu" and test providers are not browser providers and stay allowed)
  const verified = manifest.providers;
  if (verified) {
    const allowed = opts.providers.filter((p) => p !== "webgpu" && p !== "wasm" || verified.includes(p));
    opts = { ...opts, providers: allowed.length ? allowed : ["wasm"] };
  }
  try {
    for (const f of files) {
      const providers = handles.length
        ? [handles[0].provider, ...opts.providers.filter((p) => p !== handles[0].provider)]
        : opts.providers;
      handles.push(await createSession(f.bytes, { ...opts, providers, manifest, windowShape }));
    }
  } catch (e) {
    await Promise.all(handles.map((h) => h.session.release().catch(() => {})));
    throw e;
  }
  const main = handles[0];
  const predictorOpts = { maxCallBatch: opts.maxCallBatch };
  let predictors = handles.map((h) => createPredictor(h, manifest, stats, predictorOpts));
  let switching: Promise<void> | undefined;
  const runtime: OrtModelRuntime = {
    manifest,
    members: handles.map((_, m) => (input, shape, signal, extra) =>
      callMember(m, input, shape, signal, extra)
    ),
    provider: main.provider,
    fallbackReasons: [...main.fallbackReasons],
    modelSha256: pkg.main.sha256,
    variant: pkg.variant?.id,
    precision: pkg.precision,
    sessions: handles,
    stats,
    sha256s: files.map((f) => f.sha256),
    release: async () => {
      await Promise.all(handles.map((h) => h.session.release()));
    },
  };

  /** Re-creates every session on WASM after the GPU failed mid-run, and records why. */
  const fallBackToWasm = async (cause: unknown): Promise<void> => {
    const from = runtime.provider;
    const wasm: SessionHandle[] = [];
    for (const f of files) {
      wasm.push(await createSession(f.bytes, { ...opts, providers: ["wasm"], manifest, windowShape }));
    }
    const old = handles.splice(0, handles.length, ...wasm);
    await Promise.all(old.map((h) => h.session.release().catch(() => {})));
    predictors = wasm.map((h) => createPredictor(h, manifest, stats, predictorOpts));
    runtime.provider = "wasm";
    runtime.fallbackReasons.push(
      `${from}: ${ortErrorMessage(cause)} after ${stats.windows} window${
        stats.windows === 1 ? "" : "s"
      }; the remaining windows ran on WASM`,
    );
  };

  /**
   * One model call on member `m`. When a GPU session fails at run time (its device lost, a kernel
   * error) and the caller allowed WASM, the sessions move to WASM once and the call is redone there;
   * the windows already done on the GPU are kept (they agree with WASM within the tolerance).
   */
  const callMember = async (
    m: number,
    ...args: Parameters<Predictor>
  ): Promise<Float32Array> => {
    const provider = runtime.provider;
    try {
      return await predictors[m](...args);
    } catch (e) {
      const gpu = provider === "webgpu" || provider === "webnn";
      if (!gpu || e instanceof CancelledError || e instanceof InputError || e instanceof ManifestError) {
        throw e;
      }
      if (!opts.providers.includes("wasm")) {
        throw new DeviceLostError(
          `${provider} failed mid-run after ${stats.windows} windows (${ortErrorMessage(e)}); ` +
            `WASM was not among the chosen devices (${
              opts.providers.join(", ")
            }): choose WASM or auto to finish on the CPU`,
        );
      }
      if (runtime.provider === provider) switching ??= fallBackToWasm(e);
      await switching;
      return await predictors[m](...args);
    }
  };
  return runtime;
}
