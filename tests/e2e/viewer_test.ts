/**
 * Issue #2 §4: EdgeSeg inside the unmodified OHIF 3.13.2, served by the edge server, in Debian
 * Chromium. (a) a real CT in a private Orthanc behind the edge server's PACS proxy, opened by clicking
 * through the study list, without WebGPU; (b) the seeded phantom in the embedded store, opened by URL,
 * with --enable-unsafe-webgpu. Together they cover (c): the panel reports "WASM only" and a WebGPU
 * adapter respectively. Every wait is on page state; screenshots go to artifacts/e2e/.
 */
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { buildExtension } from "../../extension/build.ts";
import { launchBrowser, screenshot, waitForCanvasContent } from "../../src/harness/browser.ts";
import { chromiumMissing } from "../helpers/browser.ts";
import { orthancMissing, startOrthanc } from "../helpers/orthanc.ts";
import { ctAbdomenDir, listFiles, PROJECT_ROOT } from "../helpers/paths.ts";
import { dirname, join } from "node:path";
import { ensureOhif, type RunningServer, startServer } from "../../src/server/mod.ts";

const browserReason = chromiumMissing();
const orthancReason = browserReason ?? orthancMissing() ??
  (ctAbdomenDir() ? null : "../shared/data/dicom/ct-abdomen/raw is absent");
if (browserReason) console.log(`e2e viewer tests skipped: ${browserReason}`);
else if (orthancReason) console.log(`e2e Orthanc viewer test skipped: ${orthancReason}`);

/** Viewer, plugins and a fresh data dir, the way `deno task start` prepares them. */
async function prepare(): Promise<{ ohifDist: string; dataDir: string; logs: string[] }> {
  const ohifDist = await ensureOhif();
  await buildExtension();
  const dataDir = await Deno.makeTempDir({ prefix: "edgeseg-e2e-data-" });
  return { ohifDist, dataDir, logs: [] };
}

interface PanelState {
  webgpu: string | null;
  threads: string | null;
  text: string;
  models: string | null;
}

/** Waits for the EdgeSeg panel's capability probe to finish and reads what it reports. */
async function readPanel(page: Page): Promise<PanelState> {
  await page.waitForSelector("#edgeseg-panel", { timeout: 60000 });
  await page.waitForSelector("#edgeseg-capabilities[data-state=ready]", { timeout: 30000 });
  await page.waitForFunction(
    () => document.querySelector("#edgeseg-panel")?.getAttribute("data-models") !== "loading",
    null,
    {
      timeout: 30000,
    },
  );
  return await page.evaluate(() => {
    const caps = document.querySelector("#edgeseg-capabilities");
    return {
      webgpu: caps?.getAttribute("data-webgpu") ?? null,
      threads: caps?.getAttribute("data-threads") ?? null,
      text: caps?.textContent ?? "",
      models: document.querySelector("#edgeseg-panel")?.getAttribute("data-models") ?? null,
    };
  });
}

/** An absolute URL on the edge server (its `url` may or may not end with a slash). */
function at(edge: RunningServer, path: string): string {
  return new URL(path, edge.url).href;
}

async function firstStudyUid(edge: RunningServer): Promise<string> {
  const res = await fetch(at(edge, "/dicom-web/studies"), { headers: { accept: "application/dicom+json" } });
  assert.equal(res.status, 200, `QIDO studies through the edge server: HTTP ${res.status}`);
  const studies = await res.json() as { "0020000D"?: { Value?: string[] } }[];
  const uid = studies[0]?.["0020000D"]?.Value?.[0];
  assert.ok(uid, `the store lists a study (found ${studies.length})`);
  return uid;
}

function describeFailure(err: unknown, errors: string[], logs: string[]): Error {
  const detail = [
    err instanceof Error ? err.message : String(err),
    errors.length ? `browser errors:\n  ${errors.slice(-8).join("\n  ")}` : "",
    logs.length ? `server log (last lines):\n  ${logs.slice(-8).join("\n  ")}` : "",
  ].filter(Boolean).join("\n");
  return new Error(detail, { cause: err });
}

