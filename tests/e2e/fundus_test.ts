/**
 * Issue #5 §6b and #17 §4: a DRIVE fundus photograph wrapped as DICOM by the project's own script
 * (src/dicom/wrap_image.ts: RGB Secondary Capture with modality OP, and an Ophthalmic Photography 8 Bit
 * Image as a fundus camera writes it), stored to the edge server, opened in
 * the EdgeSeg mode as a single 2D RGB image; the SHIPPED retina-vessels package (models/) runs from the
 * panel and the labelmap equals the headless segment() result for the same DICOM on WASM; the segment
 * list reports pixels, not mL (the photograph has no PixelSpacing); the result stores to the PACS.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { wrapImage, type WrapImageOptions } from "../../src/dicom/wrap_image.ts";
import { readSeries } from "../../src/dicom/read.ts";
import { loadModel } from "../../src/inference/deno.ts";
import { segment } from "../../src/segmentation/segment.ts";
import { screenshot } from "../../src/harness/browser.ts";
import { chromiumMissing } from "../helpers/browser.ts";
import { openStudy, selectModel, withEdgeViewer } from "../../src/harness/edge_viewer.ts";
import { runError, waitForRunEnd } from "../helpers/edge.ts";
import { existsSync, PROJECT_ROOT } from "../helpers/paths.ts";
import { digestSlice, type SliceDigest, viewerDigest } from "../helpers/viewer.ts";

const MODELS = join(PROJECT_ROOT, "models");
const MODEL_ID = "retina-vessels";
const FUNDUS = join(PROJECT_ROOT, "..", "shared", "data", "drive", "training", "images", "21_training.tif");

const skipReason = chromiumMissing() ??
  (existsSync(FUNDUS) ? null : "the DRIVE data set is not in ../shared/data/drive");
if (skipReason) console.log(`e2e fundus test skipped: ${skipReason}`);

const CASES: { as: string; options: WrapImageOptions }[] = [
  { as: "a Secondary Capture", options: {} },
  { as: "an Ophthalmic Photography image", options: { sopClass: "op", laterality: "R" } },
];

for (const { as, options } of CASES) {
  Deno.test({
    name:
      `a fundus photograph wrapped as ${as} opens as one image, the shipped retina-vessels labelmap equals the headless result, sizes are in pixels, and it stores to the PACS`,
    ignore: skipReason !== null,
    sanitizeOps: false,
    sanitizeResources: false,
    async fn() {
      const wrapped = wrapImage(await Deno.readFile(FUNDUS), {
        seriesDescription: "DRIVE 21 colour fundus",
        ...options,
      });
      // Headless reference on the very DICOM the viewer gets.
      const { volume } = await readSeries([wrapped.bytes]);
      assert.equal(volume.channels, 3, "the wrapped image reads back as RGB");
      const { runtime } = await loadModel(join(MODELS, MODEL_ID), { providers: ["wasm"] });
      const result = await segment(volume, runtime, { uncertainty: "none" });
      const [cols, rows] = result.labelmap.geometry.dims;
      const expected: SliceDigest = {
        [wrapped.sopInstanceUID]: digestSlice(result.labelmap.data, 0, cols * rows),
      };
      assert.ok(
        expected[wrapped.sopInstanceUID].voxels > 0,
        "the vessel model finds vessels in the photograph",
      );

      await withEdgeViewer(
        { name: "fundus", failureShot: "fundus-failure", modelsDir: MODELS, store: [[wrapped.bytes]] },
        async ({ edge, client, page }) => {
          await openStudy(page, edge, wrapped.studyUID);
          await page.waitForSelector('#edgeseg-series[data-modality="OP"]', { timeout: 30000 });
          await page.waitForSelector(`#edgeseg-models [data-model-id="${MODEL_ID}"]`, { timeout: 30000 });
          // The shipped CT and MR models are flagged for this series; the fundus model is not.
          assert.equal(
            await page.locator(`[data-model-id="${MODEL_ID}"] [data-mismatch]`).count(),
            0,
            "the fundus model fits the photograph",
          );
          assert.match(
            (await page.getAttribute(
              '[data-model-id="ct-lung-infection"] [data-mismatch]',
              "data-mismatch",
            )) ??
              "",
            /needs CT, series is OP/,
          );
          assert.match(
            (await page.getAttribute('[data-model-id="la-mri-3d"] [data-mismatch]', "data-mismatch")) ?? "",
            /needs MR, series is OP/,
          );
          await selectModel(page, MODEL_ID);
          await screenshot(page, "fundus-1-loaded");
          await page.click("#edgeseg-run");
          await waitForRunEnd(page, 120000);
          await screenshot(page, "fundus-2-labelmap");
          assert.equal(await runError(page), "", "the run ended without an error");
          assert.equal(await page.getAttribute("#edgeseg-provenance", "data-provider"), "wasm");
          assert.deepEqual(await viewerDigest(page), expected, "the labelmap equals the headless result");
          // No PixelSpacing: the size column counts pixels and says so; nothing is reported in mL.
          const row = page.locator('#edgeseg-result [data-segment="1"]');
          assert.equal(await row.getAttribute("data-size-unit"), "px");
          const rowText = await row.innerText();
          assert.match(
            rowText,
            new RegExp(`${expected[wrapped.sopInstanceUID].voxels.toLocaleString("en-US")} px`),
          );
          assert.doesNotMatch(await page.locator("#edgeseg-result table").innerText(), /\bmL\b|mm²|mm³/);
          assert.match(await page.locator("#edgeseg-size-note").innerText(), /no pixel spacing/);

          await page.click("#edgeseg-store");
          const status = page.locator("#edgeseg-export-status:not([data-state=working])");
          await status.waitFor({ timeout: 60000 });
          await screenshot(page, "fundus-3-stored");
          assert.equal(await status.getAttribute("data-state"), "stored", await status.innerText());
          const series = await client.searchForSeries(wrapped.studyUID);
          const modalities = series.map((s) => String((s["00080060"] as { Value: string[] }).Value[0]))
            .sort();
          assert.deepEqual(modalities, ["OP", "SEG"], "the PACS holds the photograph and its SEG");
        },
      );
    },
  });
}
