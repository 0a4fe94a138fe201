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
      const sop = g.cornerstone.metaData.get("sopCommonModule", img.referencedImageId).sopInstanceUID;
      if (out[sop]) {
        throw new Error(
          `two labelmap images (${id} and another) reference the source image ${img.referencedImageId}`,
        );
      }
      out[sop] = {
        voxels,
        checksum,
      };
    }
    return out;
  }, segmentationId);
}

/**
 * A segmentation's labelmap in the page (default: the one the EdgeSeg result names), per source
 * instance: the image's pixel count and the indices (row-major, as the headless labelmap) of its
 * non-zero pixels, for scoring against a reference in the test.
 */
export function viewerForeground(
  page: Page,
  segmentationId?: string,
): Promise<Record<string, { pixels: number; foreground: number[] }>> {
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
    const out: Record<string, { pixels: number; foreground: number[] }> = {};
    for (const id of seg.representationData.Labelmap.imageIds) {
      const img = g.cornerstone.cache.getImage(id);
      const data = img.voxelManager.getScalarData();
      const foreground: number[] = [];
      for (let p = 0; p < data.length; p++) if (data[p] !== 0) foreground.push(p);
      const sop = g.cornerstone.metaData.get("sopCommonModule", img.referencedImageId).sopInstanceUID;
      out[sop] = { pixels: data.length, foreground };
    }
    return out;
  }, segmentationId);
}

