/**
 * Issue #5 §6c: a WebGPU run through the panel. Chromium with --enable-unsafe-webgpu (SwiftShader
 * adapter) opens a small CT phantom (8 slices of 64×64) from the embedded store, the user picks
 * "WebGPU" and runs the tiny 2D test model: the provenance line says webgpu and the labelmap equals
 * the headless WASM result, except at voxels whose decision the project's WebGPU tolerance (model
 * outputs within 1e-3 of WASM) can flip. Without the flag and with device "auto", the run ends on
 * WASM and the panel shows why it fell back.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { phantomSeries } from "../../src/dicom/phantom.ts";
import { readSeries } from "../../src/dicom/read.ts";
import { loadModel } from "../../src/inference/deno.ts";
import { segment } from "../../src/segmentation/segment.ts";
import type { ModelRuntime, Predictor } from "../../src/core/types.ts";
import type { RunningServer } from "../../src/server/mod.ts";
import { screenshot } from "../../src/harness/browser.ts";
import { chromiumMissing } from "../helpers/browser.ts";
import { openStudy, selectModel, withEdgeViewer } from "../../src/harness/edge_viewer.ts";
import { runError, waitForRunEnd } from "../helpers/edge.ts";
import { PROJECT_ROOT } from "../helpers/paths.ts";

const TEST_MODELS = join(PROJECT_ROOT, "tests", "fixtures", "models");
const MODEL_ID = "tiny-2d";
/** The project's WebGPU tolerance: model outputs within this of WASM (tests/inference/browser_test.ts). */
const WEBGPU_TOLERANCE = 1e-3;
const SERIES = phantomSeries({ slices: 8, size: 64, uidRoot: "2.25.5020261123", seed: 7 });

const skipReason = chromiumMissing();
if (skipReason) console.log(`e2e WebGPU tests skipped: ${skipReason}`);

type Labels = Record<string, number[]>;

/**
 * Per source instance: the labels of the segmentation the panel names. Read from Cornerstone's
 * cache, as the e2e helpers read digests, but whole (to locate any voxel that differs).
 */
