/**
 * The progressive display of a run: the slice in view is sent to the worker as `focusSlice`, so the
 * slab holding it is decided first and the rest follow outward; each decided slab is painted into a
 * preview labelmap as it arrives. The preview is removed when the result (post-processed, editable,
 * exportable) is shown in its place, or when the run fails or is cancelled.
 */
import type { Geometry } from "../../src/core/types.ts";
import type { DisplaySet, ServicesManager } from "./host.ts";
import { hostCornerstone } from "./host.ts";
import { fillLabelmapSlices, markRun, removeLabelmap, showLabelmap } from "./labelmap.ts";
import type { ModelIndexEntry } from "./models.ts";

interface ViewportLike {
  getCurrentImageId?(): string | undefined;
}

/** The volume slice the active viewport shows (by its imageId), or undefined when it cannot be told. */
export function sliceInView(servicesManager: ServicesManager, sliceImageIds: string[]): number | undefined {
  const viewportId = servicesManager.services.viewportGridService?.getActiveViewportId();
  const cs = hostCornerstone() as
    | { getEnabledElementByViewportId?(id: string): { viewport?: ViewportLike } | undefined }
    | undefined;
  if (!viewportId || !cs?.getEnabledElementByViewportId) return undefined;
  const imageId = cs.getEnabledElementByViewportId(viewportId)?.viewport?.getCurrentImageId?.();
  const k = imageId ? sliceImageIds.indexOf(imageId) : -1;
  return k >= 0 ? k : undefined;
}

/** A labelmap painted slab by slab while the run is under way. */
export class LabelmapPreview {
  #segmentationId?: Promise<string | undefined>;
  #slices = 0;
  #closed = false;
  #focusShown = false;

  constructor(
    private readonly servicesManager: ServicesManager,
    private readonly displaySet: DisplaySet,
    private readonly sliceImageIds: string[],
    private readonly geometry: Geometry,
    private readonly model: ModelIndexEntry,
    /** the slice in view when the run started */
    readonly focus: number | undefined,
  ) {}

  /** Slices decided so far. */
  get slices(): number {
    return this.#slices;
  }

  /** Paints slices [z0, z0 + n) (creating the preview labelmap on the first call). */
  add(z0: number, labels: Uint8Array | Uint16Array): void {
    if (this.#closed) return;
    const dims = this.geometry.dims;
    this.#segmentationId ??= this.#create();
    void this.#segmentationId.then((id) => {
      if (!id || this.#closed) return;
      const n = fillLabelmapSlices(id, this.sliceImageIds, dims, z0, labels);
      this.#slices += n;
      const z1 = z0 + labels.length / (dims[0] * dims[1]);
      markRun("edgeseg:preview-slices", { z0, z1, focus: this.focus ?? null });
      const holdsFocus = this.focus !== undefined && this.focus >= z0 && this.focus < z1;
      if (holdsFocus && !this.#focusShown) {
        this.#focusShown = true;
        markRun("edgeseg:preview-in-view", { z0, z1, focus: this.focus });
      }
    });
  }

  async #create(): Promise<string | undefined> {
    const [nx, ny, nz] = this.geometry.dims;
    const data = this.model.labels.some((l) => l.value > 255)
      ? new Uint16Array(nx * ny * nz)
      : new Uint8Array(nx * ny * nz);
    try {
      return await showLabelmap(
        this.servicesManager,
        this.displaySet,
        this.sliceImageIds,
        {
          geometry: this.geometry,
          data,
          segments: this.model.labels.map((l) => ({
            number: l.value,
            label: l.name,
            color: l.color,
            algorithmType: "AUTOMATIC",
            algorithmName: this.model.name,
          })),
        },
        `${this.model.name} ${this.model.version} (preview)`,
      );
    } catch {
      // A viewer that cannot show the preview still shows the result at the end.
      return undefined;
    }
  }

  /** Removes the preview from the viewer (the result replaces it, or the run ended without one). */
  async close(): Promise<void> {
    this.#closed = true;
    const id = await this.#segmentationId;
    if (!id) return;
    const t0 = performance.now();
    await removeLabelmap(this.servicesManager, id);
    markRun("edgeseg:preview-removed", { ms: performance.now() - t0 });
  }
}
