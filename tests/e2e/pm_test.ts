/**
 * Issue #5 §4: the uncertainty Parametric Map that EdgeSeg stores opens in OHIF like any series. An MC
 * dropout run on the seeded phantom CT is stored (SEG + PM); a fresh viewer (a radiologist opening the
 * study later) then opens the PM from its study-browser thumbnail, once from the embedded store and
 * once from a real Orthanc behind the edge server's proxy. Through page state: OHIF's PMAP display
 * set is loaded and shown in the active viewport as a colour overlay on the CT, with one slice per
 * stored frame, each slice equal to the stored frame of the same source instance, and a value range
 * equal to the range the panel's legend showed.
 *
 * OHIF's PMAP loader (extension cornerstone-dicom-pmap, 3.13.2) multiplies every value by 100 "for
 * better visibility" and says so in a notification; the comparisons here divide by that factor.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { phantomSeries } from "../../src/dicom/phantom.ts";
import { readSeries } from "../../src/dicom/read.ts";
import { readParametricMap } from "../../src/dicom/segread.ts";
import { DicomWebClient } from "../../src/dicom/web.ts";
import type { RunningServer } from "../../src/server/mod.ts";
import { withEdgeViewer } from "../../src/harness/edge_viewer.ts";
import { openPhantomWith } from "../helpers/edge.ts";
import { screenshot, waitForCanvasContent } from "../../src/harness/browser.ts";
import { chromiumMissing } from "../helpers/browser.ts";
import { orthancMissing, startOrthanc } from "../helpers/orthanc.ts";
import { PROJECT_ROOT } from "../helpers/paths.ts";

const TEST_MODELS = join(PROJECT_ROOT, "tests", "fixtures", "models");
const MODEL_ID = "tiny-2d";
const PM_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.30";
/** OHIF's PMAP loader scales the stored values by this factor before display. */
const OHIF_PMAP_SCALE = 100;
/** float32 values through a ×100 scaling: relative tolerance */
const REL_TOL = 1e-5;

const skipReason = chromiumMissing();
if (skipReason) console.log(`e2e PM tests skipped: ${skipReason}`);
const orthancSkip = skipReason ?? orthancMissing();

/** What the viewer shows for the PMAP display set in the active viewport. */
interface ViewerPm {
  displaySetUID: string;
  inActiveViewport: boolean;
  /** the viewport's actors: the referenced CT volume and the PM volume */
  actors: string[];
  dims: number[];
  range: [number, number];
  /** per slice of the PM volume: the source instance it lies on, and the sum of its values */
  slices: { sopInstanceUID: string; sum: number }[];
  colormap?: string;
}

/** Runs the MC model on the open phantom and stores SEG + PM; returns the legend's range. */
async function runAndStore(page: Page): Promise<[number, number]> {
  await page.selectOption("#edgeseg-uncertainty", "mc");
  await page.fill("#edgeseg-passes", "2");
  await page.click("#edgeseg-run");
  await page.waitForSelector("#edgeseg-result, #edgeseg-error", { timeout: 120000 });
  assert.equal(await page.locator("#edgeseg-error").count(), 0, "the MC run succeeded");
  const range = (await page.getAttribute("#edgeseg-heatmap-legend", "data-range"))!.split(",").map(Number);
  assert.equal(range.length, 2, `the legend has a range: ${range}`);
  assert.ok(range[1] > range[0], `the legend range is not empty (${range})`);
  await screenshot(page, "pm-1-run");
  await page.click("#edgeseg-store");
  const status = page.locator(
    "#edgeseg-export-status[data-state=stored], #edgeseg-export-status[data-state=error]",
  );
  await status.waitFor({ timeout: 60000 });
  assert.equal(await status.getAttribute("data-state"), "stored", await status.innerText());
  return [range[0], range[1]];
}

/** The stored PM, fetched through the same DICOMweb endpoint OHIF uses, on the phantom's grid. */
async function storedPm(edge: RunningServer): Promise<{ frames: number; sums: Map<string, number> }> {
  const client = new DicomWebClient({ baseUrl: new URL("/dicom-web", edge.url).href });
  const [study] = await client.searchForStudies();
  const studyUID = String((study["0020000D"] as { Value: string[] }).Value[0]);
  for (const s of await client.searchForSeries(studyUID)) {
    const seriesUID = String((s["0020000E"] as { Value: string[] }).Value[0]);
    const [inst] = await client.searchForInstances(studyUID, seriesUID);
    if (String((inst["00080016"] as { Value: string[] }).Value[0]) !== PM_SOP_CLASS) continue;
    const sopUID = String((inst["00080018"] as { Value: string[] }).Value[0]);
    const bytes = await client.retrieveInstance(studyUID, seriesUID, sopUID);
    const { volume } = await readSeries(phantomSeries().files);
    const refs = volume.source!.instances;
    const pm = await readParametricMap(bytes, { geometry: volume.geometry, refs });
    const [cols, rows, slices] = volume.geometry.dims;
    const sums = new Map<string, number>();
    for (let k = 0; k < slices; k++) {
      let sum = 0;
      for (let p = 0; p < cols * rows; p++) sum += pm.data![k * cols * rows + p];
      sums.set(refs[k].sopInstanceUID, sum);
    }
    return { frames: pm.frames.length, sums };
  }
  throw new Error(`no Parametric Map (${PM_SOP_CLASS}) series in the study after Store`);
}

