/**
 * Export of a finished run: a DICOM Segmentation and (when the run measured uncertainty) a Parametric
 * Map, written by src/dicom's writers on the source series' own metadata, then downloaded or stored to
 * the PACS (STOW-RS with `fetch` to the active data source's DICOMweb root, or through the data source
 * itself when it has none), after which the new series are fetched into the study browser without a
 * reload. The writers (and dcmjs) load on first export only.
 */
import { DicomWebError, EdgeSegError, InputError, ViewerError } from "../../src/core/errors.ts";
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
      throw new InputError(
        "SLICE_NOT_IN_SERIES",
        `EdgeSeg export: slice ${k} (SOP instance ${r.sopInstanceUID}) is not among the series' instances`,
      );
    }
    return inst;
  });
}

function safeName(text: string): string {
  return text.replace(/[^A-Za-z0-9._-]+/g, "_").slice(0, 60);
}

/**
 * Writes the SEG (always) and the Parametric Map (when the result has an uncertainty map) with the
 * library's `encodeResult`, the same encoder the CLI uses, on the viewer's labelmap (with any edits).
 */
export async function encodeResult(src: ExportSource): Promise<EncodedObject[]> {
  const { encodeResult: encode } = await import("../../src/dicom/result.ts");
  const source = {
    instances: instancesInSliceOrder(src),
    geometry: src.volume.geometry,
    refs: src.volume.source?.instances,
  };
  const p = src.result.provenance;
  const current = src.currentLabelmap?.();
  const labelmap = current ? withEdits(src.result.labelmap, current).labelmap : src.result.labelmap;
  const base = safeName(
    `${p.modelId}${p.variant ? `-${p.variant}` : ""}-${
      src.displaySet.SeriesDescription ?? src.displaySet.Modality ?? "series"
    }`,
  );
  return encode(src.result, source, { labelmap }).map((o) => ({
    ...o,
    fileName: `${base}-${o.kind === "SEG" ? "seg" : "uncertainty-pm"}.dcm`,
  }));
}

/** Offers bytes as a file download (Part 10, application/dicom). */
export function downloadObject(obj: EncodedObject): void {
  const doc = (globalThis as unknown as {
    document?: { createElement(t: string): Record<string, unknown> & { click(): void } };
  })
    .document;
  if (!doc) throw new ViewerError("NO_DOCUMENT", "EdgeSeg export: downloads need a browser page");
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

/** OHIF's DICOMweb data source configuration, as far as a store needs it. */
interface DataSourceConfig {
  name?: unknown;
  /** OHIF 3.13.2 stores to `${wadoRoot}/studies` (its dicomweb-client gets only wadoRoot) */
  wadoRoot?: unknown;
  /** not read by OHIF 3.13.2; honoured here for a PACS whose STOW-RS endpoint differs from WADO-RS */
  stowRoot?: unknown;
}

interface DataSourceLike {
  store?: { dicom(data: ArrayBuffer): Promise<unknown> };
  deleteStudyMetadataPromise?(studyUID: string): void;
  getConfig?(): DataSourceConfig | undefined;
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

export interface StoreOptions {
  /** OHIF's userAuthenticationService.getAuthorizationHeader (its data source sends the same header) */
  authorizationHeader?: () => Record<string, string> | undefined;
  /** injectable for tests */
  fetch?: typeof fetch;
}

/** Where a STOW-RS request goes and the headers it carries besides its content type. */
export interface StowTarget {
  url: string;
  headers: Record<string, string>;
}

/**
 * The STOW-RS endpoint of a DICOMweb data source (`stowRoot`, else `wadoRoot`, + "/studies"), or
 * undefined when its configuration names no DICOMweb root (DICOM JSON, local files).
 */
export function stowTarget(ds: DataSourceLike, opts: StoreOptions = {}): StowTarget | undefined {
  const config = ds.getConfig?.() ?? {};
  const root = [config.stowRoot, config.wadoRoot].find((r): r is string => typeof r === "string" && r !== "");
  if (!root) return undefined;
  const auth = opts.authorizationHeader?.()?.Authorization;
  return {
    url: `${root.replace(/\/+$/, "")}/studies`,
    headers: auth ? { Authorization: auth } : {},
  };
}

/** A multipart boundary; crypto.getRandomValues also exists outside secure contexts (randomUUID does not). */
export function stowBoundary(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `edgeseg-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/**
 * The multipart/related STOW-RS body as a Blob of the parts themselves. Measured reasons for not
 * using dicomweb-client's storeInstances (as OHIF's data source does): it concatenates every
 * dataset into one new ArrayBuffer (a second copy of a ~140 MB Parametric Map at the peak), and
 * Chromium reports an ArrayBuffer request body over the DevTools protocol in full (a Blob body it
 * does not), which kills an automated session driving the page.
 */
export function stowBody(parts: Uint8Array[], boundary: string): Blob {
  const chunks: BlobPart[] = [];
  for (const part of parts) {
    chunks.push(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`);
    chunks.push(part as Uint8Array<ArrayBuffer>);
    chunks.push("\r\n");
  }
  chunks.push(`--${boundary}--\r\n`);
  return new Blob(chunks, { type: `multipart/related; type="application/dicom"; boundary=${boundary}` });
}

