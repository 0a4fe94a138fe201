/**
 * Issue #14: EdgeSeg inside a hospital's existing OHIF on another origin. Debian's nginx serves the
 * unmodified OHIF dist on its own port with no COOP/COEP and reverse-proxies /dicom-web/ to a real
 * Orthanc (the hospital's PACS). EdgeSeg comes either from the edge server on another port
 * (`--plugin-only --allow-origin <nginx origin>`) or from the `export-plugin` folder copied under the
 * OHIF's own path with no EdgeSeg server at all. The app-config names only the stable entry URLs.
 * A CT stored in Orthanc is opened, a model runs (single-threaded WASM, and the panel says why), the
 * labelmap equals the headless result, Store to PACS goes to the hospital data source, and Orthanc's
 * REST API finds the SEG. With the edge server down, the study list still renders and the console
 * says in one line that EdgeSeg could not be loaded and from where. The first test runs on OHIF 3.13.2
 * and on the newest 3.12.x.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { buildExtension } from "../../extension/build.ts";
import { exportPlugin } from "../../src/cli/export_plugin.ts";
import { phantomSeries } from "../../src/dicom/phantom.ts";
import { readSeries } from "../../src/dicom/read.ts";
import { loadModel } from "../../src/inference/deno.ts";
import { WASM_THREADS_OFF } from "../../src/inference/protocol.ts";
import { segment } from "../../src/segmentation/segment.ts";
import { parseAllowedOrigins } from "../../src/server/cors.ts";
import {
  ensureOhif,
  OHIF_OLDEST_TESTED,
  OHIF_VERSION,
  type RunningServer,
  startServer,
} from "../../src/server/mod.ts";
import { launchBrowser, screenshot, waitForCanvasContent } from "../../src/harness/browser.ts";
import { missingAmong } from "../helpers/tools.ts";
import { selectModel, withFailureReport } from "../../src/harness/edge_viewer.ts";
import { runError, waitForRunEnd } from "../helpers/edge.ts";
import { hospitalAppConfig, type HostOhif, startHostOhif } from "../helpers/nginx.ts";
import { freePort, startOrthanc } from "../helpers/orthanc.ts";
import { PROJECT_ROOT } from "../helpers/paths.ts";
import { digestSlice, type SliceDigest, viewerDigest } from "../helpers/viewer.ts";

const TEST_MODELS = join(PROJECT_ROOT, "tests", "fixtures", "models");
const MODEL_ID = "tiny-2d";

// Skipped when a tool is missing; in CI (which installs them all) a missing tool fails instead.
const skipReason = missingAmong(["chromium", "orthanc", "nginx"]);
if (skipReason) console.log(`e2e deployment tests skipped: ${skipReason}`);

const phantom = phantomSeries();

async function headlessDigest(): Promise<SliceDigest> {
  const { volume } = await readSeries(phantom.files);
  const { runtime } = await loadModel(join(TEST_MODELS, MODEL_ID), { providers: ["wasm"] });
  const result = await segment(volume, runtime, { uncertainty: "none" });
  const [cols, rows, slices] = result.labelmap.geometry.dims;
  const digest: SliceDigest = {};
  for (let k = 0; k < slices; k++) {
    const uid = volume.source!.instances[k].sopInstanceUID;
    digest[uid] = digestSlice(result.labelmap.data, k * cols * rows, cols * rows);
  }
  return digest;
}

interface Pacs {
  url: string;
  dicomWebUrl: string;
  getJson(path: string): Promise<unknown>;
  stop(): Promise<void>;
}

async function pacsWithPhantom(): Promise<Pacs> {
  const pacs = await startOrthanc();
  for (const bytes of phantom.files) {
    const res = await fetch(`${pacs.url}/instances`, {
      method: "POST",
      body: bytes,
      headers: { "content-type": "application/dicom" },
    });
    assert.ok(res.ok, `Orthanc stored a phantom slice (HTTP ${res.status} ${await res.text()})`);
  }
  return pacs;
}

/** Modalities of the study's series, as Orthanc's REST API (not DICOMweb) lists them. */
async function orthancModalities(pacs: Pacs): Promise<string[]> {
  const series = await pacs.getJson("/series?expand") as { MainDicomTags: { Modality?: string } }[];
  return series.map((s) => s.MainDicomTags.Modality ?? "?").sort();
}

