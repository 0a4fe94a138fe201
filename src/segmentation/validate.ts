/**
 * The input check `segment()` runs before it allocates anything: the model's fit rules, the volume's
 * own consistency, what the chosen uncertainty method needs, the memory budget and the pass count.
 * Every refusal is an `InputError` whose code names the rule and whose message says what to change.
 */
import { MC_PASSES, modelFit, summarizeManifest } from "../core/contract.ts";
import { InputError } from "../core/errors.ts";
import type { ModelManifest, ModelRuntime, SegmentOptions, Volume } from "../core/types.ts";
import { estimateWorkingSetBytes } from "./plan.ts";

/** Check the input against the manifest before any allocation; throws InputError. */
export function validateInput(volume: Volume, runtime: ModelRuntime, options: SegmentOptions = {}): void {
  const m = runtime.manifest;
  const g = volume.geometry;
  const c = m.constraints;
  // The same fit rules the viewer's picker applies (src/core/contract.ts); the first refusal throws.
  const fit = modelFit(summarizeManifest(m), {
    modality: volume.modality || "(none)",
    channels: volume.channels,
    images: g.dims[2],
  });
  // A 3D model on one slice is refused in the viewer (one image there is a photograph, not a thin
  // volume); the pipeline itself pads such a volume to the window, as it always has.
  const refusal = fit.refusals.find((r) => r.code !== "NOT_A_VOLUME");
  if (refusal) throw new InputError(refusal.code, `model ${m.id} ${refusal.message}`);
  if (!g.dims.every((d) => Number.isInteger(d) && d > 0)) {
    throw new InputError("DIMS", `volume dims must be positive integers, found [${g.dims.join(", ")}]`);
  }
  if (!g.spacing || g.spacing.length !== 3 || !g.spacing.every((s) => Number.isFinite(s) && s > 0)) {
    throw new InputError(
      "SPACING",
      `voxel spacing must be three finite values > 0 mm, found [${(g.spacing ?? []).join(", ")}]`,
    );
  }
  const voxels = g.dims[0] * g.dims[1] * g.dims[2];
  if (volume.data.length !== voxels * volume.channels) {
    throw new InputError(
      "DATA_LENGTH",
      `volume data must hold ${
        voxels * volume.channels
      } values (dims × channels), found ${volume.data.length}`,
    );
  }
  if (c.maxVoxels !== undefined && voxels > c.maxVoxels) {
    throw new InputError("TOO_LARGE", `model ${m.id} accepts at most ${c.maxVoxels} voxels, found ${voxels}`);
  }
  const method = options.uncertainty ?? "none";
  if (method.includes("mc") && !m.uncertainty?.mcDropout) {
    throw new InputError(
      "UNCERTAINTY_UNSUPPORTED",
      `uncertainty "${method}" needs MC dropout, which model ${m.id} does not declare`,
    );
  }
  if (method.includes("ensemble") && runtime.members.length < 2) {
    throw new InputError(
      "UNCERTAINTY_UNSUPPORTED",
      `uncertainty "${method}" needs at least 2 ensemble members, found ${runtime.members.length}`,
    );
  }
  if (method.includes("tta") && !(m.uncertainty?.tta?.flips.length || options.ttaIntensityScales?.length)) {
    throw new InputError(
      "UNCERTAINTY_UNSUPPORTED",
      `uncertainty "${method}" needs TTA flips in the manifest or intensity scales`,
    );
  }
  if (options.memoryBudgetBytes !== undefined) {
    const need = estimateWorkingSetBytes(volume, m, method, options.keepProbabilities);
    if (need > options.memoryBudgetBytes) {
      throw new InputError(
        "MEMORY_BUDGET",
        `segmenting this ${g.dims.join("×")} volume needs about ${mib(need)} MiB, more than the budget of ` +
          `${mib(options.memoryBudgetBytes)} MiB; crop the volume or raise the budget`,
      );
    }
  }
}

const mib = (b: number) => (b / 2 ** 20).toFixed(1);

/** The number of stochastic passes: the option, else the manifest's default, else 1; throws InputError. */
export function passCount(manifest: ModelManifest, options: SegmentOptions): number {
  const n = options.passes ?? manifest.uncertainty?.mcDropout?.defaultPasses ?? 1;
  // One pass is allowed here (its entropy is still an uncertainty); users are offered MC_PASSES.min+.
  if (!(Number.isInteger(n) && n >= 1 && n <= MC_PASSES.max)) {
    throw new InputError("PASSES", `passes must be an integer from 1 to ${MC_PASSES.max}, found ${n}`);
  }
  return n;
}
