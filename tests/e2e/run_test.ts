/**
 * Issue #5, first slice: run a model from the EdgeSeg panel on the seeded phantom CT (embedded store,
 * project test model packages) and check that the labelmap OHIF shows equals, slice by slice, what the
 * headless pipeline (readSeries → loadModel → segment) computes for the same series on WASM. Also: a
 * run can be cancelled from the panel. Every wait is on page state.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { phantomSeries } from "../../src/dicom/phantom.ts";
import { readSeries } from "../../src/dicom/read.ts";
import { readSegmentation } from "../../src/dicom/segread.ts";
import { loadModel } from "../../src/inference/deno.ts";
import { segment } from "../../src/segmentation/segment.ts";
import type { RunningServer } from "../../src/server/mod.ts";
import { withEdgeViewer } from "../../src/harness/edge_viewer.ts";
import { openPhantomWith } from "../helpers/edge.ts";
import { screenshot } from "../../src/harness/browser.ts";
import { chromiumMissing } from "../helpers/browser.ts";
import { PROJECT_ROOT } from "../helpers/paths.ts";
import { DicomWebClient } from "../../src/dicom/web.ts";
import { dciodvfy } from "../dicom/tools.ts";
import { missingAmong } from "../helpers/tools.ts";
import { artifactsDir } from "../../src/harness/paths.ts";
import { digestSlice, type SliceDigest, viewerDigest } from "../helpers/viewer.ts";

const TEST_MODELS = join(PROJECT_ROOT, "tests", "fixtures", "models");
const MODEL_ID = "tiny-2d";

const skipReason = chromiumMissing() ?? missingAmong(["dciodvfy"]);
if (skipReason) console.log(`e2e run tests skipped: ${skipReason}`);

async function headlessDigest(): Promise<{ digest: SliceDigest; total: number }> {
  const { volume } = await readSeries(phantomSeries().files);
  const { runtime } = await loadModel(join(TEST_MODELS, MODEL_ID), { providers: ["wasm"] });
  const result = await segment(volume, runtime, { uncertainty: "none" });
  const [cols, rows, slices] = result.labelmap.geometry.dims;
  const size = cols * rows;
  const digest: SliceDigest = {};
  let total = 0;
  for (let k = 0; k < slices; k++) {
    const uid = volume.source?.instances[k]?.sopInstanceUID;
    assert.ok(uid, `headless slice ${k} knows its source instance`);
    digest[uid] = digestSlice(result.labelmap.data, k * size, size);
    total += digest[uid].voxels;
  }
  return { digest, total };
}

/** Voxels drawn per heatmap bin, and the bins hidden, in the page's OHIF segmentation state. */
function heatmapState(page: Page): Promise<{ segments: number; voxels: number; hidden: number[] }> {
  return page.evaluate(() => {
    type Img = { voxelManager: { getScalarData(): ArrayLike<number> } };
    const g = globalThis as unknown as {
      cornerstone: { cache: { getImage(id: string): Img } };
      cornerstoneTools: {
        segmentation: {
          state: {
            getSegmentation(id: string): {
              segments: Record<string, unknown>;
              representationData: { Labelmap: { imageIds: string[] } };
            };
          };
          config: {
            visibility: {
              getHiddenSegmentIndices(vp: string, s: { segmentationId: string; type: string }): Set<number>;
            };
          };
        };
      };
      services: { viewportGridService: { getActiveViewportId(): string } };
    };
    const segId = document.querySelector("#edgeseg-heatmap")?.getAttribute("data-segmentation-id") ?? "";
    const seg = g.cornerstoneTools.segmentation.state.getSegmentation(segId);
    let voxels = 0;
    for (const id of seg.representationData.Labelmap.imageIds) {
      const data = g.cornerstone.cache.getImage(id).voxelManager.getScalarData();
      for (let p = 0; p < data.length; p++) if (data[p] !== 0) voxels++;
    }
    const hidden = g.cornerstoneTools.segmentation.config.visibility.getHiddenSegmentIndices(
      g.services.viewportGridService.getActiveViewportId(),
      { segmentationId: segId, type: "Labelmap" },
    );
    return {
      segments: Object.keys(seg.segments).filter((k) => k !== "0").length,
      voxels,
      hidden: [...hidden].sort((a, b) => a - b),
    };
  });
}

