/**
 * Issue #5 §6b: a DRIVE fundus photograph wrapped as DICOM by the project's own script
 * (src/dicom/wrap_image.ts: RGB Secondary Capture, modality OP), stored to the edge server, opened in
 * the EdgeSeg mode as a single 2D RGB image; the SHIPPED retina-vessels package (models/) runs from the
 * panel and the labelmap equals the headless segment() result for the same DICOM on WASM; the segment
 * list reports pixels, not mL (the photograph has no PixelSpacing); the result stores to the PACS.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { buildExtension } from "../../extension/build.ts";
import { wrapImage } from "../../src/dicom/wrap_image.ts";
import { readSeries } from "../../src/dicom/read.ts";
import { DicomWebClient } from "../../src/dicom/web.ts";
import { loadModel } from "../../src/inference/deno.ts";
import { segment } from "../../src/segmentation/segment.ts";
import { ensureOhif, startServer } from "../../src/server/mod.ts";
import { chromiumMissing, launchBrowser, screenshot, waitForCanvasContent } from "../helpers/browser.ts";
import { existsSync, PROJECT_ROOT } from "../helpers/paths.ts";
import { digestSlice, type SliceDigest, viewerDigest } from "../helpers/viewer.ts";

const MODELS = join(PROJECT_ROOT, "models");
const MODEL_ID = "retina-vessels";
const FUNDUS = join(PROJECT_ROOT, "..", "shared", "data", "drive", "training", "images", "21_training.tif");

const skipReason = chromiumMissing() ??
  (existsSync(FUNDUS) ? null : "the DRIVE data set is not in ../shared/data/drive");
if (skipReason) console.log(`e2e fundus test skipped: ${skipReason}`);

Deno.test({
  name:
    "a wrapped RGB fundus photograph opens as one image, the shipped retina-vessels labelmap equals the headless result, sizes are in pixels, and it stores to the PACS",
  ignore: skipReason !== null,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const wrapped = wrapImage(await Deno.readFile(FUNDUS), { seriesDescription: "DRIVE 21 colour fundus" });
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

    await buildExtension();
    const ohifDist = await ensureOhif();
    const dataDir = await Deno.makeTempDir({ prefix: "edgeseg-e2e-fundus-" });
    const edge = await startServer({
      port: 0,
      dataDir,
      ohifDist,
      modelsDir: MODELS,
      seed: false,
      log: () => {},
    });
    const browser = await launchBrowser({ webgpu: false });
    const page = browser.page;
    try {
      const client = new DicomWebClient({ baseUrl: new URL("/dicom-web", edge.url).href });
      await client.store([wrapped.bytes]);
      await page.goto(
        new URL(`/edgeseg?StudyInstanceUIDs=${encodeURIComponent(wrapped.studyUID)}`, edge.url).href,
      );
      await waitForCanvasContent(page);
      await page.waitForSelector('#edgeseg-series[data-modality="OP"]', { timeout: 30000 });
      await page.waitForSelector(`#edgeseg-models [data-model-id="${MODEL_ID}"]`, { timeout: 30000 });
      // The shipped CT and MR models are flagged for this series; the fundus model is not.
      assert.equal(
        await page.locator(`[data-model-id="${MODEL_ID}"] [data-mismatch]`).count(),
        0,
        "the fundus model fits the photograph",
      );
      assert.match(
        (await page.getAttribute('[data-model-id="ct-lung-infection"] [data-mismatch]', "data-mismatch")) ??
          "",
        /needs CT, series is OP/,
      );
      assert.match(
        (await page.getAttribute('[data-model-id="la-mri-3d"] [data-mismatch]', "data-mismatch")) ?? "",
        /needs MR, series is OP/,
      );
      await page.click(`#edgeseg-models [data-model-id="${MODEL_ID}"]`);
      await page.waitForSelector(`[data-model-id="${MODEL_ID}"][data-selected="true"]`);
      await screenshot(page, "fundus-1-loaded");
      await page.click("#edgeseg-run");
      await page.waitForSelector("#edgeseg-result, #edgeseg-error", { timeout: 120000 });
      await screenshot(page, "fundus-2-labelmap");
      const error = await page.locator("#edgeseg-error").count()
        ? await page.locator("#edgeseg-error").innerText()
        : "";
      assert.equal(error, "", "the run ended without an error");
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
      assert.doesNotMatch(await page.locator("#edgeseg-result table").innerText(), /\bmL\b|mm²/);
      assert.match(await page.locator("#edgeseg-size-note").innerText(), /no pixel spacing/);

      await page.click("#edgeseg-store");
      const status = page.locator("#edgeseg-export-status:not([data-state=working])");
      await status.waitFor({ timeout: 60000 });
      await screenshot(page, "fundus-3-stored");
      assert.equal(await status.getAttribute("data-state"), "stored", await status.innerText());
      const series = await client.searchForSeries(wrapped.studyUID);
      const modalities = series.map((s) => String((s["00080060"] as { Value: string[] }).Value[0])).sort();
      assert.deepEqual(modalities, ["OP", "SEG"], "the PACS holds the photograph and its SEG");
    } catch (err) {
      await screenshot(page, "fundus-failure").catch(() => {});
      throw new Error(
        `${err instanceof Error ? err.message : err}\nbrowser errors:\n  ${
          browser.errors.slice(-8).join("\n  ")
        }`,
        { cause: err },
      );
    } finally {
      await browser.close();
      await edge.close();
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    }
  },
});
