/**
 * `deno task bench`: measures EdgeSeg and writes bench/results.json + bench/results.md (machine,
 * versions, git commit, one block per section). Sections run in order; `--only a,b` / `--skip a,b`
 * pick them, and a partial run keeps the other sections' previous results. Every figure is ≥ `--runs`
 * runs (default 5; `--runs 1` is a smoke run and is labelled so) with min/median/max and the 1-minute
 * load average before each run; a figure with a load average above the core count is marked busy.
 * Compared variants run interleaved (A B A B …). The framework and each section are in src/cli/bench/.
 *
 *   deno task bench                                  every section, 5 runs per figure
 *   deno task bench --only inference,pipeline,viewer
 *   deno task bench --only pipeline,viewer --runs 1  a smoke run
 *   deno task bench --readme                         README's performance table from bench/results.json
 *   deno task bench --render                         bench/results.md again from bench/results.json
 *
 * Flags: --runs N, --quick (small sizes), --threads N (pipeline: the CLI's --threads), --long-run-s S (a
 * run longer than S seconds is recorded and not repeated; default 240), --webgpu-timing (time WebGPU on
 * a software adapter), --out DIR (default bench/).
 *
 * Sections:
 *   inference  ms per window of bench U-Nets (2D 256², 512², 3D 96³): Chromium WASM vs onnxruntime-node
 *              interleaved at the same threads, Deno WASM, PyTorch CPU, WebGPU where real
 *   int8       ct-lung-infection fp32 vs its static INT8 (QDQ) variant on the pipeline's window shapes:
 *              onnxruntime-node and Chromium WASM interleaved, Deno WASM, at 1 and all threads
 *   pipeline   the shared CT with ct-lung-infection through the CLI path, native vs WASM, ROI on/off
 *   viewer     the real OHIF flow in Chromium: Run → labelmap on the shared CT, an LA MRI, a fundus
 *   synthetic  segment() on generated volumes: non-model share and peak memory (issue #3's targets)
 *   dicom      SEG and Parametric Map encode on 512×512×300
 *   load       the embedded DICOMweb store under concurrent WADO-RS/STOW-RS
 */
import { join } from "node:path";
import {
  type BenchContext,
  type BenchSection,
  chromiumVersion,
  gitCommit,
  machine,
  pkgVersion,
  PROJECT_ROOT,
} from "./bench/framework.ts";
import { readmeTable, renderMarkdown, type Results, spliceReadme } from "./bench/report.ts";

/** Every section, in run order; each is loaded only when it runs. Append yours here. */
export const SECTIONS: BenchSection[] = [
  {
    name: "inference",
    description: "ms per window per runtime and thread count; Chromium WASM vs native interleaved",
    run: async (ctx) => (await import("./bench/inference.ts")).inferenceSection(ctx),
  },
  {
    name: "int8",
    description: "ct-lung-infection fp32 vs static INT8 (QDQ): ms per window, native vs WASM, interleaved",
    run: async (ctx) => (await import("./bench/int8.ts")).int8Section(ctx),
  },
  {
    name: "pipeline",
    description: "shared CT, ct-lung-infection, CLI path: native vs WASM, with and without the ROI",
    run: async (ctx) => (await import("./bench/pipeline.ts")).pipelineSection(ctx),
  },
  {
    name: "viewer",
    description: "the OHIF flow in Chromium: Run → labelmap shown, windows, threads, provider",
    run: async (ctx) => (await import("./bench/viewer.ts")).viewerSection(ctx),
  },
  {
    name: "synthetic",
    description: "segment() on generated volumes: total, non-model share, peak memory",
    run: async (ctx) => (await import("./bench/synthetic.ts")).syntheticSection(ctx),
  },
  {
    name: "dicom",
    description: "SEG (BINARY, 5 segments) and Parametric Map encode time and memory",
    run: async (ctx) => (await import("./bench/dicom.ts")).dicomSection(ctx),
  },
  {
    name: "load",
    description: "embedded store: 100 concurrent WADO-RS frames, 20 concurrent STOWs",
    run: async (ctx) => (await import("./bench/load.ts")).loadSection(ctx),
  },
];

const VALUED = ["only", "skip", "runs", "iters", "out", "threads", "long-run-s", "viewer-cases", "settle"];

function parseArgs(argv: string[]): { values: Map<string, string>; flags: Set<string> } {
  const values = new Map<string, string>();
  const flags = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith("--")) continue;
    const key = a.slice(2);
    if (VALUED.includes(key)) values.set(key, argv[++i] ?? "");
    else flags.add(key);
  }
  return { values, flags };
}

async function writeReadme(results: Results): Promise<void> {
  const path = join(PROJECT_ROOT, "README.md");
  const readme = await Deno.readTextFile(path);
  await Deno.writeTextFile(path, spliceReadme(readme, readmeTable(results)));
  console.log(`README.md: performance table regenerated from bench/results.json`);
}

