/**
 * Issue #5 §6a on the real CT (../shared/data/dicom/ct-abdomen/raw, 134 slices of 512²) in a private
 * Orthanc behind the proxying edge server, in two tests that share one workflow:
 *
 * 1. the shipped `ct-lung-infection` package with MC dropout (2 passes) on WASM, on a contiguous
 *    block of DEFAULT_BLOCK slices from BLOCK_START (the chest: the series runs head to feet and its
 *    upper slices hold the lungs the package is made for; the block holds the one slice where the
 *    package marks anything). EDGESEG_CT_SLICES=n runs n slices from there instead and
 *    EDGESEG_CT_SLICES=all the whole series;
 * 2. the whole series with the fast test model `tiny-2d` (tests/fixtures/models) and MC dropout
 *    (2 passes), about 3 min: the scale test of Store to PACS, whose Parametric Map is ~140 MB of
 *    float32. It prints the store time and the sizes of the stored objects.
 *
 * Each runs: the labelmap OHIF shows equals the headless segment() result with the same options
 * and seed → the uncertainty layer is shown → Store to PACS (our STOW with a Blob body: the PM
 * never crosses the DevTools pipe) → Orthanc holds one SEG and one float32 PM with a frame per slice
 * that reference the CT series, pass dciodvfy, and hold the run's labels and uncertainty → reload →
 * the stored SEG, loaded by OHIF's own SEG support, lands on the same slices and voxels.
 *
 * The headless side runs on sampled slices only (the slices where the browser drew most, plus the
 * first, middle and last): slice2d windows never span slices and every slice sees the same dropout
 * masks (drawn once per pass from the seed), so slice k of a one-slice run equals slice k of the
 * whole run. A region of interest is 3D (component volumes, a margin across slices), so the
 * one-slice runs go without it and the whole block's region is applied to them afterwards: inside
 * the region a run equals a run without it, outside everything is background and uncertainty 0.
 * Every wait is on page state; screenshots go to artifacts/e2e/ (ct-<case>-*).
 */
import assert from "node:assert/strict";
import { basename, join } from "node:path";
import type { Page } from "playwright-core";
import { buildExtension } from "../../extension/build.ts";
import type { SegmentationResult, SourceInstanceRef, Volume } from "../../src/core/types.ts";
import { parseDicom } from "../../src/dicom/dataset.ts";
import { readSeries } from "../../src/dicom/read.ts";
import { readParametricMap, readSegmentation } from "../../src/dicom/segread.ts";
import { DicomWebClient } from "../../src/dicom/web.ts";
import { loadModel } from "../../src/inference/deno.ts";
import { computeRoi } from "../../src/segmentation/roi.ts";
import { segment } from "../../src/segmentation/segment.ts";
import { ensureOhif, type RunningServer, startServer } from "../../src/server/mod.ts";
import { dciodvfy } from "../dicom/tools.ts";
import { missingAmong } from "../helpers/tools.ts";
import { launchBrowser, screenshot, waitForCanvasContent } from "../../src/harness/browser.ts";
import { chromiumMissing } from "../helpers/browser.ts";
import { orthancMissing, startOrthanc } from "../helpers/orthanc.ts";
import { artifactsDir } from "../../src/harness/paths.ts";
import { ctAbdomenDir, listFiles, PROJECT_ROOT } from "../helpers/paths.ts";
import { digestSlice, type SliceDigest, viewerDigest } from "../helpers/viewer.ts";

/** The panel's options; the headless run uses the same (and, like the worker, the default seed). */
const OPTIONS = { uncertainty: "mc", passes: 2 } as const;
/** Float32 PM values against the headless map: equal up to float32 rounding. */
const PM_TOLERANCE = 1e-6;
/** Slices of the shipped-model test unless EDGESEG_CT_SLICES says otherwise. */
const DEFAULT_BLOCK = 16;
/**
 * Where the block starts (0-based, head first): slices 24–39, mid-chest. The series has no infection and
 * ct-lung-infection 1.4.0 marks 1.4 mL on all of it, on one slice (index 31, z 391.9); on the top 16 slices
 * it marks nothing, which would leave the SEG reload check nothing to compare.
 */
const BLOCK_START = 24;
const PARAMETRIC_MAP = "1.2.840.10008.5.1.4.1.1.30";

