/**
 * The cohort table: one row per (study, model) job that finished, done or failed, for a spreadsheet
 * (CSV, RFC 4180) and for scripts (JSON). Per-segment columns are named after the model's labels, so
 * a cohort of one model has one column set; several models side by side get the union.
 */
import type { SegmentJobResult, SegmentRow } from "./jobs.ts";

export interface CohortRow {
  studyUID: string;
  seriesUID: string;
  model: string;
  modelVersion: string;
  /** stored | already-stored | no-findings | failed */
  status: string;
  reason: string;
  triageBand: string;
  provider: string;
  inferenceMs: number | null;
  totalMs: number | null;
  segUID: string;
  pmUID: string;
  finishedAt: string;
  segments: SegmentRow[];
}

export function rowFromResult(r: SegmentJobResult, finishedOnMs?: number): CohortRow {
  return {
    studyUID: r.studyUID,
    seriesUID: r.seriesUID,
    model: r.modelId,
    modelVersion: r.modelVersion,
    status: r.outcome,
    reason: r.notes.join("; "),
    triageBand: r.triageBand ?? "",
    provider: r.provider,
    inferenceMs: Math.round(r.inferenceMs),
    totalMs: Math.round(r.totalMs),
    segUID: r.segUID ?? "",
    pmUID: r.pmUID ?? "",
    finishedAt: finishedOnMs ? new Date(finishedOnMs).toISOString() : "",
    segments: r.segments,
  };
}

export function rowFromFailure(
  data: { studyUID: string; seriesUID?: string; model: string },
  reason: string,
  finishedOnMs?: number,
): CohortRow {
  return {
    studyUID: data.studyUID,
    seriesUID: data.seriesUID ?? "",
    model: data.model,
    modelVersion: "",
    status: "failed",
    reason,
    triageBand: "",
    provider: "",
    inferenceMs: null,
    totalMs: null,
    segUID: "",
    pmUID: "",
    finishedAt: finishedOnMs ? new Date(finishedOnMs).toISOString() : "",
    segments: [],
  };
}

function csvField(v: string | number | null | undefined): string {
  if (v === null || v === undefined) return "";
  const s = typeof v === "number" ? (Number.isFinite(v) ? String(v) : "") : v;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

const round = (v: number | undefined, digits = 3) =>
  v === undefined || !Number.isFinite(v) ? null : Number(v.toFixed(digits));

/** CSV with a header line; CRLF line ends as RFC 4180 and spreadsheet programs expect. */
export function cohortCsv(rows: CohortRow[]): string {
  const labels: string[] = [];
  for (const r of rows) for (const s of r.segments) if (!labels.includes(s.label)) labels.push(s.label);
  const header = [
    "study_uid",
    "series_uid",
    "model",
    "model_version",
    "status",
    "reason",
    "triage_band",
    "provider",
    "inference_ms",
    "total_ms",
    "seg_uid",
    "pm_uid",
    "finished_at",
  ];
  for (const l of labels) {
    header.push(`${l} volume_ml`, `${l} volume_sd_ml`, `${l} volume_ci95_low_ml`, `${l} volume_ci95_high_ml`);
  }
  const lines = [header.map(csvField).join(",")];
  for (const r of rows) {
    const cells: (string | number | null)[] = [
      r.studyUID,
      r.seriesUID,
      r.model,
      r.modelVersion,
      r.status,
      r.reason,
      r.triageBand,
      r.provider,
      r.inferenceMs,
      r.totalMs,
      r.segUID,
      r.pmUID,
      r.finishedAt,
    ];
    for (const l of labels) {
      const s = r.segments.find((x) => x.label === l);
      cells.push(
        round(s?.volumeMl),
        round(s?.volumeSdMl),
        round(s?.volumeCi95Ml?.[0]),
        round(s?.volumeCi95Ml?.[1]),
      );
    }
    lines.push(cells.map(csvField).join(","));
  }
  return lines.join("\r\n") + "\r\n";
}
