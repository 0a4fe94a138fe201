/**
 * Reading stored Part-10 files for the embedded DICOMweb store: validation, the index record, the
 * DICOM JSON model (PS3.18 §F) with BulkDataURIs, and frame extraction.
 *
 * dcmjs does the parsing. Its dictionary (`dict`) is already close to DICOM JSON: tag keys in
 * upper-case hex, `{vr, Value}`; it adds `_rawValue` and keeps binary values as ArrayBuffers, which
 * `toDicomJson` strips or replaces by BulkDataURI / InlineBinary.
 */
import dcmjs from "dcmjs";
import { InputError } from "../core/errors.ts";
import { concatBytes } from "../dicom/encode.ts";

/** One dcmjs attribute; values are unknown until narrowed. */
export interface DcmjsElement {
  vr: string;
  Value?: unknown[];
}
export type DcmjsDict = Record<string, DcmjsElement>;

/** A parsed Part-10 file. */
export interface ParsedDicom {
  meta: DcmjsDict;
  dict: DcmjsDict;
}

/** DICOM JSON attribute (PS3.18 §F.2.2). */
export interface DicomJsonAttribute {
  vr: string;
  Value?: unknown[];
  BulkDataURI?: string;
  InlineBinary?: string;
}
export type DicomJsonDataset = Record<string, DicomJsonAttribute>;

/** What the store's index keeps per instance: enough for QIDO without reading the file. */
export interface InstanceRecord {
  /** path relative to the data dir */
  path: string;
  size: number;
  transferSyntaxUID: string;
  studyInstanceUID: string;
  seriesInstanceUID: string;
  sopInstanceUID: string;
  sopClassUID: string;
  patientName: string;
  patientID: string;
  patientBirthDate: string;
  patientSex: string;
  studyDate: string;
  studyTime: string;
  studyID: string;
  accessionNumber: string;
  studyDescription: string;
  referringPhysicianName: string;
  modality: string;
  seriesDescription: string;
  seriesNumber: number | null;
  seriesDate: string;
  seriesTime: string;
  instanceNumber: number | null;
  rows: number | null;
  columns: number | null;
  numberOfFrames: number | null;
  bitsAllocated: number | null;
}

const BINARY_VRS = new Set(["OB", "OW", "OF", "OD", "OL", "OV", "UN"]);
/** Binary values at least this large go out as BulkDataURI; smaller ones inline (saves a round trip). */
const INLINE_BINARY_MAX = 1024;
export const UID_PATTERN = /^[0-9]+(\.[0-9]+)*$/;

/** True when the bytes start with a 128-byte preamble and "DICM" (PS3.10 §7.1). */
export function hasPart10Header(bytes: Uint8Array): boolean {
  return bytes.length >= 132 && bytes[128] === 0x44 && bytes[129] === 0x49 && bytes[130] === 0x43 &&
    bytes[131] === 0x4d;
}

function plainBuffer(bytes: Uint8Array): ArrayBuffer {
  if (
    bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength &&
    bytes.buffer instanceof ArrayBuffer
  ) {
    return bytes.buffer;
  }
  return bytes.slice().buffer as ArrayBuffer;
}

function isDict(value: unknown): value is DcmjsDict {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    !(value instanceof ArrayBuffer);
}

/** Parses a Part-10 file; throws `InputError` (code NOT_DICOM) when it is not one. */
export function parseDicom(bytes: Uint8Array): ParsedDicom {
  if (!hasPart10Header(bytes)) {
    throw new InputError(
      "NOT_DICOM",
      `expected a DICOM Part-10 file (128-byte preamble then "DICM"), found ${bytes.length} bytes without that header`,
    );
  }
  let parsed: unknown;
  try {
    // Strict first: with ignoreErrors dcmjs returns whatever it read before an error, so a truncated
    // instance would be stored as half a dataset. Lenient parsing is kept for the two benign cases
    // real archives contain (several character sets; no (0002,0000) group length).
    try {
      parsed = dcmjs.data.DicomMessage.readFile(plainBuffer(bytes));
    } catch (strictError) {
      const message = strictError instanceof Error ? strictError.message : String(strictError);
      if (!/character set|meta length tag/i.test(message)) throw strictError;
      parsed = dcmjs.data.DicomMessage.readFile(plainBuffer(bytes), { ignoreErrors: true });
    }
    // A dataset dcmjs reads but cannot naturalize (e.g. a value that should be a string is not) would
    // be stored and then fail every reader downstream: refuse it here (found by fuzz stow seed 1 #1021).
    dcmjs.data.DicomMetaDictionary.naturalizeDataset((parsed as { dict: unknown }).dict);
  } catch (e) {
    throw new InputError(
      "NOT_DICOM",
      `the DICOM file could not be parsed: ${(e as Error).message ?? String(e)}`,
    );
  }
  if (!isDict(parsed) || !isDict(parsed.dict) || !isDict(parsed.meta)) {
    throw new InputError("NOT_DICOM", "the DICOM file could not be parsed: no dataset found");
  }
  return { meta: parsed.meta as DcmjsDict, dict: parsed.dict as DcmjsDict };
}

