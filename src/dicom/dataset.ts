/**
 * A thin typed facade over dcmjs's dataset layer (naturalized datasets, DicomMessage.readFile,
 * DicomDict.write). dcmjs ships no types, so everything that crosses this boundary is narrowed here
 * and the rest of src/dicom works with `NaturalizedDataset` (a plain keyword → value record).
 * Pure: runs in Deno, in the browser and in a Worker.
 */
import dcmjs from "dcmjs";
import { InputError } from "../core/errors.ts";

/** A dcmjs naturalized dataset: DICOM keywords → values (sequences are arrays of datasets). */
export type NaturalizedDataset = Record<string, unknown>;

export const TransferSyntax = {
  ImplicitLE: "1.2.840.10008.1.2",
  ExplicitLE: "1.2.840.10008.1.2.1",
  DeflatedLE: "1.2.840.10008.1.2.1.99",
  ExplicitBE: "1.2.840.10008.1.2.2",
  JpegBaseline: "1.2.840.10008.1.2.4.50",
  JpegExtended: "1.2.840.10008.1.2.4.51",
  JpegLossless: "1.2.840.10008.1.2.4.57",
  JpegLosslessSV1: "1.2.840.10008.1.2.4.70",
  JpegLsLossless: "1.2.840.10008.1.2.4.80",
  JpegLsNearLossless: "1.2.840.10008.1.2.4.81",
  Jpeg2000Lossless: "1.2.840.10008.1.2.4.90",
  Jpeg2000: "1.2.840.10008.1.2.4.91",
  Rle: "1.2.840.10008.1.2.5",
  DeflatedImageFrame: "1.2.840.10008.1.2.8.1",
} as const;

export const SopClass = {
  CT: "1.2.840.10008.5.1.4.1.1.2",
  EnhancedCT: "1.2.840.10008.5.1.4.1.1.2.1",
  LegacyEnhancedCT: "1.2.840.10008.5.1.4.1.1.2.2",
  MR: "1.2.840.10008.5.1.4.1.1.4",
  EnhancedMR: "1.2.840.10008.5.1.4.1.1.4.1",
  Segmentation: "1.2.840.10008.5.1.4.1.1.66.4",
  LabelmapSegmentation: "1.2.840.10008.5.1.4.1.1.66.7",
  ParametricMap: "1.2.840.10008.5.1.4.1.1.30",
} as const;

interface DcmjsDicomDict {
  meta: Record<string, unknown>;
  dict: Record<string, unknown>;
  write(options?: Record<string, unknown>): ArrayBuffer;
}

interface DcmjsData {
  DicomMessage: { readFile(buffer: ArrayBuffer, options?: Record<string, unknown>): DcmjsDicomDict };
  DicomMetaDictionary: {
    naturalizeDataset(dict: Record<string, unknown>): NaturalizedDataset;
    denaturalizeDataset(ds: NaturalizedDataset): Record<string, unknown>;
  };
  DicomDict: new (meta: Record<string, unknown>) => DcmjsDicomDict;
}

const data = (dcmjs as unknown as { data: DcmjsData }).data;

export interface ParsedDicom {
  meta: NaturalizedDataset;
  dataset: NaturalizedDataset;
  transferSyntaxUID: string;
}