/** Opens a fresh viewer on the study and the PM from its study-browser thumbnail. */
async function openPmFromThumbnail(page: Page, edge: RunningServer, studyUID: string): Promise<string> {
  await page.goto(new URL(`/edgeseg?StudyInstanceUIDs=${encodeURIComponent(studyUID)}`, edge.url).href);
  await waitForCanvasContent(page);
  const thumb = page.locator('[data-cy^="study-browser-thumbnail"]', { hasText: "PMAP" });
  await thumb.first().waitFor({ timeout: 30000 });
  await screenshot(page, "pm-2-fresh-viewer");
  await thumb.first().dblclick();
  const uid = await page.waitForFunction(
    () => {
      type Ds = { displaySetInstanceUID: string; Modality: string; isLoaded?: boolean };
      const g = globalThis as unknown as {
        services: {
          displaySetService: { getActiveDisplaySets(): Ds[] };
          viewportGridService: {
            getActiveViewportId(): string;
            getDisplaySetsUIDsForViewport(id: string): string[] | undefined;
          };
        };
      };
      const pm = g.services.displaySetService.getActiveDisplaySets().find((d) => d.Modality === "PMAP");
      if (!pm?.isLoaded) return null;
      const grid = g.services.viewportGridService;
      const shown = grid.getDisplaySetsUIDsForViewport(grid.getActiveViewportId()) ?? [];
      return shown.includes(pm.displaySetInstanceUID) ? pm.displaySetInstanceUID : null;
    },
    null,
    { timeout: 60000 },
  );
  return String(await uid.jsonValue());
}