/** One run of the workflow: which package, from where, on which slices, and how long a slice may take. */
interface CtCase {
  /** names the screenshots (ct-<name>-*) and the artifact folder */
  name: string;
  modelsDir: string;
  modelId: string;
  files: string[];
  /** upper bound for one slice and one pass in the browser on two shared cores */
  sliceBudgetMs: number;
}

/** The CT series and what the headless reader makes of it. */
interface Series {
  files: string[];
  volume: Volume;
  refs: SourceInstanceRef[];
  /** SOP Instance UIDs in slice order */
  order: string[];
  fileOf: Map<string, string>;
}

/** The servers and page of one run, and the UIDs the checks need. */
interface Session {
  page: Page;
  client: DicomWebClient;
  studyUID: string;
  ctSeriesUID: string;
}

const skipReason = chromiumMissing() ?? orthancMissing() ?? missingAmong(["dciodvfy"]) ??
  (ctAbdomenDir() ? null : "../shared/data/dicom/ct-abdomen/raw is absent");
if (skipReason) console.log(`e2e real-CT workflow tests skipped: ${skipReason}`);

/** DEFAULT_BLOCK slices from BLOCK_START, EDGESEG_CT_SLICES=n from there, or =all (files are in slice order, head first). */
function selectSlices(files: string[]): string[] {
  const raw = Deno.env.get("EDGESEG_CT_SLICES") || String(DEFAULT_BLOCK);
  if (raw === "all") return files;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > files.length - BLOCK_START) {
    throw new Error(
      `EDGESEG_CT_SLICES: expected "all" or an integer from 1 to ${
        files.length - BLOCK_START
      }, found "${raw}"`,
    );
  }
  return files.slice(BLOCK_START, BLOCK_START + n);
}

async function readCtSeries(files: string[]): Promise<Series> {
  const bytes = await Promise.all(files.map((f) => Deno.readFile(f)));
  const { volume } = await readSeries(bytes);
  const refs = volume.source!.instances;
  const fileOf = new Map(bytes.map((b, i) => [String(parseDicom(b).dataset.SOPInstanceUID), files[i]]));
  return { files, volume, refs, order: refs.map((r) => r.sopInstanceUID), fileOf };
}

/** Slices to check headless: the `busiest` with most labelled voxels in the browser, first, middle, last. */
function sampleSlices(order: string[], shown: SliceDigest, busiest = 4): string[] {
  const byVoxels = [...order].sort((a, b) => shown[b].voxels - shown[a].voxels).slice(0, busiest);
  const fixed = [order[0], order[Math.floor(order.length / 2)], order[order.length - 1]];
  return [...new Set([...byVoxels, ...fixed])];
}

/**
 * Headless segment() of single slices with the panel's options: SOP Instance UID → its result. With a
 * region of interest in the manifest, each slice runs without it and the region of the whole block
 * (`series.volume`, as the viewer ran it) then clears labels and uncertainty outside it. A model that
 * crops its windows to the region's box (`spatial.cropToRoi`) sees the box of the whole block, so the
 * block runs headless once, as the viewer ran it (a handful of windows), and its slices are returned.
 */
async function headlessSlices(
  c: CtCase,
  series: Series,
  sops: string[],
): Promise<Map<string, SegmentationResult>> {
  const { runtime } = await loadModel(join(c.modelsDir, c.modelId), { providers: ["wasm"] });
  const spec = runtime.manifest.roi;
  const g = series.volume.geometry;
  if (spec && runtime.manifest.spatial.cropToRoi) {
    const whole = await segment(series.volume, runtime, OPTIONS);
    const size = g.dims[0] * g.dims[1];
    return new Map(sops.map((sop) => {
      const k = series.order.indexOf(sop);
      const slice = <T extends { data: Uint8Array | Uint16Array | Float32Array }>(m: T): T => ({
        ...m,
        data: m.data.subarray(k * size, (k + 1) * size),
      });
      return [sop, {
        ...whole,
        labelmap: slice(whole.labelmap),
        uncertainty: whole.uncertainty && slice(whole.uncertainty),
      }];
    }));
  }
  const region = spec ? computeRoi(series.volume.data, g.dims, g.spacing, spec).mask : undefined;
  const size = g.dims[0] * g.dims[1];
  const out = new Map<string, SegmentationResult>();
  for (const sop of sops) {
    const { volume } = await readSeries([await Deno.readFile(series.fileOf.get(sop)!)]);
    assert.equal(volume.source?.instances[0]?.sopInstanceUID, sop, "the one-slice volume is that instance");
    const r = await segment(volume, runtime, { ...OPTIONS, roi: false });
    if (region) {
      const from = series.order.indexOf(sop) * size;
      for (let p = 0; p < size; p++) {
        if (region[from + p]) continue;
        r.labelmap.data[p] = 0;
        if (r.uncertainty) r.uncertainty.data[p] = 0;
      }
    }
    out.set(sop, r);
  }
  return out;
}