/** PS3.18 STOW-RS failure reasons (0008,1197): exact codes first, then the xxH ranges. */
const FAILURE_REASONS: [mask: number, code: number, text: string][] = [
  [0xffff, 0x0110, "processing failure"],
  [0xffff, 0x0111, "duplicate SOP instance"],
  [0xffff, 0x0122, "SOP class not supported"],
  [0xffff, 0x0124, "not authorized"],
  [0xff00, 0xa700, "out of resources"],
  [0xff00, 0xa900, "data set does not match SOP class"],
  [0xf000, 0xc000, "cannot understand"],
];

export function describeFailureReason(reason: unknown): string {
  if (typeof reason !== "number") return "no reason given";
  const hex = `0x${reason.toString(16).toUpperCase().padStart(4, "0")}`;
  const known = FAILURE_REASONS.find(([mask, code]) => (reason & mask) === code);
  return known ? `${hex}, ${known[2]}` : hex;
}

type DicomJsonItem = Record<string, { Value?: unknown[] } | undefined>;

function sequenceItems(response: DicomJsonItem | undefined, tag: string): DicomJsonItem[] {
  const value = response?.[tag]?.Value;
  return Array.isArray(value)
    ? value.filter((v): v is DicomJsonItem => typeof v === "object" && v !== null)
    : [];
}

/**
 * Checks a STOW-RS answer for `expected` instances sent: a non-2xx status, a FailedSOPSequence
 * (0008,1198) item or fewer ReferencedSOPSequence (0008,1199) items than sent is a DicomWebError
 * naming the reason. (Orthanc answers 200 having stored nothing when it cannot parse the body.)
 */
export function checkStowResponse(status: number, body: string, expected: number): void {
  let response: DicomJsonItem | undefined;
  try {
    const parsed: unknown = body.trim() ? JSON.parse(body) : undefined;
    const first = Array.isArray(parsed) ? parsed[0] : parsed;
    response = typeof first === "object" && first !== null ? first as DicomJsonItem : undefined;
  } catch {
    response = undefined;
  }
  const failed = sequenceItems(response, "00081198");
  const reasons = failed.map((item) => {
    const sop = item["00081155"]?.Value?.[0];
    return `${typeof sop === "string" ? `${sop}: ` : ""}${
      describeFailureReason(item["00081197"]?.Value?.[0])
    }`;
  });
  if (status < 200 || status > 299) {
    const detail = reasons.length ? reasons.join("; ") : body.replace(/\s+/g, " ").trim().slice(0, 120);
    throw new DicomWebError(status, `the PACS answered HTTP ${status}${detail ? ` (${detail})` : ""}`, body);
  }
  if (failed.length > 0) {
    throw new DicomWebError(
      status,
      `the PACS answered HTTP ${status} but refused ${failed.length} of ${expected} instance${
        expected === 1 ? "" : "s"
      } (${reasons.join("; ")})`,
      body,
    );
  }
  const stored = sequenceItems(response, "00081199").length;
  if (stored < expected) {
    throw new DicomWebError(
      status,
      `the PACS answered HTTP ${status} but listed ${stored} stored instance${stored === 1 ? "" : "s"} ` +
        `in ReferencedSOPSequence (0008,1199), expected ${expected}`,
      body,
    );
  }
}

/** One STOW-RS request with `fetch`; resolves once the PACS has confirmed every part. */
export async function stow(
  target: StowTarget,
  parts: Uint8Array[],
  fetchFn: typeof fetch = fetch,
): Promise<void> {
  const boundary = stowBoundary();
  let res: Response;
  try {
    res = await fetchFn(target.url, {
      method: "POST",
      headers: {
        ...target.headers,
        "Content-Type": `multipart/related; type="application/dicom"; boundary=${boundary}`,
        Accept: "application/dicom+json",
      },
      body: stowBody(parts, boundary),
    });
  } catch (err) {
    throw new DicomWebError(
      0,
      `the PACS could not be reached (${err instanceof Error ? err.message : String(err)})`,
    );
  }
  checkStowResponse(res.status, await res.text(), parts.length);
}

/**
 * STOW-RS of each object to the active data source, one request per object so that a failure names
 * it: with `fetch` to its DICOMweb root when it has one, else through its own `store.dicom`. Then the
 * new series are fetched into OHIF so they appear in the study browser.
 */
export async function storeObjects(
  extensionManager: ExtensionManagerWithSources,
  studyUID: string,
  objects: EncodedObject[],
  opts: StoreOptions = {},
): Promise<StoreOutcome> {
  const ds = extensionManager.getActiveDataSource?.()[0];
  const target = ds ? stowTarget(ds, opts) : undefined;
  if (!ds || (!target && !ds.store?.dicom)) {
    throw new ViewerError("NO_STOW", "the active data source cannot store DICOM (no STOW-RS configured)");
  }
  for (const obj of objects) {
    try {
      if (target) await stow(target, [obj.bytes], opts.fetch);
      else await ds.store!.dicom(copyOf(obj.bytes));
    } catch (err) {
      throw new EdgeSegError(
        (err as { code?: string })?.code ?? "STORE_FAILED",
        `${obj.kind} not stored: ${describeStoreError(err)}`,
        { cause: err },
      );
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

/** The bytes as an ArrayBuffer of their own (a data source's store.dicom takes whole buffers). */
function copyOf(bytes: Uint8Array): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}

/**
 * What went wrong with a DICOMweb request, in words. Our own STOW rejects with a DicomWebError whose
 * message says it already; OHIF's dicomweb-client rejects with Error("request failed") carrying the
 * HTTP `status` (0 when the server could not be reached) and the `response` body.
 */
export function describeStoreError(err: unknown): string {
  if (err instanceof DicomWebError) return err.message;
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
