/**
 * A synthetic CT-like phantom series, written as Part-10 files with dcmjs (explicit VR little endian).
 *
 * A chest-abdomen phantom. It is the sample study the edge server seeds on first start (so a newcomer sees an image without
 * any data of their own) and test data for the server, the readers and the writers: body ellipse in
 * soft tissue, a liver-like blob, kidneys, lungs at the top, a vertebral body with a spinal canal, in
 * Hounsfield units stored unsigned with RescaleIntercept −1024 as most scanners do.
 *
 * Everything is deterministic: UIDs are derived from a fixed root, the noise from a seeded PRNG, so the
 * same options always give byte-identical files (tests compare bytes).
 */
import { mulberry32 } from "../core/random.ts";
import { writeImageInstance } from "./dataset.ts";

/**
 * Fixed UID root for the phantom. A `2.25.` UUID-derived root (PS3.5 §B.2) needs no registration;
 * the suffixes below keep every UID under 64 characters.
 */
export const PHANTOM_UID_ROOT = "2.25.165720410573513146218318398466931902501";

export interface PhantomOptions {
  /** number of slices (default 64) */
  slices?: number;
  /** rows = columns (default 256) */
  size?: number;
  /** in-plane pixel spacing in mm (default 1.5) */
  pixelSpacingMm?: number;
  /** slice thickness = spacing in mm (default 2.5) */
  sliceSpacingMm?: number;
  /** UID root; change it to make a second, distinct study (default PHANTOM_UID_ROOT) */
  uidRoot?: string;
  /** noise seed (default 1) */
  seed?: number;
  patientName?: string;
  patientId?: string;
  /** YYYYMMDD (default 20240115) */
  studyDate?: string;
  accessionNumber?: string;
  studyDescription?: string;
}

export interface PhantomSeries {
  studyInstanceUID: string;
  seriesInstanceUID: string;
  frameOfReferenceUID: string;
  sopInstanceUIDs: string[];
  /** one Part-10 file per slice, in slice order (k = 0 is the most superior slice) */
  files: Uint8Array<ArrayBuffer>[];
  /** the HU values that were encoded, planar [k][row][column] */
  hu: Int16Array;
  rows: number;
  columns: number;
}

const CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2";

/** HU of the phantom at normalised in-plane coordinates (x, y in −1..1, y down = posterior) and depth z in 0..1. */
function phantomHu(x: number, y: number, z: number): number {
  const inEllipse = (cx: number, cy: number, rx: number, ry: number) =>
    ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1;
  if (!inEllipse(0, 0.05, 0.85, 0.62)) return -1000; // air around the body
  if (!inEllipse(0, 0.05, 0.8, 0.57)) return -100; // subcutaneous fat
  // spine: vertebral body with a canal, present on every slice
  if (inEllipse(0, 0.42, 0.11, 0.1)) return inEllipse(0, 0.42, 0.045, 0.045) ? 20 : 700;
  // lungs in the upper third
  if (z < 0.33 && (inEllipse(-0.38, 0.0, 0.28, 0.38) || inEllipse(0.38, 0.0, 0.28, 0.38))) return -820;
  // liver-like blob on the patient's right (image left), middle third, varying with depth
  const lr = 0.3 + 0.08 * Math.sin(z * Math.PI);
  if (z > 0.25 && z < 0.8 && inEllipse(-0.35, -0.05, lr, lr * 0.8)) {
    // a hypodense lesion inside the liver
    return inEllipse(-0.42, -0.1, 0.07, 0.07) && z > 0.45 && z < 0.6 ? 25 : 60;
  }
  // kidneys, lower half
  if (z > 0.5 && (inEllipse(-0.3, 0.3, 0.09, 0.13) || inEllipse(0.3, 0.3, 0.09, 0.13))) return 150;
  // aorta in front of the spine
  if (inEllipse(0.06, 0.24, 0.05, 0.05)) return 180;
  return 40; // soft tissue
}

function dateTimeParts(studyDate: string): { date: string; time: string } {
  return { date: studyDate, time: "101500" };
}

/**
 * Builds the phantom series. Deterministic for the same options.
 */
