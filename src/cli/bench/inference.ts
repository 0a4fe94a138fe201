/**
 * Section `inference`: ms per window of the bench U-Nets (2D 256², 2D 512², 3D 96³; random weights,
 * models.ts) per runtime and thread count. Browser WASM (Chromium, bench/page.ts) and native
 * onnxruntime-node run interleaved at the same threads (one call each, A B A B …, the load average
 * before each call), so their ratio — issue #15's "browser WASM ≤ 1.5× native" — compares like with
 * like. onnxruntime-web WASM in Deno (a child process per thread count: ORT fixes threads when its WASM
 * starts) and PyTorch CPU (Debian's python3-torch) are reported beside them. WebGPU: the adapter is
 * reported; a software (SwiftShader) adapter is timed only with --webgpu-timing.
 */
import { fileUnder, HTML, readServed, startIsolatedServer } from "../../inference/isolated_server.ts";
import { join } from "node:path";
import type { ModelPackage } from "../../inference/package.ts";
import { openPackage } from "../../inference/deno.ts";
import { createNativeRuntime } from "../../inference/node_native.ts";
import { CHROMIUM, chromiumArgs } from "../chromium.ts";
import {
  type BenchContext,
  exists,
  lastJsonLine,
  load1,
  measureInterleaved,
  PROJECT_ROOT,
  runChild,
  runCommand as run,
  type SectionResult,
} from "./framework.ts";
import { benchModels, MAKE_MODELS, PY } from "./models.ts";
import { cell, type Figure, figure, noFigure, ratio } from "./stats.ts";

/** The bench page and the folders it loads from, cross-origin isolated (src/inference/isolated_server.ts). */
export function serve(roots: [string, string][]) {
  return startIsolatedServer((path) => {
    if (path === "/") {
      return {
        body: '<!doctype html><script type="module" src="/tmp/page.js"></script>',
        type: HTML,
      };
    }
    const hit = fileUnder(roots, path);
    return hit && "file" in hit ? readServed(hit.file) : hit;
  });
}

/** bench/page.ts bundled to ctx.tmp/page.js, which serve() answers for "/". */
export async function bundlePage(ctx: BenchContext): Promise<void> {
  const bundle = await run(join(PROJECT_ROOT, "node_modules", ".bin", "esbuild"), [
    join(PROJECT_ROOT, "bench", "page.ts"),
    "--bundle",
    "--format=esm",
    "--platform=browser",
    "--target=es2022",
    `--outfile=${join(ctx.tmp, "page.js")}`,
    "--log-level=warning",
  ]);
  if (!bundle.ok) throw new Error(`esbuild bench/page.ts: ${bundle.err}`);
}

interface Row {
  model: string;
  runtime: string;
  threads: number;
  figure: Figure;
}

interface ModelCase {
  label: string;
  key: "unet2d" | "unet3d";
  shape: number[];
}

type PageApi = {
  open: (...a: unknown[]) => Promise<{ ok: boolean; threads?: number | null; error?: { message: string } }>;
  once: () => Promise<number>;
  close: () => Promise<void>;
  adapter: () => Promise<Record<string, unknown> | null>;
};

const CHROMIUM_WASM = "onnxruntime-web WASM, Chromium";
const NATIVE = "onnxruntime-node CPU";

function input(shape: number[]): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.sin(i * 0.001);
  return x;
}

const none = (note: string): Figure => noFigure("ms", note);

