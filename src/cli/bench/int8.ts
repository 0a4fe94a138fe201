/**
 * Section `int8`: the shipped ct-lung-infection model, fp32 (`model.onnx`) vs its `int8` variant (static
 * QDQ, models/training/quantize_qdq.py), ms per window on the pipeline's real window shapes (304×192:
 * the lung region's box of the shared CT; 512²: a whole slice). Per shape and thread count, four calls
 * run interleaved (A B C D …): onnxruntime-node fp32 and int8, and onnxruntime-web WASM in Chromium fp32
 * and int8 (one page each, bench/page.ts); then onnxruntime-web WASM in Deno in a child process with both
 * sessions in the same WASM, alternating. Reported: int8 / fp32 per runtime (issue #15: "real INT8 …
 * kept only where it is faster in WASM") and WASM / native per precision (issue #15's ≤ 1.5× target).
 * The input is the bench's sin(i · 0.001) pattern: integer and float kernels take the same time on any
 * values, so it times the same work as a CT window.
 */
import { join } from "node:path";
import type { ModelPackage } from "../../inference/package.ts";
import { openPackage } from "../../inference/deno.ts";
import { createNativeRuntime } from "../../inference/node_native.ts";
import { CHROMIUM, chromiumArgs } from "../chromium.ts";
import {
  type BenchContext,
  exists,
  measureInterleaved,
  PROJECT_ROOT,
  runChild,
  type SectionResult,
  type Variant,
} from "./framework.ts";
import { bundlePage, serve } from "./inference.ts";
import { cell, type Figure, figure, noFigure, type Sample } from "./stats.ts";

const MODEL = "ct-lung-infection";
const PRECISIONS = [
  { key: "fp32", variant: "main" },
  { key: "int8", variant: "int8" },
] as const;
const NATIVE = "onnxruntime-node CPU";
const CHROMIUM_WASM = "onnxruntime-web WASM, Chromium";
const DENO_WASM = "onnxruntime-web WASM, Deno";

interface Row {
  shape: string;
  runtime: string;
  threads: number;
  precision: "fp32" | "int8";
  figure: Figure;
}

type PageCall = (fn: string, ...a: unknown[]) => Promise<unknown>;

function input(shape: number[]): Float32Array {
  const x = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < x.length; i++) x[i] = Math.sin(i * 0.001);
  return x;
}

/** Per-round ratios of two interleaved figures (a / b), so min/median/max describe the ratio itself. */
function pairRatio(a: Figure | undefined, b: Figure | undefined, cores: number): Figure {
  const n = a && b ? Math.min(a.samples.length, b.samples.length) : 0;
  const samples: Sample[] = Array.from({ length: n }, (_, i) => ({
    value: a!.samples[i].value / b!.samples[i].value,
    load1: Math.max(a!.samples[i].load1 ?? 0, b!.samples[i].load1 ?? 0),
  }));
  return n ? figure(samples, cores, "×") : noFigure("×", "not measured");
}