/** The uncertainty layer after an MC run: legend, layer voxels, toggle and τ act on the viewer. */
async function checkHeatmapLayer(page: Page): Promise<void> {
  const layer = page.locator("#edgeseg-heatmap");
  assert.equal(await layer.count(), 1, "the panel shows the uncertainty layer controls");
  const segId = await layer.getAttribute("data-segmentation-id");
  assert.ok(segId, "the heatmap was added to the viewer as a layer");
  const legend = await page.locator("#edgeseg-heatmap-legend").innerText();
  assert.match(legend, /entropy|information|variance|deviation/i, `the legend names the measure: ${legend}`);
  const [lo, hi] = (await page.getAttribute("#edgeseg-heatmap-legend", "data-range"))!.split(",").map(Number);
  assert.ok(hi > lo, `the legend has a range (${lo}..${hi})`);
  const before = await heatmapState(page);
  assert.equal(before.segments, 16, "16 colour bins");
  assert.ok(before.voxels > 0, "uncertain voxels are drawn");
  assert.deepEqual(before.hidden, [], "all bins visible at first");
  await screenshot(page, "heatmap-1-layer");
  // τ at the middle of the range hides the lower half of the bins.
  await page.locator("#edgeseg-heatmap-tau").fill(String((lo + hi) / 2));
  await page.waitForFunction(() => {
    const el = document.querySelector("#edgeseg-heatmap");
    return el !== null && Number(el.getAttribute("data-tau")) > 0;
  });
  const thresholded = await heatmapState(page);
  assert.deepEqual(thresholded.hidden, [1, 2, 3, 4, 5, 6, 7, 8], "bins below τ are hidden");
  await page.locator("#edgeseg-heatmap-opacity").fill("90");
  await screenshot(page, "heatmap-2-above-tau");
  await page.click("#edgeseg-heatmap-toggle");
  await page.waitForSelector('#edgeseg-heatmap[data-visible="false"]');
  const off = await heatmapState(page);
  assert.equal(off.hidden.length, 16, "the toggle hides the whole layer");
  await screenshot(page, "heatmap-3-hidden");
  await page.click("#edgeseg-heatmap-toggle");
  await page.waitForSelector('#edgeseg-heatmap[data-visible="true"]');
}

function withViewer(
  name: string,
  fn: (page: Page, edge: RunningServer) => Promise<void>,
): Promise<void> {
  return withEdgeViewer(
    { name: "run", failureShot: `${name}-failure`, modelsDir: TEST_MODELS, seed: true },
    async ({ edge, page }) => {
      await openPhantomWith(page, edge, MODEL_ID);
      await fn(page, edge);
    },
  );
}

Deno.test({
  name:
    "a model run from the panel shows a labelmap equal slice by slice to the headless segment() result on WASM",
  ignore: skipReason !== null,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await withViewer("run", async (page) => {
      await screenshot(page, "run-1-model-selected");
      await page.click("#edgeseg-run");
      await page.waitForSelector("#edgeseg-result, #edgeseg-error", { timeout: 120000 });
      await screenshot(page, "run-2-labelmap");
      const error = await page.locator("#edgeseg-error").count()
        ? await page.locator("#edgeseg-error").innerText()
        : "";
      assert.equal(error, "", "the run ended without an error");
      const provider = await page.getAttribute("#edgeseg-provenance", "data-provider");
      assert.equal(
        provider,
        "wasm",
        "without a WebGPU adapter the run used WASM (shown in the provenance line)",
      );
      const segId = await page.getAttribute("#edgeseg-result", "data-segmentation-id");
      assert.ok(segId, "the labelmap was added to OHIF's segmentations");
      const actual = await viewerDigest(page);
      const expected = await headlessDigest();
      assert.ok(expected.total > 0, "the test model finds foreground in the phantom");
      assert.equal(
        Object.keys(actual).length,
        Object.keys(expected.digest).length,
        "one labelmap slice per source slice",
      );
      assert.deepEqual(actual, expected.digest, "per-slice voxels and positions equal the headless result");
      const shownVoxels = Number(
        await page.getAttribute('#edgeseg-result tr[data-segment="1"]', "data-voxels"),
      );
      assert.equal(shownVoxels, expected.total, "the segment list reports the same voxel count");
    });
  },
});