/** Reads the PM volume OHIF built, and the active viewport's actors, from the page. */
async function viewerPm(page: Page, displaySetUID: string): Promise<ViewerPm> {
  // The viewport renders once both volumes are its actors.
  await page.waitForFunction(
    (uid: string) => {
      const g = globalThis as unknown as {
        cornerstone: {
          getRenderingEngines(): { getViewports(): { getActors(): { referencedId?: string }[] }[] }[];
        };
      };
      return g.cornerstone.getRenderingEngines().some((e) =>
        e.getViewports().some((vp) => vp.getActors().some((a) => a.referencedId === uid))
      );
    },
    displaySetUID,
    { timeout: 60000 },
  );
  return await page.evaluate((uid: string) => {
    type Vp = {
      id: string;
      getActors(): { referencedId?: string; uid: string }[];
      getProperties(volumeId?: string): { colormap?: { name?: string } };
    };
    const g = globalThis as unknown as {
      cornerstone: {
        cache: {
          getVolume(id: string): {
            dimensions: number[];
            imageIds?: string[];
            voxelManager: { getCompleteScalarDataArray(): ArrayLike<number> };
          };
        };
        getRenderingEngines(): { getViewports(): Vp[] }[];
        metaData: { get(type: string, imageId: string): { sopInstanceUID: string } | undefined };
      };
      services: { viewportGridService: { getActiveViewportId(): string } };
    };
    const cs = g.cornerstone;
    const vp = cs.getRenderingEngines().flatMap((e) => e.getViewports())
      .find((v) => v.getActors().some((a) => a.referencedId === uid))!;
    const volume = cs.cache.getVolume(uid);
    const [cols, rows, slices] = volume.dimensions;
    // The PM volume is derived from the CT volume, the viewport's other actor: same grid, same slices.
    const ctId = vp.getActors().map((a) => a.referencedId).find((id) => id && id !== uid) ?? "";
    const ids = cs.cache.getVolume(ctId)?.imageIds ?? [];
    const data = volume.voxelManager.getCompleteScalarDataArray();
    let lo = Infinity, hi = -Infinity;
    const out: { sopInstanceUID: string; sum: number }[] = [];
    for (let k = 0; k < slices; k++) {
      let sum = 0;
      for (let p = k * cols * rows; p < (k + 1) * cols * rows; p++) {
        const v = data[p];
        sum += v;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      out.push({
        sopInstanceUID: ids[k] ? cs.metaData.get("sopCommonModule", ids[k])?.sopInstanceUID ?? "" : "",
        sum,
      });
    }
    return {
      displaySetUID: uid,
      inActiveViewport: vp.id === g.services.viewportGridService.getActiveViewportId(),
      actors: vp.getActors().map((a) => a.referencedId ?? a.uid),
      dims: volume.dimensions,
      range: [lo, hi] as [number, number],
      slices: out,
      colormap: vp.getProperties(uid)?.colormap?.name,
    };
  }, displaySetUID);
}

function close(a: number, b: number, what: string): void {
  assert.ok(
    Math.abs(a - b) <= REL_TOL * Math.max(1, Math.abs(a), Math.abs(b)),
    `${what}: expected ${b}, found ${a}`,
  );
}

/** The whole check: run, store, open the PM in a fresh viewer, compare with the stored file. */
async function checkPmOpens(page: Page, edge: RunningServer, name: string): Promise<void> {
  const studyUID = phantomSeries().studyInstanceUID;
  const legend = await runAndStore(page);
  const stored = await storedPm(edge);
  assert.equal(stored.frames, 64, "the stored PM has one frame per phantom slice");

  const uid = await openPmFromThumbnail(page, edge, studyUID);
  await waitForCanvasContent(page);
  await screenshot(page, `pm-3-${name}-open`);
  const shown = await viewerPm(page, uid);
  assert.ok(shown.inActiveViewport, "the PM is shown in the active viewport");
  assert.equal(shown.actors.length, 2, `the PM is an overlay on the CT (actors ${shown.actors})`);
  assert.ok(shown.actors.includes(uid), "one actor is the PM volume");
  assert.ok(shown.colormap, "the PM layer is drawn through a colour map");
  assert.deepEqual(shown.dims, [256, 256, stored.frames], "one PM slice per stored frame on the CT grid");
  close(shown.range[0] / OHIF_PMAP_SCALE, legend[0], "lowest value shown vs the legend's");
  close(shown.range[1] / OHIF_PMAP_SCALE, legend[1], "highest value shown vs the legend's");
  // Each slice holds the stored frame of the same source instance (frame placement and order). The
  // slices differ, so a frame on the wrong slice (e.g. in reversed order) would fail this.
  assert.equal(shown.slices.length, stored.sums.size);
  const sums = [...stored.sums.values()];
  assert.ok(
    sums.some((v, k) => Math.abs(v - sums[sums.length - 1 - k]) > 1e-3 * Math.max(1, Math.abs(v))),
    "the stored frames are not symmetric in slice order",
  );
  for (const { sopInstanceUID, sum } of shown.slices) {
    const want = stored.sums.get(sopInstanceUID);
    assert.ok(want !== undefined, `viewer slice on instance ${sopInstanceUID} has a stored frame`);
    assert.ok(
      Math.abs(sum / OHIF_PMAP_SCALE - want) <= 1e-4 * Math.max(1, Math.abs(want)),
      `slice on ${sopInstanceUID}: sum ${sum / OHIF_PMAP_SCALE} vs stored ${want}`,
    );
  }
}

function withViewer(
  name: string,
  pacsUrl: string | undefined,
  fn: (page: Page, edge: RunningServer) => Promise<void>,
): Promise<void> {
  return withEdgeViewer(
    { name: "pm", failureShot: `pm-${name}-failure`, modelsDir: TEST_MODELS, seed: true, pacsUrl },
    async ({ edge, page, browser }) => {
      await openPhantomWith(page, edge, MODEL_ID);
      await fn(page, edge);
      const pmErrors = browser.errors.filter((e) => /pmap|parametric/i.test(e));
      assert.deepEqual(pmErrors, [], "no PM errors in the browser console");
    },
  );
}

Deno.test({
  name:
    "a stored uncertainty PM opens from its thumbnail in a fresh viewer (embedded store) as an overlay equal to the stored frames and the legend's range",
  ignore: skipReason !== null,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await withViewer("store", undefined, (page, edge) => checkPmOpens(page, edge, "store"));
  },
});

Deno.test({
  name: "a stored uncertainty PM opens the same way from Orthanc behind the edge server's PACS proxy",
  ignore: orthancSkip !== null,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const pacs = await startOrthanc();
    const dir = await Deno.makeTempDir({ prefix: "edgeseg-e2e-pm-phantom-" });
    try {
      const files = phantomSeries().files;
      const paths = await Promise.all(files.map(async (bytes, i) => {
        const path = join(dir, `ct-${i}.dcm`);
        await Deno.writeFile(path, bytes);
        return path;
      }));
      assert.equal(await pacs.upload(paths), files.length, "Orthanc accepted the phantom");
      await withViewer("orthanc", pacs.dicomWebUrl, (page, edge) => checkPmOpens(page, edge, "orthanc"));
    } finally {
      await pacs.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