function first(dict: DcmjsDict, tag: string): unknown {
  const v = dict[tag]?.Value;
  return v && v.length ? v[0] : undefined;
}

/** First value of a string-like attribute ("" when absent); PN gives its Alphabetic group. */
export function str(dict: DcmjsDict, tag: string): string {
  const v = first(dict, tag);
  if (v === undefined || v === null) return "";
  if (typeof v === "object") {
    const alpha = (v as Record<string, unknown>).Alphabetic;
    return typeof alpha === "string" ? alpha : "";
  }
  return String(v).trim();
}

/** First value as a finite number, or null. */
export function num(dict: DcmjsDict, tag: string): number | null {
  const v = first(dict, tag);
  const n = typeof v === "number" ? v : typeof v === "string" && v.trim() !== "" ? Number(v) : NaN;
  return Number.isFinite(n) ? n : null;
}

/**
 * Builds the index record and checks the attributes the store relies on; throws `InputError`
 * (code MISSING_ATTRIBUTE / BAD_UID) naming the attribute when one is absent or unusable.
 */
export function recordFromParsed(parsed: ParsedDicom, path: string, size: number): InstanceRecord {
  const d = parsed.dict;
  const uid = (tag: string, name: string, fallback?: string, from: DcmjsDict = d): string => {
    const v = str(from, tag) || fallback || "";
    if (!v) throw new InputError("MISSING_ATTRIBUTE", `expected ${name} (${tag}) in the dataset, found none`);
    if (!UID_PATTERN.test(v) || v.length > 64) {
      throw new InputError(
        "BAD_UID",
        `expected ${name} to be a UID (digits and dots, ≤ 64), found "${v.slice(0, 80)}"`,
      );
    }
    return v;
  };
  return {
    path,
    size,
    // It is written into response headers (transfer-syntax=…), so it must be a UID like the others.
    transferSyntaxUID: uid("00020010", "TransferSyntaxUID", "1.2.840.10008.1.2", parsed.meta),
    studyInstanceUID: uid("0020000D", "StudyInstanceUID"),
    seriesInstanceUID: uid("0020000E", "SeriesInstanceUID"),
    sopInstanceUID: uid("00080018", "SOPInstanceUID", str(parsed.meta, "00020003")),
    sopClassUID: uid("00080016", "SOPClassUID", str(parsed.meta, "00020002")),
    patientName: str(d, "00100010"),
    patientID: str(d, "00100020"),
    patientBirthDate: str(d, "00100030"),
    patientSex: str(d, "00100040"),
    studyDate: str(d, "00080020"),
    studyTime: str(d, "00080030"),
    studyID: str(d, "00200010"),
    accessionNumber: str(d, "00080050"),
    studyDescription: str(d, "00081030"),
    referringPhysicianName: str(d, "00080090"),
    modality: str(d, "00080060"),
    seriesDescription: str(d, "0008103E"),
    seriesNumber: num(d, "00200011"),
    seriesDate: str(d, "00080021"),
    seriesTime: str(d, "00080031"),
    instanceNumber: num(d, "00200013"),
    rows: num(d, "00280010"),
    columns: num(d, "00280011"),
    numberOfFrames: num(d, "00280008"),
    bitsAllocated: num(d, "00280100"),
  };
}

function base64(bytes: Uint8Array): string {
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(bin);
}

function binaryBytes(values: unknown[]): Uint8Array {
  const parts = values.filter((v): v is ArrayBuffer => v instanceof ArrayBuffer).map((b) =>
    new Uint8Array(b)
  );
  return parts.length === 1 ? parts[0] : concatBytes(parts);
}

/**
 * The DICOM JSON model of a dataset. Top-level binary values ≥ 1 KiB and PixelData (any size) get a
 * BulkDataURI `<instanceUrl>/bulk/<tag>`; nested and small binaries go inline as base64.
 */
export function toDicomJson(dict: DcmjsDict, instanceUrl: string, nested = false): DicomJsonDataset {
  const out: DicomJsonDataset = {};
  for (const tag of Object.keys(dict).sort()) {
    const el = dict[tag];
    const key = tag.toUpperCase();
    const vr = el.vr;
    const values = el.Value ?? [];
    if (BINARY_VRS.has(vr)) {
      const isPixel = key === "7FE00010" || key === "7FE00008" || key === "7FE00009";
      const bytes = binaryBytes(values);
      if (!nested && (isPixel || bytes.length >= INLINE_BINARY_MAX)) {
        out[key] = { vr, BulkDataURI: `${instanceUrl}/bulk/${key}` };
      } else if (bytes.length > 0) {
        out[key] = { vr, InlineBinary: base64(bytes) };
      } else {
        out[key] = { vr };
      }
    } else if (vr === "SQ") {
      out[key] = {
        vr,
        Value: values.filter(isDict).map((item) => toDicomJson(item, instanceUrl, true)),
      };
    } else if (values.length === 0) {
      out[key] = { vr };
    } else {
      out[key] = { vr, Value: values.map((v) => (typeof v === "string" && vr !== "PN" ? v.trim() : v)) };
    }
  }
  return out;
}