Deno.test({
  name: "a running model can be cancelled from the panel, the panel says so, and the next run works",
  ignore: skipReason !== null,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await withViewer("cancel", async (page) => {
      // MC dropout with many passes keeps the tiny model busy long enough to cancel mid-run.
      await page.selectOption("#edgeseg-uncertainty", "mc");
      await page.fill("#edgeseg-passes", "50");
      await page.click("#edgeseg-run");
      await page.waitForSelector('#edgeseg-progress[data-phase="inference"]', { timeout: 60000 });
      await screenshot(page, "cancel-1-running");
      const clicked = Date.now();
      await page.click("#edgeseg-cancel");
      await page.waitForSelector("#edgeseg-error", { timeout: 10000 });
      const stoppedMs = Date.now() - clicked;
      await screenshot(page, "cancel-2-cancelled");
      assert.equal(await page.locator("#edgeseg-error").innerText(), "Cancelled.");
      assert.equal(await page.locator("#edgeseg-result").count(), 0, "no result after a cancel");
      assert.ok(stoppedMs < 3000, `the run stopped ${stoppedMs} ms after Cancel`);
      console.log(`cancel: the run stopped ${stoppedMs} ms after the click`);
      assert.equal(await page.isEnabled("#edgeseg-run"), true, "Run is available again");
      // A run after a cancel works (a hard-stopped Worker is replaced by a fresh one).
      await page.selectOption("#edgeseg-uncertainty", "none");
      await page.click("#edgeseg-run");
      await page.waitForSelector("#edgeseg-result, #edgeseg-error", { timeout: 120000 });
      assert.equal(await page.locator("#edgeseg-error").count(), 0, "the run after the cancel succeeded");
      await screenshot(page, "cancel-3-rerun");
    });
  },
});

