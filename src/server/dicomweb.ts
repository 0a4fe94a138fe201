/**
 * DICOMweb (PS3.18) over the embedded store: QIDO-RS, WADO-RS (instances, metadata, frames, bulk data)
 * and STOW-RS, mounted at `/dicom-web/`. Answers the subset OHIF 3.13.2's dicomweb data source uses,
 * with the usual query filters.
 */
import { InputError } from "../core/errors.ts";
import { decodeFrame } from "../dicom/codecs.ts";
import {
  bulkValue,
  type DicomJsonAttribute,
  type DicomJsonDataset,
  type Frames,
  type InstanceRecord,
  num,
  tagForKeyword,
} from "./dicomfile.ts";
import {
  buildMultipart,
  MultipartError,
  newBoundary,
  parseMediaType,
  parseMultipartStream,
} from "./multipart.ts";
import { type ConcurrencyGate, headerUid, matchDicomWebRoute, parseFrameList } from "./guard.ts";
import type { DicomStore, ValidatedInstance } from "./store.ts";

export interface DicomWebOptions {
  maxUploadBytes: number;
  /** when set, STOW requires `Authorization: Bearer <token>` */
  stowToken?: string;
  /** time limit for receiving a STOW body (default 10 min) → 408 */
  uploadTimeoutMs?: number;
  /** bounds the STOW requests handled at once (503 + Retry-After beyond it) */
  stowGate?: ConcurrencyGate;
  log?: (line: string) => void;
}

const EXPLICIT_LE = "1.2.840.10008.1.2.1";
const JSON_HEADERS = { "content-type": "application/dicom+json; charset=utf-8" };

/** `{error, message}` JSON for 4xx/5xx answers. */
export function errorResponse(
  status: number,
  error: string,
  message: string,
  extra: HeadersInit = {},
): Response {
  return new Response(JSON.stringify({ error, message }), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...Object.fromEntries(new Headers(extra)) },
  });
}

// ---------------------------------------------------------------------------------------------
// QIDO

type Level = "study" | "series" | "instance";
type MatchKind = "pn" | "uid" | "date" | "time" | "str" | "list" | "num";

interface Field {
  tag: string;
  vr: string;
  kind: MatchKind;
  /** values of this attribute for an entity */
  get: (e: Entity) => (string | number)[];
}

interface Entity {
  rep: InstanceRecord;
  records: InstanceRecord[];
  modalities: string[];
  seriesCount: number;
}

const one = (v: string | number | null): (string | number)[] => (v === null || v === "" ? [] : [v]);

