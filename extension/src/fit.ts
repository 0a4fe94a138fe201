/**
 * The run contract's fit check (src/core/contract.ts `modelFit`) on an OHIF display set: the facts
 * the picker can read before any pixel is loaded (modality, samples per pixel, image count, body
 * part, patient geometry), and the first refusal / warning to show.
 */
import { modelFit, type SeriesFacts } from "../../src/core/contract.ts";
import type { DisplaySet } from "./host.ts";
import type { ModelIndexEntry } from "./models.ts";
import { missingGeometry } from "./run.ts";

export type PanelDisplaySet = DisplaySet & { instances?: Record<string, unknown>[] };

/** What the panel shows for a model: the first refusal, else the first warning. */
export interface PanelFit {
  refusal?: string;
  warning?: string;
}

/** The facts of a display set that `modelFit` judges. */
export function seriesFacts(displaySet: PanelDisplaySet): SeriesFacts {
  const first = displaySet.instances?.[0];
  const bodyPart = typeof first?.BodyPartExamined === "string" ? first.BodyPartExamined.trim() : "";
  return {
    modality: displaySet.Modality || undefined,
    channels: typeof first?.SamplesPerPixel === "number" ? first.SamplesPerPixel : undefined,
    images: displaySet.numImageFrames ?? displaySet.imageIds?.length,
    bodyPart: bodyPart || undefined,
    missingGeometry: missingGeometry(displaySet.instances ?? []),
  };
}

/** Refusal and warning of `model` on the active series; neither when no series is open. */
export function fitOnDisplaySet(model: ModelIndexEntry, displaySet: PanelDisplaySet | undefined): PanelFit {
  if (!displaySet) return {};
  const fit = modelFit(model, seriesFacts(displaySet));
  if (fit.refusals.length) return { refusal: fit.refusals[0].message };
  return fit.warnings.length ? { warning: fit.warnings[0].message } : {};
}
