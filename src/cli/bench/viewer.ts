/**
 * Section `viewer`: the real OHIF flow in Debian Chromium, set up as the e2e tests do
 * (src/harness/edge_viewer.ts: the edge server with the series STOWed into its embedded store, the
 * study opened in the EdgeSeg mode, the model selected in the panel, Run clicked). Per case and run: the
 * time from the Run click to the panel's result (the labelmap shown), the extension's own User Timing
 * marks (edgeseg:run-start → edgeseg:run-end, extension/src/run.ts), the panel's elapsed time, and
 * windows run/planned, provider and threads from the panel's provenance data attributes. Cases: the
 * shared CT with ct-lung-infection, one LA MRI wrapped as DICOM with la-mri-3d, one DRIVE photograph
 * wrapped as DICOM with retina-vessels; each is skipped with a message when its data or Chromium is
 * absent. WASM, no uncertainty; the runs of a case follow one another in the same page.
 */
import { join } from "node:path";
import type { Page } from "playwright-core";
import { chromiumMissing } from "../chromium.ts";
import { LA_CASE, laMriCase, sharedData } from "../../harness/paths.ts";
import {
  type BenchContext,
  extraFigure,
  measureInterleaved,
  PROJECT_ROOT,
  type SectionResult,
} from "./framework.ts";
import { cell, type Figure, noFigure } from "./stats.ts";

interface ViewerCase {
  key: string;
  modelId: string;
  /** the panel's uncertainty choice (default none) and MC passes */
  uncertainty?: { method: string; passes?: number };
  /** builds the series to store and names its study */
  load: () => Promise<{ files: Uint8Array[]; studyUID: string; detail: string }>;
  /** why it cannot run here, or null */
  missing: () => string | null;
}

interface ViewerRun {
  clickToResultMs: number;
  /** edgeseg:run-end − edgeseg:run-start in the page */
  marksMs: number | null;
  /** edgeseg:preview-in-view − edgeseg:run-start: the slice in view painted (progressive display) */
  inViewMs: number | null;
  /** the panel's own elapsed time ("… · 12.3 s") */
  panelS: number | null;
  provider: string | null;
  threads: string | null;
  windowsRun: string | null;
  windowsPlanned: string | null;
}

export interface ViewerRow {
  key: string;
  detail: string;
  runToResult: Figure;
  marks: Figure;
  /** Run → the slice in view painted (the page's marks) */
  inView: Figure;
  uncertainty: string;
  windows: string | null;
  provider: string | null;
  threads: string | null;
  skipped?: string;
  error?: string;
}

const MODELS = join(PROJECT_ROOT, "models");

function cases(): ViewerCase[] {
  return [
    {
      key: "ct-lung-infection, shared CT",
      modelId: "ct-lung-infection",
      missing: () =>
        sharedData("dicom", "ct-abdomen", "raw") ? null : "../shared/data/dicom/ct-abdomen/raw is absent",
      load: async () => {
        const { parseDicom } = await import("../../dicom/dataset.ts");
        const dir = sharedData("dicom", "ct-abdomen", "raw")!;
        const names: string[] = [];
        for await (const e of Deno.readDir(dir)) if (e.isFile) names.push(e.name);
        const files = await Promise.all(names.sort().map((n) => Deno.readFile(join(dir, n))));
        const studyUID = String(parseDicom(files[0]).dataset.StudyInstanceUID);
        return { files, studyUID, detail: `${files.length} slices of 512²` };
      },
    },
    {
      key: "ct-lung-infection, shared CT, MC dropout ×4",
      modelId: "ct-lung-infection",
      uncertainty: { method: "mc", passes: 4 },
      missing: () =>
        sharedData("dicom", "ct-abdomen", "raw") ? null : "../shared/data/dicom/ct-abdomen/raw is absent",
      load: () => cases()[0].load(),
    },
    {
      key: "la-mri-3d, one LA MRI",
      modelId: "la-mri-3d",
      missing: () => laMriCase() ? null : `../shared/data/la-mri/${LA_CASE}_* is absent`,
      load: async () => {
        const { wrapNifti } = await import("../../dicom/wrap_volume.ts");
        const image = laMriCase()!.image;
        const w = await wrapNifti(await Deno.readFile(image), image, { bodyPart: "HEART" });
        return { files: w.files, studyUID: w.studyUID, detail: `case ${LA_CASE}, ${w.files.length} slices` };
      },
    },
    {
      key: "retina-vessels, one DRIVE fundus",
      modelId: "retina-vessels",
      missing: () =>
        sharedData("drive", "training", "images", "21_training.tif")
          ? null
          : "the DRIVE data set is not in ../shared/data/drive",
      load: async () => {
        const { wrapImage } = await import("../../dicom/wrap_image.ts");
        const path = sharedData("drive", "training", "images", "21_training.tif")!;
        const w = wrapImage(await Deno.readFile(path), { seriesDescription: "DRIVE 21 colour fundus" });
        return { files: [w.bytes], studyUID: w.studyUID, detail: "21_training.tif, 565×584" };
      },
    },
  ];
}