export async function int8Section(ctx: BenchContext): Promise<SectionResult> {
  const dir = join(PROJECT_ROOT, "models", MODEL);
  const pkgs = new Map<string, ModelPackage>();
  for (const p of PRECISIONS) pkgs.set(p.key, await openPackage(dir, { variant: p.variant }));
  const description = pkgs.get("int8")!.variant?.description ?? "int8";
  // [batch, channel, rows, columns]: the shared CT's lung box is 304 columns × 192 rows
  const shapes = ctx.quick ? [[1, 1, 192, 304]] : [[1, 1, 192, 304], [1, 1, 512, 512]];
  const threadSet = [...new Set([1, ctx.cores])];
  const rows: Row[] = [];
  const add = (r: Row) => {
    rows.push(r);
    ctx.log(
      `  ${r.shape.padEnd(8)} ${r.runtime.padEnd(32)} ${r.threads} thr ${r.precision}  ${cell(r.figure)} ms`,
    );
  };
  const label = (s: number[]) => `${s[3]}×${s[2]}`;

  let browser: import("playwright-core").Browser | undefined;
  let srv: ReturnType<typeof serve> | undefined;
  let udd: string | undefined;
  try {
    if (await exists(CHROMIUM)) {
      await bundlePage(ctx);
      srv = serve([
        ["/edgeseg/ort/", join(PROJECT_ROOT, "node_modules", "onnxruntime-web", "dist")],
        ["/models/", join(PROJECT_ROOT, "models")],
        ["/tmp/", ctx.tmp],
      ]);
      const { chromium } = await import("playwright-core");
      udd = await Deno.makeTempDir({ prefix: "edgeseg-bench-" });
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        ignoreDefaultArgs: true,
        headless: true,
        args: chromiumArgs(udd, { extra: ["--no-startup-window"] }),
      });
    } else ctx.log(`  Chromium skipped: ${CHROMIUM} not found`);

    for (const shape of shapes) {
      for (const t of threadSet) {
        const x = input(shape);
        const variants: Variant[] = [];
        const keys: { runtime: string; precision: "fp32" | "int8" }[] = [];
        const cleanup: (() => Promise<void>)[] = [];
        for (const p of PRECISIONS) {
          const rt = await createNativeRuntime(pkgs.get(p.key)!, t);
          cleanup.push(() => rt.release());
          await rt.members[0](x, shape); // warm-up
          variants.push({
            key: `${NATIVE} ${p.key}`,
            unit: "ms",
            run: async () => {
              const t0 = performance.now();
              await rt.members[0](x, shape);
              return { value: performance.now() - t0 };
            },
          });
          keys.push({ runtime: NATIVE, precision: p.key });
        }
        const failed: { precision: "fp32" | "int8"; note: string }[] = [];
        if (browser) {
          for (const p of PRECISIONS) {
            const page = await browser.newPage();
            cleanup.push(() => page.close());
            await page.goto(`${srv!.origin}/`);
            await page.waitForFunction(() =>
              (globalThis as { edgesegReady?: boolean }).edgesegReady === true
            );
            const call: PageCall = (fn, ...a) =>
              page.evaluate(
                ([f, args]) =>
                  ((globalThis as unknown as { edgesegBench: Record<string, (...x: unknown[]) => unknown> })
                    .edgesegBench[f as string])(...(args as unknown[])),
                [fn, a] as const,
              );
            cleanup.unshift(() => call("close").then(() => {}, () => {}));
            const opened = await call("open", `/models/${MODEL}/`, "wasm", t, shape, p.variant) as {
              ok: boolean;
              error?: { message: string };
            };
            if (!opened.ok) {
              failed.push({ precision: p.key, note: opened.error?.message ?? "failed" });
              continue;
            }
            variants.push({
              key: `${CHROMIUM_WASM} ${p.key}`,
              unit: "ms",
              run: async () => ({ value: await call("once") as number }),
            });
            keys.push({ runtime: CHROMIUM_WASM, precision: p.key });
          }
        }
        const measured = await measureInterleaved(ctx, variants);
        for (const c of cleanup) await c();
        measured.forEach((m, i) => add({ shape: label(shape), threads: t, ...keys[i], figure: m.figure }));
        for (const f of failed) {
          add({
            shape: label(shape),
            runtime: CHROMIUM_WASM,
            threads: t,
            precision: f.precision,
            figure: noFigure("ms", f.note),
          });
        }
      }
    }
  } finally {
    await browser?.close();
    await srv?.close();
    if (udd) await Deno.remove(udd, { recursive: true }).catch(() => {});
  }

  // onnxruntime-web WASM in Deno: one process per shape and thread count, fp32 and int8 alternating
  for (const shape of shapes) {
    for (const t of threadSet) {
      try {
        const j = await runChild("deno-wasm", [
          "--model",
          dir,
          "--threads",
          String(t),
          "--shape",
          shape.join(","),
          "--iters",
          String(ctx.runs),
          "--variants",
          PRECISIONS.map((p) => p.variant).join(","),
        ]) as { times: number[][]; loads: (number | null)[][]; threads: number };
        PRECISIONS.forEach((p, v) =>
          add({
            shape: label(shape),
            runtime: DENO_WASM,
            threads: j.threads,
            precision: p.key,
            figure: figure(
              j.times[v].map((value, i) => ({ value, load1: j.loads[v][i] ?? null })),
              ctx.cores,
              "ms",
            ),
          })
        );
      } catch (e) {
        for (const p of PRECISIONS) {
          add({
            shape: label(shape),
            runtime: DENO_WASM,
            threads: t,
            precision: p.key,
            figure: noFigure("ms", String((e as Error).message).slice(0, 120)),
          });
        }
      }
    }
  }

  const at = (shape: string, runtime: string, t: number, precision: string) =>
    rows.find((r) =>
      r.shape === shape && r.runtime === runtime && r.threads === t && r.precision === precision
    )
      ?.figure;
  const labels = shapes.map(label);
  let md = `${MODEL}: \`model.onnx\` (fp32) vs \`${pkgs.get("int8")!.main.file}\` (${description}), ms per ` +
    `window (batch 1, after a warm-up), ${ctx.runs} run(s) per figure; native and Chromium calls of a shape ` +
    `and thread count interleaved, Deno's fp32 and int8 alternating in one process. Cells: median (min–max, ` +
    `n); **busy** = the 1-minute load average before a run exceeded ${ctx.cores} cores.\n\n`;
  md += `| runtime | threads | ${labels.flatMap((l) => [`${l} fp32`, `${l} int8`]).join(" | ")} |\n|---|---|${
    labels.flatMap(() => ["---", "---"]).join("|")
  }|\n`;
  for (const rt of [NATIVE, CHROMIUM_WASM, DENO_WASM]) {
    for (const t of threadSet) {
      md += `| ${rt} | ${t} | ${
        labels.flatMap((l) => PRECISIONS.map((p) => cell(at(l, rt, t, p.key)))).join(" | ")
      } |\n`;
    }
  }
  const ratios: { shape: string; threads: number; name: string; ratio: Figure }[] = [];
  for (const l of labels) {
    for (const t of threadSet) {
      for (const rt of [NATIVE, CHROMIUM_WASM, DENO_WASM]) {
        ratios.push({
          shape: l,
          threads: t,
          name: `int8 / fp32, ${rt}`,
          ratio: pairRatio(at(l, rt, t, "int8"), at(l, rt, t, "fp32"), ctx.cores),
        });
      }
      for (const p of PRECISIONS) {
        ratios.push({
          shape: l,
          threads: t,
          name: `Chromium WASM / onnxruntime-node, ${p.key}`,
          ratio: pairRatio(at(l, CHROMIUM_WASM, t, p.key), at(l, NATIVE, t, p.key), ctx.cores),
        });
      }
      ratios.push({
        shape: l,
        threads: t,
        name: "Chromium WASM int8 / onnxruntime-node fp32",
        ratio: pairRatio(at(l, CHROMIUM_WASM, t, "int8"), at(l, NATIVE, t, "fp32"), ctx.cores),
      });
    }
  }
  md += `\nRatios per interleaved round (Deno's int8 / fp32: per alternating pair in its process). ` +
    `Issue #15's target is browser WASM ≤ 1.5× native with the same threads.\n\n` +
    `| window | threads | ratio | median (min–max, n) |\n|---|---|---|---|\n`;
  for (const r of ratios) md += `| ${r.shape} | ${r.threads} | ${r.name} | ${cell(r.ratio, 2)} |\n`;
  return {
    data: { model: MODEL, int8File: pkgs.get("int8")!.main.file, description, rows, ratios },
    markdown: md,
    busy: rows.some((r) => r.figure.busy),
  };
}
