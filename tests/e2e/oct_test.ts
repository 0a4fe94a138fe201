/**
 * Issue #17 §4, "load back in the viewer" for OCT: the synthetic OCT phantom (an Ophthalmic Tomography
 * multi-frame instance, src/dicom/oct_phantom.ts) opens in the unmodified OHIF 3.13.2 as a stack of
 * its B-scans; the EdgeSeg panel offers only the OPT model (tiny-oct) and refuses the others by
 * modality; its run paints, B-scan for B-scan, what the headless pipeline computes on WASM; and the
 * SEG stores to the PACS next to the OPT.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { octPhantom } from "../../src/dicom/oct_phantom.ts";
import { readSeries } from "../../src/dicom/read.ts";
import { screenshot } from "../../src/harness/browser.ts";
import { openStudy, selectModel, withEdgeViewer } from "../../src/harness/edge_viewer.ts";
import { loadModel } from "../../src/inference/deno.ts";
import { segment } from "../../src/segmentation/segment.ts";
import { chromiumMissing } from "../helpers/browser.ts";
import { runError, waitForRunEnd } from "../helpers/edge.ts";
import { PROJECT_ROOT } from "../helpers/paths.ts";
import { digestSlice } from "../helpers/viewer.ts";

const MODELS = join(PROJECT_ROOT, "tests", "fixtures", "models");
const skipReason = chromiumMissing();
if (skipReason) console.log(`e2e OCT test skipped: ${skipReason}`);

type FrameDigest = Record<number, { voxels: number; checksum: number }>;

/** The result labelmap in the page, per B-scan: keyed by the frame number of each image's source. */
function viewerFrameDigest(page: Parameters<typeof openStudy>[0]): Promise<FrameDigest> {
  return page.evaluate(() => {
    type Img = { referencedImageId: string; voxelManager: { getScalarData(): ArrayLike<number> } };
    const g = globalThis as unknown as {
      cornerstone: { cache: { getImage(id: string): Img } };
      cornerstoneTools: {
        segmentation: {
          state: {
            getSegmentation(id: string): { representationData: { Labelmap: { imageIds: string[] } } };
          };
        };
      };
    };
    const segId = document.querySelector("#edgeseg-result")?.getAttribute("data-segmentation-id") ?? "";
    const seg = g.cornerstoneTools.segmentation.state.getSegmentation(segId);
    const out: Record<number, { voxels: number; checksum: number }> = {};
    for (const id of seg.representationData.Labelmap.imageIds) {
      const img = g.cornerstone.cache.getImage(id);
      const frame = Number(/\/frames\/(\d+)/.exec(img.referencedImageId)?.[1] ?? "0");
      if (out[frame]) throw new Error(`two labelmap images reference frame ${frame}`);
      const data = img.voxelManager.getScalarData();
      let voxels = 0, checksum = 0;
      for (let p = 0; p < data.length; p++) {
        if (data[p] !== 0) {
          voxels++;
          checksum = (checksum + (p + 1) * data[p]) % 2147483647;
        }
      }
      out[frame] = { voxels, checksum };
    }
    return out;
  });
}

Deno.test({
  name:
    "the OCT phantom (OPT) opens in OHIF as a stack of its B-scans, the OPT model's labelmap equals the headless result frame by frame, and the SEG stores",
  ignore: skipReason !== null,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const opt = octPhantom({ frames: 9, columns: 128, rows: 128 });
    const { volume } = await readSeries([opt.bytes]);
    const { runtime } = await loadModel(join(MODELS, "tiny-oct"), { providers: ["wasm"] });
    const result = await segment(volume, runtime, { uncertainty: "none" });
    const P = 128 * 128;
    const expected: FrameDigest = {};
    for (let k = 0; k < 9; k++) expected[k + 1] = digestSlice(result.labelmap.data, k * P, P);
    assert.ok(
      Object.values(expected).every((d) => d.voxels > 0),
      "the model finds bright layers on every B-scan",
    );

    await withEdgeViewer(
      { name: "oct", failureShot: "oct-failure", modelsDir: MODELS, store: [[opt.bytes]] },
      async ({ edge, client, page }) => {
        await openStudy(page, edge, opt.studyUID);
        await page.waitForSelector('#edgeseg-series[data-modality="OPT"]', { timeout: 30000 });
        const viewports = await page.evaluate(() => {
          const cs = (globalThis as unknown as {
            cornerstone: {
              getRenderingEngines(): { getViewports(): { type: string; getImageIds?(): string[] }[] }[];
            };
          }).cornerstone;
          return cs.getRenderingEngines()[0].getViewports().map((v) => ({
            type: v.type,
            images: v.getImageIds?.().length ?? 0,
          }));
        });
        assert.deepEqual(viewports, [{ type: "stack", images: 9 }], "one stack of the 9 B-scans");
        assert.equal(await page.locator('[data-model-id="tiny-oct"] [data-mismatch]').count(), 0);
        assert.match(
          (await page.getAttribute('[data-model-id="tiny-2d-rgb"] [data-mismatch]', "data-mismatch")) ?? "",
          /needs OP\/XC\/OT, series is OPT/,
        );
        await selectModel(page, "tiny-oct");
        await page.click("#edgeseg-run");
        await waitForRunEnd(page, 120000);
        await screenshot(page, "oct-1-labelmap");
        assert.equal(await runError(page), "", "the run ended without an error");
        assert.deepEqual(await viewerFrameDigest(page), expected, "the labelmap equals the headless result");

        await page.click("#edgeseg-store");
        const status = page.locator("#edgeseg-export-status:not([data-state=working])");
        await status.waitFor({ timeout: 60000 });
        assert.equal(await status.getAttribute("data-state"), "stored", await status.innerText());
        const series = await client.searchForSeries(opt.studyUID);
        const modalities = series.map((s) => String((s["00080060"] as { Value: string[] }).Value[0])).sort();
        assert.deepEqual(modalities, ["OPT", "SEG"], "the PACS holds the OCT and its SEG");
      },
    );
  },
});