export async function inferenceSection(ctx: BenchContext): Promise<SectionResult> {
  const models = await benchModels(ctx);
  const cases: ModelCase[] = [
    { label: "2D U-Net 256²", key: "unet2d", shape: [1, 3, 256, 256] },
    { label: "2D U-Net 512²", key: "unet2d", shape: [1, 3, 512, 512] },
    { label: "3D U-Net 96³", key: "unet3d", shape: [1, 1, 96, 96, 96] },
  ];
  const threadSet = [...new Set([1, ctx.cores])];
  const rows: Row[] = [];
  const add = (r: Row) => {
    rows.push(r);
    ctx.log(
      `  ${r.model.padEnd(14)} ${r.runtime.padEnd(32)} ${String(r.threads).padStart(2)} thr  ${
        cell(r.figure)
      } ms`,
    );
  };
  const pkgs = new Map<string, ModelPackage>();
  for (const key of ["unet2d", "unet3d"] as const) pkgs.set(key, await openPackage(models[key].dir));

  // Chromium WASM and onnxruntime-node, interleaved per model and thread count
  let chromiumVersion: string | null = null;
  let adapterNote: string | null = null;
  const haveChromium = await exists(CHROMIUM);
  let srv: ReturnType<typeof serve> | undefined;
  let browser: import("playwright-core").Browser | undefined;
  const udds: string[] = [];
  const launch = async (webgpu: boolean) => {
    const { chromium } = await import("playwright-core");
    const udd = await Deno.makeTempDir({ prefix: "edgeseg-bench-" });
    udds.push(udd);
    return await chromium.launch({
      executablePath: CHROMIUM,
      ignoreDefaultArgs: true,
      headless: true,
      args: chromiumArgs(udd, { webgpu, extra: ["--no-startup-window"] }),
    });
  };
  const openPage = async (b: import("playwright-core").Browser) => {
    const page = await b.newPage();
    await page.goto(`${srv!.origin}/`);
    await page.waitForFunction(() => (globalThis as { edgesegReady?: boolean }).edgesegReady === true);
    return page;
  };
  try {
    if (haveChromium) {
      await bundlePage(ctx);
      srv = serve([
        ["/edgeseg/ort/", join(PROJECT_ROOT, "node_modules", "onnxruntime-web", "dist")],
        ["/tmp/", ctx.tmp],
      ]);
      browser = await launch(false);
      chromiumVersion = browser.version();
    } else ctx.log(`  Chromium skipped: ${CHROMIUM} not found`);
    for (const c of cases) {
      for (const t of threadSet) {
        const rt = await createNativeRuntime(pkgs.get(c.key)!, t);
        const x = input(c.shape);
        await rt.members[0](x, c.shape); // warm-up
        const page = browser ? await openPage(browser) : undefined;
        const api = (fn: string, ...a: unknown[]) =>
          page!.evaluate(
            ([f, args]) =>
              ((globalThis as unknown as { edgesegBench: Record<string, (...x: unknown[]) => unknown> })
                .edgesegBench[f as string])(...(args as unknown[])),
            [fn, a] as const,
          );
        const opened = page
          ? await api("open", `/tmp/${c.key}/`, "wasm", t, c.shape) as Awaited<ReturnType<PageApi["open"]>>
          : null;
        const variants = [{
          key: NATIVE,
          unit: "ms",
          run: async () => {
            const t0 = performance.now();
            await rt.members[0](x, c.shape);
            return { value: performance.now() - t0 };
          },
        }];
        if (opened?.ok) {
          variants.push({
            key: CHROMIUM_WASM,
            unit: "ms",
            run: async () => ({ value: await api("once") as number }),
          });
        }
        const measured = await measureInterleaved(ctx, variants);
        await rt.release();
        if (page) {
          await api("close").catch(() => {});
          await page.close();
        }
        add({ model: c.label, runtime: NATIVE, threads: t, figure: measured[0].figure });
        if (page) {
          add({
            model: c.label,
            runtime: CHROMIUM_WASM,
            threads: opened?.threads ?? t,
            figure: measured[1]?.figure ?? none(opened?.error?.message ?? "failed"),
          });
        }
      }
    }
    if (browser) {
      await browser.close();
      browser = undefined;
      const gpu = await launch(true);
      try {
        const page = await openPage(gpu);
        const info = await page.evaluate(() =>
          (globalThis as unknown as { edgesegBench: PageApi }).edgesegBench.adapter()
        );
        await page.close();
        if (!info) adapterNote = "no WebGPU adapter in Chromium (even with --enable-unsafe-webgpu)";
        else {
          const software = info.isFallbackAdapter === true ||
            String(info.architecture).includes("swiftshader");
          adapterNote = `adapter ${info.vendor ?? "?"} / ${info.architecture ?? "?"}${
            software ? " (software fallback: correctness only, not timed unless --webgpu-timing)" : ""
          }`;
          if (!software || ctx.flags.has("webgpu-timing")) {
            for (const c of cases) {
              const p = await openPage(gpu);
              const o = await p.evaluate(
                ([m, s]) =>
                  (globalThis as unknown as { edgesegBench: PageApi }).edgesegBench.open(m, "webgpu", 1, s),
                [`/tmp/${c.key}/`, c.shape] as const,
              );
              const m = o.ok
                ? (await measureInterleaved(ctx, [{
                  key: "WebGPU",
                  unit: "ms",
                  run: async () => ({
                    value: await p.evaluate(() =>
                      (globalThis as unknown as { edgesegBench: PageApi }).edgesegBench.once()
                    ),
                  }),
                }]))[0].figure
                : none(o.error?.message ?? "failed");
              await p.close();
              add({ model: c.label, runtime: "onnxruntime-web WebGPU, Chromium", threads: 0, figure: m });
            }
          }
        }
      } finally {
        await gpu.close();
      }
    }
  } finally {
    await browser?.close();
    await srv?.close();
    for (const u of udds) await Deno.remove(u, { recursive: true }).catch(() => {});
  }

  // onnxruntime-web WASM in Deno: one process per thread count, ctx.runs calls with their load averages
  for (const c of cases) {
    for (const t of threadSet) {
      try {
        const j = await runChild("deno-wasm", [
          "--model",
          models[c.key].dir,
          "--threads",
          String(t),
          "--shape",
          c.shape.join(","),
          "--iters",
          String(ctx.runs),
        ]) as { times: number[]; loads: (number | null)[]; threads: number };
        add({
          model: c.label,
          runtime: "onnxruntime-web WASM, Deno",
          threads: j.threads,
          figure: figure(j.times.map((value, i) => ({ value, load1: j.loads[i] ?? null })), ctx.cores, "ms"),
        });
      } catch (e) {
        add({
          model: c.label,
          runtime: "onnxruntime-web WASM, Deno",
          threads: t,
          figure: none(String((e as Error).message).slice(0, 120)),
        });
      }
    }
  }

  // PyTorch CPU: the script times ctx.runs calls and reports their median; the load is read before it
  let torchVersion: string | null = null;
  if (await exists(PY)) {
    torchVersion = models.torch;
    for (const c of cases) {
      for (const t of threadSet) {
        const l = load1();
        const r = await run(PY, [
          MAKE_MODELS(),
          "--torch-bench",
          join(ctx.tmp, "raw"),
          c.key,
          String(c.shape.at(-1)!),
          String(t),
          "--iters",
          String(ctx.runs),
        ]);
        if (!r.ok) {
          add({
            model: c.label,
            runtime: "PyTorch CPU",
            threads: t,
            figure: none(r.err.trim().split("\n").pop() ?? "failed"),
          });
          continue;
        }
        const j = lastJsonLine(r.out) as { medianMs: number; runs: number; times?: number[] };
        const values = j.times ?? [j.medianMs];
        const f = figure(
          values.map((value) => ({ value, load1: l })),
          ctx.cores,
          "ms",
          j.times ? undefined : `median of ${j.runs} runs inside one process`,
        );
        add({ model: c.label, runtime: "PyTorch CPU", threads: t, figure: f });
      }
    }
  }

  const runtimes = [...new Set(rows.map((r) => `${r.runtime}|${r.threads}`))];
  const at = (rt: string, model: string) =>
    rows.find((x) => `${x.runtime}|${x.threads}` === rt && x.model === model);
  let md =
    `ms per window (batch 1, after a warm-up), ${ctx.runs} run(s) per figure. Cells: median (min–max, n); ` +
    `**busy** = the 1-minute load average before a run exceeded ${ctx.cores} cores. Parameters: 2D ` +
    `${models.unet2d.params.toLocaleString("en")}, 3D ${models.unet3d.params.toLocaleString("en")}.\n\n`;
  md += `| runtime | threads | ${cases.map((c) => c.label).join(" | ")} |\n|---|---|${
    cases.map(() => "---").join("|")
  }|\n`;
  for (const rt of runtimes) {
    const [name, th] = rt.split("|");
    md += `| ${name} | ${th === "0" ? "GPU" : th} | ${
      cases.map((c) => cell(at(rt, c.label)?.figure)).join(" | ")
    } |\n`;
  }
  const ratios: { model: string; threads: number; ratio: Figure; met: boolean | null }[] = [];
  for (const c of cases) {
    for (const t of threadSet) {
      const b = rows.find((r) => r.model === c.label && r.runtime === CHROMIUM_WASM && r.threads === t)
        ?.figure;
      const n = rows.find((r) => r.model === c.label && r.runtime === NATIVE && r.threads === t)?.figure;
      // per-round ratios of the interleaved pairs, so min/median/max describe the ratio itself
      const pairs = b && n ? Math.min(b.samples.length, n.samples.length) : 0;
      const samples = Array.from({ length: pairs }, (_, i) => ({
        value: b!.samples[i].value / n!.samples[i].value,
        load1: Math.max(b!.samples[i].load1 ?? 0, n!.samples[i].load1 ?? 0),
      }));
      const f = figure(samples, ctx.cores, "×");
      const r = ratio(b, n);
      ratios.push({ model: c.label, threads: t, ratio: f, met: r.value === null ? null : f.median! <= 1.5 });
    }
  }
  md += `\nTarget (reported, not asserted): browser WASM ≤ 1.5× native onnxruntime with the same threads; ` +
    `ratio per interleaved pair of calls.\n\n| model | threads | Chromium WASM / onnxruntime-node | met |\n|---|---|---|---|\n`;
  for (const x of ratios) {
    md += `| ${x.model} | ${x.threads} | ${cell(x.ratio, 2)} | ${
      x.met === null ? "–" : `${x.met ? "yes" : "no"}${x.ratio.busy ? " (busy: not a result)" : ""}`
    } |\n`;
  }
  if (adapterNote) md += `\nWebGPU: ${adapterNote}.\n`;
  return {
    data: {
      rows,
      ratios,
      chromium: chromiumVersion,
      torch: torchVersion,
      webgpu: adapterNote,
      params: { unet2d: models.unet2d.params, unet3d: models.unet3d.params },
    },
    markdown: md,
    busy: rows.some((r) => r.figure.busy),
  };
}