/** Waits until the active viewport shows a segmentation as a visible labelmap (OHIF's representation state). */
export async function waitForLabelmapShown(
  page: Page,
  segmentationId: string,
  timeoutMs = 30000,
): Promise<void> {
  await page.waitForFunction(
    (segId) => {
      const g = globalThis as unknown as {
        cornerstoneTools: {
          segmentation: {
            state: {
              getSegmentationRepresentations(
                vp: string,
              ): { segmentationId: string; type: string; visible: boolean }[];
            };
          };
        };
        services: { viewportGridService: { getActiveViewportId(): string } };
      };
      const vp = g.services.viewportGridService.getActiveViewportId();
      return g.cornerstoneTools.segmentation.state.getSegmentationRepresentations(vp)
        .some((r) => r.segmentationId === segId && r.type === "Labelmap" && r.visible);
    },
    segmentationId,
    { timeout: timeoutMs },
  );
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

/** Coloured pixels drawn over a viewport against the labelmap voxels its state says are shown there. */
export interface OverlayAgreement {
  /** canvas pixels (sampled) that carry colour: the image is grey, so only an overlay colours it */
  observed: number;
  /** sampled pixels whose world point falls in a shown, non-zero voxel of a shown segmentation */
  expected: number;
  /** pixels in both */
  both: number;
  dice: number;
}

/**
 * Samples a viewport's canvas every `step` CSS pixels. Each pixel's world point (the viewport's own
 * canvasToWorld) is mapped into the labelmap images of the segmentations represented and visible
 * in the viewport through their referenced images' position, orientation and spacing, never through
 * the renderer, so a labelmap drawn off its data (wrong slice, flipped, shifted) disagrees.
 */
export function overlayAgreement(page: Page, viewportId: string, step = 2): Promise<OverlayAgreement> {
  return page.evaluate(({ viewportId, step }) => {
    type V3 = [number, number, number];
    type Img = { referencedImageId: string; voxelManager: { getScalarData(): ArrayLike<number> } };
    type Plane = {
      imagePositionPatient: V3;
      rowCosines: V3;
      columnCosines: V3;
      rowPixelSpacing: number;
      columnPixelSpacing: number;
      rows: number;
      columns: number;
    };
    const g = globalThis as unknown as {
      cornerstone: {
        cache: { getImage(id: string): Img };
        metaData: { get(t: string, id: string): Plane };
        getEnabledElementByViewportId(id: string): {
          viewport: { canvas: HTMLCanvasElement; canvasToWorld(p: [number, number]): V3 };
        };
      };
      cornerstoneTools: {
        segmentation: {
          state: {
            getSegmentation(id: string): { representationData: { Labelmap: { imageIds: string[] } } };
            getSegmentationRepresentations(
              vp: string,
            ): { segmentationId: string; type: string; visible: boolean }[];
          };
          config: {
            visibility: {
              getHiddenSegmentIndices(vp: string, s: { segmentationId: string; type: string }): Set<number>;
            };
          };
        };
      };
    };
    const dot = (a: V3, b: V3) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
    const sub = (a: V3, b: V3): V3 => [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
    const cross = (a: V3, b: V3): V3 => [
      a[1] * b[2] - a[2] * b[1],
      a[2] * b[0] - a[0] * b[2],
      a[0] * b[1] - a[1] * b[0],
    ];
    const layers = g.cornerstoneTools.segmentation.state.getSegmentationRepresentations(viewportId)
      .filter((r) => r.type === "Labelmap" && r.visible)
      .map((r) => {
        const hidden = g.cornerstoneTools.segmentation.config.visibility.getHiddenSegmentIndices(viewportId, {
          segmentationId: r.segmentationId,
          type: "Labelmap",
        });
        const ids = g.cornerstoneTools.segmentation.state.getSegmentation(r.segmentationId).representationData
          .Labelmap.imageIds;
        const slices = ids.map((id) => {
          const img = g.cornerstone.cache.getImage(id);
          const plane = g.cornerstone.metaData.get("imagePlaneModule", img.referencedImageId);
          const normal = cross(plane.rowCosines, plane.columnCosines);
          return {
            plane,
            normal,
            d: dot(plane.imagePositionPatient, normal),
            data: img.voxelManager.getScalarData(),
          };
        }).sort((a, b) => a.d - b.d);
        const gap = slices.length > 1 ? Math.abs(slices[1].d - slices[0].d) : 1;
        return { hidden, slices, gap };
      });
    const shownAt = (w: V3): boolean => {
      for (const { hidden, slices, gap } of layers) {
        const t = dot(w, slices[0].normal);
        const k = Math.round((t - slices[0].d) / gap);
        const s = slices[k];
        if (!s || Math.abs(t - s.d) > gap / 2) continue;
        const rel = sub(w, s.plane.imagePositionPatient);
        const col = Math.round(dot(rel, s.plane.rowCosines) / s.plane.columnPixelSpacing);
        const row = Math.round(dot(rel, s.plane.columnCosines) / s.plane.rowPixelSpacing);
        if (col < 0 || row < 0 || col >= s.plane.columns || row >= s.plane.rows) continue;
        const v = s.data[row * s.plane.columns + col];
        if (v !== 0 && !hidden.has(v)) return true;
      }
      return false;
    };
    const { viewport } = g.cornerstone.getEnabledElementByViewportId(viewportId);
    const canvas = viewport.canvas;
    const scale = canvas.width / canvas.clientWidth;
    const px =
      canvas.getContext("2d", { willReadFrequently: true })!.getImageData(0, 0, canvas.width, canvas.height)
        .data;
    let observed = 0, expected = 0, both = 0;
    for (let y = step / 2; y < canvas.clientHeight; y += step) {
      for (let x = step / 2; x < canvas.clientWidth; x += step) {
        const col = Math.floor(x * scale), row = Math.floor(y * scale);
        const i = 4 * (row * canvas.width + col);
        const r = px[i], gr = px[i + 1], b = px[i + 2];
        const coloured = Math.max(r, gr, b) - Math.min(r, gr, b) > 12;
        // The world point of that canvas pixel's centre, not of its corner: half a pixel off, a noisy
        // labelmap drawn 2–3 pixels a voxel (a stack view) loses an eighth of its Dice.
        const shown = shownAt(viewport.canvasToWorld([(col + 0.5) / scale, (row + 0.5) / scale]));
        if (coloured) observed++;
        if (shown) expected++;
        if (coloured && shown) both++;
      }
    }
    return { observed, expected, both, dice: (2 * both) / Math.max(1, observed + expected) };
  }, { viewportId, step });
}