async function main(): Promise<void> {
  const { values, flags } = parseArgs(Deno.args);
  if (flags.has("help")) {
    console.log(
      "deno task bench [--runs N] [--quick] [--only a,b] [--skip a,b] [--threads N] [--long-run-s S] " +
        "[--settle S] " +
        "[--webgpu-timing] [--out DIR] | --readme | --render\nsections:",
    );
    for (const s of SECTIONS) console.log(`  ${s.name.padEnd(10)} ${s.description}`);
    return;
  }
  const outDir = values.get("out") ?? join(PROJECT_ROOT, "bench");
  const jsonPath = join(outDir, "results.json");
  if (flags.has("readme")) {
    return await writeReadme(JSON.parse(await Deno.readTextFile(jsonPath)));
  }
  if (flags.has("render")) {
    await Deno.writeTextFile(
      join(outDir, "results.md"),
      renderMarkdown(JSON.parse(await Deno.readTextFile(jsonPath)), SECTIONS),
    );
    return console.log(`rendered ${join(outDir, "results.md")} from ${jsonPath}`);
  }
  const only = values.get("only")?.split(",").filter(Boolean);
  const skip = values.get("skip")?.split(",").filter(Boolean) ?? [];
  const unknown = [...(only ?? []), ...skip].filter((n) => !SECTIONS.some((s) => s.name === n));
  if (unknown.length) {
    console.error(
      `unknown section(s): ${unknown.join(", ")}; known: ${SECTIONS.map((s) => s.name).join(", ")}`,
    );
    Deno.exit(2);
  }
  const runs = Number(values.get("runs") ?? values.get("iters") ?? "5");
  if (!Number.isInteger(runs) || runs < 1) {
    console.error(`--runs expects a whole number ≥ 1 (5 or more for a result; 1 for a smoke run)`);
    Deno.exit(2);
  }
  const settleS = Number(values.get("settle") ?? "0");
  if (!Number.isFinite(settleS) || settleS < 0) {
    console.error(`--settle expects seconds ≥ 0 (the longest wait for the load average before a run)`);
    Deno.exit(2);
  }
  const tmp = join(PROJECT_ROOT, "bench", "tmp");
  await Deno.mkdir(tmp, { recursive: true });
  const quick = flags.has("quick");
  const ctx: BenchContext = {
    root: PROJECT_ROOT,
    tmp,
    quick,
    runs,
    longRunS: Number(values.get("long-run-s") ?? "240"),
    settleS,
    cores: navigator.hardwareConcurrency,
    flags,
    values,
    log: (m) => console.log(m),
  };
  if (runs < 5) console.log(`--runs ${runs}: a smoke run; its figures are labelled as such`);
  const commit = await gitCommit();
  let previous: Partial<Results> = {};
  try {
    previous = JSON.parse(await Deno.readTextFile(jsonPath));
  } catch { /* first run */ }
  const sections = { ...(previous.sections ?? {}) };
  for (const s of SECTIONS) {
    if (only && !only.includes(s.name)) continue;
    if (skip.includes(s.name)) continue;
    console.log(`\n== ${s.name}: ${s.description}${quick ? " (quick)" : ""}, ${runs} run(s) per figure`);
    const t0 = performance.now();
    const at = new Date().toISOString();
    try {
      const r = await s.run(ctx);
      sections[s.name] = {
        data: r.data,
        markdown: r.markdown,
        at,
        quick,
        runs,
        busy: r.busy ?? false,
        commit,
      };
      console.log(r.markdown);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      console.error(`section ${s.name} failed: ${msg}`);
      sections[s.name] = { data: { error: msg }, markdown: `Failed: ${msg}\n`, at, quick, runs, commit };
    }
    console.log(`(${s.name}: ${((performance.now() - t0) / 1000).toFixed(0)} s)`);
  }
  const { OHIF_VERSION } = await import("../server/ohif.ts");
  const result: Results = {
    generatedAt: new Date().toISOString(),
    commit,
    machine: await machine(),
    versions: {
      deno: Deno.version.deno,
      v8: Deno.version.v8,
      onnxruntimeWeb: await pkgVersion("onnxruntime-web"),
      onnxruntimeNode: await pkgVersion("onnxruntime-node"),
      ohif: OHIF_VERSION,
      chromium: await chromiumVersion(),
      torch: (sections.inference?.data as { torch?: string } | undefined)?.torch ?? null,
    },
    sections,
  };
  await Deno.mkdir(outDir, { recursive: true });
  await Deno.writeTextFile(jsonPath, JSON.stringify(result, null, 2) + "\n");
  await Deno.writeTextFile(join(outDir, "results.md"), renderMarkdown(result, SECTIONS));
  console.log(`\nwrote ${jsonPath} and results.md`);
}

if (import.meta.main) await main();
