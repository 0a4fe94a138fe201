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

/** Waits until the panel shows a run's result or its error. */
export async function waitForRunEnd(page: Page, timeoutMs: number): Promise<void> {
  await page.waitForSelector("#edgeseg-result, #edgeseg-error", { timeout: timeoutMs });
}

/** The panel's run error, or "" when it shows none. */
export async function runError(page: Page): Promise<string> {
  return await page.locator("#edgeseg-error").count() ? await page.locator("#edgeseg-error").innerText() : "";
}
