/** Section `dicom`: SEG and Parametric Map encode time and memory (src/dicom/bench.ts). */
import { type BenchContext, load1, type SectionResult } from "./framework.ts";
import { cell, figure } from "./stats.ts";

export async function dicomSection(ctx: BenchContext): Promise<SectionResult> {
  const { benchPmapEncode, benchSegEncode } = await import("../../dicom/bench.ts");
  const dims: [number, number, number] = ctx.quick ? [512, 512, 40] : [512, 512, 300];
  const memory = () => Deno.memoryUsage().rss;
  const runs = ctx.runs;
  // Each encoder times its runs back to back; the load average is read once before each encoder.
  const segLoad = load1();
  const seg = benchSegEncode({ dims, runs, memory });
  const pmLoad = load1();
  const pm = benchPmapEncode({ dims, runs, memory });
  const segFig = figure(seg.runsMs.map((value) => ({ value, load1: segLoad })), ctx.cores, "ms");
  const pmFig = figure(pm.runsMs.map((value) => ({ value, load1: pmLoad })), ctx.cores, "ms");
  const figs = new Map([[seg, segFig], [pm, pmFig]]);
  const MiB = 1024 * 1024;
  let md =
    `Encode on a ${
      dims.join("×")
    } grid, ${runs} run(s) each (cells: median (min–max, n), **busy** = load average above ${ctx.cores} before the encoder ran); extra memory = RSS growth during the first run.\n\n` +
    `| object | ms | output MiB | input MiB | extra MiB | extra / input |\n|---|---:|---:|---:|---:|---:|\n`;
  for (const r of [seg, pm]) {
    md +=
      `| ${r.name} | ${cell(figs.get(r), 0)} | ${(r.outputBytes / MiB).toFixed(1)} | ${
        (r.inputBytes / MiB).toFixed(1)
      } | ` +
      `${r.extraBytes === undefined ? "–" : (r.extraBytes / MiB).toFixed(0)} | ` +
      `${r.extraBytes === undefined ? "–" : (r.extraBytes / r.inputBytes).toFixed(2) + "×"} |\n`;
  }
  const segMet = {
    time: seg.ms < 1000,
    memory: seg.extraBytes === undefined ? null : seg.extraBytes < 2 * seg.inputBytes,
  };
  md +=
    `\nTarget (reported, not asserted): SEG encode < 1 s (${
      segMet.time ? "met" : "not met"
    }) and < 2× the labelmap ` +
    `bytes of extra memory (${
      segMet.memory === null ? "not measured" : segMet.memory ? "met" : "not met"
    }).\n`;
  ctx.log(`  SEG ${seg.ms.toFixed(0)} ms, PM ${pm.ms.toFixed(0)} ms`);
  return {
    data: { seg, pm, figures: { seg: segFig, pm: pmFig }, targets: { seg: segMet } },
    markdown: md,
    busy: segFig.busy || pmFig.busy,
  };
}
