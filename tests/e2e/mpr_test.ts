/**
 * Issue #5 §2–§3: the model's labelmap and the uncertainty heatmap follow MPR, scrolling and layout
 * changes. On the seeded phantom CT an MC dropout run (2 passes) is made from the panel; then OHIF's
 * MPR hanging protocol must show both segmentations in its three volume viewports, drawn where the
 * data says (the coloured canvas pixels against the labelmap voxels at each pixel's world point),
 * following a wheel scroll; a 1×2 layout with the series in both viewports must show them in both,
 * and the heatmap controls (τ, opacity, toggle) must act on every viewport. Every wait is on page state.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { withEdgeViewer } from "../../src/harness/edge_viewer.ts";
import { openPhantomWith } from "../helpers/edge.ts";
import { screenshot } from "../../src/harness/browser.ts";
import { chromiumMissing } from "../helpers/browser.ts";
import { PROJECT_ROOT } from "../helpers/paths.ts";
import { overlayAgreement } from "../helpers/viewer.ts";

const TEST_MODELS = join(PROJECT_ROOT, "tests", "fixtures", "models");
const MODEL_ID = "tiny-2d";
const MPR_VIEWPORTS = ["mpr-axial", "mpr-sagittal", "mpr-coronal"];
/** Agreement of drawn and expected overlay pixels; edges of nearest-neighbour voxels cost a little. */
const MIN_DICE = 0.9;

const skipReason = chromiumMissing();
if (skipReason) console.log(`e2e MPR tests skipped: ${skipReason}`);

/**
 * Waits until each viewport lists every segmentation and draws an actor for each, coloured (the actor
 * has the segment colours as an RGB transfer function; without one it draws grey).
 */
async function waitForSegmentationsDrawn(page: Page, viewportIds: string[], segIds: string[]): Promise<void> {
  await page.waitForFunction(
    ({ viewportIds, segIds }) => {
      const g = globalThis as unknown as {
        cornerstone: {
          getEnabledElementByViewportId(id: string):
            | {
              viewport: {
                getActors(): {
                  representationUID?: string;
                  actor: { getProperty(): { getRGBTransferFunction(i: number): unknown } };
                }[];
              };
            }
            | undefined;
        };
        cornerstoneTools: {
          segmentation: {
            state: { getSegmentationRepresentations(vp: string): { segmentationId: string }[] };
          };
        };
      };
      return viewportIds.every((vp) => {
        const viewport = g.cornerstone.getEnabledElementByViewportId(vp)?.viewport;
        if (!viewport) return false;
        const listed = g.cornerstoneTools.segmentation.state.getSegmentationRepresentations(vp)
          .map((r) => r.segmentationId);
        const actors = viewport.getActors();
        return segIds.every((s) => {
          const own = actors.filter((a) => (a.representationUID ?? "").startsWith(`${s}-Labelmap`));
          return listed.includes(s) && own.length > 0 &&
            own.every((a) => !!a.actor.getProperty().getRGBTransferFunction(0));
        });
      });
    },
    { viewportIds, segIds },
    { timeout: 60000, polling: 200 },
  );
}

/** Resolves after the viewport's next render (Cornerstone's IMAGE_RENDERED on its element). */
async function armRendered(page: Page, viewportIds: string[]): Promise<void> {
  await page.evaluate((ids) => {
    const g = globalThis as unknown as {
      __rendered: Record<string, boolean>;
      cornerstone: {
        Enums: { Events: { IMAGE_RENDERED: string } };
        getEnabledElementByViewportId(id: string): { viewport: { element: HTMLElement; render(): void } };
      };
    };
    g.__rendered = {};
    for (const id of ids) {
      g.__rendered[id] = false;
      const { element } = g.cornerstone.getEnabledElementByViewportId(id).viewport;
      element.addEventListener(g.cornerstone.Enums.Events.IMAGE_RENDERED, () => {
        g.__rendered[id] = true;
      }, { once: true });
    }
  }, viewportIds);
}

function waitRendered(page: Page, viewportIds: string[]): Promise<unknown> {
  return page.waitForFunction(
    (ids) =>
      ids.every((id) => (globalThis as unknown as { __rendered: Record<string, boolean> }).__rendered[id]),
    viewportIds,
    { timeout: 30000 },
  );
}

/** Renders the viewports and waits for the frames, so the canvases show the current state. */
async function renderNow(page: Page, viewportIds: string[]): Promise<void> {
  await armRendered(page, viewportIds);
  await page.evaluate((ids) => {
    const g = globalThis as unknown as {
      cornerstone: { getEnabledElementByViewportId(id: string): { viewport: { render(): void } } };
    };
    for (const id of ids) g.cornerstone.getEnabledElementByViewportId(id).viewport.render();
  }, viewportIds);
  await waitRendered(page, viewportIds);
}