export function phantomSeries(opts: PhantomOptions = {}): PhantomSeries {
  const slices = opts.slices ?? 64;
  const size = opts.size ?? 256;
  const px = opts.pixelSpacingMm ?? 1.5;
  const dz = opts.sliceSpacingMm ?? 2.5;
  const root = opts.uidRoot ?? PHANTOM_UID_ROOT;
  const rand = mulberry32(opts.seed ?? 1);
  const studyUID = `${root}.1`;
  const seriesUID = `${root}.2`;
  const forUID = `${root}.3`;
  const { date, time } = dateTimeParts(opts.studyDate ?? "20240115");
  const hu = new Int16Array(slices * size * size);
  const files: Uint8Array<ArrayBuffer>[] = [];
  const sopUIDs: string[] = [];
  // x runs to the patient's left, y to posterior; origin centres the grid on the isocentre.
  const x0 = -((size - 1) * px) / 2;
  const y0 = -((size - 1) * px) / 2;
  for (let k = 0; k < slices; k++) {
    const z = slices === 1 ? 0.5 : k / (slices - 1);
    const stored = new Uint16Array(size * size);
    for (let j = 0; j < size; j++) {
      const y = (2 * j) / (size - 1) - 1;
      for (let i = 0; i < size; i++) {
        const x = (2 * i) / (size - 1) - 1;
        const base = phantomHu(x, y, z);
        // Gaussian-ish noise (sum of uniforms) like a CT's quantum noise; none in air.
        const noise = base === -1000 ? 0 : Math.round((rand() + rand() + rand() - 1.5) * 12);
        const v = Math.max(-1024, Math.min(3071, base + noise));
        hu[k * size * size + j * size + i] = v;
        stored[j * size + i] = v + 1024;
      }
    }
    const sopUID = `${root}.4.${k + 1}`;
    sopUIDs.push(sopUID);
    const dataset: Record<string, unknown> = {
      SpecificCharacterSet: "ISO_IR 192",
      ImageType: ["ORIGINAL", "PRIMARY", "AXIAL"],
      SOPClassUID: CT_IMAGE_STORAGE,
      SOPInstanceUID: sopUID,
      StudyDate: date,
      SeriesDate: date,
      ContentDate: date,
      StudyTime: time,
      SeriesTime: time,
      ContentTime: time,
      AccessionNumber: opts.accessionNumber ?? "EDGESEG0001",
      Modality: "CT",
      Manufacturer: "EdgeSeg",
      ManufacturerModelName: "Synthetic phantom",
      ReferringPhysicianName: "",
      StudyDescription: opts.studyDescription ?? "EdgeSeg synthetic CT phantom",
      SeriesDescription: "Phantom chest-abdomen 2.5 mm",
      PatientName: opts.patientName ?? "EdgeSeg^Phantom",
      PatientID: opts.patientId ?? "EDGESEG-PHANTOM-1",
      PatientBirthDate: "19700101",
      PatientSex: "O",
      BodyPartExamined: "CHESTABDOMEN",
      SliceThickness: dz,
      KVP: 120,
      PatientPosition: "FFS",
      StudyInstanceUID: studyUID,
      SeriesInstanceUID: seriesUID,
      StudyID: "1",
      SeriesNumber: 2,
      InstanceNumber: k + 1,
      AcquisitionNumber: 1,
      // Head to feet: z decreases with k, as a scanner writes an axial series.
      ImagePositionPatient: [x0, y0, -k * dz],
      ImageOrientationPatient: [1, 0, 0, 0, 1, 0],
      FrameOfReferenceUID: forUID,
      PositionReferenceIndicator: "",
      SliceLocation: -k * dz,
      SamplesPerPixel: 1,
      PhotometricInterpretation: "MONOCHROME2",
      Rows: size,
      Columns: size,
      PixelSpacing: [px, px],
      BitsAllocated: 16,
      BitsStored: 12,
      HighBit: 11,
      PixelRepresentation: 0,
      WindowCenter: 40,
      WindowWidth: 400,
      RescaleIntercept: -1024,
      RescaleSlope: 1,
      RescaleType: "HU",
    };
    files.push(writeImageInstance(dataset, stored));
  }
  return {
    studyInstanceUID: studyUID,
    seriesInstanceUID: seriesUID,
    frameOfReferenceUID: forUID,
    sopInstanceUIDs: sopUIDs,
    files,
    hu,
    rows: size,
    columns: size,
  };
}