/** Raw bytes of a top-level binary attribute, or undefined. */
export function bulkValue(dict: DcmjsDict, tag: string): Uint8Array | undefined {
  const el = dict[tag.toUpperCase()];
  if (!el || !BINARY_VRS.has(el.vr)) return undefined;
  return binaryBytes(el.Value ?? []);
}

export const NATIVE_TRANSFER_SYNTAXES = new Set([
  "1.2.840.10008.1.2",
  "1.2.840.10008.1.2.1",
  "1.2.840.10008.1.2.1.99", // deflate: dcmjs inflates while reading
]);

/** Media type of a compressed frame per PS3.18 Table 8.7.3-2. */
export function frameMediaType(transferSyntaxUID: string): string {
  switch (transferSyntaxUID) {
    case "1.2.840.10008.1.2.4.50":
    case "1.2.840.10008.1.2.4.51":
    case "1.2.840.10008.1.2.4.57":
    case "1.2.840.10008.1.2.4.70":
      return "image/jpeg";
    case "1.2.840.10008.1.2.4.80":
    case "1.2.840.10008.1.2.4.81":
      return "image/jls";
    case "1.2.840.10008.1.2.4.90":
    case "1.2.840.10008.1.2.4.91":
      return "image/jp2";
    case "1.2.840.10008.1.2.4.92":
    case "1.2.840.10008.1.2.4.93":
      return "image/jpx";
    case "1.2.840.10008.1.2.5":
      return "image/dicom-rle";
    default:
      return "application/octet-stream";
  }
}

export interface Frames {
  /** 1-based frame number → bytes */
  frames: Uint8Array[];
  /** transfer syntax of the returned bytes (explicit VR LE for native data) */
  transferSyntaxUID: string;
  mediaType: string;
}

/** Splits PixelData into frames: native frames by size (1-bit re-packed from bit 0), encapsulated as stored. */
export function extractFrames(parsed: ParsedDicom, transferSyntaxUID: string): Frames {
  const d = parsed.dict;
  const el = d["7FE00010"] ?? d["7FE00008"] ?? d["7FE00009"];
  if (!el) throw new InputError("NO_PIXEL_DATA", "expected PixelData in the instance, found none");
  const nFrames = num(d, "00280008") ?? 1;
  const values = el.Value ?? [];
  if (NATIVE_TRANSFER_SYNTAXES.has(transferSyntaxUID) || el.vr === "OF" || el.vr === "OD") {
    const all = binaryBytes(values);
    const rows = num(d, "00280010") ?? 0;
    const cols = num(d, "00280011") ?? 0;
    const spp = num(d, "00280002") ?? 1;
    const bits = el.vr === "OF" ? 32 : el.vr === "OD" ? 64 : num(d, "00280100") ?? 16;
    const frameBits = rows * cols * spp * bits;
    const frames: Uint8Array[] = [];
    for (let f = 0; f < nFrames; f++) {
      const startBit = f * frameBits;
      if (bits % 8 === 0 || startBit % 8 === 0) {
        const start = startBit / 8 | 0;
        const len = Math.ceil(frameBits / 8);
        if (start + len > all.length) {
          throw new InputError(
            "SHORT_PIXEL_DATA",
            `expected ${nFrames} frames of ${len} bytes, found PixelData of ${all.length} bytes`,
          );
        }
        frames.push(all.subarray(start, start + len));
      } else {
        // 1-bit frames are packed continuously across frames (PS3.5 §8.1.1); re-pack from bit 0.
        const out = new Uint8Array(Math.ceil(frameBits / 8));
        for (let b = 0; b < frameBits; b++) {
          const src = startBit + b;
          if ((all[src >> 3] >> (src & 7)) & 1) out[b >> 3] |= 1 << (b & 7);
        }
        frames.push(out);
      }
    }
    return { frames, transferSyntaxUID: "1.2.840.10008.1.2.1", mediaType: "application/octet-stream" };
  }
  const buffers = values.filter((v): v is ArrayBuffer => v instanceof ArrayBuffer).map((b) =>
    new Uint8Array(b)
  );
  let frames: Uint8Array[];
  if (buffers.length === nFrames) frames = buffers;
  else if (nFrames === 1) frames = [binaryBytes(values)];
  else {
    throw new InputError(
      "FRAGMENTS",
      `expected one fragment per frame (or a Basic Offset Table) for ${nFrames} frames, found ${buffers.length} fragments`,
    );
  }
  return { frames, transferSyntaxUID, mediaType: frameMediaType(transferSyntaxUID) };
}

/** "Manufacturer" → "00080070" from dcmjs's dictionary; undefined for unknown keywords. */
export function tagForKeyword(keyword: string): string | undefined {
  const nameMap = (dcmjs.data.DicomMetaDictionary as { nameMap?: Record<string, { tag?: string }> }).nameMap;
  const tag = nameMap?.[keyword]?.tag;
  if (typeof tag !== "string") return undefined;
  const hex = tag.replace(/[^0-9A-Fa-f]/g, "").toUpperCase();
  return hex.length === 8 ? hex : undefined;
}