Deno.test({
  name:
    "oct-fluid-demo in OHIF: ensemble on the OCT phantom → labelmap equal to headless, the disagreement heatmap, the UCUS band with its terms, SEG and PM stored",
  ignore: skipReason !== null,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const opt = octPhantom({
      frames: 7,
      columns: 256,
      rows: 256,
      seed: 102,
      manufacturer: "Heidelberg Engineering",
    });
    const { volume } = await readSeries([opt.bytes]);
    const { runtime } = await loadModel(join(PROJECT_ROOT, "models", "oct-fluid-demo"), {
      providers: ["wasm"],
    });
    const result = await segment(volume, runtime, { uncertainty: "ensemble" });
    const P = 256 * 256;
    const expected: FrameDigest = {};
    for (let k = 0; k < 7; k++) expected[k + 1] = digestSlice(result.labelmap.data, k * P, P);
    assert.ok(Object.values(expected).some((d) => d.voxels > 0), "the phantom's fluid is found headless");
    assert.ok(result.triage, "the package declares a triage block");

    await withEdgeViewer(
      {
        name: "oct-ensemble",
        failureShot: "oct-ensemble-failure",
        modelsDir: join(PROJECT_ROOT, "models"),
        store: [[opt.bytes]],
      },
      async ({ edge, client, page }) => {
        await openStudy(page, edge, opt.studyUID);
        await page.waitForSelector('#edgeseg-series[data-modality="OPT"]', { timeout: 30000 });
        await selectModel(page, "oct-fluid-demo");
        const methods = await page.locator("#edgeseg-uncertainty option").evaluateAll((os) =>
          os.map((o) => (o as HTMLOptionElement).value)
        );
        assert.ok(methods.includes("ensemble"), `the panel offers the ensemble: ${methods.join(", ")}`);
        await page.selectOption("#edgeseg-uncertainty", "ensemble");
        await page.selectOption("#edgeseg-device", "wasm");
        await page.click("#edgeseg-run");
        await waitForRunEnd(page, 180000);
        assert.equal(await runError(page), "", "the run ended without an error");
        await screenshot(page, "oct-ensemble-1-result");
        assert.deepEqual(
          await viewerFrameDigest(page),
          expected,
          "the labelmap equals the headless ensemble",
        );
        assert.ok(
          await page.getAttribute("#edgeseg-heatmap", "data-segmentation-id"),
          "the members' disagreement is shown as the uncertainty layer",
        );
        const triage = page.locator("#edgeseg-triage");
        assert.equal(await triage.getAttribute("data-band"), result.triage!.band, "the band equals headless");
        const line = await triage.innerText();
        for (
          const term of [
            /mL of [\d.]+ mL reference → volume score/,
            /within 0\.5 mm of the centre × 2/,
            /boundary uncertainty/,
            /uncertainty inside/,
          ]
        ) {
          assert.match(line, term, `the triage line shows the UCUS term ${term}`);
        }

        await page.click("#edgeseg-store");
        const status = page.locator("#edgeseg-export-status:not([data-state=working])");
        await status.waitFor({ timeout: 60000 });
        assert.equal(await status.getAttribute("data-state"), "stored", await status.innerText());
        const series = await client.searchForSeries(opt.studyUID);
        const modalities = series.map((s) => String((s["00080060"] as { Value: string[] }).Value[0])).sort();
        assert.equal(
          modalities.length,
          3,
          `the OCT, its SEG and the uncertainty map: ${modalities.join(", ")}`,
        );
        assert.ok(modalities.includes("OPT") && modalities.includes("SEG"), modalities.join(", "));
      },
    );
  },
});
