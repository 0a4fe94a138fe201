/**
 * Page-side readers of what OHIF holds, shared by the e2e tests: the labelmap of a segmentation
 * digested per source instance, to compare with the headless pipeline.
 */
import type { Page } from "playwright-core";
import type { Labelmap, Volume } from "../../src/core/types.ts";

/** Per source instance: foreground voxel count and a position-weighted checksum of the label values. */
export type SliceDigest = Record<string, { voxels: number; checksum: number }>;

export function digestSlice(
  data: ArrayLike<number>,
  offset: number,
  size: number,
): { voxels: number; checksum: number } {
  let voxels = 0, checksum = 0;
  for (let p = 0; p < size; p++) {
    const v = data[offset + p];
    if (v !== 0) {
      voxels++;
      checksum = (checksum + (p + 1) * v) % 2147483647;
    }
  }
  return { voxels, checksum };
}

/** The digest of a headless labelmap, slice k under the SOP Instance UID of the volume's source slice k. */
export function digestLabelmap(labelmap: Labelmap, volume: Volume): SliceDigest {
  const [cols, rows, slices] = labelmap.geometry.dims;
  const size = cols * rows;
  const digest: SliceDigest = {};
  for (let k = 0; k < slices; k++) {
    const uid = volume.source?.instances[k]?.sopInstanceUID;
    if (!uid) throw new Error(`headless slice ${k} has no source instance (expected one per slice)`);
    digest[uid] = digestSlice(labelmap.data, k * size, size);
  }
  return digest;
}

/** The digest of a segmentation's labelmap in the page (default: the one the EdgeSeg result names). */
export function viewerDigest(page: Page, segmentationId?: string): Promise<SliceDigest> {
  return page.evaluate((given) => {
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
    const segId = given ??
      document.querySelector("#edgeseg-result")?.getAttribute("data-segmentation-id") ?? "";
    const seg = g.cornerstoneTools.segmentation.state.getSegmentation(segId);
    const out: Record<string, { voxels: number; checksum: number }> = {};
    for (const id of seg.representationData.Labelmap.imageIds) {
      const img = g.cornerstone.cache.getImage(id);
      const data = img.voxelManager.getScalarData();
      let voxels = 0, checksum = 0;
      for (let p = 0; p < data.length; p++) {
        const v = data[p];
        if (v !== 0) {
          voxels++;
          checksum = (checksum + (p + 1) * v) % 2147483647;
        }
      }
      out[g.cornerstone.metaData.get("sopCommonModule", img.referencedImageId).sopInstanceUID] = {
        voxels,
        checksum,
      };
    }
    return out;
  }, segmentationId);
}

/**
 * Scrolls the active viewport to the image of a source instance (a stack viewport's own index; a
 * volume viewport through cornerstoneTools' jumpToSlice) and resolves once the viewport shows it, so
 * a screenshot shows that slice.
 */
export async function showInstance(page: Page, sopInstanceUID: string): Promise<void> {
  const index = await page.evaluate(async (uid) => {
    type Vp = {
      element: HTMLElement;
      getImageIds(): string[];
      setImageIdIndex?(i: number): Promise<unknown>;
      render(): void;
    };
    const g = globalThis as unknown as {
      cornerstone: {
        getRenderingEngines(): { getViewport(id: string): Vp | undefined }[];
        metaData: { get(t: string, id: string): { sopInstanceUID: string } | undefined };
      };
      cornerstoneTools: {
        utilities: { jumpToSlice(el: HTMLElement, o: { imageIndex: number }): Promise<void> };
      };
      services: { viewportGridService: { getActiveViewportId(): string } };
    };
    const id = g.services.viewportGridService.getActiveViewportId();
    const vp = g.cornerstone.getRenderingEngines().map((e) => e.getViewport(id)).find((v) => v);
    if (!vp) throw new Error(`no Cornerstone viewport ${id}`);
    const ids = vp.getImageIds();
    const i = ids.findIndex((imageId) =>
      g.cornerstone.metaData.get("sopCommonModule", imageId)?.sopInstanceUID === uid
    );
    if (i < 0) throw new Error(`the active viewport has no image of instance ${uid} (${ids.length} images)`);
    if (vp.setImageIdIndex) await vp.setImageIdIndex(i);
    else await g.cornerstoneTools.utilities.jumpToSlice(vp.element, { imageIndex: i });
    vp.render();
    return i;
  }, sopInstanceUID);
  await page.waitForFunction((i) => {
    const g = globalThis as unknown as {
      cornerstone: {
        getRenderingEngines(): { getViewport(id: string): { getCurrentImageIdIndex(): number } }[];
      };
      services: { viewportGridService: { getActiveViewportId(): string } };
    };
    const id = g.services.viewportGridService.getActiveViewportId();
    return g.cornerstone.getRenderingEngines().some((e) => e.getViewport(id)?.getCurrentImageIdIndex() === i);
  }, index);
}