/** Per viewport: the hidden heatmap bins and the heatmap's fill opacity there. */
function heatmapPerViewport(
  page: Page,
  segId: string,
  viewportIds: string[],
): Promise<Record<string, { hidden: number[]; fillAlpha: number }>> {
  return page.evaluate(({ segId, viewportIds }) => {
    const g = globalThis as unknown as {
      services: {
        segmentationService: {
          getStyle(s: { viewportId: string; segmentationId: string; type: string }): { fillAlpha: number };
        };
      };
      cornerstoneTools: {
        segmentation: {
          config: {
            visibility: {
              getHiddenSegmentIndices(vp: string, s: { segmentationId: string; type: string }): Set<number>;
            };
          };
        };
      };
    };
    const out: Record<string, { hidden: number[]; fillAlpha: number }> = {};
    for (const viewportId of viewportIds) {
      const spec = { segmentationId: segId, type: "Labelmap" };
      out[viewportId] = {
        hidden: [
          ...g.cornerstoneTools.segmentation.config.visibility.getHiddenSegmentIndices(viewportId, spec),
        ]
          .sort((a, b) => a - b),
        fillAlpha: g.services.segmentationService.getStyle({ viewportId, ...spec }).fillAlpha,
      };
    }
    return out;
  }, { segId, viewportIds });
}

/** Shows or hides a whole segmentation in one viewport (what the eye icon of OHIF's panel does). */
function setRepresentationVisible(page: Page, viewportId: string, segId: string, visible: boolean) {
  return page.evaluate(({ viewportId, segId, visible }) => {
    const g = globalThis as unknown as {
      cornerstoneTools: {
        segmentation: {
          config: {
            visibility: {
              setSegmentationRepresentationVisibility(
                vp: string,
                s: { segmentationId: string; type: string },
                visible: boolean,
              ): void;
            };
          };
        };
      };
    };
    g.cornerstoneTools.segmentation.config.visibility.setSegmentationRepresentationVisibility(
      viewportId,
      { segmentationId: segId, type: "Labelmap" },
      visible,
    );
  }, { viewportId, segId, visible });
}

function sliceIndex(page: Page, viewportId: string): Promise<number> {
  return page.evaluate((id) => {
    const g = globalThis as unknown as {
      cornerstone: { getEnabledElementByViewportId(id: string): { viewport: { getSliceIndex(): number } } };
    };
    return g.cornerstone.getEnabledElementByViewportId(id).viewport.getSliceIndex();
  }, viewportId);
}

async function assertAligned(page: Page, viewportId: string, what: string): Promise<number> {
  // A style change (the heatmap toggle) reaches a second viewport's canvas on a later frame, late on a
  // loaded machine: render that viewport again (waiting for its IMAGE_RENDERED) until the drawing agrees
  // or 15 s have passed, then judge the last drawing.
  const deadline = Date.now() + 15000;
  let a = await overlayAgreement(page, viewportId);
  while (a.dice < MIN_DICE && Date.now() < deadline) {
    await renderNow(page, [viewportId]);
    a = await overlayAgreement(page, viewportId);
  }
  console.log(`${viewportId} ${what}: ${JSON.stringify(a)}`);
  assert.ok(a.expected > 50, `${viewportId}: ${what} has voxels in the shown plane (${a.expected})`);
  assert.ok(
    a.dice >= MIN_DICE,
    `${viewportId}: ${what} is drawn where its voxels are (Dice ${
      a.dice.toFixed(3)
    } of ${a.observed} drawn, ${a.expected} expected)`,
  );
  return a.expected;
}

/** Runs the tiny model with MC dropout (2 passes) from the panel; the ids of its two layers and the range. */
async function runWithUncertainty(page: Page) {
  await page.selectOption("#edgeseg-uncertainty", "mc");
  await page.fill("#edgeseg-passes", "2");
  await page.click("#edgeseg-run");
  await page.waitForSelector("#edgeseg-result, #edgeseg-error", { timeout: 120000 });
  assert.equal(await page.locator("#edgeseg-error").count(), 0, "the MC run succeeded");
  const labelId = (await page.getAttribute("#edgeseg-result", "data-segmentation-id"))!;
  const heatId = (await page.getAttribute("#edgeseg-heatmap", "data-segmentation-id"))!;
  assert.ok(labelId && heatId, "the labelmap and the heatmap were added to the viewer");
  const [lo, hi] = (await page.getAttribute("#edgeseg-heatmap-legend", "data-range"))!.split(",").map(Number);
  return { labelId, heatId, lo, hi };
}

function withViewer(name: string, fn: (page: Page) => Promise<void>): Promise<void> {
  return withEdgeViewer(
    { name: "mpr", failureShot: `${name}-failure`, modelsDir: TEST_MODELS, seed: true },
    async ({ edge, page }) => {
      await openPhantomWith(page, edge, MODEL_ID);
      await fn(page);
    },
  );
}