function viewerLabels(page: Page): Promise<Labels> {
  return page.evaluate(() => {
    type Img = { referencedImageId: string; voxelManager: { getScalarData(): ArrayLike<number> } };
    const g = globalThis as unknown as {
      cornerstone: {
        cache: { getImage(id: string): Img };
        metaData: { get(t: string, id: string): { sopInstanceUID: string } };
      };
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
    const out: Record<string, number[]> = {};
    for (const id of seg.representationData.Labelmap.imageIds) {
      const img = g.cornerstone.cache.getImage(id);
      out[g.cornerstone.metaData.get("sopCommonModule", img.referencedImageId).sopInstanceUID] = Array.from(
        img.voxelManager.getScalarData(),
      );
    }
    return out;
  });
}

/** Adds `delta` to the foreground logit and subtracts it from the background logit of every output. */
function nudged(runtime: ModelRuntime, delta: number): ModelRuntime {
  const nudge = (p: Predictor): Predictor => async (input, shape, signal, extra) => {
    const y = (await p(input, shape, signal, extra)).slice();
    const plane = shape.slice(2).reduce((a, b) => a * b, 1);
    const k = y.length / (shape[0] * plane);
    for (let b = 0; b < shape[0]; b++) {
      for (let q = 0; q < plane; q++) {
        y[(b * k) * plane + q] -= delta;
        y[(b * k + 1) * plane + q] += delta;
      }
    }
    return y;
  };
  return { ...runtime, members: runtime.members.map(nudge) };
}

interface Reference {
  labels: Labels;
  /** voxels whose label changes when every output moves by the WebGPU tolerance */
  borderline: Record<string, Set<number>>;
  foreground: number;
}

/** The headless WASM labels of the phantom, and where the WebGPU tolerance could flip them. */
async function headlessReference(): Promise<Reference> {
  const { volume } = await readSeries(SERIES.files);
  const { runtime } = await loadModel(join(TEST_MODELS, MODEL_ID), { providers: ["wasm"] });
  const run = async (rt: ModelRuntime) => (await segment(volume, rt, { uncertainty: "none" })).labelmap;
  const exact = await run(runtime);
  // Each logit may move by the tolerance, so the two-class margin may move by twice it.
  const up = await run(nudged(runtime, 2 * WEBGPU_TOLERANCE));
  const down = await run(nudged(runtime, -2 * WEBGPU_TOLERANCE));
  const [cols, rows, slices] = exact.geometry.dims;
  const size = cols * rows;
  const labels: Labels = {};
  const borderline: Record<string, Set<number>> = {};
  let foreground = 0;
  for (let k = 0; k < slices; k++) {
    const uid = volume.source!.instances[k].sopInstanceUID;
    labels[uid] = Array.from(exact.data.subarray(k * size, (k + 1) * size));
    borderline[uid] = new Set();
    for (let p = 0; p < size; p++) {
      if (up.data[k * size + p] !== down.data[k * size + p]) borderline[uid].add(p);
      if (labels[uid][p] !== 0) foreground++;
    }
  }
  return { labels, borderline, foreground };
}

/** Opens the phantom in the EdgeSeg mode, selects the test model and the device, and runs. */
async function runFromPanel(page: Page, edge: RunningServer, device: string, shot: string): Promise<void> {
  await openStudy(page, edge, SERIES.studyInstanceUID);
  await page.waitForSelector('#edgeseg-capabilities[data-state="ready"]', { timeout: 30000 });
  await page.waitForSelector('#edgeseg-series[data-modality="CT"]', { timeout: 30000 });
  await selectModel(page, MODEL_ID);
  await page.selectOption("#edgeseg-device", device);
  await page.click("#edgeseg-run");
  await waitForRunEnd(page, 120000);
  await screenshot(page, shot);
  assert.equal(await runError(page), "", "the run ended without an error");
}

Deno.test({
  name:
    "with a WebGPU adapter, a run on device WebGPU says webgpu and its labelmap matches headless WASM within the WebGPU tolerance",
  ignore: skipReason !== null,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const reference = await headlessReference();
    assert.ok(reference.foreground > 0, "the test model finds foreground in the phantom");
    await withEdgeViewer(
      {
        name: "webgpu",
        failureShot: "webgpu-failure",
        modelsDir: TEST_MODELS,
        store: [SERIES.files],
        webgpu: true,
      },
      async ({ edge, page }) => {
        await runFromPanel(page, edge, "webgpu", "webgpu-1-run");
        assert.equal(await page.getAttribute("#edgeseg-capabilities", "data-webgpu"), "yes");
        assert.equal(
          await page.getAttribute("#edgeseg-provenance", "data-provider"),
          "webgpu",
          await page.locator("#edgeseg-provenance").innerText(),
        );
        assert.match(await page.locator("#edgeseg-provenance").innerText(), /WEBGPU/);
        assert.equal(await page.locator("#edgeseg-fallback").count(), 0, "nothing fell back");
        const seen = await viewerLabels(page);
        assert.deepEqual(
          Object.keys(seen).sort(),
          Object.keys(reference.labels).sort(),
          "same source slices",
        );
        const outside: string[] = [];
        let differ = 0;
        for (const [uid, want] of Object.entries(reference.labels)) {
          for (let p = 0; p < want.length; p++) {
            if (seen[uid][p] === want[p]) continue;
            differ++;
            if (!reference.borderline[uid].has(p)) {
              outside.push(`${uid}[${p}]: ${seen[uid][p]} vs ${want[p]}`);
            }
          }
        }
        console.log(
          `WebGPU vs WASM: ${differ} of ${reference.foreground} foreground voxels differ; ${
            Object.values(reference.borderline).reduce((a, s) => a + s.size, 0)
          } voxels are within the tolerance of the threshold`,
        );
        assert.deepEqual(outside, [], "every differing voxel is one the WebGPU tolerance can flip");
      },
    );
  },
});

Deno.test({
  name: "without a WebGPU adapter, a run on device auto ends on WASM and the panel shows why it fell back",
  ignore: skipReason !== null,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const reference = await headlessReference();
    await withEdgeViewer(
      {
        name: "webgpu",
        failureShot: "webgpu-fallback-failure",
        modelsDir: TEST_MODELS,
        store: [SERIES.files],
        webgpu: false,
      },
      async ({ edge, page }) => {
        await runFromPanel(page, edge, "auto", "webgpu-2-fallback");
        assert.equal(await page.getAttribute("#edgeseg-capabilities", "data-webgpu"), "no");
        assert.equal(await page.getAttribute("#edgeseg-provenance", "data-provider"), "wasm");
        assert.match(await page.locator("#edgeseg-provenance").innerText(), /WASM \(fell back from webgpu/);
        const why = await page.locator("#edgeseg-fallback").innerText();
        assert.match(why, /^Ran on WASM because webgpu: .*(adapter|navigator\.gpu)/, why);
        const seen = await viewerLabels(page);
        for (const [uid, want] of Object.entries(reference.labels)) {
          assert.deepEqual(seen[uid], want, `WASM in the browser equals headless WASM exactly (${uid})`);
        }
      },
    );
  },
});