/** Parses a DICOM Part 10 file. Throws InputError NOT_DICOM when the bytes are not one. */
export function parseDicom(bytes: Uint8Array): ParsedDicom {
  const buffer = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
    ? bytes.buffer as ArrayBuffer
    : bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  let dict: DcmjsDicomDict;
  try {
    // strict: with ignoreErrors dcmjs returns whatever it read before an error (a truncated file
    // would load as half a dataset), so that mode is kept for the two benign cases below
    dict = data.DicomMessage.readFile(buffer);
  } catch (strictError) {
    const message = strictError instanceof Error ? strictError.message : String(strictError);
    // real files: several character sets (dcmjs decodes the first) or no (0002,0000) group length
    const benign = /character set|meta length tag/i.test(message);
    try {
      if (!benign) throw strictError;
      dict = data.DicomMessage.readFile(buffer, { ignoreErrors: true });
    } catch (e) {
      throw new InputError(
        "NOT_DICOM",
        `expected a complete DICOM Part 10 file (128-byte preamble, "DICM", file meta, dataset), found bytes dcmjs cannot parse: ${
          e instanceof Error ? e.message : String(e)
        }`,
        { cause: e },
      );
    }
  }
  const meta = data.DicomMetaDictionary.naturalizeDataset(dict.meta);
  const dataset = data.DicomMetaDictionary.naturalizeDataset(dict.dict);
  return { meta, dataset, transferSyntaxUID: str(meta, "TransferSyntaxUID") ?? TransferSyntax.ImplicitLE };
}

/** An ImplementationClassUID of our own (a 2.25 UUID-derived root), fixed so output is reproducible. */
export const IMPLEMENTATION_CLASS_UID = "2.25.266940462981148391548411536329185063211";
export const IMPLEMENTATION_VERSION_NAME = "EDGESEG_0_1";

/**
 * Serialises a naturalized dataset as Part 10, Explicit VR Little Endian unless told otherwise (an
 * encapsulated syntax makes dcmjs write PixelData given as one ArrayBuffer per frame as fragments).
 * The writers leave pixel data out and append it with `allocateWithPixelElement`.
 */
export function writeDataset(
  dataset: NaturalizedDataset,
  transferSyntaxUID: string = TransferSyntax.ExplicitLE,
): Uint8Array {
  const sopClass = str(dataset, "SOPClassUID") ?? "";
  const sopInstance = str(dataset, "SOPInstanceUID") ?? "";
  const meta: NaturalizedDataset = {
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
    MediaStorageSOPClassUID: sopClass,
    MediaStorageSOPInstanceUID: sopInstance,
    TransferSyntaxUID: transferSyntaxUID,
    ImplementationClassUID: IMPLEMENTATION_CLASS_UID,
    ImplementationVersionName: IMPLEMENTATION_VERSION_NAME,
    _vrMap: { FileMetaInformationVersion: "OB" },
  };
  const dict = new data.DicomDict(data.DicomMetaDictionary.denaturalizeDataset(meta));
  dict.dict = data.DicomMetaDictionary.denaturalizeDataset(dataset);
  return new Uint8Array(dict.write({ fragmentMultiframe: false }));
}

/**
 * Writes `head` (a Part 10 file without pixel data) followed by one native pixel element (tag
 * 7FE0,0010 OB/OW or 7FE0,0008 OF) whose value the caller fills in place. Pixel data is the last
 * element of every object we write, so appending it by hand lets the writers pack bits straight into
 * the final buffer: one allocation of the output instead of dcmjs's growing write buffer and copies.
 */
export function allocateWithPixelElement(
  head: Uint8Array,
  tag: "PixelData" | "FloatPixelData",
  vr: "OB" | "OW" | "OF",
  valueBytes: number,
): { file: Uint8Array; value: Uint8Array } {
  const padded = valueBytes + (valueBytes & 1);
  const file = new Uint8Array(head.length + 12 + padded);
  file.set(head, 0);
  const view = new DataView(file.buffer, head.length, 12);
  view.setUint16(0, 0x7fe0, true);
  view.setUint16(2, tag === "PixelData" ? 0x0010 : 0x0008, true);
  file[head.length + 4] = vr.charCodeAt(0);
  file[head.length + 5] = vr.charCodeAt(1);
  view.setUint32(8, padded, true);
  return { file, value: file.subarray(head.length + 12, head.length + 12 + valueBytes) };
}

/**
 * Part 10 bytes of an image instance with native pixel data, Explicit VR Little Endian: the header
 * through dcmjs, the pixels appended in one copy (`allocateWithPixelElement`). The phantom, wrapped
 * photographs and wrapped volumes share it. 8-bit samples are written as OB, 16-bit as OW; typed
 * arrays are little-endian on every platform EdgeSeg runs on, so their bytes go in unchanged.
 */
