/**
 * The `dicom` section for `deno task bench` (Deno-only: reads RSS). Structurally a BenchSection of
 * src/cli/bench.ts, which imports it (the dependency points from cli to dicom, never back):
 *   import { dicomBenchSection } from "../dicom/bench_section.ts";  SECTIONS.push(dicomBenchSection)
 * SEG BINARY encode of 512×512×300 with 5 segments (targets: < 1 s, extra memory < 2× the labelmap
 * bytes) and Parametric Map encode on the same grid.
 */
import { benchPmapEncode, benchSegEncode, type EncodeBench } from "./bench.ts";

export const dicomBenchSection = {
  name: "dicom",
  description: "SEG (BINARY, 5 segments) and Parametric Map encode time and extra memory, 512×512×300",
  run(
    ctx: { quick: boolean; iters: number; log: (msg: string) => void },
  ): Promise<{ data: unknown; markdown: string }> {
    const dims: [number, number, number] = ctx.quick ? [256, 256, 100] : [512, 512, 300];
    const runs = Math.max(1, Math.min(ctx.iters, 5));
    const memory = () => Deno.memoryUsage().rss;
    ctx.log(`  dicom: SEG encode ${dims.join("×")} …`);
    const seg = benchSegEncode({ dims, runs, memory });
    ctx.log(`  dicom: Parametric Map encode ${dims.join("×")} …`);
    const pm = benchPmapEncode({ dims, runs, memory });
    const row = (b: EncodeBench) =>
      `| ${b.name} | ${b.dims.join("×")} | ${b.ms.toFixed(0)} | ${(b.outputBytes / 2 ** 20).toFixed(1)} | ${
        b.extraBytes === undefined
          ? "–"
          : `${(b.extraBytes / 2 ** 20).toFixed(0)} (${(b.extraBytes / b.inputBytes).toFixed(2)}×)`
      } |`;
    const markdown = [
      "| encoder | grid | median ms | output MiB | extra RSS MiB (× input) |",
      "|---|---|---|---|---|",
      row(seg),
      row(pm),
      "",
      `Targets for the SEG (reported, not asserted): < 1000 ms (${
        seg.ms < 1000 ? "met" : "not met"
      }), extra memory < 2× the labelmap bytes (${
        seg.extraBytes === undefined
          ? "not measured"
          : seg.extraBytes < 2 * seg.inputBytes
          ? "met"
          : "not met"
      }).`,
    ].join("\n");
    return Promise.resolve({ data: { seg, pm }, markdown });
  },
};
