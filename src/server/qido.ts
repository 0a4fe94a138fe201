/** QIDO-RS over the embedded store: study, series and instance searches with the usual filters. */
import {
  type DicomJsonAttribute,
  type DicomJsonDataset,
  type InstanceRecord,
  tagForKeyword,
} from "./dicomfile.ts";
import type { DicomStore } from "./store.ts";
import { errorResponse, JSON_HEADERS } from "./dicomweb.ts";
import { instanceUrl } from "./wado.ts";
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

export function byInstanceNumber(a: InstanceRecord, b: InstanceRecord): number {
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

export async function qido(
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