Deno.test({
  name:
    "an MC dropout run stored to the PACS lands as a SEG and a Parametric Map that pass dciodvfy, OHIF shows the stored SEG without a reload, it is not offered as the run's own reference, and a second run compares with it at Dice 1; a failed STOW keeps the result for download and retry",
  ignore: skipReason !== null,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await withViewer("store", async (page, edge) => {
      await page.selectOption("#edgeseg-uncertainty", "mc");
      await page.fill("#edgeseg-passes", "2");
      await page.click("#edgeseg-run");
      await page.waitForSelector("#edgeseg-result, #edgeseg-error", { timeout: 120000 });
      assert.equal(await page.locator("#edgeseg-error").count(), 0, "the MC run succeeded");
      assert.equal(
        await page.locator("#edgeseg-download-pm").count(),
        1,
        "an uncertainty map can be downloaded",
      );
      await checkHeatmapLayer(page);
      const status = page.locator("#edgeseg-export-status:not([data-state=working])");

      // The PACS answers 503 to STOW: a clear message, the result stays, Download still works.
      const stow = (url: URL) => url.pathname.startsWith("/dicom-web/studies");
      await page.route(
        stow,
        (route) =>
          route.request().method() === "POST"
            ? route.fulfill({ status: 503, contentType: "text/plain", body: "PACS unavailable" })
            : route.continue(),
      );
      await page.click("#edgeseg-store");
      await status.waitFor({ timeout: 60000 });
      await screenshot(page, "store-0-pacs-down");
      assert.equal(await status.getAttribute("data-state"), "error", await status.innerText());
      const failText = await status.innerText();
      assert.match(failText, /HTTP 503/, "the message names the PACS's answer");
      assert.match(failText, /retry or download/, "the message says what the user can do");
      assert.equal(await page.locator("#edgeseg-result").count(), 1, "the result stays in the panel");
      await page.click("#edgeseg-download-seg");
      await page.locator("#edgeseg-export-status[data-state=idle]").waitFor({ timeout: 60000 });
      assert.match(await status.innerText(), /-seg\.dcm \(\d+ KiB\)/, "the SEG is still downloadable");
      await page.unroute(stow);

      // Retried with the PACS back.
      await page.click("#edgeseg-store");
      await page.locator(
        "#edgeseg-export-status[data-state=stored], #edgeseg-export-status[data-state=error]",
      )
        .waitFor({ timeout: 60000 });
      await screenshot(page, "store-1-stored");
      assert.equal(await status.getAttribute("data-state"), "stored", await status.innerText());

      const client = new DicomWebClient({ baseUrl: new URL("/dicom-web", edge.url).href });
      const [study] = await client.searchForStudies();
      const studyUID = String((study["0020000D"] as { Value: string[] }).Value[0]);
      const series = await client.searchForSeries(studyUID);
      const outDir = artifactsDir("e2e", "stored");
      await Deno.mkdir(outDir, { recursive: true });
      const sopClasses: string[] = [];
      let segSeriesUID = "";
      for (const s of series) {
        const seriesUID = String((s["0020000E"] as { Value: string[] }).Value[0]);
        const instances = await client.searchForInstances(studyUID, seriesUID);
        const sopClass = String((instances[0]["00080016"] as { Value: string[] }).Value[0]);
        if (
          !sopClass.startsWith("1.2.840.10008.5.1.4.1.1.66.4") && sopClass !== "1.2.840.10008.5.1.4.1.1.30"
        ) continue;
        sopClasses.push(sopClass);
        if (!sopClass.endsWith(".30")) segSeriesUID = seriesUID;
        const sopUID = String((instances[0]["00080018"] as { Value: string[] }).Value[0]);
        const bytes = await client.retrieveInstance(studyUID, seriesUID, sopUID);
        const path = join(outDir, sopClass.endsWith(".30") ? "pm.dcm" : "seg.dcm");
        await Deno.writeFile(path, bytes);
        assert.deepEqual(dciodvfy(path).errors, [], `${path} passes dciodvfy`);
      }
      assert.deepEqual(
        sopClasses.sort(),
        ["1.2.840.10008.5.1.4.1.1.30", "1.2.840.10008.5.1.4.1.1.66.4"],
        "one SEG and one PM stored",
      );
      // Without a reload, OHIF fetched the stored series from the PACS and made a SEG display set for
      // it: the stored SeriesInstanceUID, not the in-page (madeInClient) segmentation of the run.
      await page.waitForFunction(
        (uid: string) => {
          const g = globalThis as unknown as {
            services: {
              displaySetService: {
                getActiveDisplaySets(): {
                  Modality: string;
                  SeriesInstanceUID: string;
                  madeInClient?: boolean;
                }[];
              };
            };
          };
          return g.services.displaySetService.getActiveDisplaySets().some((d) =>
            d.Modality === "SEG" && d.SeriesInstanceUID === uid && !d.madeInClient
          );
        },
        segSeriesUID,
        { timeout: 30000 },
      );
      // The run's own stored SEG is never offered as its reference.
      assert.equal(
        await page.getAttribute("#edgeseg-compare", "data-candidates"),
        "0",
        "this run's own output is not a reference for it",
      );
      // A second run (same model, seed and settings) may compare with the first run's stored SEG: the
      // unedited result agrees with it everywhere.
      const firstRun = (await page.getAttribute("#edgeseg-result", "data-segmentation-id"))!;
      await page.click("#edgeseg-run");
      await page.waitForFunction(
        (id: string) => {
          const r = document.querySelector("#edgeseg-result");
          return document.querySelector("#edgeseg-error") !== null ||
            (r !== null && r.getAttribute("data-segmentation-id") !== id);
        },
        firstRun,
        { timeout: 120000 },
      );
      await page.waitForSelector('#edgeseg-compare:not([data-candidates="0"])', { timeout: 30000 });
      await page.click("#edgeseg-compare-run");
      const cmp = page.locator('#edgeseg-compare[data-state="done"], #edgeseg-compare[data-state="error"]');
      await cmp.waitFor({ timeout: 60000 });
      await screenshot(page, "store-2-compare");
      assert.equal(await cmp.getAttribute("data-state"), "done", await cmp.innerText());
      const dice = (await page.locator("#edgeseg-compare tr[data-dice]").evaluateAll((rows) =>
        rows.map((r) =>
          Number(r.getAttribute("data-dice"))
        )
      )).filter((d) => !Number.isNaN(d));
      assert.ok(dice.length > 0, "at least one segment is present in run and reference");
      assert.deepEqual(dice, dice.map(() => 1), "Dice is 1.000 for every present segment");
    });
  },
});

