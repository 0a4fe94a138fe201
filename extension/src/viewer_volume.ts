/**
 * The active series as an EdgeSeg `Volume`, read from the host's Cornerstone3D: a streaming image
 * volume built from the display set's imageIds (pixel values already rescaled, e.g. CT in HU — never
 * rescale again), with its geometry converted to EdgeSeg's convention and the source instance of
 * every slice k recorded, because Cornerstone sorts slices by position (z ascending) while the display
 * set runs in file/instance order. Results are mapped back by these references, never by index.
 */
import { InputError, ViewerError } from "../../src/core/errors.ts";
import type { Geometry, Mat3, Vec3, Volume, VoxelArray } from "../../src/core/types.ts";
import type { DisplaySet } from "./host.ts";
import { hostCornerstone } from "./host.ts";

/** The parts of a Cornerstone3D image volume used here (5.6.8). */
export interface CornerstoneVolumeLike {
  dimensions: ArrayLike<number>;
  spacing: ArrayLike<number>;
  origin: ArrayLike<number>;
  /** [rowCosines, columnCosines, normal]: each triple is one axis (i, j, k) */
  direction: ArrayLike<number>;
  imageIds: string[];
  numberOfComponents?: number;
  voxelManager: { getCompleteScalarDataArray(): ArrayLike<number> };
  load(callback: () => void): void;
  /** per frame, its Enums.ImageQualityStatus (FULL_RESOLUTION = 8) */
  cachedFrames?: ArrayLike<number | boolean>;
}

/** Cornerstone's Enums.ImageQualityStatus.FULL_RESOLUTION (the same in 4.x and 5.x). */
const FULL_RESOLUTION = 8;

/** Frames of the volume not yet at full resolution (none when Cornerstone does not say). */
export function framesNotFull(vol: Pick<CornerstoneVolumeLike, "cachedFrames">): number {
  const frames = vol.cachedFrames;
  if (!frames) return 0;
  let n = 0;
  for (let i = 0; i < frames.length; i++) {
    if (frames[i] !== true && frames[i] !== FULL_RESOLUTION) n++;
  }
  return n;
}

/**
 * Waits until every frame of the volume holds its full-resolution pixels. The load callback alone is
 * not enough: with progressive retrieval (OHIF 3.12 / Cornerstone 4 configures it) the callback fires
 * once every frame was *processed*, while some still hold a copy of a neighbouring slice
 * (ADJACENT_REPLICATE) until their own image arrives; a model run on that would segment the wrong
 * pixels for those slices. Polls the per-frame status, which Cornerstone updates as images land.
 */
