/**
 * Section `synthetic`: segment() end to end in Deno (WASM, all threads) on generated volumes — a
 * 512×512×200 CT-sized volume (slice2d) and a 256³ volume (patch3d, 50 % overlap) with the random-weight
 * bench U-Nets: total, non-model share, peak memory (issue #3's targets). One fresh process per run,
 * the two cases interleaved.
 */
import type { Volume } from "../../core/types.ts";
import { loadModel } from "../../inference/deno.ts";
import { windowShapeOf } from "../../inference/runtime.ts";
import {
  type BenchContext,
  extraFigure,
  measureInterleaved,
  MiB,
  runChild,
  type SectionResult,
} from "./framework.ts";
import { benchModels } from "./models.ts";
import { cell, fmt } from "./stats.ts";

function syntheticCt(dims: [number, number, number], spacing: [number, number, number]): Volume {
  const [nx, ny, nz] = dims;
  const data = new Int16Array(nx * ny * nz);
  const cx = nx / 2, cy = ny / 2, cz = nz / 2;
  for (let k = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      const row = nx * (j + ny * k);
      for (let i = 0; i < nx; i++) {
        const r = Math.hypot((i - cx) / nx, (j - cy) / ny, (k - cz) / (2 * nz));
        data[row + i] = r < 0.4 ? (r < 0.15 ? 60 : 20) + ((i * 7 + j * 13 + k) % 40) : -1000;
      }
    }
  }
  return {
    geometry: { dims, spacing, origin: [0, 0, 0], direction: [1, 0, 0, 0, 1, 0, 0, 0, 1] },
    channels: 1,
    data,
    modality: "CT",
  };
}

interface PipelineCase {
  label: string;
  key: "unet2d" | "unet3d";
  dims: [number, number, number];
  spacing: [number, number, number];
}

function pipelineCases(quick: boolean): PipelineCase[] {
  return [
    {
      label: quick ? "CT 512×512×16, slice2d" : "CT 512×512×200, slice2d",
      key: "unet2d",
      dims: [512, 512, quick ? 16 : 200],
      spacing: [0.7, 0.7, 1.5],
    },
    {
      label: quick ? "128³, patch3d 50 % overlap" : "256³, patch3d 50 % overlap",
      key: "unet3d",
      dims: quick ? [128, 128, 128] : [256, 256, 256],
      spacing: [1, 1, 1],
    },
  ];
}

/**
 * One pipeline case in a fresh process, so the memory figures start from a clean heap: RSS peak
 * above the RSS after model load and warm-up (ORT's WASM heap never shrinks, so RSS only grows),
 * and the peak of JS heap + external (typed arrays) above the level before segment().
 */
export async function syntheticChild(args: Map<string, string>): Promise<void> {
  const { segment } = await import("../../segmentation/segment.ts");
  const c = pipelineCases(args.has("quick"))[Number(args.get("case"))];
  const threads = Number(args.get("threads") ?? "2");
  const { pkg, runtime } = await loadModel(args.get("model")!, { numThreads: threads });
  const volume = syntheticCt(c.dims, c.spacing);
  const inputBytes = volume.data.byteLength;
  const modelBytes = pkg.main.bytes.length;
  // the warm-up initialises WASM and the session's arena outside the measurement
  const shape = windowShapeOf(runtime.manifest, 1);
  await runtime.members[0](new Float32Array(shape.reduce((a, b) => a * b, 1)), shape);
  const js = () => {
    const m = Deno.memoryUsage();
    return m.heapUsed + m.external;
  };
  const rss0 = Deno.memoryUsage().rss, js0 = js();
  let rssPeak = rss0, jsPeak = js0;
  const sample = () => {
    rssPeak = Math.max(rssPeak, Deno.memoryUsage().rss);
    jsPeak = Math.max(jsPeak, js());
  };
  const timer = setInterval(sample, 20);
  const modelMs0 = runtime.stats.totalMs, windows0 = runtime.stats.windows;
  const t0 = performance.now();
  const res = await segment(volume, runtime, { onProgress: sample });
  const totalMs = performance.now() - t0;
  clearInterval(timer);
  sample();
  const modelMs = runtime.stats.totalMs - modelMs0;
  await runtime.release();
  console.log(JSON.stringify({
    volume: c.label,
    dims: c.dims,
    threads,
    windows: runtime.stats.windows - windows0,
    totalMs,
    modelMs,
    nonModelShare: (totalMs - modelMs) / totalMs,
    rssPeakBytes: rssPeak - rss0,
    rssAfterLoadBytes: rss0,
    pipelinePeakBytes: jsPeak - js0,
    inputBytes,
    modelBytes,
    timingsMs: res.provenance.timingsMs,
  }));
}