/**
 * Clicks Run and waits for the next edgeseg:run-end mark; reads what the panel then shows. "Run →
 * result" is timed inside the page, from the click to the result view in the DOM (a MutationObserver),
 * so the driver's round trips (actionability checks, polling) are not counted.
 */
async function runOnce(page: Page, timeoutMs: number): Promise<ViewerRun> {
  await page.waitForSelector("#edgeseg-run:not([disabled])", { timeout: 120000 });
  const inPage = page.evaluate(() =>
    new Promise<{ shownMs: number | null }>((resolve) => {
      const t0 = performance.now();
      const ends = performance.getEntriesByName("edgeseg:run-end").length;
      let shownMs: number | null = null;
      // the previous run's result view stays until the click re-renders the panel: count only one that
      // appears after the old one is gone
      let cleared = false;
      const seen = () => {
        const present = document.querySelector("#edgeseg-result") !== null;
        if (!cleared) cleared = !present;
        else if (shownMs === null && present) shownMs = performance.now() - t0;
      };
      const observer = new MutationObserver(seen);
      observer.observe(document.body, { childList: true, subtree: true });
      (document.querySelector("#edgeseg-run") as HTMLButtonElement).click();
      seen();
      const done = () => {
        seen();
        const end = performance.getEntriesByName("edgeseg:run-end")[ends] as PerformanceMark | undefined;
        const outcome = (end?.detail as { outcome?: string } | undefined)?.outcome;
        if (end && (shownMs !== null || outcome !== "result")) {
          observer.disconnect();
          resolve({ shownMs });
        } else setTimeout(done, 10);
      };
      done();
    })
  );
  let timer: ReturnType<typeof setTimeout> | undefined;
  const { shownMs } = await Promise.race([
    inPage,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no result within ${timeoutMs} ms`)), timeoutMs);
    }),
  ]).finally(() => clearTimeout(timer));
  const outcome = await page.evaluate(() => {
    const end = performance.getEntriesByName("edgeseg:run-end").at(-1) as PerformanceMark;
    const start = performance.getEntriesByName("edgeseg:run-start").at(-1) as PerformanceMark;
    const inView = performance.getEntriesByName("edgeseg:preview-in-view")
      .find((e) => e.startTime >= start.startTime);
    return {
      detail: end.detail as { outcome: string; message?: string },
      ms: end.startTime - start.startTime,
      inViewMs: inView ? inView.startTime - start.startTime : null,
    };
  });
  if (outcome.detail.outcome !== "result" || shownMs === null) {
    throw new Error(`run ended with ${outcome.detail.outcome}: ${outcome.detail.message ?? ""}`);
  }
  const clickToResultMs = shownMs;
  const attr = (sel: string, name: string) =>
    page.getAttribute(sel, name, { timeout: 1000 }).catch(() => null);
  const text = await page.locator("#edgeseg-provenance").innerText().catch(() => "");
  const panel = text.match(/([\d.]+) s\s*$/);
  return {
    clickToResultMs,
    marksMs: outcome.ms,
    inViewMs: outcome.inViewMs,
    panelS: panel ? Number(panel[1]) : null,
    provider: await attr("#edgeseg-provenance", "data-provider"),
    threads: await attr("#edgeseg-threads", "data-threads"),
    windowsRun: await attr("#edgeseg-roi", "data-windows-run"),
    windowsPlanned: await attr("#edgeseg-roi", "data-windows-planned"),
  };
}

async function viewerCase(ctx: BenchContext, c: ViewerCase): Promise<ViewerRow> {
  const empty = (why: string, error = false): ViewerRow => {
    const f = noFigure("s", why);
    return {
      key: c.key,
      detail: "",
      runToResult: f,
      marks: f,
      inView: f,
      uncertainty: "",
      windows: null,
      provider: null,
      threads: null,
      ...(error ? { error: why } : { skipped: why }),
    };
  };
  const why = c.missing();
  if (why) {
    ctx.log(`  ${c.key}: skipped: ${why}`);
    return empty(why);
  }
  const { openStudy, selectModel, withEdgeViewer } = await import("../../harness/edge_viewer.ts");
  const series = await c.load();
  let row: ViewerRow | undefined;
  try {
    await withEdgeViewer(
      {
        name: `bench-${c.modelId}`,
        failureShot: `bench-${c.modelId}-failure`,
        modelsDir: MODELS,
        store: [series.files],
      },
      async ({ edge, page }) => {
        await openStudy(page, edge, series.studyUID);
        await page.waitForSelector(`#edgeseg-models [data-model-id="${c.modelId}"]`, { timeout: 60000 });
        await selectModel(page, c.modelId);
        await page.selectOption("#edgeseg-uncertainty", c.uncertainty?.method ?? "none");
        if (c.uncertainty?.passes) await page.fill("#edgeseg-passes", String(c.uncertainty.passes));
        await page.selectOption("#edgeseg-device", "wasm");
        const [m] = await measureInterleaved<ViewerRun>(ctx, [{
          key: c.key,
          unit: "s",
          run: async () => {
            const r = await runOnce(page, 30 * 60 * 1000);
            return { value: r.clickToResultMs / 1000, extra: r };
          },
        }]);
        const first = m.extras[0];
        row = {
          key: c.key,
          detail: series.detail,
          runToResult: m.figure,
          marks: extraFigure(ctx, m, (x) => (x.marksMs ?? NaN) / 1000, "s"),
          inView: extraFigure(ctx, m, (x) => (x.inViewMs ?? NaN) / 1000, "s"),
          uncertainty: c.uncertainty ? `${c.uncertainty.method} ×${c.uncertainty.passes ?? ""}` : "none",
          windows: first?.windowsRun ? `${first.windowsRun} / ${first.windowsPlanned}` : null,
          provider: first?.provider ?? null,
          threads: first?.threads ?? null,
          ...(m.errors.length ? { error: m.errors[0] } : {}),
        };
      },
    );
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    ctx.log(`  ${c.key}: failed: ${msg.slice(0, 400)}`);
    return empty(msg.slice(0, 400), true);
  }
  return row!;
}