Deno.test({
  name:
    "labelmap and heatmap follow MPR (aligned with the data in all three planes, τ and opacity inherited), a wheel scroll, and the way back to one viewport",
  ignore: skipReason !== null,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await withViewer("mpr", async (page) => {
      await page.selectOption("#edgeseg-uncertainty", "mc");
      await page.fill("#edgeseg-passes", "2");
      await page.click("#edgeseg-run");
      await page.waitForSelector("#edgeseg-result, #edgeseg-error", { timeout: 120000 });
      assert.equal(await page.locator("#edgeseg-error").count(), 0, "the MC run succeeded");
      const labelId = (await page.getAttribute("#edgeseg-result", "data-segmentation-id"))!;
      const heatId = (await page.getAttribute("#edgeseg-heatmap", "data-segmentation-id"))!;
      assert.ok(labelId && heatId, "the labelmap and the heatmap were added to the viewer");
      const [lo, hi] = (await page.getAttribute("#edgeseg-heatmap-legend", "data-range"))!.split(",").map(
        Number,
      );
      await screenshot(page, "mpr-1-stack");

      // τ at mid-range before MPR: the new viewports must inherit it.
      await page.locator("#edgeseg-heatmap-tau").fill(String((lo + hi) / 2));
      await page.waitForFunction(() =>
        Number(document.querySelector("#edgeseg-heatmap")?.getAttribute("data-tau")) > 0
      );
      const upperHalf = [1, 2, 3, 4, 5, 6, 7, 8];

      // (a) MPR: both segmentations listed and drawn in the three volume viewports.
      await page.evaluate(() =>
        (globalThis as unknown as { commandsManager: { runCommand(n: string, o: unknown): void } })
          .commandsManager.runCommand("toggleHangingProtocol", { protocolId: "mpr" })
      );
      await waitForSegmentationsDrawn(page, MPR_VIEWPORTS, [labelId, heatId]);
      const mprHeat = await heatmapPerViewport(page, heatId, MPR_VIEWPORTS);
      for (const vp of MPR_VIEWPORTS) {
        assert.deepEqual(mprHeat[vp].hidden, upperHalf, `${vp} inherits τ (bins 1–8 hidden)`);
        assert.equal(mprHeat[vp].fillAlpha, 0.5, `${vp} inherits the heatmap opacity`);
      }
      await renderNow(page, MPR_VIEWPORTS);
      await screenshot(page, "mpr-2-mpr-both");

      // (b) Aligned: each layer alone, in the sagittal and coronal planes (and axial).
      for (const vp of MPR_VIEWPORTS) await setRepresentationVisible(page, vp, heatId, false);
      await renderNow(page, MPR_VIEWPORTS);
      await screenshot(page, "mpr-3-labelmap-only");
      for (const vp of MPR_VIEWPORTS) await assertAligned(page, vp, "the labelmap");
      for (const vp of MPR_VIEWPORTS) {
        await setRepresentationVisible(page, vp, heatId, true);
        await setRepresentationVisible(page, vp, labelId, false);
      }
      await renderNow(page, MPR_VIEWPORTS);
      await screenshot(page, "mpr-4-heatmap-above-tau");
      for (const vp of MPR_VIEWPORTS) await assertAligned(page, vp, "the heatmap above τ");

      // (c) Scrolling the sagittal viewport with the wheel changes the slice; the overlay follows.
      const sagittal = page.locator('[data-viewportid="mpr-sagittal"]');
      const box = (await sagittal.boundingBox())!;
      const before = await sliceIndex(page, "mpr-sagittal");
      const expectedBefore = (await overlayAgreement(page, "mpr-sagittal")).expected;
      await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
      await armRendered(page, ["mpr-sagittal"]);
      for (let i = 0; i < 30; i++) await page.mouse.wheel(0, 100);
      await page.waitForFunction(
        ({ before }) => {
          const g = globalThis as unknown as {
            cornerstone: {
              getEnabledElementByViewportId(id: string): { viewport: { getSliceIndex(): number } };
            };
          };
          return Math.abs(
            g.cornerstone.getEnabledElementByViewportId("mpr-sagittal").viewport.getSliceIndex() - before,
          ) >= 20;
        },
        { before },
        { timeout: 30000 },
      );
      await renderNow(page, ["mpr-sagittal"]);
      const after = await sliceIndex(page, "mpr-sagittal");
      await screenshot(page, "mpr-5-scrolled");
      const expectedAfter = await assertAligned(
        page,
        "mpr-sagittal",
        `the heatmap after scrolling ${before}→${after}`,
      );
      assert.notEqual(expectedAfter, expectedBefore, "the new slice shows a different part of the heatmap");

      // Back to one viewport: the labelmap is still drawn there.
      for (const vp of MPR_VIEWPORTS) await setRepresentationVisible(page, vp, labelId, true);
      await page.evaluate(() =>
        (globalThis as unknown as { commandsManager: { runCommand(n: string, o: unknown): void } })
          .commandsManager.runCommand("toggleHangingProtocol", { protocolId: "mpr" })
      );
      await page.waitForFunction(
        () => {
          const g = globalThis as unknown as {
            services: { viewportGridService: { getState(): { viewports: Map<string, unknown> } } };
          };
          return g.services.viewportGridService.getState().viewports.size === 1;
        },
        undefined,
        { timeout: 30000 },
      );
      await waitForSegmentationsDrawn(page, ["default"], [labelId, heatId]);
      await renderNow(page, ["default"]);
      await screenshot(page, "mpr-6-back-to-one");
    });
  },
});