const FIELDS: Record<string, Field> = {
  PatientName: { tag: "00100010", vr: "PN", kind: "pn", get: (e) => one(e.rep.patientName) },
  PatientID: { tag: "00100020", vr: "LO", kind: "str", get: (e) => one(e.rep.patientID) },
  PatientBirthDate: { tag: "00100030", vr: "DA", kind: "date", get: (e) => one(e.rep.patientBirthDate) },
  PatientSex: { tag: "00100040", vr: "CS", kind: "str", get: (e) => one(e.rep.patientSex) },
  StudyDate: { tag: "00080020", vr: "DA", kind: "date", get: (e) => one(e.rep.studyDate) },
  StudyTime: { tag: "00080030", vr: "TM", kind: "time", get: (e) => one(e.rep.studyTime) },
  AccessionNumber: { tag: "00080050", vr: "SH", kind: "str", get: (e) => one(e.rep.accessionNumber) },
  ReferringPhysicianName: {
    tag: "00080090",
    vr: "PN",
    kind: "pn",
    get: (e) => one(e.rep.referringPhysicianName),
  },
  StudyDescription: { tag: "00081030", vr: "LO", kind: "pn", get: (e) => one(e.rep.studyDescription) },
  StudyInstanceUID: { tag: "0020000D", vr: "UI", kind: "uid", get: (e) => one(e.rep.studyInstanceUID) },
  StudyID: { tag: "00200010", vr: "SH", kind: "str", get: (e) => one(e.rep.studyID) },
  ModalitiesInStudy: { tag: "00080061", vr: "CS", kind: "list", get: (e) => e.modalities },
  Modality: { tag: "00080060", vr: "CS", kind: "list", get: (e) => one(e.rep.modality) },
  SeriesDescription: { tag: "0008103E", vr: "LO", kind: "pn", get: (e) => one(e.rep.seriesDescription) },
  SeriesInstanceUID: { tag: "0020000E", vr: "UI", kind: "uid", get: (e) => one(e.rep.seriesInstanceUID) },
  SeriesNumber: { tag: "00200011", vr: "IS", kind: "num", get: (e) => one(e.rep.seriesNumber) },
  SeriesDate: { tag: "00080021", vr: "DA", kind: "date", get: (e) => one(e.rep.seriesDate) },
  SeriesTime: { tag: "00080031", vr: "TM", kind: "time", get: (e) => one(e.rep.seriesTime) },
  SOPInstanceUID: { tag: "00080018", vr: "UI", kind: "uid", get: (e) => one(e.rep.sopInstanceUID) },
  SOPClassUID: { tag: "00080016", vr: "UI", kind: "uid", get: (e) => one(e.rep.sopClassUID) },
  InstanceNumber: { tag: "00200013", vr: "IS", kind: "num", get: (e) => one(e.rep.instanceNumber) },
  Rows: { tag: "00280010", vr: "US", kind: "num", get: (e) => one(e.rep.rows) },
  Columns: { tag: "00280011", vr: "US", kind: "num", get: (e) => one(e.rep.columns) },
  NumberOfFrames: { tag: "00280008", vr: "IS", kind: "num", get: (e) => one(e.rep.numberOfFrames) },
  BitsAllocated: { tag: "00280100", vr: "US", kind: "num", get: (e) => one(e.rep.bitsAllocated) },
  NumberOfStudyRelatedSeries: { tag: "00201206", vr: "IS", kind: "num", get: (e) => [e.seriesCount] },
  NumberOfStudyRelatedInstances: { tag: "00201208", vr: "IS", kind: "num", get: (e) => [e.records.length] },
  NumberOfSeriesRelatedInstances: { tag: "00201209", vr: "IS", kind: "num", get: (e) => [e.records.length] },
};
const BY_TAG: Record<string, string> = Object.fromEntries(Object.entries(FIELDS).map(([k, f]) => [f.tag, k]));

const DEFAULT_FIELDS: Record<Level, string[]> = {
  study: [
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "ModalitiesInStudy",
    "ReferringPhysicianName",
    "StudyDescription",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyID",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
  ],
  series: [
    "StudyInstanceUID",
    "Modality",
    "SeriesDescription",
    "SeriesInstanceUID",
    "SeriesNumber",
    "SeriesDate",
    "SeriesTime",
    "NumberOfSeriesRelatedInstances",
  ],
  instance: [
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPClassUID",
    "SOPInstanceUID",
    "InstanceNumber",
    "Modality",
    "Rows",
    "Columns",
    "NumberOfFrames",
    "BitsAllocated",
  ],
};

/** Resolves a query key (keyword or 8-hex tag, maybe with a sequence path we do not support). */
function fieldName(key: string): string | undefined {
  if (FIELDS[key]) return key;
  const up = key.toUpperCase();
  return /^[0-9A-F]{8}$/.test(up) ? BY_TAG[up] : undefined;
}

function wildcardRegex(pattern: string, caseInsensitive: boolean): RegExp {
  const esc = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp(`^${esc}$`, caseInsensitive ? "i" : "");
}

/** Date/time range matching per PS3.4 §C.2.2.2.5: "A", "A-B", "-B", "A-". */
function rangeMatch(value: string, query: string): boolean {
  const v = value.replace(/[^0-9]/g, "");
  const q = query.replace(/[^0-9-]/g, "");
  const dash = q.indexOf("-");
  if (dash < 0) return v.startsWith(q) || q === v;
  const lo = q.slice(0, dash), hi = q.slice(dash + 1);
  if (!v) return false;
  const cmpLen = (a: string, b: string) => a.slice(0, b.length).padEnd(b.length, "0") >= b;
  if (lo && !cmpLen(v, lo)) return false;
  if (hi && v.slice(0, hi.length) > hi) return false;
  return true;
}

