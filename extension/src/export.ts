/**
 * Export of a finished run: a DICOM Segmentation and (when the run measured uncertainty) a Parametric
 * Map, written by src/dicom's writers on the source series' own metadata, then downloaded or stored to
 * the PACS through OHIF's active data source (STOW-RS), after which the new series are fetched into
 * the study browser without a reload. The writers (and dcmjs) load on first export only.
 */
import type { SegmentationResult, Volume } from "../../src/core/types.ts";
import type { NaturalizedDataset } from "../../src/dicom/dataset.ts";
import type { DisplaySet } from "./host.ts";
import { withEdits } from "./labelmap.ts";

/** What a run leaves for export: the volume's grid and slice references (its voxels were transferred). */
export interface ExportSource {
  displaySet: DisplaySet & { instances?: NaturalizedDataset[] };
  volume: Pick<Volume, "geometry" | "source">;
  result: SegmentationResult;
  /**
   * The labelmap voxels the viewer holds now (the user may have edited them), in the result's
   * layout; undefined when the viewer no longer has them (then the run's own labelmap is written).
   */
  currentLabelmap?: () => ArrayLike<number> | undefined;
}

export interface EncodedObject {
  kind: "SEG" | "PM";
  bytes: Uint8Array;
  seriesInstanceUID: string;
  fileName: string;
}

/** The source instances in the volume's slice order, matched by SOPInstanceUID. */
export function instancesInSliceOrder(src: ExportSource): NaturalizedDataset[] {
  const refs = src.volume.source?.instances ?? [];
  const bySop = new Map<string, NaturalizedDataset>();
  for (const inst of src.displaySet.instances ?? []) {
    const uid = inst.SOPInstanceUID;
    if (typeof uid === "string") bySop.set(uid, inst);
  }
  return refs.map((r, k) => {
    const inst = bySop.get(r.sopInstanceUID);
    if (!inst) {
      throw new Error(
        `EdgeSeg export: slice ${k} (SOP instance ${r.sopInstanceUID}) is not among the series' instances`,
      );
    }
    return inst;
  });
}

function safeName(text: string): string {
  return text.replace(/[^A-Za-z0-9._-]+/g, "_").slice(0, 60);
}

/** Writes the SEG (always) and the Parametric Map (when the result has an uncertainty map). */
export async function encodeResult(src: ExportSource): Promise<EncodedObject[]> {
  const [{ writeSegmentation }, { writeParametricMap }, { newUid }] = await Promise.all([
    import("../../src/dicom/seg.ts"),
    import("../../src/dicom/pmap.ts"),
    import("../../src/dicom/uid.ts"),
  ]);
  const source = {
    instances: instancesInSliceOrder(src),
    geometry: src.volume.geometry,
    refs: src.volume.source?.instances,
  };
  const p = src.result.provenance;
  const current = src.currentLabelmap?.();
  const labelmap = current ? withEdits(src.result.labelmap, current).labelmap : src.result.labelmap;
  const base = safeName(
    `${p.modelId}-${src.displaySet.SeriesDescription ?? src.displaySet.Modality ?? "series"}`,
  );
  const out: EncodedObject[] = [];
  const segSeries = newUid();
  out.push({
    kind: "SEG",
    bytes: writeSegmentation({
      source,
      labelmap,
      provenance: { ...p },
      options: { seriesDescription: `EdgeSeg ${p.modelName}`.slice(0, 64), uids: { series: segSeries } },
    }),
    seriesInstanceUID: segSeries,
    fileName: `${base}-seg.dcm`,
  });
  if (src.result.uncertainty) {
    const pmSeries = newUid();
    out.push({
      kind: "PM",
      bytes: writeParametricMap({
        source,
        map: src.result.uncertainty,
        provenance: { ...p },
        options: {
          seriesDescription: `EdgeSeg ${p.modelName} uncertainty`.slice(0, 64),
          uids: { series: pmSeries },
        },
      }),
      seriesInstanceUID: pmSeries,
      fileName: `${base}-uncertainty-pm.dcm`,
    });
  }
  return out;
}

