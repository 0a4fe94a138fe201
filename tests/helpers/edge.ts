/**
 * Panel steps the e2e tests repeat on top of the viewer harness (src/harness/edge_viewer.ts): open
 * the seeded phantom with a model selected, wait for a run to end and read its error.
 */
import type { Page } from "playwright-core";
import { phantomSeries } from "../../src/dicom/phantom.ts";
import { openStudy, selectModel } from "../../src/harness/edge_viewer.ts";
import type { RunningServer } from "../../src/server/mod.ts";

/** Opens the seeded phantom study in the EdgeSeg mode and selects a model (the e2e tests' usual start). */
export async function openPhantomWith(page: Page, edge: RunningServer, modelId: string): Promise<void> {
  await openStudy(page, edge, phantomSeries().studyInstanceUID);
  await selectModel(page, modelId);
}

/**
 * Waits until the panel shows a run's result or its error. After an earlier run in the same page, pass
 * that run's segmentation id (`#edgeseg-result`'s `data-segmentation-id`): only a result with another
 * id, or an error, then ends the wait, so the earlier result still on screen is not taken for the new one.
 */
export async function waitForRunEnd(
  page: Page,
  timeoutMs: number,
  previousSegmentationId?: string,
): Promise<void> {
  if (previousSegmentationId === undefined) {
    await page.waitForSelector("#edgeseg-result, #edgeseg-error", { timeout: timeoutMs });
    return;
  }
  await page.waitForFunction(
    (previous) => {
      if (document.querySelector("#edgeseg-error")) return true;
      const id = document.querySelector("#edgeseg-result")?.getAttribute("data-segmentation-id");
      return !!id && id !== previous;
    },
    previousSegmentationId,
    { timeout: timeoutMs },
  );
}

/** The panel's run error, or "" when it shows none. */
export async function runError(page: Page): Promise<string> {
  return await page.locator("#edgeseg-error").count() ? await page.locator("#edgeseg-error").innerText() : "";
}