function matches(field: Field, entity: Entity, query: string): boolean {
  const values = field.get(entity).map(String);
  switch (field.kind) {
    case "pn":
    case "str": {
      if (!/[*?]/.test(query) && field.kind === "str") return values.includes(query);
      const re = wildcardRegex(query, field.kind === "pn");
      // PN components: match the whole name, or with "^" trailing components ignored.
      return values.some((v) => re.test(v) || re.test(v.replace(/\^+$/, "")));
    }
    case "uid": {
      const wanted = query.split(/[,\\]/).map((s) => s.trim()).filter(Boolean);
      return values.some((v) => wanted.includes(v));
    }
    case "list": {
      const wanted = query.split(/[,\\]/).map((s) => s.trim().toUpperCase()).filter(Boolean);
      return values.some((v) => wanted.includes(v.toUpperCase()));
    }
    case "date":
    case "time":
      return values.some((v) => rangeMatch(v, query));
    case "num":
      return values.some((v) => Number(v) === Number(query));
  }
}

function attribute(field: Field, entity: Entity): DicomJsonAttribute {
  const values = field.get(entity);
  if (!values.length) return { vr: field.vr };
  if (field.vr === "PN") return { vr: "PN", Value: values.map((v) => ({ Alphabetic: String(v) })) };
  if (field.vr === "IS" || field.vr === "US") return { vr: field.vr, Value: values.map(Number) };
  return { vr: field.vr, Value: values };
}

function groupBy(
  records: InstanceRecord[],
  key: (r: InstanceRecord) => string,
): Map<string, InstanceRecord[]> {
  const out = new Map<string, InstanceRecord[]>();
  for (const r of records) {
    const k = key(r);
    const list = out.get(k);
    if (list) list.push(r);
    else out.set(k, [r]);
  }
  return out;
}

function byInstanceNumber(a: InstanceRecord, b: InstanceRecord): number {
  return (a.instanceNumber ?? 0) - (b.instanceNumber ?? 0) ||
    a.sopInstanceUID.localeCompare(b.sopInstanceUID);
}

function entities(level: Level, records: InstanceRecord[]): Entity[] {
  if (level === "instance") {
    return records.sort(byInstanceNumber).map((r) => ({
      rep: r,
      records: [r],
      modalities: one(r.modality) as string[],
      seriesCount: 1,
    }));
  }
  const groups = groupBy(records, (r) => (level === "study" ? r.studyInstanceUID : r.seriesInstanceUID));
  const out: Entity[] = [];
  for (const list of groups.values()) {
    list.sort(byInstanceNumber);
    const series = groupBy(list, (r) => r.seriesInstanceUID);
    const modalities = [...new Set(list.map((r) => r.modality).filter(Boolean))].sort();
    out.push({ rep: list[0], records: list, modalities, seriesCount: series.size });
  }
  if (level === "study") {
    out.sort((a, b) =>
      (b.rep.studyDate + b.rep.studyTime).localeCompare(a.rep.studyDate + a.rep.studyTime) ||
      a.rep.studyInstanceUID.localeCompare(b.rep.studyInstanceUID)
    );
  } else {
    out.sort((a, b) =>
      (a.rep.seriesNumber ?? 0) - (b.rep.seriesNumber ?? 0) ||
      a.rep.seriesInstanceUID.localeCompare(b.rep.seriesInstanceUID)
    );
  }
  return out;
}

const CONTROL_KEYS = new Set(["limit", "offset", "includefield", "fuzzymatching", "orderby"]);

