/** Section `load`: the embedded DICOMweb store under concurrent WADO-RS/STOW-RS (src/server/load.ts). */
import { type BenchContext, load1, type SectionResult } from "./framework.ts";
import { fmt, isBusy } from "./stats.ts";

export async function loadSection(ctx: BenchContext): Promise<SectionResult> {
  const { runStoreLoad } = await import("../../server/load.ts");
  // One burst of concurrent requests: its percentiles are the figure, with the load average before it.
  const l = load1();
  const r = await runStoreLoad({ frameRequests: 100, stows: 20 });
  const busy = isBusy(l, ctx.cores);
  const row = (name: string, x: typeof r.frames) =>
    `| ${name} | ${x.count} | ${x.errors} | ${x.p50Ms} | ${x.p99Ms} | ${x.maxMs} | ${x.wallMs} |\n`;
  const md = `Concurrent requests against a fresh embedded store on loopback; 1-minute load average before ` +
    `the burst ${fmt(l, 2)}${busy ? ` (**busy**: above ${ctx.cores} cores)` : ""}.\n\n` +
    `| requests | count | errors | p50 ms | p99 ms | max ms | wall ms |\n|---|---:|---:|---:|---:|---:|---:|\n` +
    row("WADO-RS frames", r.frames) + row("STOW-RS", r.stow);
  ctx.log(
    `  frames p50 ${r.frames.p50Ms} ms p99 ${r.frames.p99Ms} ms; STOW p50 ${r.stow.p50Ms} ms p99 ${r.stow.p99Ms} ms`,
  );
  return { data: { ...r, load1: l, busy }, markdown: md, busy };
}
