/**
 * One batch job, start to end: pick the study's series the model accepts (QIDO), retrieve it
 * (WADO-RS), run the same pipeline as `deno task segment`, write SEG (+ uncertainty Parametric Map)
 * with UIDs derived from (study, series, model, version), and STOW only what the PACS does not hold yet.
 *
 * Errors are sorted into two kinds, because a cohort must never wait on a study that cannot work:
 * - transient (PACS unreachable, 5xx, 408/429): thrown as is, so BullMQ tries the job again later with
 *   exponential backoff;
 * - permanent (wrong modality, no image series, broken DICOM, a refused object): thrown as BullMQ's
 *   UnrecoverableError with "[CODE] message", so the job fails at once with that reason and the
 *   worker goes on with the next study. `deno task queue retry` re-runs such jobs after a fix.
 */
import { join } from "node:path";
import { UnrecoverableError } from "bullmq";
import { DicomWebError, EdgeSegError, InputError } from "../core/errors.ts";
import type { ModelManifest, SegmentOptions } from "../core/types.ts";
import { DicomWebClient } from "../dicom/mod.ts";
import type { DicomJson, DicomWebClientOptions } from "../dicom/mod.ts";
import type { OrtModelRuntime } from "../inference/runtime.ts";
import { segment } from "../segmentation/mod.ts";
import { dicomCase } from "../cli/inputs.ts";
import { writeCaseOutputs } from "../cli/segment.ts";
import { resultUids } from "./ids.ts";
import type { SegmentJobData, SegmentJobResult } from "./jobs.ts";

/** Modalities of derived objects: never a model's input (our own SEG and PM land in the same study). */
const DERIVED = new Set(["SEG", "SR", "PR", "RTSTRUCT", "KO", "REG", "PMAP", "RWV"]);

export interface ProcessorOptions {
  pacsUrl: string;
  /** loads (and caches) a model's runtime */
  loadRuntime: (model: string) => Promise<OrtModelRuntime>;
  /** segment() options for uncertainty; "auto" = MC dropout if the model has it, else TTA, else none */
  uncertainty?: Pick<SegmentOptions, "uncertainty" | "passes"> | "auto";
  /** request retries inside one try (the queue's own retries come on top; default 2) */
  client?: Partial<DicomWebClientOptions>;
  workerName: string;
  /** scratch folder for the written objects of a job (removed after it) */
  workDir: string;
  log?: (line: string) => void;
}

const first = (d: DicomJson, tag: string) => d[tag]?.Value?.[0];

/** True when an error may pass by itself (the PACS is down or busy): retry the job later. */
export function isTransient(e: unknown): boolean {
  if (e instanceof DicomWebError) {
    return e.status === 0 || e.status >= 500 || e.status === 408 || e.status === 429;
  }
  // fetch's own network failures (connection refused, reset) before any DicomWebError wrapping
  return e instanceof TypeError && /fetch|connect|network|reset/i.test(e.message);
}

/** "[CODE] message" for a failed job's reason (what `queue status` and the cohort table show). */
export function failureReason(e: unknown): string {
  if (e instanceof EdgeSegError) return `[${e.code}] ${e.message}`;
  if (e instanceof Error) return `[${e.name === "Error" ? "ERROR" : e.name.toUpperCase()}] ${e.message}`;
  return `[ERROR] ${String(e)}`;
}

function autoUncertainty(manifest: ModelManifest): Pick<SegmentOptions, "uncertainty" | "passes"> {
  const u = manifest.uncertainty;
  if (u?.mcDropout) return { uncertainty: "mc" };
  if (u?.tta) return { uncertainty: "tta" };
  return { uncertainty: "none" };
}

/** The series a model should run on: its modality, not ours, the most instances first. */
export function pickSeries(series: DicomJson[], manifest: ModelManifest, studyUID: string): string {
  const wanted = manifest.constraints.modalities;
  const found = series.map((s) => String(first(s, "00080060") ?? "?"));
  const candidates = series
    .filter((s) => {
      const m = String(first(s, "00080060") ?? "");
      return !DERIVED.has(m) && wanted.includes(m);
    })
    .sort((a, b) => Number(first(b, "00201209") ?? 0) - Number(first(a, "00201209") ?? 0));
  if (!series.length) throw new InputError("STUDY_NOT_FOUND", `study ${studyUID} has no series in the PACS`);
  if (!candidates.length) {
    throw new InputError(
      "NO_MATCHING_SERIES",
      `study ${studyUID}: expected a ${wanted.join(" or ")} series for model ${manifest.id}, found ${
        [...new Set(found)].join(", ")
      }`,
    );
  }
  return String(first(candidates[0], "0020000E"));
}

/** SOP Instance UIDs the PACS holds in a series (an empty list when the series is not there). */
async function instancesIn(
  client: DicomWebClient,
  studyUID: string,
  seriesUID: string,
): Promise<Set<string>> {
  try {
    const found = await client.searchForInstances(studyUID, seriesUID);
    return new Set(found.map((d) => String(first(d, "00080018"))));
  } catch (e) {
    if (e instanceof DicomWebError && e.status === 404) return new Set();
    throw e;
  }
}