Deno.test({
  name:
    "the real CT from a private Orthanc opens in the EdgeSeg mode through the proxying edge server (WASM only)",
  ignore: orthancReason !== null,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const { ohifDist, dataDir, logs } = await prepare();
    const pacs = await startOrthanc();
    let edge: RunningServer | undefined;
    let browser: Awaited<ReturnType<typeof launchBrowser>> | undefined;
    try {
      const files = await listFiles(ctAbdomenDir()!);
      assert.equal(await pacs.upload(files), files.length, "Orthanc accepted every CT slice");
      edge = await startServer({
        port: 0,
        dataDir,
        ohifDist,
        pacsUrl: pacs.dicomWebUrl,
        seed: false,
        log: (l) => logs.push(l),
      });
      browser = await launchBrowser({ webgpu: false });
      const page = browser.page;
      try {
        await page.goto(at(edge, "/"));
        // The study list: click the patient row, then the EdgeSeg mode in "Launch workflow".
        const row = page.getByText("Pancreas-CT-CB_001").first();
        await row.waitFor({ timeout: 60000 });
        await screenshot(page, "a-orthanc-1-study-list");
        await row.click();
        const modeButton = page.getByRole("button", { name: "EdgeSeg", exact: true });
        await modeButton.waitFor({ timeout: 30000 });
        await screenshot(page, "a-orthanc-2-launch-workflow");
        await modeButton.click();
        await page.waitForURL(/\/edgeseg\?StudyInstanceUIDs=/, { timeout: 30000 });
        const fraction = await waitForCanvasContent(page);
        assert.ok(fraction > 0.05, `the CT slice rendered (${(fraction * 100).toFixed(1)} % non-background)`);
        const panel = await readPanel(page);
        await screenshot(page, "a-orthanc-3-edgeseg-mode");
        assert.equal(
          panel.webgpu,
          "no",
          `without --enable-unsafe-webgpu the panel reports WASM only (${panel.text})`,
        );
        assert.match(panel.text, /WebGPU: not available — WASM only/);
        assert.equal(panel.threads, "on", `COOP/COEP make WASM threads available (${panel.text})`);
        assert.match(panel.text, /WASM threads: on \(\d+\)/);
        assert.ok(
          await page.locator("#edgeseg-series[data-modality=CT]").count() === 1,
          "the panel sees the CT series",
        );
        // The toolbar button brings the panel back after the user switched to the segmentation tab.
        await page.click('[data-cy="panelSegmentation-btn"]');
        await page.waitForSelector("#edgeseg-panel", { state: "hidden", timeout: 10000 });
        await page.click('[data-cy="EdgeSegRun-btn"]');
        await page.waitForSelector("#edgeseg-panel", { state: "visible", timeout: 10000 });
      } catch (err) {
        await screenshot(page, "a-orthanc-failure").catch(() => {});
        throw describeFailure(err, browser.errors, logs);
      }
    } finally {
      await browser?.close();
      await edge?.close();
      await pacs.stop();
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name: "the seeded phantom study opens from the embedded store in the EdgeSeg mode with a WebGPU adapter",
  ignore: browserReason !== null,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const { ohifDist, dataDir, logs } = await prepare();
    let edge: RunningServer | undefined;
    let browser: Awaited<ReturnType<typeof launchBrowser>> | undefined;
    try {
      edge = await startServer({ port: 0, dataDir, ohifDist, seed: true, log: (l) => logs.push(l) });
      const uid = await firstStudyUid(edge);
      browser = await launchBrowser({ webgpu: true });
      const page = browser.page;
      try {
        await page.goto(at(edge, `/edgeseg?StudyInstanceUIDs=${encodeURIComponent(uid)}`));
        const fraction = await waitForCanvasContent(page);
        assert.ok(
          fraction > 0.02,
          `the phantom slice rendered (${(fraction * 100).toFixed(1)} % non-background)`,
        );
        const panel = await readPanel(page);
        await screenshot(page, "b-embedded-1-edgeseg-mode-webgpu");
        assert.equal(
          panel.webgpu,
          "yes",
          `with --enable-unsafe-webgpu the panel reports an adapter (${panel.text})`,
        );
        assert.match(panel.text, /WebGPU adapter: found \(.+\)/);
        assert.equal(panel.threads, "on", `WASM threads (${panel.text})`);
        assert.notEqual(panel.models, "loading");
      } catch (err) {
        await screenshot(page, "b-embedded-failure").catch(() => {});
        throw describeFailure(err, browser.errors, logs);
      }
    } finally {
      await browser?.close();
      await edge?.close();
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name: "a broken EdgeSeg bundle leaves the viewer working and the panel says the extension failed to load",
  ignore: browserReason !== null,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const { ohifDist, dataDir, logs } = await prepare();
    // A copy of the plugins without the chunk the extension guard imports: only the guard can load.
    const pluginsDir = await Deno.makeTempDir({ prefix: "edgeseg-e2e-plugins-" });
    const built = join(PROJECT_ROOT, "build", "plugins", "edgeseg");
    const list = JSON.parse(await Deno.readTextFile(join(built, "plugins.json"))) as { extensions: string[] };
    const guard = await Deno.readTextFile(join(built, list.extensions[0].replace("/plugins/edgeseg/", "")));
    const chunk = guard.match(/import\("\.\/(chunks\/[^"]+\.js)"\)/)?.[1];
    assert.ok(chunk, "the guard imports its chunk");
    let removed = 0;
    for (const path of await listFiles(built)) {
      const name = path.slice(built.length + 1);
      if (name === chunk) {
        removed++;
        continue;
      }
      await Deno.mkdir(dirname(join(pluginsDir, "edgeseg", name)), { recursive: true });
      await Deno.copyFile(path, join(pluginsDir, "edgeseg", name));
    }
    assert.equal(removed, 1, "the real extension chunk was found and left out");
    let edge: RunningServer | undefined;
    let browser: Awaited<ReturnType<typeof launchBrowser>> | undefined;
    try {
      edge = await startServer({
        port: 0,
        dataDir,
        ohifDist,
        pluginsDir,
        seed: true,
        log: (l) => logs.push(l),
      });
      const uid = await firstStudyUid(edge);
      browser = await launchBrowser({ webgpu: false });
      const page = browser.page;
      try {
        await page.goto(at(edge, `/edgeseg?StudyInstanceUIDs=${encodeURIComponent(uid)}`));
        const fraction = await waitForCanvasContent(page);
        assert.ok(fraction > 0.02, "the viewer still renders the study");
        const panel = page.locator('#edgeseg-panel[data-error="true"]');
        await panel.waitFor({ timeout: 30000 });
        assert.match(await panel.innerText(), /EdgeSeg failed to load: .+/);
        await screenshot(page, "c-broken-bundle-guarded");
      } catch (err) {
        await screenshot(page, "c-broken-bundle-failure").catch(() => {});
        throw describeFailure(err, browser.errors, logs);
      }
    } finally {
      await browser?.close();
      await edge?.close();
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
      await Deno.remove(pluginsDir, { recursive: true }).catch(() => {});
    }
  },
});
