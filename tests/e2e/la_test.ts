/**
 * Issue #7 §5: the shipped 3D package `models/la-mri-3d` runs from the viewer panel. A left-atrium
 * LGE-MRI validation case (NIfTI, never seen in training) is wrapped as an MR series by the project's
 * own src/dicom/wrap_volume.ts, stored to the edge server's embedded store, opened in the EdgeSeg mode;
 * `la-mri-3d` is offered without a mismatch flag, runs on WASM without uncertainty, and the labelmap
 * OHIF shows equals the headless segment() result on WASM slice by slice; the segment list shows the
 * headless volume in mL; the Dice against the case's label (computed headless) is printed and > 0.7.
 * Every wait is on page state; screenshots go to artifacts/e2e/ (la-*).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { SegmentationResult, Volume } from "../../src/core/types.ts";
import { readSeries } from "../../src/dicom/read.ts";
import { wrapNifti, type WrappedSeries } from "../../src/dicom/wrap_volume.ts";
import { loadModel } from "../../src/inference/deno.ts";
import { readNifti } from "../../src/io/nifti.ts";
import { confusion, overlapMetrics } from "../../src/segmentation/metrics.ts";
import { segment } from "../../src/segmentation/segment.ts";
import { screenshot } from "../../src/harness/browser.ts";
import { chromiumMissing } from "../helpers/browser.ts";
import { openStudy, selectModel, withEdgeViewer } from "../../src/harness/edge_viewer.ts";
import { runError, waitForRunEnd } from "../helpers/edge.ts";
import { LA_CASE, laMriCase } from "../../src/harness/paths.ts";
import { PROJECT_ROOT } from "../helpers/paths.ts";
import { digestLabelmap, showInstance, type SliceDigest, viewerDigest } from "../helpers/viewer.ts";

const MODELS = join(PROJECT_ROOT, "models");
const MODEL_ID = "la-mri-3d";

const la = laMriCase();
const skipReason = chromiumMissing() ?? (la ? null : `../shared/data/la-mri/${LA_CASE}_* is absent`);
if (skipReason) console.log(`e2e LA MRI test skipped: ${skipReason}`);

interface Headless {
  volume: Volume;
  result: SegmentationResult;
  digest: SliceDigest;
  seconds: number;
}

/** segment() on WASM for the very DICOM the viewer gets, digested per source instance. */
async function headless(wrapped: WrappedSeries): Promise<Headless> {
  const { volume } = await readSeries(wrapped.files);
  const { runtime } = await loadModel(join(MODELS, MODEL_ID), { providers: ["wasm"] });
  const t = performance.now();
  const result = await segment(volume, runtime, { uncertainty: "none" });
  const seconds = (performance.now() - t) / 1000;
  return { volume, result, digest: digestLabelmap(result.labelmap, volume), seconds };
}

/** Dice of the headless labelmap against the case's reference label, on the same grid. */
async function diceAgainstLabel(h: Headless, labelPath: string): Promise<number> {
  const label = (await readNifti(await Deno.readFile(labelPath))).volume;
  const g = h.result.labelmap.geometry, r = label.geometry;
  assert.deepEqual(g.dims, r.dims, "the label has the image's dims");
  for (let a = 0; a < 3; a++) {
    assert.ok(Math.abs(g.origin[a] - r.origin[a]) < 1e-3, `the label's origin matches (axis ${a})`);
  }
  g.direction.forEach((v, n) =>
    assert.ok(Math.abs(v - r.direction[n]) < 1e-4, "the label's axes match (so voxels pair one to one)")
  );
  return overlapMetrics(confusion(h.result.labelmap.data, label.data)).dice;
}

Deno.test({
  name:
    "la-mri-3d runs from the panel on a wrapped LA MRI: labelmap equals headless on WASM, volume in mL, Dice > 0.7",
  ignore: skipReason !== null,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const wrapped = await wrapNifti(await Deno.readFile(la!.image), la!.image, { bodyPart: "HEART" });
    const expected = await headless(wrapped);
    const expectedStats = expected.result.statistics.find((s) => s.number === 1);
    assert.ok(expectedStats && expectedStats.voxels > 0, "the headless run finds the left atrium");
    const dice = await diceAgainstLabel(expected, la!.label);
    console.log(
      `LA case ${LA_CASE}: headless WASM ${expected.seconds.toFixed(1)} s, ${
        expectedStats.volumeMl.toFixed(1)
      } mL, Dice vs label ${dice.toFixed(3)}`,
    );
    assert.ok(dice > 0.7, `Dice vs the reference label ${dice.toFixed(3)} > 0.7`);

    await withEdgeViewer(
      { name: "la", failureShot: "la-failure", modelsDir: MODELS, store: [wrapped.files] },
      async ({ edge, page }) => {
        await openStudy(page, edge, wrapped.studyUID);
        await page.waitForSelector('#edgeseg-series[data-modality="MR"]', { timeout: 60000 });
        await page.waitForSelector(`#edgeseg-models [data-model-id="${MODEL_ID}"]`, { timeout: 30000 });
        await screenshot(page, "la-1-loaded");
        assert.equal(
          await page.locator(`[data-model-id="${MODEL_ID}"] [data-mismatch]`).count(),
          0,
          await page.locator(`[data-model-id="${MODEL_ID}"] [data-mismatch]`).innerText().catch(() =>
            "la-mri-3d fits the wrapped MR series"
          ),
        );
        await selectModel(page, MODEL_ID);
        await page.selectOption("#edgeseg-uncertainty", "none");
        await page.selectOption("#edgeseg-device", "wasm");
        await screenshot(page, "la-2-model-selected");
        const t = performance.now();
        await page.click("#edgeseg-run");
        await waitForRunEnd(page, 540000);
        const browserSeconds = (performance.now() - t) / 1000;
        await screenshot(page, "la-3-labelmap");
        assert.equal(await runError(page), "", "the run ended without an error");
        const provenance = await page.locator("#edgeseg-provenance").innerText();
        console.log(
          `browser run (click → result): ${browserSeconds.toFixed(1)} s; panel says "${provenance}"; ` +
            `headless ${expected.seconds.toFixed(1)} s`,
        );
        assert.equal(await page.getAttribute("#edgeseg-provenance", "data-provider"), "wasm");

        const shown = await viewerDigest(page);
        assert.equal(Object.keys(shown).length, wrapped.files.length, "one labelmap slice per MR slice");
        assert.deepEqual(shown, expected.digest, "OHIF's labelmap equals headless segment() slice by slice");

        // Show the slice with the most atrium, as a radiologist would scroll to it.
        const [busiest] = Object.entries(expected.digest).sort((a, b) => b[1].voxels - a[1].voxels)[0];
        await showInstance(page, busiest);
        await screenshot(page, "la-4-atrium-slice");

        const row = page.locator('#edgeseg-result [data-segment="1"]');
        assert.equal(Number(await row.getAttribute("data-voxels")), expectedStats.voxels, "voxel count");
        const volumeText = await row.locator("td").nth(1).innerText();
        assert.equal(
          volumeText.trim(),
          `${expectedStats.volumeMl.toFixed(1)} mL`,
          "the segment list shows the headless volume",
        );
        console.log(`segment list: Left atrium ${volumeText.trim()}; Dice vs label ${dice.toFixed(3)}`);
      },
    );
  },
});