async function qido(
  store: DicomStore,
  level: Level,
  scope: { study?: string; series?: string },
  params: URLSearchParams,
  base: string,
): Promise<Response> {
  let records = store.records();
  if (scope.study) records = records.filter((r) => r.studyInstanceUID === scope.study);
  if (scope.series) records = records.filter((r) => r.seriesInstanceUID === scope.series);
  let list = entities(level, records);
  const ignored: string[] = [];
  for (const [key, value] of params) {
    if (CONTROL_KEYS.has(key.toLowerCase()) || value === "") continue;
    const name = fieldName(key);
    if (!name) {
      ignored.push(key);
      continue;
    }
    const field = FIELDS[name];
    list = list.filter((e) => matches(field, e, value));
  }
  const limitRaw = params.get("limit");
  const offsetRaw = params.get("offset");
  const limit = limitRaw === null ? Infinity : Number(limitRaw);
  const offset = offsetRaw === null ? 0 : Number(offsetRaw);
  if (
    !Number.isInteger(offset) || offset < 0 || (limit !== Infinity && (!Number.isInteger(limit) || limit < 0))
  ) {
    return errorResponse(
      400,
      "BAD_QUERY",
      `expected limit and offset to be non-negative integers, found limit=${limitRaw} offset=${offsetRaw}`,
    );
  }
  list = list.slice(offset, limit === Infinity ? undefined : offset + limit);

  const include = params.getAll("includefield").flatMap((v) => v.split(",")).map((s) => s.trim()).filter(
    Boolean,
  );
  const all = include.some((s) => s.toLowerCase() === "all");
  const names = new Set(DEFAULT_FIELDS[level]);
  const extraTags: string[] = [];
  for (const inc of include) {
    const n = fieldName(inc);
    if (n) names.add(n);
    else if (/^[0-9A-Fa-f]{8}$/.test(inc)) extraTags.push(inc.toUpperCase());
    else if (inc.toLowerCase() !== "all") {
      const tag = tagForKeyword(inc);
      if (tag) extraTags.push(tag);
    }
  }
  const out: DicomJsonDataset[] = [];
  for (const e of list) {
    const ds: DicomJsonDataset = { "00080005": { vr: "CS", Value: ["ISO_IR 192"] } };
    for (const n of names) ds[FIELDS[n].tag] = attribute(FIELDS[n], e);
    const r = e.rep;
    const url = level === "study"
      ? `${base}/studies/${r.studyInstanceUID}`
      : level === "series"
      ? `${base}/studies/${r.studyInstanceUID}/series/${r.seriesInstanceUID}`
      : `${base}/studies/${r.studyInstanceUID}/series/${r.seriesInstanceUID}/instances/${r.sopInstanceUID}`;
    ds["00081190"] = { vr: "UR", Value: [url] };
    if (extraTags.length || all) {
      // Attributes we do not index come from the representative instance's full metadata.
      const meta = await store.metadata(r, instanceUrl(base, r));
      const tags = all ? Object.keys(meta).filter((t) => t.slice(0, 4) !== "7FE0") : extraTags;
      for (const t of tags) if (!(t in ds) && meta[t] && !meta[t].BulkDataURI) ds[t] = meta[t];
    }
    const sorted: DicomJsonDataset = {};
    for (const t of Object.keys(ds).sort()) sorted[t] = ds[t];
    out.push(sorted);
  }
  const headers: Record<string, string> = { ...JSON_HEADERS };
  if (ignored.length) {
    // Header values must be ByteStrings: show unmatched names as printable ASCII, shortened.
    const names = ignored.join(", ").replace(/[^\x20-\x7e]/g, "?").replace(/"/g, "'").slice(0, 200);
    headers["warning"] = `299 edgeseg "The fields ${names} could not be matched and were ignored"`;
  }
  return new Response(JSON.stringify(out), { status: 200, headers });
}

// ---------------------------------------------------------------------------------------------
// WADO

function instanceUrl(base: string, r: InstanceRecord): string {
  return `${base}/studies/${r.studyInstanceUID}/series/${r.seriesInstanceUID}/instances/${r.sopInstanceUID}`;
}

function notFound(what: string): Response {
  return errorResponse(404, "NOT_FOUND", `${what} is not in the store`);
}

/** Streams the stored Part-10 files as multipart/related; type="application/dicom". */
function retrieveInstances(store: DicomStore, records: InstanceRecord[]): Response {
  const boundary = newBoundary();
  const enc = new TextEncoder();
  let i = 0;
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (i >= records.length) {
        controller.enqueue(enc.encode(`--${boundary}--\r\n`));
        controller.close();
        return;
      }
      const r = records[i++];
      const bytes = await store.readInstance(r);
      controller.enqueue(
        enc.encode(
          `--${boundary}\r\nContent-Type: application/dicom; transfer-syntax=${
            headerUid(r.transferSyntaxUID)
          }\r\nContent-Length: ${bytes.length}\r\n\r\n`,
        ),
      );
      controller.enqueue(bytes);
      controller.enqueue(enc.encode("\r\n"));
    },
  });
  return new Response(stream, {
    status: 200,
    headers: { "content-type": `multipart/related; type="application/dicom"; boundary=${boundary}` },
  });
}