/** ReferencedSeriesSequence[0].SeriesInstanceUID of a stored object. */
function referencedSeries(bytes: Uint8Array): string | undefined {
  const seq = parseDicom(bytes).dataset.ReferencedSeriesSequence;
  const first = (Array.isArray(seq) ? seq[0] : seq) as { SeriesInstanceUID?: unknown } | undefined;
  return typeof first?.SeriesInstanceUID === "string" ? first.SeriesInstanceUID : undefined;
}

function value(attr: unknown): string {
  return String((attr as { Value: unknown[] }).Value[0]);
}

function seconds(ms: number): string {
  return (ms / 1000).toFixed(1);
}

function mib(bytes: number): string {
  return (bytes / 1048576).toFixed(1);
}

/** Selects the package and the panel's options, runs it on WASM and waits for the result. */
async function runInPanel(page: Page, c: CtCase, series: Series): Promise<void> {
  const item = page.locator(`#edgeseg-models [data-model-id="${c.modelId}"]`);
  await item.waitFor({ timeout: 60000 });
  // Neither package names a body part this CHEST series contradicts, so no mismatch is shown.
  assert.equal(
    await item.locator("[data-mismatch]").count(),
    0,
    `no mismatch shown: ${await item.innerText()}`,
  );
  await item.click();
  await page.waitForSelector(`[data-model-id="${c.modelId}"][data-selected="true"]`);
  await page.selectOption("#edgeseg-uncertainty", OPTIONS.uncertainty);
  await page.fill("#edgeseg-passes", String(OPTIONS.passes));
  await page.selectOption("#edgeseg-device", "wasm");
  assert.equal(await page.inputValue("#edgeseg-passes"), String(OPTIONS.passes));
  assert.ok(await page.isEnabled("#edgeseg-run"), "the run button is enabled");
  await screenshot(page, `ct-${c.name}-1-ready`);
  const started = performance.now();
  await page.click("#edgeseg-run");
  await page.waitForSelector("#edgeseg-progress", { timeout: 60000 });
  await page.waitForFunction(
    () => /Window \d+ of \d+/.test(document.querySelector("#edgeseg-progress")?.textContent ?? ""),
    undefined,
    { timeout: 300000, polling: 1000 },
  );
  await screenshot(page, `ct-${c.name}-2-running`);
  await page.waitForSelector("#edgeseg-result, #edgeseg-error", {
    timeout: 300000 + c.files.length * OPTIONS.passes * c.sliceBudgetMs,
  });
  const browserMs = performance.now() - started;
  await screenshot(page, `ct-${c.name}-3-result`);
  assert.equal(
    await page.locator("#edgeseg-error").count(),
    0,
    await page.locator("#edgeseg-error").innerText().catch(() => ""),
  );
  const [columns, rows] = series.volume.geometry.dims;
  console.log(
    `real CT, ${c.modelId}, MC dropout ×${OPTIONS.passes}, WASM in Chromium: ${c.files.length} slices ` +
      `of ${columns}×${rows} in ${seconds(browserMs)} s (Run click → result shown)`,
  );
  await checkPreview(page, c);
}

/**
 * The progressive display: the slab holding the slice in view was painted first, then every other
 * slab once, all before the run ended; then the preview made way for the result (one EdgeSeg labelmap).
 */