export async function waitForFullResolution(
  vol: Pick<CornerstoneVolumeLike, "cachedFrames">,
  timeoutMs = 120_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let delay = 10;
  while (framesNotFull(vol) > 0) {
    if (Date.now() > deadline) {
      throw new ViewerError(
        "SERIES_NOT_LOADED",
        `EdgeSeg: ${framesNotFull(vol)} images of the series did not load at full resolution within ${
          timeoutMs / 1000
        } s`,
      );
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(200, delay * 2);
  }
}

/**
 * Cornerstone stores the direction as three axis vectors one after another; EdgeSeg stores the same
 * vectors as the columns of a row-major matrix. The conversion is a transpose.
 */
export function geometryFromCornerstone(
  vol: Pick<CornerstoneVolumeLike, "dimensions" | "spacing" | "origin" | "direction">,
): Geometry {
  const d = vol.direction;
  const direction: Mat3 = [d[0], d[3], d[6], d[1], d[4], d[7], d[2], d[5], d[8]];
  const v3 = (a: ArrayLike<number>): Vec3 => [a[0], a[1], a[2]];
  // A photograph without PixelSpacing (Secondary Capture) has no spacing in Cornerstone; 1 mm per
  // pixel is what the headless reader assumes too.
  const mm = (v: number) => (Number.isFinite(v) && v > 0 ? v : 1);
  const s = vol.spacing;
  const o = vol.origin;
  const num = (v: number) => (Number.isFinite(v) ? v : 0);
  return {
    dims: v3(vol.dimensions),
    spacing: [mm(s[0]), mm(s[1]), mm(s[2])],
    origin: [num(o[0]), num(o[1]), num(o[2])],
    direction,
  };
}

/** Copies (never aliases) Cornerstone's scalar array into a typed array EdgeSeg accepts. */
export function voxelsFrom(scalars: ArrayLike<number>): VoxelArray {
  if (
    scalars instanceof Int16Array || scalars instanceof Uint16Array || scalars instanceof Uint8Array ||
    scalars instanceof Float32Array
  ) {
    return scalars.slice();
  }
  return Float32Array.from(scalars);
}

/** Cornerstone keeps colour voxels interleaved (RGBRGB…); EdgeSeg volumes are planar (all R, then G, then B). */
export function planarFromInterleaved(data: VoxelArray, channels: number): VoxelArray {
  if (channels === 1) return data;
  const n = data.length / channels;
  const out = new (data.constructor as { new (len: number): VoxelArray })(data.length);
  for (let c = 0; c < channels; c++) {
    const base = c * n;
    for (let v = 0, src = c; v < n; v++, src += channels) out[base + v] = data[src];
  }
  return out;
}

interface MetaDataLike {
  get(type: string, imageId: string): Record<string, unknown> | undefined;
}

function str(v: unknown): string | undefined {
  return typeof v === "string" && v !== "" ? v : undefined;
}

/** A volume read from the viewer, with the Cornerstone imageId of every slice k (to map results back). */
export interface ViewerVolume {
  volume: Volume;
  sliceImageIds: string[];
}

/** Builds the volume for a display set through the host's Cornerstone; reports load progress. */
export async function volumeFromDisplaySet(
  displaySet: DisplaySet,
  options: { onProgress?: (done: number, total: number) => void } = {},
): Promise<ViewerVolume> {
  const cs = hostCornerstone() as
    | {
      volumeLoader?: {
        createAndCacheVolume(id: string, opts: { imageIds: string[] }): Promise<CornerstoneVolumeLike>;
      };
      metaData?: MetaDataLike;
      cache?: { getVolume(id: string): CornerstoneVolumeLike | undefined };
    }
    | undefined;
  if (!cs?.volumeLoader || !cs.metaData) {
    throw new ViewerError(
      "NO_CORNERSTONE",
      "EdgeSeg: the viewer's Cornerstone3D (window.cornerstone) is not available yet",
    );
  }
  const imageIds = displaySet.imageIds ?? [];
  if (imageIds.length === 0) {
    throw new InputError("NO_IMAGES", "EdgeSeg: the active series has no images to segment");
  }
  const volumeId = `cornerstoneStreamingImageVolume:edgeseg-${displaySet.displaySetInstanceUID}`;
  const vol = cs.cache?.getVolume(volumeId) ??
    await cs.volumeLoader.createAndCacheVolume(volumeId, { imageIds });
  options.onProgress?.(0, imageIds.length);
  await new Promise<void>((resolve) => vol.load(resolve));
  await waitForFullResolution(vol);
  options.onProgress?.(imageIds.length, imageIds.length);

  const geometry = geometryFromCornerstone(vol);
  const scalars = vol.voxelManager.getCompleteScalarDataArray();
  // Cornerstone leaves numberOfComponents unset on a volume built from one RGB image; the scalar
  // count then says how many samples each voxel has.
  const voxelCount = geometry.dims[0] * geometry.dims[1] * geometry.dims[2];
  const channels = vol.numberOfComponents && vol.numberOfComponents > 1
    ? vol.numberOfComponents
    : scalars.length === 3 * voxelCount
    ? 3
    : 1;
  const data = planarFromInterleaved(voxelsFrom(scalars), channels);
  const expected = geometry.dims[0] * geometry.dims[1] * geometry.dims[2] * channels;
  if (data.length !== expected) {
    throw new ViewerError(
      "VOLUME_SIZE",
      `EdgeSeg: the volume has ${data.length} voxels, expected ${expected} (${
        geometry.dims.join("×")
      }×${channels})`,
    );
  }
  const meta = cs.metaData;
  const first = vol.imageIds[0];
  const series = meta.get("generalSeriesModule", first) ?? {};
  const frame = meta.get("imagePlaneModule", first) ?? {};
  const instances = vol.imageIds.map((id) => {
    const sop = meta.get("sopCommonModule", id) ?? {};
    return { sopClassUID: str(sop.sopClassUID) ?? "", sopInstanceUID: str(sop.sopInstanceUID) ?? "" };
  });
  // OHIF's metadata provider answers "instance" with the naturalised dataset; the DICOM Manufacturer
  // picks a per-scanner intensity recipe (preprocessing.intensityByManufacturer)
  const manufacturer = str(meta.get("instance", first)?.Manufacturer);
  const volume: Volume = {
    geometry,
    channels,
    data,
    ...(manufacturer ? { manufacturer } : {}),
    modality: str(series.modality) ?? displaySet.Modality ?? "OT",
    frameOfReferenceUID: str(frame.frameOfReferenceUID),
    source: {
      studyUID: displaySet.StudyInstanceUID ?? str(series.studyInstanceUID) ?? "",
      seriesUID: displaySet.SeriesInstanceUID ?? str(series.seriesInstanceUID) ?? "",
      instances,
    },
  };
  return { volume, sliceImageIds: [...vol.imageIds] };
}