/** Which transfer syntaxes an Accept header allows for frames/bulk ("*" = as stored). */
function acceptedTransferSyntaxes(
  accept: string | null,
): { any: boolean; list: string[]; singlePart: boolean } {
  if (!accept) return { any: true, list: [], singlePart: false };
  const list: string[] = [];
  let any = false;
  let singlePart = false;
  for (const range of accept.split(/,(?=(?:[^"]*"[^"]*")*[^"]*$)/)) {
    const m = parseMediaType(range);
    if (m.type === "application/octet-stream") singlePart = true;
    if (m.type === "*/*") any = true;
    const ts = m.params["transfer-syntax"];
    // OHIF's loader puts "transfer-syntax" inside or beside the quoted type parameter.
    const inner = m.params["type"] ? parseMediaType(m.params["type"]).params["transfer-syntax"] : undefined;
    const t = ts ?? inner;
    if (t === undefined || t === "*") any = true;
    else list.push(t);
  }
  return { any, list, singlePart };
}

async function retrieveFrames(
  store: DicomStore,
  r: InstanceRecord,
  frameList: string,
  req: Request,
  base: string,
): Promise<Response> {
  const list = parseFrameList(frameList);
  if (!list.ok) return errorResponse(400, "BAD_FRAMES", list.reason);
  const numbers = list.frames;
  let frames: Frames;
  try {
    frames = await store.frames(r);
  } catch (e) {
    if (e instanceof InputError) return errorResponse(400, e.code, e.message);
    throw e;
  }
  const bad = numbers.find((n) => n > frames.frames.length);
  if (bad !== undefined) {
    return errorResponse(
      404,
      "NO_SUCH_FRAME",
      `frame ${bad} requested; the instance has ${frames.frames.length} frame(s)`,
    );
  }
  const acc = acceptedTransferSyntaxes(req.headers.get("accept"));
  if (!acc.any && !acc.list.includes(frames.transferSyntaxUID) && acc.list.includes(EXPLICIT_LE)) {
    // A client that only handles native pixels (e.g. a headless reader) gets them decoded here.
    const d = (await store.parsed(r)).dict;
    const info = {
      rows: num(d, "00280010") ?? 0,
      columns: num(d, "00280011") ?? 0,
      bitsAllocated: num(d, "00280100") ?? 16,
      samplesPerPixel: num(d, "00280002") ?? 1,
      pixelRepresentation: num(d, "00280103") ?? 0,
      planarConfiguration: num(d, "00280006") ?? 0,
    };
    try {
      const decoded: Uint8Array[] = [];
      for (const n of numbers) {
        decoded.push(await decodeFrame(frames.transferSyntaxUID, frames.frames[n - 1], info));
      }
      frames = { frames: [], transferSyntaxUID: EXPLICIT_LE, mediaType: "application/octet-stream" };
      numbers.forEach((n, i) => (frames.frames[n - 1] = decoded[i]));
    } catch (e) {
      if (!(e instanceof InputError)) throw e;
      return errorResponse(
        406,
        "NOT_ACCEPTABLE",
        `the frames are stored as ${r.transferSyntaxUID} and could not be decoded: ${e.message}`,
      );
    }
  }
  if (!acc.any && !acc.list.includes(frames.transferSyntaxUID)) {
    return errorResponse(
      406,
      "NOT_ACCEPTABLE",
      `the frames are stored as ${frames.transferSyntaxUID}; the request accepts only ${
        acc.list.join(", ")
      } (no transcoding here; ask for transfer-syntax=*)`,
    );
  }
  const partType = `${frames.mediaType}; transfer-syntax=${headerUid(frames.transferSyntaxUID)}`;
  const boundary = newBoundary();
  const body = buildMultipart(
    numbers.map((n) => ({
      contentType: partType,
      body: frames.frames[n - 1],
      location: `${instanceUrl(base, r)}/frames/${n}`,
    })),
    boundary,
  );
  return new Response(body, {
    status: 200,
    headers: {
      "content-type": `multipart/related; type="${frames.mediaType}"; transfer-syntax=${
        headerUid(frames.transferSyntaxUID)
      }; boundary=${boundary}`,
    },
  });
}

async function retrieveBulk(
  store: DicomStore,
  r: InstanceRecord,
  tag: string,
  req: Request,
): Promise<Response> {
  const up = tag.toUpperCase();
  if (!/^[0-9A-F]{8}$/.test(up)) {
    return errorResponse(400, "BAD_TAG", `expected an 8-digit hex tag, found "${tag}"`);
  }
  const parsed = await store.parsed(r);
  const el = parsed.dict[up];
  if (!el) return notFound(`attribute ${up} of instance ${r.sopInstanceUID}`);
  let body: Uint8Array;
  let mediaType = "application/octet-stream";
  let ts = r.transferSyntaxUID;
  if (up === "7FE00010" || up === "7FE00008" || up === "7FE00009") {
    const frames = await store.frames(r);
    ts = frames.transferSyntaxUID;
    mediaType = frames.mediaType;
    if (frames.frames.length === 1 || mediaType === "application/octet-stream") {
      // native data: the value as stored (1-bit data stays packed across frames)
      body = mediaType === "application/octet-stream"
        ? bulkValue(parsed.dict, up) ?? new Uint8Array()
        : frames.frames[0];
    } else {
      const boundary = newBoundary();
      return new Response(
        buildMultipart(
          frames.frames.map((f) => ({
            contentType: `${mediaType}; transfer-syntax=${headerUid(ts)}`,
            body: f,
          })),
          boundary,
        ),
        {
          status: 200,
          headers: { "content-type": `multipart/related; type="${mediaType}"; boundary=${boundary}` },
        },
      );
    }
  } else {
    const v = bulkValue(parsed.dict, up);
    if (!v) {
      return errorResponse(
        400,
        "NOT_BULK",
        `attribute ${up} is not binary (vr ${el.vr}); read it from /metadata`,
      );
    }
    body = v;
  }
  const accept = req.headers.get("accept") ?? "";
  if (/^\s*application\/octet-stream/i.test(accept) && !/multipart/i.test(accept)) {
    return new Response(body as Uint8Array<ArrayBuffer>, {
      status: 200,
      headers: { "content-type": "application/octet-stream" },
    });
  }
  const boundary = newBoundary();
  const partType = mediaType === "application/octet-stream"
    ? mediaType
    : `${mediaType}; transfer-syntax=${headerUid(ts)}`;
  return new Response(buildMultipart([{ contentType: partType, body }], boundary), {
    status: 200,
    headers: { "content-type": `multipart/related; type="${mediaType}"; boundary=${boundary}` },
  });
}

async function metadataResponse(
  store: DicomStore,
  records: InstanceRecord[],
  base: string,
): Promise<Response> {
  const out: DicomJsonDataset[] = [];
  for (const r of records.sort(byInstanceNumber)) out.push(await store.metadata(r, instanceUrl(base, r)));
  return new Response(JSON.stringify(out), { status: 200, headers: JSON_HEADERS });
}

// ---------------------------------------------------------------------------------------------
// STOW

/** A sink that writes one part to a temp file in the store's tmp dir. */
class FilePart {
  #file: Deno.FsFile | null = null;
  constructor(readonly path: string, readonly headers: Record<string, string>) {}
  async open(): Promise<this> {
    this.#file = await Deno.open(this.path, { write: true, createNew: true });
    return this;
  }
  async write(chunk: Uint8Array): Promise<void> {
    let off = 0;
    while (off < chunk.length) off += await this.#file!.write(chunk.subarray(off));
  }
  close(): Promise<void> {
    this.#file?.close();
    this.#file = null;
    return Promise.resolve();
  }
}

function sopItem(
  r: { sopClassUID: string; sopInstanceUID: string },
  extra: DicomJsonDataset = {},
): DicomJsonDataset {
  return {
    "00081150": { vr: "UI", Value: [r.sopClassUID] },
    "00081155": { vr: "UI", Value: [r.sopInstanceUID] },
    ...extra,
  };
}

/** STOW within the server's concurrency bound: beyond it, 503 with Retry-After and the body unread. */
async function gatedStow(
  store: DicomStore,
  req: Request,
  studyInPath: string | undefined,
  opts: DicomWebOptions,
  base: string,
): Promise<Response> {
  const entered = opts.stowGate ? opts.stowGate.enter() : Promise.resolve(() => {});
  if (!entered) {
    await req.body?.cancel().catch(() => {});
    return errorResponse(
      503,
      "BUSY",
      `${opts.stowGate!.max} uploads are being stored and ${
        opts.stowGate!.queue
      } more are waiting; try again in a few seconds`,
      { "retry-after": "5" },
    );
  }
  const release = await entered;
  try {
    return await stow(store, req, studyInPath, opts, base);
  } finally {
    release();
  }
}

async function stow(
  store: DicomStore,
  req: Request,
  studyInPath: string | undefined,
  opts: DicomWebOptions,
  base: string,
): Promise<Response> {
  if (opts.stowToken !== undefined) {
    const auth = req.headers.get("authorization") ?? "";
    if (auth !== `Bearer ${opts.stowToken}`) {
      await req.body?.cancel().catch(() => {});
      return errorResponse(
        401,
        "UNAUTHORIZED",
        "STOW-RS on this server needs an Authorization: Bearer <token> header",
        {
          "www-authenticate": 'Bearer realm="edgeseg-stow"',
        },
      );
    }
  }
  const contentType = req.headers.get("content-type") ?? "";
  const mt = parseMediaType(contentType);
  if (mt.type !== "multipart/related") {
    await req.body?.cancel().catch(() => {});
    return errorResponse(
      415,
      "UNSUPPORTED_MEDIA_TYPE",
      `expected Content-Type multipart/related; type="application/dicom", found "${contentType || "(none)"}"`,
    );
  }
  const partTypeParam = (mt.params["type"] ?? "").toLowerCase();
  if (partTypeParam !== "application/dicom") {
    await req.body?.cancel().catch(() => {});
    return errorResponse(
      415,
      "UNSUPPORTED_MEDIA_TYPE",
      `expected type="application/dicom" (PS3.18 §10.5), found type="${partTypeParam || "(none)"}"`,
    );
  }
  const boundary = mt.params["boundary"];
  if (!boundary) {
    await req.body?.cancel().catch(() => {});
    return errorResponse(
      400,
      "NO_BOUNDARY",
      "expected a boundary parameter in the multipart/related Content-Type, found none",
    );
  }
  const declared = Number(req.headers.get("content-length") ?? NaN);
  if (Number.isFinite(declared) && declared > opts.maxUploadBytes) {
    await req.body?.cancel().catch(() => {});
    return errorResponse(
      413,
      "TOO_LARGE",
      `upload of ${declared} bytes exceeds the limit of ${opts.maxUploadBytes} bytes`,
    );
  }
  if (!req.body) return errorResponse(400, "EMPTY_BODY", "expected a multipart body, found none");

  const staged: FilePart[] = [];
  const cleanup = async () => {
    for (const p of staged) await Deno.remove(p.path).catch(() => {});
  };
  try {
    let parts;
    try {
      parts = await parseMultipartStream(
        req.body,
        boundary,
        async (headers) => {
          const part = await new FilePart(store.tempPath("stow"), headers).open();
          staged.push(part);
          return part;
        },
        opts.maxUploadBytes,
        AbortSignal.timeout(opts.uploadTimeoutMs ?? 600_000),
      );
    } catch (e) {
      if (e instanceof MultipartError) return errorResponse(e.status, e.code, e.message);
      throw e;
    }
    if (parts.length === 0) {
      return errorResponse(400, "NO_PARTS", "expected at least one application/dicom part, found none");
    }
    const validated: ValidatedInstance[] = [];
    for (let i = 0; i < parts.length; i++) {
      const partType = parseMediaType(parts[i].headers["content-type"] ?? "").type;
      if (partType !== "application/dicom") {
        return errorResponse(
          partType === "" ? 400 : 415,
          "BAD_PART",
          `part ${i + 1}: expected Content-Type application/dicom, found "${
            parts[i].headers["content-type"] ?? "(none)"
          }"; nothing was stored`,
        );
      }
      try {
        validated.push(await store.validate({ tmpPath: parts[i].result.path }));
      } catch (e) {
        if (e instanceof InputError) {
          return errorResponse(400, e.code, `part ${i + 1}: ${e.message}; nothing was stored`);
        }
        throw e;
      }
    }
    if (studyInPath) {
      const wrong = validated.filter((v) => v.record.studyInstanceUID !== studyInPath);
      if (wrong.length) {
        // PS3.18 §10.5.3: instances of another study fail with 409; we store none of the request.
        const body: DicomJsonDataset = {
          "00081190": { vr: "UR", Value: [`${base}/studies/${studyInPath}`] },
          "00081198": {
            vr: "SQ",
            Value: wrong.map((w) => sopItem(w.record, { "00081197": { vr: "US", Value: [0x0110] } })),
          },
          "00081199": { vr: "SQ", Value: [] },
        };
        return new Response(JSON.stringify(body), { status: 409, headers: JSON_HEADERS });
      }
    }
    const { stored, failed } = await store.commitEach(validated);
    staged.length = 0; // committed files were renamed away, failed ones removed by the store
    const firstStudy = (stored[0] ?? failed[0].record).studyInstanceUID;
    const body: DicomJsonDataset = {
      "00081190": { vr: "UR", Value: [`${base}/studies/${studyInPath ?? firstStudy}`] },
      "00081199": {
        vr: "SQ",
        Value: stored.map((r) => sopItem(r, { "00081190": { vr: "UR", Value: [instanceUrl(base, r)] } })),
      },
    };
    opts.log?.(
      `stow: stored ${stored.length} instance(s)${failed.length ? `, ${failed.length} failed` : ""}`,
    );
    if (!failed.length) return new Response(JSON.stringify(body), { status: 200, headers: JSON_HEADERS });
    // PS3.18 §10.5.3: 202 when some were stored and some not, 409 when none was; each failed
    // instance is listed with FailureReason 0110H (processing failure).
    body["00081198"] = {
      vr: "SQ",
      Value: failed.map((f) => sopItem(f.record, { "00081197": { vr: "US", Value: [0x0110] } })),
    };
    const reasons = failed.map((f) => `${f.record.sopInstanceUID}: ${f.reason}`).join("; ")
      .replace(/[^\x20-\x7e]/g, "?").replace(/"/g, "'").slice(0, 500);
    return new Response(JSON.stringify(body), {
      status: stored.length ? 202 : 409,
      headers: {
        ...JSON_HEADERS,
        warning:
          `299 edgeseg "${failed.length} of ${validated.length} instance(s) were not stored: ${reasons}"`,
      },
    });
  } finally {
    await cleanup();
  }
}

// ---------------------------------------------------------------------------------------------
// Routing

/**
 * Handles a request whose path starts with `/dicom-web`. `subPath` is the rest (e.g. `/studies`).
 */
export function handleDicomWeb(
  store: DicomStore,
  req: Request,
  subPath: string,
  opts: DicomWebOptions,
): Response | Promise<Response> {
  const url = new URL(req.url);
  const base = `${url.origin}/dicom-web`;
  const path = subPath.replace(/\/+$/, "") || "/";
  const route = matchDicomWebRoute(path);
  if (!route) return errorResponse(404, "NOT_FOUND", `no DICOMweb resource at /dicom-web${path}`);
  const name = route.name;
  const [a, b, c, d] = route.groups;
  if (req.method === "POST") {
    if (name === "studies") return gatedStow(store, req, undefined, opts, base);
    if (name === "study") return gatedStow(store, req, a, opts, base);
    return errorResponse(
      405,
      "METHOD_NOT_ALLOWED",
      `POST is only accepted on /studies and /studies/{study}`,
      { allow: "GET, HEAD" },
    );
  }
  if (req.method !== "GET" && req.method !== "HEAD") {
    return errorResponse(405, "METHOD_NOT_ALLOWED", `${req.method} is not supported here`, {
      allow: "GET, HEAD, POST",
    });
  }
  const q = url.searchParams;
  const recs = () => store.records();
  switch (name) {
    case "studies":
      return qido(store, "study", {}, q, base);
    case "allSeries":
      return qido(store, "series", {}, q, base);
    case "allInstances":
      return qido(store, "instance", {}, q, base);
    case "studySeries":
      return qido(store, "series", { study: a }, q, base);
    case "studyInstances":
      return qido(store, "instance", { study: a }, q, base);
    case "seriesInstances":
      return qido(store, "instance", { study: a, series: b }, q, base);
    case "study":
    case "studyMetadata": {
      const list = recs().filter((r) => r.studyInstanceUID === a).sort(byInstanceNumber);
      if (!list.length) return notFound(`study ${a}`);
      return name === "study" ? retrieveInstances(store, list) : metadataResponse(store, list, base);
    }
    case "series":
    case "seriesMetadata": {
      const list = recs().filter((r) => r.studyInstanceUID === a && r.seriesInstanceUID === b).sort(
        byInstanceNumber,
      );
      if (!list.length) return notFound(`series ${b}`);
      return name === "series" ? retrieveInstances(store, list) : metadataResponse(store, list, base);
    }
    default: {
      const r = store.get(c);
      if (!r || r.studyInstanceUID !== a || r.seriesInstanceUID !== b) return notFound(`instance ${c}`);
      if (name === "instance") return retrieveInstances(store, [r]);
      if (name === "instanceMetadata") return metadataResponse(store, [r], base);
      if (name === "frames") return retrieveFrames(store, r, d, req, base);
      return retrieveBulk(store, r, d, req);
    }
  }
}