Deno.test({
  name:
    "a segment edited in the viewer is stored as SEMIAUTOMATIC with the edited voxels, and a second run, of the model's INT8 variant picked in the panel, makes a second segmentation whose provenance names the variant",
  ignore: skipReason !== null,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await withViewer("edit", async (page, edge) => {
      await page.click("#edgeseg-run");
      await page.waitForSelector("#edgeseg-result, #edgeseg-error", { timeout: 120000 });
      assert.equal(await page.locator("#edgeseg-error").count(), 0, "the run succeeded");
      assert.equal(
        await page.getAttribute("#edgeseg-provenance", "data-variant"),
        "main",
        "the main (fp32) model runs unless a variant is picked",
      );
      const firstId = (await page.getAttribute("#edgeseg-result", "data-segmentation-id"))!;
      // An edit as OHIF's brush makes it: voxels of segment 1 set in the first labelmap image with
      // foreground, then the data-modified event.
      const painted = await page.evaluate((segId) => {
        type Img = { voxelManager: { getScalarData(): Uint8Array } };
        const g = globalThis as unknown as {
          cornerstone: { cache: { getImage(id: string): Img } };
          cornerstoneTools: {
            segmentation: {
              state: {
                getSegmentation(id: string): { representationData: { Labelmap: { imageIds: string[] } } };
              };
              triggerSegmentationEvents: { triggerSegmentationDataModified(id: string): void };
            };
          };
        };
        const ids = g.cornerstoneTools.segmentation.state.getSegmentation(segId).representationData.Labelmap
          .imageIds;
        let added = 0;
        for (const id of ids) {
          const data = g.cornerstone.cache.getImage(id).voxelManager.getScalarData();
          for (let p = 0; p < 400; p++) {
            if (data[p] === 0) {
              data[p] = 1;
              added++;
            }
          }
          if (added > 0) break;
        }
        g.cornerstoneTools.segmentation.triggerSegmentationEvents.triggerSegmentationDataModified(segId);
        return added;
      }, firstId);
      assert.ok(painted > 0, "the test painted voxels");
      const shownVoxels = Number(
        await page.getAttribute('#edgeseg-result tr[data-segment="1"]', "data-voxels"),
      );
      await page.click("#edgeseg-store");
      const status = page.locator("#edgeseg-export-status:not([data-state=working])");
      await status.waitFor({ timeout: 60000 });
      await screenshot(page, "edit-1-stored");
      assert.equal(await status.getAttribute("data-state"), "stored", await status.innerText());

      const client = new DicomWebClient({ baseUrl: new URL("/dicom-web", edge.url).href });
      const [study] = await client.searchForStudies();
      const studyUID = String((study["0020000D"] as { Value: string[] }).Value[0]);
      let found = false;
      for (const s of await client.searchForSeries(studyUID)) {
        const seriesUID = String((s["0020000E"] as { Value: string[] }).Value[0]);
        const [inst] = await client.searchForInstances(studyUID, seriesUID);
        if (
          !String((inst["00080016"] as { Value: string[] }).Value[0]).startsWith("1.2.840.10008.5.1.4.1.1.66")
        ) {
          continue;
        }
        const sopUID = String((inst["00080018"] as { Value: string[] }).Value[0]);
        const seg = await readSegmentation(await client.retrieveInstance(studyUID, seriesUID, sopUID));
        assert.equal(seg.segments[0].algorithmType, "SEMIAUTOMATIC", "the edited segment is SEMIAUTOMATIC");
        assert.equal(seg.counts[1], shownVoxels + painted, "the stored SEG holds the edited voxels");
        found = true;
      }
      assert.ok(found, "the SEG was stored");

      // Run again, on the package's INT8 variant (tiny-2d declares one): a second segmentation; the first
      // (with its edit) stays as it was.
      await page.selectOption("#edgeseg-variant", "int8");
      await page.waitForSelector('#edgeseg-variant-picker[data-variant="int8"]');
      await screenshot(page, "edit-2-variant-picked");
      await page.click("#edgeseg-run");
      await page.waitForFunction(
        (first) => {
          const id = document.querySelector("#edgeseg-result")?.getAttribute("data-segmentation-id");
          return !!id && id !== first;
        },
        firstId,
        { timeout: 120000 },
      );
      const segs = await page.evaluate(() => {
        const g = globalThis as unknown as {
          services: { segmentationService: { getSegmentations(): { segmentationId: string }[] } };
        };
        return g.services.segmentationService.getSegmentations().map((s) => s.segmentationId);
      });
      assert.equal(await page.getAttribute("#edgeseg-provenance", "data-variant"), "int8");
      assert.equal(await page.getAttribute("#edgeseg-provenance", "data-precision"), "int8");
      assert.match(
        await page.locator("#edgeseg-provenance").innerText(),
        /variant int8 \(INT8\)/,
        "the provenance line names the variant that ran",
      );
      assert.ok(segs.includes(firstId), "the first segmentation is still there");
      assert.equal(segs.length, 2, `two segmentations after two runs (${segs.join(", ")})`);
      await screenshot(page, "edit-3-second-run");
    });
  },
});
