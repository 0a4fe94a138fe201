/**
 * Issue #5 §6a on the real CT (../shared/data/dicom/ct-abdomen/raw) in a private Orthanc behind the
 * proxying edge server, with the shipped `ct-lung-infection` package and MC dropout (2 passes) on
 * WASM: the labelmap OHIF shows equals the headless segment() result with the same options and seed
 * → the uncertainty layer is shown → Store to PACS (our STOW with a Blob body: the ~140 MB Parametric
 * Map of the whole series never crosses the DevTools pipe) → Orthanc holds a SEG and a PM that
 * reference the CT series, pass dciodvfy, and hold the run's labels and uncertainty → reload → the
 * stored SEG, loaded by OHIF's own SEG support, lands on the same slices and voxels.
 *
 * The headless side runs on sampled slices only (the slices where the browser drew most, plus the
 * first, middle and last): slice2d windows never span slices and every slice sees the same dropout
 * masks (drawn once per pass from the seed), so slice k of a one-slice run equals slice k of the
 * whole run; the whole series headless would double a run of about half an hour.
 *
 * EDGESEG_CT_SLICES=n uploads only n contiguous slices from the middle of the series (a quick
 * check of the workflow; the default, the whole series, is the §6a test).
 * Every wait is on page state; screenshots go to artifacts/e2e/ (ct-*).
 */
import assert from "node:assert/strict";
import { basename, join } from "node:path";
import { buildExtension } from "../../extension/build.ts";
import type { SegmentationResult } from "../../src/core/types.ts";
import { parseDicom } from "../../src/dicom/dataset.ts";
import { readSeries } from "../../src/dicom/read.ts";
import { readParametricMap, readSegmentation } from "../../src/dicom/segread.ts";
import { DicomWebClient } from "../../src/dicom/web.ts";
import { loadModel } from "../../src/inference/deno.ts";
import { segment } from "../../src/segmentation/segment.ts";
import { ensureOhif, type RunningServer, startServer } from "../../src/server/mod.ts";
import { dciodvfy, hasDciodvfy } from "../dicom/tools.ts";
import { chromiumMissing, launchBrowser, screenshot, waitForCanvasContent } from "../helpers/browser.ts";
import { orthancMissing, startOrthanc } from "../helpers/orthanc.ts";
import { artifactsDir, ctAbdomenDir, listFiles, PROJECT_ROOT } from "../helpers/paths.ts";
import { digestSlice, type SliceDigest, viewerDigest } from "../helpers/viewer.ts";

/** The shipped packages, as `deno task start` serves them. */
const MODELS_DIR = join(PROJECT_ROOT, "models");
const MODEL_ID = "ct-lung-infection";
/** What the panel is set to; the headless run uses the same (and, like the worker, the default seed). */
const OPTIONS = { uncertainty: "mc", passes: 2 } as const;
/** Float32 PM values against the headless map: equal up to float32 rounding. */
const PM_TOLERANCE = 1e-6;

const skipReason = chromiumMissing() ?? orthancMissing() ??
  (ctAbdomenDir() ? null : "../shared/data/dicom/ct-abdomen/raw is absent");
if (skipReason) console.log(`e2e real-CT workflow test skipped: ${skipReason}`);

/** The whole series, or EDGESEG_CT_SLICES contiguous slices from its middle (files in slice order). */
function selectSlices(files: string[]): string[] {
  const raw = Deno.env.get("EDGESEG_CT_SLICES");
  if (raw === undefined || raw === "") return files;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > files.length) {
    throw new Error(`EDGESEG_CT_SLICES: expected an integer from 1 to ${files.length}, found "${raw}"`);
  }
  const start = Math.floor((files.length - n) / 2);
  return files.slice(start, start + n);
}

/** Slices to check headless: the `busiest` with most labelled voxels in the browser, first, middle, last. */
function sampleSlices(order: string[], shown: SliceDigest, busiest = 4): string[] {
  const byVoxels = [...order].sort((a, b) => shown[b].voxels - shown[a].voxels).slice(0, busiest);
  const fixed = [order[0], order[Math.floor(order.length / 2)], order[order.length - 1]];
  return [...new Set([...byVoxels, ...fixed])];
}