async function checkPreview(page: Page, c: CtCase): Promise<void> {
  const p = await page.evaluate(() => {
    const last = (n: string) => performance.getEntriesByName(n).at(-1) as PerformanceMark;
    const start = last("edgeseg:run-start").startTime;
    const g = globalThis as unknown as {
      services: { segmentationService: { getSegmentations(): { label?: string }[] } };
    };
    return {
      slabs: performance.getEntriesByName("edgeseg:preview-slices")
        .filter((e) => e.startTime >= start)
        .map((e) => ({
          ms: e.startTime - start,
          ...((e as PerformanceMark).detail as { z0: number; z1: number; focus: number | null }),
        })),
      endMs: last("edgeseg:run-end").startTime - start,
      labels: g.services.segmentationService.getSegmentations().map((s) => s.label ?? ""),
    };
  });
  assert.ok(p.slabs.length > 0, "slabs were painted while the run went on");
  const focus = p.slabs[0].focus;
  assert.ok(focus !== null, "the slice in view was known");
  assert.ok(p.slabs[0].z0 <= focus && focus < p.slabs[0].z1, `the first slab holds slice ${focus}`);
  const covered = new Array(c.files.length).fill(0);
  for (const s of p.slabs) for (let z = s.z0; z < s.z1; z++) covered[z]++;
  assert.ok(covered.every((n) => n === 1), `every slice painted once: ${covered.join("")}`);
  assert.ok(p.slabs.every((s) => s.ms <= p.endMs), "all painted before the run ended");
  assert.ok(!p.labels.some((l) => l.endsWith("(preview)")), `the preview is gone: ${p.labels.join(", ")}`);
  console.log(
    `slice ${focus} (in view) painted ${seconds(p.slabs[0].ms)} s after Run; ${p.slabs.length} slabs, ` +
      `result at ${seconds(p.endMs)} s`,
  );
}

/** OHIF's labelmap equals headless segment() on sampled slices, bit for bit; returns the headless results. */
async function checkAgainstHeadless(
  c: CtCase,
  series: Series,
  shown: SliceDigest,
): Promise<Map<string, SegmentationResult>> {
  assert.equal(Object.keys(shown).length, c.files.length, "one labelmap slice per CT slice");
  const sample = sampleSlices(series.order, shown);
  const t0 = performance.now();
  const headless = await headlessSlices(c, series, sample);
  console.log(`headless segment() of ${sample.length} sampled slices: ${seconds(performance.now() - t0)} s`);
  const size = series.volume.geometry.dims[0] * series.volume.geometry.dims[1];
  for (const sop of sample) {
    const r = headless.get(sop)!;
    assert.equal(r.provenance.seed, 0, "headless uses the worker's default seed");
    assert.deepEqual(shown[sop], digestSlice(r.labelmap.data, 0, size), `slice ${sop}: OHIF = headless`);
  }
  console.log(
    `sampled slices (labelled voxels in the browser): ${sample.map((s) => shown[s].voxels).join(", ")}`,
  );
  return headless;
}

/** Clicks Store to PACS and waits for the panel to say the SEG and the PM are stored. */
async function storeToPacs(page: Page, c: CtCase): Promise<void> {
  await page.click("#edgeseg-store");
  const status = page.locator(
    "#edgeseg-export-status[data-state=stored], #edgeseg-export-status[data-state=error]",
  );
  const started = performance.now();
  await status.waitFor({ timeout: 600000 });
  console.log(
    `Store to PACS (SEG + PM, ${c.files.length} slices): ${seconds(performance.now() - started)} s`,
  );
  await screenshot(page, `ct-${c.name}-5-stored`);
  assert.equal(await status.getAttribute("data-state"), "stored", await status.innerText());
  assert.match(await status.innerText(), /^Stored SEG and PM to the PACS/);
}

/** The stored PM: float32, a frame per slice, the CT series referenced, values = headless uncertainty. */
async function checkParametricMap(
  stored: Uint8Array,
  s: Session,
  series: Series,
  headless: Map<string, SegmentationResult>,
): Promise<void> {
  const { dataset } = parseDicom(stored);
  assert.ok(dataset.FloatPixelData !== undefined, "the PM holds Float Pixel Data");
  assert.equal(dataset.BitsAllocated, 32, "the PM is float32");
  const pm = await readParametricMap(stored, { geometry: series.volume.geometry, refs: series.refs });
  assert.equal(pm.frames.length, series.files.length, "the PM has a frame per CT slice");
  assert.equal(referencedSeries(stored), s.ctSeriesUID, "the PM references the CT series");
  const size = series.volume.geometry.dims[0] * series.volume.geometry.dims[1];
  for (const [sop, r] of headless) {
    const k = series.order.indexOf(sop);
    const want = r.uncertainty!.data;
    const got = pm.data!.subarray(k * size, (k + 1) * size);
    let worst = 0;
    for (let p = 0; p < size; p++) worst = Math.max(worst, Math.abs(got[p] - want[p]));
    assert.ok(
      worst <= PM_TOLERANCE,
      `slice ${sop}: PM − headless uncertainty ≤ ${PM_TOLERANCE}, was ${worst}`,
    );
  }
}

