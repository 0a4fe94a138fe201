/**
 * Section `pipeline`: the shared 134-slice CT (../shared/data/dicom/ct-abdomen/raw) with the shipped
 * ct-lung-infection package through the CLI's own code path (loadInputs: read DICOM → segment() →
 * writeCaseOutputs: encode and write the SEG), one fresh process per run so peak memory starts from a
 * clean heap. Four variants, interleaved: native onnxruntime-node and onnxruntime-web WASM, each with
 * and without the manifest's region of interest. Per run: total, per-phase split, windows run and
 * planned, peak RSS, provider and threads (from the result's provenance).
 */
import { join } from "node:path";
import { sharedData } from "../../harness/paths.ts";
import {
  type BenchContext,
  exists,
  extraFigure,
  type Measured,
  measureInterleaved,
  MiB,
  PROJECT_ROOT,
  runChild,
  type SectionResult,
  type Variant,
} from "./framework.ts";
import { cell, type Figure } from "./stats.ts";

/** What one child run reports. */
export interface PipelineRun {
  device: string;
  roi: boolean;
  provider: string;
  threads: number | null;
  slices: number;
  windowsRun: number;
  windowsPlanned: number | null;
  roiSummary: string | null;
  /** ms per phase: decode, roi, preprocess, inference, windowing, postprocess, encode, total */
  phasesMs: Record<string, number>;
  peakRssBytes: number;
}

export const PHASES = [
  "decode",
  "roi",
  "preprocess",
  "inference",
  "windowing",
  "postprocess",
  "encode",
] as const;

/** One run in this (fresh) process: the CLI's steps, timed, with RSS sampled every 50 ms. */
export async function pipelineChild(args: Map<string, string>): Promise<void> {
  const { openModel } = await import("../common.ts");
  const { loadInputs } = await import("../inputs.ts");
  const { writeCaseOutputs } = await import("../segment.ts");
  const { segment } = await import("../../segmentation/mod.ts");
  let peak = Deno.memoryUsage().rss;
  const timer = setInterval(() => peak = Math.max(peak, Deno.memoryUsage().rss), 50);
  const device = args.get("device")!;
  const roi = args.get("roi") !== "off";
  const threads = args.get("threads") ? Number(args.get("threads")) : undefined;
  const { runtime } = await openModel(args.get("model")!, device, threads);
  const t0 = performance.now();
  const [c] = await loadInputs(args.get("input")!, runtime.manifest);
  const decodeMs = performance.now() - t0;
  const result = await segment(c.volume, runtime, { uncertainty: "none", roi });
  const t1 = performance.now();
  const out = await Deno.makeTempDir({ prefix: "edgeseg-bench-pipeline-" });
  try {
    await writeCaseOutputs(c, result, out, { segType: "BINARY" });
  } finally {
    await Deno.remove(out, { recursive: true }).catch(() => {});
  }
  const encodeMs = performance.now() - t1;
  const totalMs = performance.now() - t0;
  clearInterval(timer);
  peak = Math.max(peak, Deno.memoryUsage().rss);
  const p = result.provenance;
  const t = p.timingsMs;
  const run: PipelineRun = {
    device,
    roi,
    provider: p.provider,
    threads: p.threads ?? runtime.sessions[0]?.numThreads ?? threads ?? null,
    slices: c.volume.geometry.dims[2],
    windowsRun: p.windows,
    windowsPlanned: p.roi?.windowsPlanned ?? null,
    roiSummary: p.roi?.summary ?? null,
    phasesMs: {
      decode: decodeMs,
      roi: t.roi ?? 0,
      preprocess: (t.validation ?? 0) + (t.preprocessing ?? 0),
      inference: t.model ?? 0,
      windowing: t.windowing ?? 0,
      postprocess: (t.aggregation ?? 0) + (t.postprocessing ?? 0) + (t.statistics ?? 0),
      encode: encodeMs,
      total: totalMs,
    },
    peakRssBytes: peak,
  };
  await runtime.release();
  console.log(JSON.stringify(run));
}

const VARIANTS = [
  { device: "cpu", roi: true, label: "native onnxruntime-node, ROI" },
  { device: "wasm", roi: true, label: "WASM (Deno), ROI" },
  { device: "cpu", roi: false, label: "native onnxruntime-node, no ROI" },
  { device: "wasm", roi: false, label: "WASM (Deno), no ROI" },
];