/** Headless segment() of single slices with the panel's options: SOP Instance UID → its result. */
async function headlessSlices(
  files: Map<string, string>,
  sops: string[],
): Promise<Map<string, SegmentationResult>> {
  const { runtime } = await loadModel(join(MODELS_DIR, MODEL_ID), { providers: ["wasm"] });
  const out = new Map<string, SegmentationResult>();
  for (const sop of sops) {
    const { volume } = await readSeries([await Deno.readFile(files.get(sop)!)]);
    assert.equal(volume.source?.instances[0]?.sopInstanceUID, sop, "the one-slice volume is that instance");
    out.set(sop, await segment(volume, runtime, { ...OPTIONS }));
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

Deno.test({
  name:
    "on the real CT from Orthanc the shipped CT model with MC dropout equals headless, stores a SEG and a PM with the run's values, and the SEG reloads at the same voxels",
  ignore: skipReason !== null,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const files = selectSlices(await listFiles(ctAbdomenDir()!));
    // The series as the headless reader sees it: slice order, geometry, SOP Instance UIDs.
    const bytes = await Promise.all(files.map((f) => Deno.readFile(f)));
    const { volume } = await readSeries(bytes);
    const refs = volume.source!.instances;
    const fileOf = new Map(bytes.map((b, i) => [String(parseDicom(b).dataset.SOPInstanceUID), files[i]]));
    const ohifDist = await ensureOhif();
    await buildExtension();
    const dataDir = await Deno.makeTempDir({ prefix: "edgeseg-e2e-ct-" });
    const logs: string[] = [];
    const pacs = await startOrthanc();
    let edge: RunningServer | undefined;
    let browser: Awaited<ReturnType<typeof launchBrowser>> | undefined;
    try {
      assert.equal(await pacs.upload(files), files.length, "Orthanc accepted every CT slice");
      edge = await startServer({
        port: 0,
        dataDir,
        ohifDist,
        modelsDir: MODELS_DIR,
        pacsUrl: pacs.dicomWebUrl,
        seed: false,
        log: (l) => logs.push(l),
      });
      const client = new DicomWebClient({ baseUrl: new URL("/dicom-web", edge.url).href });
      const [study] = await client.searchForStudies();
      const studyUID = value(study["0020000D"]);
      const [ctSeries] = await client.searchForSeries(studyUID);
      const ctSeriesUID = value(ctSeries["0020000E"]);

      browser = await launchBrowser({ webgpu: false });
      const page = browser.page;
      try {
        await page.goto(new URL(`/edgeseg?StudyInstanceUIDs=${encodeURIComponent(studyUID)}`, edge.url).href);
        await waitForCanvasContent(page);
        const item = page.locator(`#edgeseg-models [data-model-id="${MODEL_ID}"]`);
        await item.waitFor({ timeout: 60000 });
        // The package is made for CHEST/LUNG; this series says BodyPartExamined CHEST, so no mismatch.
        assert.equal(
          await item.locator("[data-mismatch]").count(),
          0,
          `no mismatch shown: ${await item.innerText()}`,
        );
        await item.click();
        await page.waitForSelector(`[data-model-id="${MODEL_ID}"][data-selected="true"]`);
        await page.selectOption("#edgeseg-uncertainty", OPTIONS.uncertainty);
        await page.fill("#edgeseg-passes", String(OPTIONS.passes));
        await page.selectOption("#edgeseg-device", "wasm");
        assert.equal(await page.inputValue("#edgeseg-passes"), String(OPTIONS.passes));
        assert.ok(await page.isEnabled("#edgeseg-run"), "the run button is enabled");
        await screenshot(page, "ct-1-ready");
        const started = performance.now();
        await page.click("#edgeseg-run");
        await page.waitForSelector("#edgeseg-progress", { timeout: 60000 });
        await page.waitForFunction(
          () => /Window \d+ of \d+/.test(document.querySelector("#edgeseg-progress")?.textContent ?? ""),
          undefined,
          { timeout: 300000, polling: 1000 },
        );
        await screenshot(page, "ct-2-running");
        // Upper bound: a few seconds per 256² window (9 per slice per pass) on two shared cores.
        await page.waitForSelector("#edgeseg-result, #edgeseg-error", {
          timeout: 300000 + files.length * 9 * OPTIONS.passes * 3000,
        });
        const browserMs = performance.now() - started;
        await screenshot(page, "ct-3-result");
        assert.equal(
          await page.locator("#edgeseg-error").count(),
          0,
          await page.locator("#edgeseg-error").innerText().catch(() => ""),
        );
        console.log(
          `real CT, ${MODEL_ID}, MC dropout ×${OPTIONS.passes}, WASM in Chromium: ${files.length} slices ` +
            `of ${volume.geometry.dims[0]}×${volume.geometry.dims[1]} in ${seconds(browserMs)} s ` +
            `(Run click → result shown)`,
        );

        // The uncertainty layer is in the viewer.
        const heatmapId = await page.getAttribute("#edgeseg-heatmap", "data-segmentation-id");
        assert.ok(heatmapId, "the uncertainty layer has a segmentation in the viewer");
        await screenshot(page, "ct-4-uncertainty");

        // OHIF's labelmap equals headless segment() on sampled slices, bit for bit.
        const shown = await viewerDigest(page);
        assert.equal(Object.keys(shown).length, files.length, "one labelmap slice per CT slice");
        const order = refs.map((r) => r.sopInstanceUID);
        const sample = sampleSlices(order, shown);
        const t0 = performance.now();
        const headless = await headlessSlices(fileOf, sample);
        console.log(
          `headless segment() of ${sample.length} sampled slices: ${seconds(performance.now() - t0)} s`,
        );
        const size = volume.geometry.dims[0] * volume.geometry.dims[1];
        for (const sop of sample) {
          const r = headless.get(sop)!;
          assert.equal(r.provenance.seed, 0, "headless uses the worker's default seed");
          assert.deepEqual(
            shown[sop],
            digestSlice(r.labelmap.data, 0, size),
            `slice ${sop}: OHIF = headless`,
          );
        }
        console.log(
          `sampled slices (labelled voxels in the browser): ${sample.map((s) => shown[s].voxels).join(", ")}`,
        );

        await page.click("#edgeseg-store");
        const status = page.locator(
          "#edgeseg-export-status[data-state=stored], #edgeseg-export-status[data-state=error]",
        );
        const storeStarted = performance.now();
        await status.waitFor({ timeout: 600000 });
        console.log(`Store to PACS (SEG + PM): ${seconds(performance.now() - storeStarted)} s`);
        await screenshot(page, "ct-5-stored");
        assert.equal(await status.getAttribute("data-state"), "stored", await status.innerText());
        assert.match(await status.innerText(), /^Stored SEG and PM to the PACS/);

        // Orthanc holds a SEG and a PM that reference the CT series and pass dciodvfy.
        const outDir = artifactsDir("e2e", "ct-stored");
        await Deno.mkdir(outDir, { recursive: true });
        let segSeriesUID = "";
        const kinds: string[] = [];
        for (const s of await client.searchForSeries(studyUID)) {
          const seriesUID = value(s["0020000E"]);
          if (seriesUID === ctSeriesUID) continue;
          const [inst] = await client.searchForInstances(studyUID, seriesUID);
          const sopClass = value(inst["00080016"]);
          const stored = await client.retrieveInstance(studyUID, seriesUID, value(inst["00080018"]));
          const isPm = sopClass === "1.2.840.10008.5.1.4.1.1.30";
          const path = join(outDir, isPm ? "pm.dcm" : "seg.dcm");
          await Deno.writeFile(path, stored);
          if (isPm) {
            const pm = await readParametricMap(stored, { geometry: volume.geometry, refs });
            assert.equal(pm.frames.length, files.length, "the PM has a frame per CT slice");
            assert.equal(referencedSeries(stored), ctSeriesUID, "the PM references the CT series");
            for (const sop of sample) {
              const k = order.indexOf(sop);
              const want = headless.get(sop)!.uncertainty!.data;
              const got = pm.data!.subarray(k * size, (k + 1) * size);
              let worst = 0;
              for (let p = 0; p < size; p++) worst = Math.max(worst, Math.abs(got[p] - want[p]));
              assert.ok(
                worst <= PM_TOLERANCE,
                `slice ${sop}: PM − headless uncertainty ≤ ${PM_TOLERANCE}, was ${worst}`,
              );
            }
            kinds.push("PM");
          } else {
            const seg = await readSegmentation(stored);
            assert.equal(seg.referencedSeriesUID, ctSeriesUID, "the SEG references the CT series");
            segSeriesUID = seriesUID;
            kinds.push("SEG");
          }
          console.log(`${basename(path)}: ${(stored.byteLength / 1048576).toFixed(1)} MiB`);
          if (hasDciodvfy) assert.deepEqual(dciodvfy(path).errors, [], `${path} passes dciodvfy`);
        }
        assert.deepEqual(kinds.sort(), ["PM", "SEG"], "one SEG and one PM stored");
        // Reload; OHIF loads the stored SEG with its own SEG support onto the CT's slices.
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
            const ds = g.services.displaySetService.getActiveDisplaySets().find((d) =>
              d.SeriesInstanceUID === uid
            );
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
        const reloaded = await viewerDigest(page, String(await segId.jsonValue()));
        await screenshot(page, "ct-6-reloaded-seg");
        // Slices without any voxel may be absent from a SEG; compare where the run drew something.
        for (const [sop, d] of Object.entries(shown)) {
          if (d.voxels === 0) continue;
          assert.deepEqual(reloaded[sop], d, `slice ${sop}: the reloaded SEG has the run's voxels`);
        }
      } catch (err) {
        await screenshot(page, "ct-failure").catch(() => {});
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
  },
});