export function writeImageInstance(
  dataset: NaturalizedDataset,
  pixels: Uint8Array | Uint16Array | Int16Array,
): Uint8Array<ArrayBuffer> {
  if ("PixelData" in dataset) {
    throw new TypeError("writeImageInstance: pass the pixels separately, not as PixelData in the dataset");
  }
  const bytes = new Uint8Array(pixels.buffer, pixels.byteOffset, pixels.byteLength);
  const vr = pixels.BYTES_PER_ELEMENT === 1 ? "OB" : "OW";
  const { file, value } = allocateWithPixelElement(writeDataset(dataset), "PixelData", vr, bytes.length);
  value.set(bytes);
  return file as Uint8Array<ArrayBuffer>;
}

// ---------------------------------------------------------------------------------------------
// Narrowing helpers for naturalized values (dcmjs gives strings, numbers, arrays or sequences).

export function str(ds: NaturalizedDataset | undefined, key: string): string | undefined {
  const v = ds?.[key];
  if (typeof v === "string") return v;
  if (typeof v === "number") return String(v);
  if (Array.isArray(v) && v.length > 0 && (typeof v[0] === "string" || typeof v[0] === "number")) {
    return String(v[0]);
  }
  if (v && typeof v === "object" && "Alphabetic" in v) {
    return String((v as { Alphabetic: unknown }).Alphabetic);
  }
  return undefined;
}

export function num(ds: NaturalizedDataset | undefined, key: string): number | undefined {
  const v = ds?.[key];
  const x = Array.isArray(v) ? v[0] : v;
  if (typeof x === "number") return Number.isFinite(x) ? x : undefined;
  if (typeof x === "string" && x.trim() !== "") {
    const n = Number(x);
    return Number.isFinite(n) ? n : undefined;
  }
  return undefined;
}

export function nums(ds: NaturalizedDataset | undefined, key: string): number[] | undefined {
  const v = ds?.[key];
  if (v === undefined || v === null) return undefined;
  const arr = Array.isArray(v) ? v : typeof v === "string" ? v.split("\\") : [v];
  const out = arr.map((x) => Number(x));
  return out.every((x) => Number.isFinite(x)) ? out : undefined;
}

export function seq(ds: NaturalizedDataset | undefined, key: string): NaturalizedDataset[] {
  const v = ds?.[key];
  if (Array.isArray(v)) return v.filter((x): x is NaturalizedDataset => !!x && typeof x === "object");
  if (v && typeof v === "object" && !(v instanceof ArrayBuffer)) return [v as NaturalizedDataset];
  return [];
}

export function item(ds: NaturalizedDataset | undefined, key: string): NaturalizedDataset | undefined {
  return seq(ds, key)[0];
}

/** The pixel data element as a list of ArrayBuffers (dcmjs: one per fragment/frame or [whole]). */
export function pixelBuffers(ds: NaturalizedDataset, key = "PixelData"): Uint8Array[] {
  const v = ds[key];
  const list = Array.isArray(v) ? v : v === undefined ? [] : [v];
  const out: Uint8Array[] = [];
  for (const b of list) {
    if (b instanceof ArrayBuffer) out.push(new Uint8Array(b));
    else if (ArrayBuffer.isView(b)) out.push(new Uint8Array(b.buffer, b.byteOffset, b.byteLength));
  }
  return out;
}

/** Copies a dataset without its pixel data (metadata kept per slice by readSeries). */
export function withoutPixels(ds: NaturalizedDataset): NaturalizedDataset {
  const out: NaturalizedDataset = {};
  for (const [k, v] of Object.entries(ds)) {
    if (k === "PixelData" || k === "FloatPixelData" || k === "DoubleFloatPixelData") continue;
    out[k] = v;
  }
  return out;
}