Deno.test({
  name:
    "a 1×2 layout shows the labelmap and the heatmap in both viewports of the series, with the heatmap settings; τ, opacity and the toggle act on both",
  ignore: skipReason !== null,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await withViewer("layout", async (page) => {
      const { labelId, heatId, lo, hi } = await runWithUncertainty(page);
      await page.locator("#edgeseg-heatmap-tau").fill(String((lo + hi) / 2));
      await page.waitForFunction(() =>
        Number(document.querySelector("#edgeseg-heatmap")?.getAttribute("data-tau")) > 0
      );
      const upperHalf = [1, 2, 3, 4, 5, 6, 7, 8];
      await page.evaluate(() =>
        (globalThis as unknown as { commandsManager: { runCommand(n: string, o: unknown): void } })
          .commandsManager.runCommand("setViewportGridLayout", { numRows: 1, numCols: 2 })
      );
      await page.waitForFunction(
        () => {
          const g = globalThis as unknown as {
            services: { viewportGridService: { getState(): { viewports: Map<string, unknown> } } };
          };
          return g.services.viewportGridService.getState().viewports.size === 2;
        },
        undefined,
        { timeout: 30000 },
      );
      const grid = await page.evaluate(() => {
        const g = globalThis as unknown as {
          services: {
            viewportGridService: {
              getState(): { viewports: Map<string, { displaySetInstanceUIDs?: string[] }> };
              setDisplaySetsForViewport(o: { viewportId: string; displaySetInstanceUIDs: string[] }): void;
            };
          };
        };
        const vps = [...g.services.viewportGridService.getState().viewports.entries()];
        const ds = vps.find(([, v]) => v.displaySetInstanceUIDs?.length)![1].displaySetInstanceUIDs!;
        for (const [id, v] of vps) {
          if (!v.displaySetInstanceUIDs?.length) {
            g.services.viewportGridService.setDisplaySetsForViewport({
              viewportId: id,
              displaySetInstanceUIDs: ds,
            });
          }
        }
        return vps.map(([id]) => id);
      });
      await waitForSegmentationsDrawn(page, grid, [labelId, heatId]);
      await renderNow(page, grid);
      await screenshot(page, "layout-1-1x2");
      const layoutHeat = await heatmapPerViewport(page, heatId, grid);
      for (const vp of grid) assert.deepEqual(layoutHeat[vp].hidden, upperHalf, `${vp} inherits τ`);

      // The controls act on both viewports.
      await page.locator("#edgeseg-heatmap-opacity").fill("90");
      await page.waitForSelector('#edgeseg-heatmap[data-opacity="0.9"]');
      await page.locator("#edgeseg-heatmap-tau").fill(String(lo));
      await page.waitForFunction(
        (mid) => Number(document.querySelector("#edgeseg-heatmap")?.getAttribute("data-tau")) < mid,
        (lo + hi) / 2,
      );
      const controlled = await heatmapPerViewport(page, heatId, grid);
      for (const vp of grid) {
        assert.equal(controlled[vp].fillAlpha, 0.9, `${vp}: opacity follows the slider`);
        assert.deepEqual(controlled[vp].hidden, [], `${vp}: τ at the floor shows every bin`);
      }
      await renderNow(page, grid);
      await screenshot(page, "layout-2-all-bins");
      await page.click("#edgeseg-heatmap-toggle");
      await page.waitForSelector('#edgeseg-heatmap[data-visible="false"]');
      const off = await heatmapPerViewport(page, heatId, grid);
      for (const vp of grid) assert.equal(off[vp].hidden.length, 16, `${vp}: the toggle hides the heatmap`);
      await renderNow(page, grid);
      await screenshot(page, "layout-3-heatmap-off");
      for (const vp of grid) await assertAligned(page, vp, "the labelmap with the heatmap off");
    });
  },
});