interface SyntheticRun {
  windows: number;
  totalMs: number;
  modelMs: number;
  nonModelShare: number;
  pipelinePeakBytes: number;
  rssPeakBytes: number;
  inputBytes: number;
  modelBytes: number;
}

export async function syntheticSection(ctx: BenchContext): Promise<SectionResult> {
  const models = await benchModels(ctx);
  const cases = pipelineCases(ctx.quick);
  const measured = await measureInterleaved<SyntheticRun>(
    ctx,
    cases.map((c, i) => ({
      key: c.label,
      unit: "s",
      run: async () => {
        const j = await runChild("synthetic", [
          "--case",
          String(i),
          "--model",
          models[c.key].dir,
          "--threads",
          String(ctx.cores),
          ...(ctx.quick ? ["--quick"] : []),
        ]) as SyntheticRun;
        return { value: j.totalMs / 1000, extra: j };
      },
    })),
  );
  const results: Record<string, unknown>[] = [];
  let md =
    `segment() in Deno on onnxruntime-web WASM with ${ctx.cores} threads, no uncertainty, random-weight ` +
    `bench U-Nets on generated volumes, one fresh process per run, the cases interleaved, ${ctx.runs} run(s) ` +
    `each. "pipeline peak" = peak of JS heap + typed arrays above the level before segment(); "RSS peak" = ` +
    `peak RSS above the RSS after model load and warm-up. Cells: median (min–max, n); **busy** = load ` +
    `average above ${ctx.cores} before a run.\n\n` +
    `| volume | windows | total s | model s | non-model share | pipeline peak MiB | RSS peak MiB | peak ≤ 4 × input + model |\n` +
    `|---|---:|---|---:|---:|---:|---:|---|\n`;
  for (const m of measured) {
    const j = m.extras[0];
    if (!j) {
      md += `| ${m.key} | failed: ${(m.errors[0] ?? "").slice(0, 80)} ||||||\n`;
      results.push({ volume: m.key, error: m.errors[0] ?? "no run", total: m.figure });
      continue;
    }
    const share = extraFigure(ctx, m, (x) => x.nonModelShare * 100, "%");
    const model = extraFigure(ctx, m, (x) => x.modelMs / 1000, "s");
    const peak = extraFigure(ctx, m, (x) => x.pipelinePeakBytes / MiB, "MiB");
    const rss = extraFigure(ctx, m, (x) => x.rssPeakBytes / MiB, "MiB");
    const budget = (4 * j.inputBytes + j.modelBytes) / MiB;
    const targets = {
      nonModelShareMet: share.median! <= 15,
      memoryMet: peak.median! <= budget,
      busy: m.figure.busy,
    };
    results.push({
      volume: m.key,
      windows: j.windows,
      total: m.figure,
      model,
      nonModelShare: share,
      pipelinePeak: peak,
      rssPeak: rss,
      inputBytes: j.inputBytes,
      modelBytes: j.modelBytes,
      targets,
    });
    md += `| ${m.key} | ${j.windows} | ${cell(m.figure)} | ${fmt(model.median)} | ${fmt(share.median)} % ` +
      `(${targets.nonModelShareMet ? "≤ 15 %: met" : "> 15 %: not met"}) | ${fmt(peak.median, 0)} | ` +
      `${fmt(rss.median, 0)} | ${(peak.median! / budget).toFixed(2)}× of budget ` +
      `${targets.memoryMet ? "(met)" : "(not met)"} |\n`;
  }
  md +=
    `\nTargets (reported, not asserted): non-model time ≤ 15 % of the total; peak memory ≤ 4× the input volume ` +
    `bytes plus the model. ORT's own WASM working memory is in the RSS column, not in the pipeline peak.\n`;
  return { data: { results, threads: ctx.cores }, markdown: md, busy: measured.some((m) => m.figure.busy) };
}