/** Offers bytes as a file download (Part 10, application/dicom). */
export function downloadObject(obj: EncodedObject): void {
  const doc = (globalThis as unknown as {
    document?: { createElement(t: string): Record<string, unknown> & { click(): void } };
  })
    .document;
  if (!doc) throw new Error("EdgeSeg export: downloads need a browser page");
  const url = URL.createObjectURL(
    new Blob([obj.bytes as Uint8Array<ArrayBuffer>], { type: "application/dicom" }),
  );
  const a = doc.createElement("a");
  a.href = url;
  a.download = obj.fileName;
  a.click();
  // Revoked later: revoking at once cancels the download in some browsers.
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

interface DataSourceLike {
  store?: { dicom(data: ArrayBuffer): Promise<unknown> };
  deleteStudyMetadataPromise?(studyUID: string): void;
  getConfig?(): { name?: unknown } | undefined;
  retrieve?: {
    series?: {
      metadata(
        args: { StudyInstanceUID: string; filters?: { seriesInstanceUID?: string[] } },
      ): Promise<unknown>;
    };
  };
}

export interface ExtensionManagerWithSources {
  getActiveDataSource?(): DataSourceLike[];
}

/** After a successful store: refetchError says why the new series are not in the study browser yet. */
export interface StoreOutcome {
  refetchError?: string;
}

/**
 * STOW-RS of each object through the active data source (the bytes are sent as written), then the
 * new series are fetched into OHIF so they appear in the study browser.
 */
export async function storeObjects(
  extensionManager: ExtensionManagerWithSources,
  studyUID: string,
  objects: EncodedObject[],
): Promise<StoreOutcome> {
  const ds = extensionManager.getActiveDataSource?.()[0];
  if (!ds?.store?.dicom) throw new Error("the active data source cannot store DICOM (no STOW-RS configured)");
  for (const obj of objects) {
    const buf = obj.bytes.buffer.slice(
      obj.bytes.byteOffset,
      obj.bytes.byteOffset + obj.bytes.byteLength,
    ) as ArrayBuffer;
    try {
      await ds.store.dicom(buf);
    } catch (err) {
      throw new Error(`${obj.kind} not stored: ${describeStoreError(err)}`, { cause: err });
    }
  }
  forgetStudyMetadata(ds, studyUID);
  try {
    // Fetched as regular (not madeInClient) series: INSTANCES_ADDED makes their display sets, as for
    // a series that was on the PACS when the study opened.
    await ds.retrieve?.series?.metadata({
      StudyInstanceUID: studyUID,
      filters: { seriesInstanceUID: objects.map((o) => o.seriesInstanceUID) },
    });
  } catch (err) {
    // The objects are stored; only the study browser is behind (a reload shows them).
    return { refetchError: describeStoreError(err) };
  } finally {
    // The filtered answer is now cached under the study's key; forget it so a later full retrieve
    // (another panel, a hanging protocol) asks the server again instead of seeing only these series.
    forgetStudyMetadata(ds, studyUID);
  }
  return {};
}

/**
 * What went wrong with a DICOMweb request, in words. OHIF's dicomweb-client rejects with
 * Error("request failed") carrying the HTTP `status` (0 when the server could not be reached) and
 * the `response` body.
 */
export function describeStoreError(err: unknown): string {
  const e = (typeof err === "object" && err !== null ? err : {}) as {
    status?: unknown;
    response?: unknown;
    message?: unknown;
  };
  if (typeof e.status === "number") {
    if (e.status === 0) return "the PACS could not be reached";
    const body = typeof e.response === "string"
      ? e.response
      : e.response !== undefined && e.response !== null
      ? JSON.stringify(e.response)
      : "";
    const detail = body.replace(/\s+/g, " ").trim().slice(0, 120);
    return `the PACS answered HTTP ${e.status}${detail ? ` (${detail})` : ""}`;
  }
  if (typeof e.message === "string" && e.message) return e.message;
  return String(err);
}

/**
 * OHIF 3.13.2's dicomweb source caches study metadata under `${config.name}:${StudyInstanceUID}`
 * but its deleteStudyMetadataPromise(uid) deletes the key `uid` only, so the retrieve after a store
 * got the old promise back (without the new series). Both keys are deleted.
 */
function forgetStudyMetadata(ds: DataSourceLike, studyUID: string): void {
  ds.deleteStudyMetadataPromise?.(studyUID);
  const name = ds.getConfig?.()?.name;
  ds.deleteStudyMetadataPromise?.(`${typeof name === "string" ? name : "undefined"}:${studyUID}`);
}