export async function viewerSection(ctx: BenchContext): Promise<SectionResult> {
  const noChromium = chromiumMissing();
  if (noChromium) {
    ctx.log(`  skipped: ${noChromium}`);
    return { data: { skipped: noChromium }, markdown: `Skipped: ${noChromium}.\n` };
  }
  const want = ctx.values.get("viewer-cases")?.split(",");
  const rows: ViewerRow[] = [];
  for (const c of cases()) {
    if (want && !want.some((w) => c.modelId.startsWith(w) || c.key.includes(w))) continue;
    rows.push(await viewerCase(ctx, c));
  }
  let md = `OHIF in Debian Chromium (headless, cross-origin isolated), WASM, uncertainty as the case says; ` +
    `${ctx.runs} run(s) per case, one after another in the same page. "Run → result" = Run click to the ` +
    `panel's result (the labelmap shown), timed in the page; "marks" = the extension's edgeseg:run-start → ` +
    `edgeseg:run-end; "slice in view" = edgeseg:run-start → edgeseg:preview-in-view, the slice the viewport ` +
    `shows painted by the progressive display (slice-wise models; "–" for a 3D model or a single image, which ` +
    `are decided in one piece). Cells: median (min–max, n); **busy** = 1-minute load average above ` +
    `${ctx.cores} before a run.\n\n` +
    `| case | input | Run → result s | marks s | slice in view s | windows run / planned | provider | threads |\n` +
    `|---|---|---|---|---|---|---|---:|\n`;
  for (const r of rows) {
    if (r.skipped || (r.error && !r.runToResult.runs)) {
      md += `| ${r.key} | ${
        r.skipped ? `skipped: ${r.skipped}` : `failed: ${r.error!.split("\n")[0].slice(0, 160)}`
      } |||||||\n`;
      continue;
    }
    md +=
      `| ${r.key} | ${r.detail} | ${cell(r.runToResult)} | ${cell(r.marks).split(" ")[0]} | ${
        r.inView.runs ? cell(r.inView).split(" ")[0] : "–"
      } | ${r.windows ?? "–"} | ` +
      `${r.provider ?? "–"} | ${r.threads ?? "–"} |\n`;
  }
  return { data: { rows }, markdown: md, busy: rows.some((r) => r.runToResult.busy) };
}