export function createProcessor(opts: ProcessorOptions) {
  const log = opts.log ?? (() => {});
  const client = new DicomWebClient({
    retries: 2,
    backoffMs: 500,
    maxBackoffMs: 4000,
    ...opts.client,
    baseUrl: opts.pacsUrl,
  });

  async function run(data: SegmentJobData): Promise<SegmentJobResult> {
    const t0 = performance.now();
    const runtime = await opts.loadRuntime(data.model);
    const manifest = runtime.manifest;
    const seriesUID = data.seriesUID ??
      pickSeries(await client.searchForSeries(data.studyUID), manifest, data.studyUID);
    const files = await client.retrieve(data.studyUID, seriesUID);
    if (!files.length) {
      throw new InputError(
        "EMPTY_SERIES",
        `series ${seriesUID} of study ${data.studyUID} returned no instances`,
      );
    }
    const c = await dicomCase(`${data.studyUID}-${seriesUID}`, files, seriesUID);
    const modality = c.volume.modality;
    if (!manifest.constraints.modalities.includes(modality)) {
      throw new InputError(
        "WRONG_MODALITY",
        `expected ${
          manifest.constraints.modalities.join(" or ")
        } for model ${manifest.id}, found ${modality}`,
      );
    }
    const unc = opts.uncertainty === undefined || opts.uncertainty === "auto"
      ? autoUncertainty(manifest)
      : opts.uncertainty;
    const result = await segment(c.volume, runtime, { ...unc, seed: 1 });
    // timingsMs holds the phases and their "total"; summing every value would count each twice
    const t = result.provenance.timingsMs;
    const inferenceMs = t.total ?? Object.values(t).reduce((a, b) => a + b, 0);
    const base = {
      studyUID: data.studyUID,
      seriesUID,
      modelId: manifest.id,
      modelVersion: manifest.version,
      segments: result.statistics.map((s) => ({
        label: s.label,
        voxels: s.voxels,
        volumeMl: s.volumeMl,
        ...(s.volumeSdMl !== undefined ? { volumeSdMl: s.volumeSdMl } : {}),
        ...(s.volumeCi95Ml ? { volumeCi95Ml: s.volumeCi95Ml } : {}),
        ...(s.meanUncertainty !== undefined ? { meanUncertainty: s.meanUncertainty } : {}),
      })),
      triageBand: result.triage?.band,
      triageReasons: result.triage?.reasons?.map((r) => String(r)),
      provider: result.provenance.provider,
      providerReason: result.provenance.fallbackReasons.join("; ") || undefined,
      inferenceMs,
      worker: opts.workerName,
      notes: [...c.notes],
    };
    if (result.statistics.every((s) => s.voxels === 0)) {
      return {
        ...base,
        outcome: "no-findings",
        totalMs: performance.now() - t0,
        notes: [...base.notes, "no findings: nothing stored"],
      };
    }

    const uids = await resultUids({
      studyUID: data.studyUID,
      seriesUID,
      modelId: manifest.id,
      modelVersion: manifest.version,
    });
    const dir = await Deno.makeTempDir({ dir: opts.workDir, prefix: "job-" });
    try {
      const out = await writeCaseOutputs(c, result, dir, { uids: { seg: uids.seg, pm: uids.pm } });
      const objects = await Promise.all(out.files.map(async (f) => ({
        name: f,
        bytes: await Deno.readFile(join(dir, f)),
        series: f.endsWith("_seg.dcm") ? uids.seg : uids.pm,
      })));
      // At-least-once: a job may run again after its objects were stored (worker killed before the
      // queue heard of it). Ask the PACS first and store only what it lacks.
      const missing = [];
      for (const o of objects) {
        const held = await instancesIn(client, data.studyUID, o.series.series);
        if (!held.has(o.series.instance)) missing.push(o);
      }
      if (missing.length) {
        await client.store(missing.map((o) => o.bytes), data.studyUID);
        log(
          `stored ${missing.map((o) => o.name.replace(/^.*_/, "")).join(" + ")} for study ${data.studyUID}`,
        );
      }
      const hasPm = objects.some((o) => o.series === uids.pm);
      return {
        ...base,
        outcome: missing.length ? "stored" : "already-stored",
        totalMs: performance.now() - t0,
        segUID: uids.seg.instance,
        segSeriesUID: uids.seg.series,
        ...(hasPm ? { pmUID: uids.pm.instance } : {}),
        notes: missing.length === objects.length ? base.notes : [
          ...base.notes,
          `${objects.length - missing.length} of ${objects.length} objects were already in the PACS`,
        ],
      };
    } finally {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  }

  /** The BullMQ processor: transient errors rethrown (retry), the rest as UnrecoverableError. */
  return async (data: SegmentJobData): Promise<SegmentJobResult> => {
    try {
      return await run(data);
    } catch (e) {
      if (isTransient(e)) throw new Error(failureReason(e));
      throw new UnrecoverableError(failureReason(e));
    }
  };
}