export async function pipelineSection(ctx: BenchContext): Promise<SectionResult> {
  const input = sharedData("dicom", "ct-abdomen", "raw");
  if (!input) {
    ctx.log("  skipped: ../shared/data/dicom/ct-abdomen/raw is absent");
    return {
      data: { skipped: "../shared/data/dicom/ct-abdomen/raw is absent" },
      markdown: "Skipped: the shared CT (../shared/data/dicom/ct-abdomen/raw) is absent.\n",
    };
  }
  const model = join(PROJECT_ROOT, "models", "ct-lung-infection");
  if (!(await exists(join(model, "manifest.json")))) throw new Error("models/ct-lung-infection is missing");
  const threads = ctx.values.get("threads");
  const variants: Variant<PipelineRun>[] = VARIANTS.map((v) => ({
    key: v.label,
    unit: "s",
    run: async () => {
      const r = await runChild("pipeline", [
        "--input",
        input,
        "--model",
        model,
        "--device",
        v.device,
        "--roi",
        v.roi ? "on" : "off",
        ...(threads ? ["--threads", threads] : []),
      ], 30 * 60 * 1000) as PipelineRun;
      return { value: r.phasesMs.total / 1000, extra: r };
    },
  }));
  const measured = await measureInterleaved(ctx, variants);
  const rows = measured.map((m) => pipelineRow(ctx, m));
  let md = `The shared CT (${rows.find((r) => r.slices)?.slices ?? "?"} slices of 512²), shipped ` +
    `ct-lung-infection, no uncertainty, through the CLI's code path (read DICOM → segment() → encode the ` +
    `SEG), one fresh process per run; the four variants interleaved, ${ctx.runs} run(s) each. Threads: ` +
    `${threads ?? "the CLI's default"}. Cells: median (min–max, n); **busy** = the 1-minute load average ` +
    `before a run exceeded the ${ctx.cores} cores.\n\n`;
  md += `| variant | provider | threads | windows run / planned | total s | ${
    PHASES.join(" s | ")
  } s | peak RSS MiB |\n`;
  md += `|---|---|---:|---|---|${PHASES.map(() => "---:").join("|")}|---:|\n`;
  for (const r of rows) {
    md += `| ${r.key} | ${r.provider ?? "–"} | ${r.threads ?? "–"} | ${r.windows} | ${cell(r.total)} | ` +
      `${PHASES.map((p) => cell(r.phases[p], 1).split(" ")[0]).join(" | ")} | ${
        cell(r.peakRss, 0).split(" ")[0]
      } |\n`;
  }
  const summary = rows.find((r) => r.roiSummary)?.roiSummary;
  if (summary) md += `\nRegion of interest: ${summary}.\n`;
  md += `\nPhase columns are medians; "windowing" is window extraction and blending; "postprocess" is ` +
    `activation, resampling, postprocessing and statistics.\n`;
  for (const m of measured) {
    if (m.errors.length) {
      md += `\n${m.key}: ${m.errors.length} failed run(s): ${m.errors[0].slice(0, 200)}\n`;
    }
  }
  return {
    data: { input: "../shared/data/dicom/ct-abdomen/raw", model: "ct-lung-infection", rows },
    markdown: md,
    busy: rows.some((r) => r.total.busy),
  };
}

export interface PipelineRow {
  key: string;
  provider: string | null;
  threads: number | null;
  slices: number | null;
  windows: string;
  roiSummary: string | null;
  total: Figure;
  phases: Record<string, Figure>;
  peakRss: Figure;
}

function pipelineRow(ctx: BenchContext, m: Measured<PipelineRun>): PipelineRow {
  const first = m.extras[0];
  const phases: Record<string, Figure> = {};
  for (const p of PHASES) phases[p] = extraFigure(ctx, m, (x) => x.phasesMs[p] / 1000, "s");
  return {
    key: m.key,
    provider: first?.provider ?? null,
    threads: first?.threads ?? null,
    slices: first?.slices ?? null,
    windows: first ? `${first.windowsRun} / ${first.windowsPlanned ?? first.windowsRun}` : "–",
    roiSummary: first?.roiSummary ?? null,
    total: m.figure,
    phases,
    peakRss: extraFigure(ctx, m, (x) => x.peakRssBytes / MiB, "MiB"),
  };
}
