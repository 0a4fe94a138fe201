/**
 * The edge server with the real viewer, as the e2e tests and the benchmark's viewer section drive it:
 * the server on a fresh data dir with a models folder, series STOWed into its embedded store, Debian
 * Chromium, and on failure a screenshot plus the browser's last errors in the thrown message. Also
 * the panel steps every run starts with: open a study in the EdgeSeg mode, select a model.
 */
import type { Page } from "playwright-core";
import { buildExtension } from "../../extension/build.ts";
import { DicomWebClient } from "../dicom/web.ts";
import { ensureOhif, type RunningServer, startServer } from "../server/mod.ts";
import { type Browser, launchBrowser, screenshot, waitForCanvasContent } from "./browser.ts";

/** What a test drives: the server, a DICOMweb client on its store, and the browser with its page. */
export interface EdgeViewer {
  edge: RunningServer;
  client: DicomWebClient;
  browser: Browser;
  page: Page;
}

export interface EdgeViewerOptions {
  /** Names the temporary data dir (`edgeseg-e2e-<name>-…`). */
  name: string;
  /** The screenshot saved when the test fails (artifacts/e2e/<failureShot>.png). */
  failureShot: string;
  /** The model packages the server offers. */
  modelsDir: string;
  /** Series (each a list of Part 10 files) STOWed to the embedded store before the test runs. */
  store?: Uint8Array[][];
  /** Seed the embedded store with the phantom study (default false). */
  seed?: boolean;
  /** Launch Chromium with a (SwiftShader) WebGPU adapter (default false). */
  webgpu?: boolean;
  /** A PACS the server proxies DICOMweb to instead of its embedded store. */
  pacsUrl?: string;
  /** Receives the server's log lines (default: dropped). */
  log?: (line: string) => void;
}

/**
 * Builds the extension, starts the edge server, stores the series, launches Chromium and runs `fn`;
 * a failure is reported with a screenshot and the browser's errors; everything is closed and the
 * data dir removed afterwards.
 */
export async function withEdgeViewer(
  options: EdgeViewerOptions,
  fn: (viewer: EdgeViewer) => Promise<void>,
): Promise<void> {
  await buildExtension();
  const ohifDist = await ensureOhif();
  const dataDir = await Deno.makeTempDir({ prefix: `edgeseg-e2e-${options.name}-` });
  const edge = await startServer({
    port: 0,
    dataDir,
    ohifDist,
    modelsDir: options.modelsDir,
    seed: options.seed ?? false,
    pacsUrl: options.pacsUrl,
    log: options.log ?? (() => {}),
  });
  let browser: Browser | undefined;
  try {
    const client = new DicomWebClient({ baseUrl: new URL("/dicom-web", edge.url).href });
    const opened = await launchBrowser({ webgpu: options.webgpu ?? false });
    browser = opened;
    await withFailureReport(opened, options.failureShot, async () => {
      for (const files of options.store ?? []) await client.store(files);
      await fn({ edge, client, browser: opened, page: opened.page });
    });
  } finally {
    await browser?.close();
    await edge.close();
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
}

/**
 * Runs `fn`; if it throws, saves the screenshot `shot` and rethrows with the browser's last errors
 * appended to the message (the original error as its cause).
 */
export async function withFailureReport(
  browser: Browser,
  shot: string,
  fn: () => Promise<void>,
): Promise<void> {
  try {
    await fn();
  } catch (err) {
    await screenshot(browser.page, shot).catch(() => {});
    const errors = browser.errors.slice(-8).join("\n  ");
    throw new Error(
      `${err instanceof Error ? err.message : err}${errors ? `\nbrowser errors:\n  ${errors}` : ""}`,
      { cause: err },
    );
  }
}

/** Opens a study in the EdgeSeg mode and waits until the viewport shows an image. */
export async function openStudy(page: Page, edge: RunningServer, studyUID: string): Promise<void> {
  await page.goto(new URL(`/edgeseg?StudyInstanceUIDs=${encodeURIComponent(studyUID)}`, edge.url).href);
  await waitForCanvasContent(page);
}

/** Clicks a model in the panel's picker and waits until the panel shows it selected. */
export async function selectModel(page: Page, modelId: string): Promise<void> {
  await page.click(`#edgeseg-models [data-model-id="${modelId}"]`);
  await page.waitForSelector(`[data-model-id="${modelId}"][data-selected="true"]`);
}