/** Orthanc holds one SEG and one PM that reference the CT series and pass dciodvfy; returns the SEG's series. */
async function checkStored(
  c: CtCase,
  s: Session,
  series: Series,
  headless: Map<string, SegmentationResult>,
): Promise<string> {
  const outDir = artifactsDir("e2e", `ct-${c.name}-stored`);
  await Deno.mkdir(outDir, { recursive: true });
  let segSeriesUID = "";
  const kinds: string[] = [];
  for (const found of await s.client.searchForSeries(s.studyUID)) {
    const seriesUID = value(found["0020000E"]);
    if (seriesUID === s.ctSeriesUID) continue;
    const [inst] = await s.client.searchForInstances(s.studyUID, seriesUID);
    const stored = await s.client.retrieveInstance(s.studyUID, seriesUID, value(inst["00080018"]));
    const isPm = value(inst["00080016"]) === PARAMETRIC_MAP;
    const path = join(outDir, isPm ? "pm.dcm" : "seg.dcm");
    await Deno.writeFile(path, stored);
    if (isPm) {
      await checkParametricMap(stored, s, series, headless);
      kinds.push("PM");
    } else {
      const seg = await readSegmentation(stored);
      assert.equal(seg.referencedSeriesUID, s.ctSeriesUID, "the SEG references the CT series");
      segSeriesUID = seriesUID;
      kinds.push("SEG");
    }
    console.log(`${basename(path)}: ${mib(stored.byteLength)} MiB (${stored.byteLength} bytes)`);
    assert.deepEqual(dciodvfy(path).errors, [], `${path} passes dciodvfy`);
  }
  assert.deepEqual(kinds.sort(), ["PM", "SEG"], "one SEG and one PM stored");
  return segSeriesUID;
}

/** Reloads the viewer and loads the stored SEG with OHIF's own SEG support; returns its digest. */
async function reloadStoredSeg(page: Page, segSeriesUID: string): Promise<SliceDigest> {
  await page.reload();
  await waitForCanvasContent(page);
  const segId = await page.waitForFunction(
    async (uid: string) => {
      type DS = { SeriesInstanceUID: string; displaySetInstanceUID: string; isLoaded?: boolean };
      const g = globalThis as unknown as {
        services: {
          displaySetService: { getActiveDisplaySets(): DS[] };
          segmentationService: {
            createSegmentationForSEGDisplaySet(ds: DS): Promise<string>;
            addSegmentationRepresentation(vp: string, o: { segmentationId: string }): Promise<void>;
          };
          viewportGridService: { getActiveViewportId(): string };
        };
      };
      const ds = g.services.displaySetService.getActiveDisplaySets().find((d) => d.SeriesInstanceUID === uid);
      if (!ds) return null;
      const seg = ds as DS & { load?(o: { headers: Record<string, string> }): Promise<void> };
      if (!seg.isLoaded) await seg.load?.({ headers: {} });
      const id = await g.services.segmentationService.createSegmentationForSEGDisplaySet(ds);
      await g.services.segmentationService.addSegmentationRepresentation(
        g.services.viewportGridService.getActiveViewportId(),
        { segmentationId: id },
      );
      return id;
    },
    segSeriesUID,
    { timeout: 90000, polling: 1000 },
  );
  return viewerDigest(page, String(await segId.jsonValue()));
}