/** Open the study in the EdgeSeg mode of the host OHIF, run the test model, check it, store it. */
async function runAndStore(page: Page, hostUrl: string, expected: SliceDigest, shot: string): Promise<void> {
  await page.goto(
    new URL(`/edgeseg?StudyInstanceUIDs=${encodeURIComponent(phantom.studyInstanceUID)}`, hostUrl).href,
  );
  await waitForCanvasContent(page);
  assert.equal(
    await page.evaluate(() => globalThis.crossOriginIsolated),
    false,
    "the host page is not isolated",
  );
  const caps = page.locator("#edgeseg-capabilities");
  await caps.waitFor({ timeout: 30000 });
  await page.waitForSelector(`#edgeseg-models [data-model-id="${MODEL_ID}"]`, { timeout: 30000 });
  await selectModel(page, MODEL_ID);
  await page.click("#edgeseg-run");
  await waitForRunEnd(page, 240000);
  await screenshot(page, `${shot}-result`);
  assert.equal(await runError(page), "", "the run ended without an error");
  assert.equal(await page.getAttribute("#edgeseg-provenance", "data-provider"), "wasm");
  const threads = page.locator("#edgeseg-threads");
  assert.equal(await threads.getAttribute("data-threads"), "1", "single-threaded WASM");
  assert.equal(await threads.innerText(), WASM_THREADS_OFF);
  assert.deepEqual(await viewerDigest(page), expected, "the labelmap equals the headless result");
  await page.click("#edgeseg-store");
  const status = page.locator("#edgeseg-export-status:not([data-state=working])");
  await status.waitFor({ timeout: 60000 });
  assert.equal(await status.getAttribute("data-state"), "stored", await status.innerText());
}

/** Everything one deployment test runs against; `edge` and its log only when an edge server runs. */
interface Deployment {
  pacs: Pacs;
  host: HostOhif;
  page: Page;
  consoleLines: string[];
  edge?: RunningServer;
  edgeLog: string[];
}

interface DeploymentOptions {
  shot: string;
  ohifVersion?: string;
  /** start a --plugin-only edge server; `allowHost` lists the host OHIF's origin with --allow-origin */
  edge?: { allowHost: boolean };
  /** the host's app-config plugin lines, given the edge server's URL (when one runs) */
  plugins: (edgeUrl: string) => { extensions: string[]; modes: string[] };
  aliases?: Record<string, string>;
  /** reverse proxies of the host to the edge server: URL prefix → (the edge URL is the upstream) */
  proxyPrefix?: string;
}