/** The steps in the page, once the viewer shows the study. */
async function workflow(c: CtCase, s: Session, series: Series): Promise<void> {
  const { page } = s;
  await runInPanel(page, c, series);
  const heatmapId = await page.getAttribute("#edgeseg-heatmap", "data-segmentation-id");
  assert.ok(heatmapId, "the uncertainty layer has a segmentation in the viewer");
  await screenshot(page, `ct-${c.name}-4-uncertainty`);

  const shown = await viewerDigest(page);
  const drawn = Object.values(shown).filter((d) => d.voxels > 0).length;
  assert.ok(drawn > 0, "the run labels voxels on at least one slice, so the reload check compares something");
  const headless = await checkAgainstHeadless(c, series, shown);
  await storeToPacs(page, c);
  const segSeriesUID = await checkStored(c, s, series, headless);

  const reloaded = await reloadStoredSeg(page, segSeriesUID);
  await screenshot(page, `ct-${c.name}-6-reloaded-seg`);
  // Slices without any voxel may be absent from a SEG; compare where the run drew something.
  for (const [sop, d] of Object.entries(shown)) {
    if (d.voxels === 0) continue;
    assert.deepEqual(reloaded[sop], d, `slice ${sop}: the reloaded SEG has the run's voxels`);
  }
  console.log(`reloaded SEG = the run on all ${drawn} slices with labelled voxels`);
}

/** Orthanc with the slices, the edge server proxying it, Chromium on the study; runs the workflow. */
async function runCase(c: CtCase): Promise<void> {
  const series = await readCtSeries(c.files);
  const ohifDist = await ensureOhif();
  await buildExtension();
  const dataDir = await Deno.makeTempDir({ prefix: `edgeseg-e2e-ct-${c.name}-` });
  const logs: string[] = [];
  const pacs = await startOrthanc();
  let edge: RunningServer | undefined;
  let browser: Awaited<ReturnType<typeof launchBrowser>> | undefined;
  try {
    assert.equal(await pacs.upload(c.files), c.files.length, "Orthanc accepted every CT slice");
    edge = await startServer({
      port: 0,
      dataDir,
      ohifDist,
      modelsDir: c.modelsDir,
      pacsUrl: pacs.dicomWebUrl,
      seed: false,
      log: (l) => logs.push(l),
    });
    const client = new DicomWebClient({ baseUrl: new URL("/dicom-web", edge.url).href });
    const [study] = await client.searchForStudies();
    const studyUID = value(study["0020000D"]);
    const [ctSeries] = await client.searchForSeries(studyUID);
    browser = await launchBrowser({ webgpu: false });
    const page = browser.page;
    try {
      await page.goto(new URL(`/edgeseg?StudyInstanceUIDs=${encodeURIComponent(studyUID)}`, edge.url).href);
      await waitForCanvasContent(page);
      await workflow(c, { page, client, studyUID, ctSeriesUID: value(ctSeries["0020000E"]) }, series);
    } catch (err) {
      await screenshot(page, `ct-${c.name}-failure`).catch(() => {});
      const errors = browser.errors.slice(-8).join("\n  ");
      throw new Error(
        `${err instanceof Error ? err.message : err}${errors ? `\nbrowser errors:\n  ${errors}` : ""}${
          logs.length ? `\nserver log:\n  ${logs.slice(-8).join("\n  ")}` : ""
        }`,
        { cause: err },
      );
    }
  } finally {
    await browser?.close();
    await edge?.close();
    await pacs.stop();
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
}

Deno.test({
  name:
    "on a block of the real CT from Orthanc the shipped CT model with MC dropout equals headless, stores a SEG and a PM with the run's values, and the SEG reloads at the same voxels",
  ignore: skipReason !== null,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await runCase({
      name: "shipped",
      modelsDir: join(PROJECT_ROOT, "models"),
      modelId: "ct-lung-infection",
      files: selectSlices(await listFiles(ctAbdomenDir()!)),
      // A few seconds per 256² window, 9 windows per 512² slice.
      sliceBudgetMs: 9 * 3000,
    });
  },
});

Deno.test({
  name:
    "on the whole real CT series from Orthanc the tiny model with MC dropout equals headless, stores a SEG and a float32 PM (a frame per slice) with the run's values, and the SEG reloads at the same voxels",
  ignore: skipReason !== null,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await runCase({
      name: "whole",
      modelsDir: join(PROJECT_ROOT, "tests", "fixtures", "models"),
      modelId: "tiny-2d",
      files: await listFiles(ctAbdomenDir()!),
      sliceBudgetMs: 10000,
    });
  },
});