/** Orthanc with the phantom, optionally the edge server, nginx with the OHIF dist, and Chromium. */
async function withDeployment(opts: DeploymentOptions, fn: (d: Deployment) => Promise<void>): Promise<void> {
  const ohifDist = await ensureOhif({ version: opts.ohifVersion });
  await buildExtension();
  const pacs = await pacsWithPhantom();
  const hostPort = freePort();
  const dataDir = await Deno.makeTempDir({ prefix: "edgeseg-e2e-deploy-" });
  const edgeLog: string[] = [];
  let edge: RunningServer | undefined;
  let host: HostOhif | undefined;
  let browser: Awaited<ReturnType<typeof launchBrowser>> | undefined;
  try {
    if (opts.edge) {
      edge = await startServer({
        port: 0,
        dataDir,
        modelsDir: TEST_MODELS,
        pluginOnly: true,
        allowOrigins: parseAllowedOrigins(opts.edge.allowHost ? [`http://127.0.0.1:${hostPort}`] : []),
        log: (l) => edgeLog.push(l),
      });
    }
    host = await startHostOhif({
      ohifDist,
      port: hostPort,
      dicomWebUrl: pacs.dicomWebUrl,
      aliases: opts.aliases,
      proxies: opts.proxyPrefix && edge ? { [opts.proxyPrefix]: edge.url } : undefined,
      appConfig: hospitalAppConfig(opts.plugins(edge?.url ?? ""), opts.ohifVersion),
    });
    const opened = await launchBrowser();
    browser = opened;
    const consoleLines: string[] = [];
    opened.page.on("console", (m) => consoleLines.push(m.text()));
    const deployment = { pacs, host, page: opened.page, consoleLines, edge, edgeLog };
    await withFailureReport(opened, `${opts.shot}-failure`, () => fn(deployment));
  } finally {
    await browser?.close();
    await host?.stop();
    await edge?.close();
    await pacs.stop();
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
}

let expectedDigest: SliceDigest | undefined;
const expected = async () => expectedDigest ??= await headlessDigest();
const entry = (base: string, file: string) => new URL(`plugins/edgeseg/${file}`, base).href;
const testOptions = { ignore: skipReason !== null, sanitizeOps: false, sanitizeResources: false };

for (const version of [OHIF_VERSION, OHIF_OLDEST_TESTED]) {
  Deno.test({
    name:
      `OHIF ${version} on its own origin (nginx, no COOP/COEP, Orthanc behind it) loads EdgeSeg from a --plugin-only edge server by its stable URLs, runs single-threaded WASM, and stores the SEG to its own PACS`,
    ...testOptions,
    fn: () =>
      withDeployment({
        shot: `deploy-${version}`,
        ohifVersion: version,
        edge: { allowHost: true },
        plugins: (edgeUrl) => ({
          extensions: [entry(edgeUrl, "extension.js")],
          modes: [entry(edgeUrl, "mode.js")],
        }),
      }, async ({ pacs, host, page, edgeLog }) => {
        await runAndStore(page, host.url, await expected(), `deploy-${version}`);
        assert.deepEqual(await orthancModalities(pacs), ["CT", "SEG"], "Orthanc holds the CT and one SEG");
        // The edge server served assets only: no DICOM passed through it.
        assert.deepEqual(edgeLog.filter((l) => /\/dicom-web/.test(l)), [], "no DICOMweb request reached it");
        assert.ok(edgeLog.some((l) => /^GET \/plugins\/edgeseg\/extension\.js 200/.test(l)), "stable entry");
      }),
  });
}

Deno.test({
  name:
    "EdgeSeg behind the host's reverse proxy under a sub-path (/ext/edgeseg/ → the edge server) resolves every asset under that prefix",
  ...testOptions,
  fn: () =>
    withDeployment({
      shot: "deploy-subpath",
      edge: { allowHost: false },
      // Not /edgeseg/: nginx answers /edgeseg, the EdgeSeg mode's route, with a redirect to /edgeseg/ then.
      proxyPrefix: "/ext/edgeseg/",
      plugins: () => ({
        extensions: ["/ext/edgeseg/plugins/edgeseg/extension.js"],
        modes: ["/ext/edgeseg/plugins/edgeseg/mode.js"],
      }),
    }, async ({ host, page, edgeLog }) => {
      await runAndStore(page, host.url, await expected(), "deploy-subpath");
      // Every asset came through the prefix: the edge server saw the model, Worker and runtime files.
      for (
        const p of [
          /^GET \/models\/index\.json 200/,
          /^GET \/plugins\/edgeseg\/edgeseg-worker-/,
          /^GET \/edgeseg\/ort\//,
        ]
      ) {
        assert.ok(edgeLog.some((l) => p.test(l)), `the edge server served ${p}`);
      }
    }),
});

Deno.test({
  name:
    "the export-plugin folder copied under the host OHIF's own path runs and stores with no EdgeSeg server at all",
  ...testOptions,
  async fn() {
    const parent = await Deno.makeTempDir({ prefix: "edgeseg-e2e-export-" });
    try {
      const out = join(parent, "edgeseg");
      const exported = await exportPlugin({ out, baseUrl: "/edgeseg/", modelsDir: TEST_MODELS });
      // Exactly the lines export-plugin printed (the loader variant).
      const line = (key: string) =>
        JSON.parse(exported.snippet.match(new RegExp(`^${key}: \\[(.*)\\],$`, "m"))![1]);
      await withDeployment({
        shot: "deploy-export",
        aliases: { "/edgeseg/": out },
        plugins: () => ({ extensions: [line("extensions")], modes: [line("modes")] }),
      }, async ({ pacs, host, page }) => {
        await runAndStore(page, host.url, await expected(), "deploy-export");
        assert.deepEqual(await orthancModalities(pacs), ["CT", "SEG"]);
      });
    } finally {
      await Deno.remove(parent, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name:
    "with the edge server down, the host OHIF still shows its study list and the console says in one line that EdgeSeg could not be loaded and from where",
  ...testOptions,
  async fn() {
    await buildExtension();
    const parent = await Deno.makeTempDir({ prefix: "edgeseg-e2e-down-" });
    try {
      // Only the loader sits with the host's files; the edge server's port has nothing listening.
      await Deno.copyFile(
        join(PROJECT_ROOT, "build", "plugins", "edgeseg", "loader.js"),
        join(parent, "edgeseg-loader.js"),
      );
      const deadEdge = `http://127.0.0.1:${freePort()}/`;
      await withDeployment({
        shot: "deploy-down",
        aliases: { "/loader/": parent },
        plugins: () => ({
          extensions: [`/loader/edgeseg-loader.js?extension=${entry(deadEdge, "extension.js")}`],
          modes: [`/loader/edgeseg-loader.js?mode=${entry(deadEdge, "mode.js")}`],
        }),
      }, async ({ host, page, consoleLines }) => {
        await page.goto(host.url);
        // The phantom's row in the host's own study list (its accession number), and the host's own
        // modes offered for it.
        const row = page.getByText("EDGESEG0001").first();
        await row.waitFor({ timeout: 60000 });
        await row.click();
        await page.getByRole("button", { name: "Basic Viewer", exact: true }).waitFor({ timeout: 30000 });
        await screenshot(page, "deploy-down-study-list");
        const line = consoleLines.find((l) => l.startsWith("EdgeSeg could not be loaded from "));
        assert.ok(line, `a console line names the failure (saw: ${consoleLines.slice(-5).join(" | ")})`);
        assert.ok(line.includes(entry(deadEdge, "extension.js")), line);
        assert.ok(!line.includes("\n"), "one line");
      });
    } finally {
      await Deno.remove(parent, { recursive: true }).catch(() => {});
    }
  },
});
