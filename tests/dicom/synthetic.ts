/**
 * A tiny synthetic CT series written with dcmjs (CT Image Storage, Explicit VR LE, signed 16-bit,
 * rescale 1/−1024): a sphere of "soft tissue" and a smaller bright "bone" ball in air, so masks
 * and golden files are predictable. Used by the DICOM tests; all UIDs are derived from `seed`.
 */
import {
  allocateWithPixelElement,
  type NaturalizedDataset,
  SopClass,
  writeDataset,
} from "../../src/dicom/dataset.ts";

export interface SyntheticOptions {
  cols?: number;
  rows?: number;
  slices?: number;
  spacing?: [number, number, number];
  /** ImageOrientationPatient */
  orientation?: number[];
  /** added to each slice position in addition to the normal step (gantry-tilt shear), mm per slice */
  shear?: [number, number, number];
  origin?: [number, number, number];
  seed?: number;
  /** stored = (HU − intercept) / slope; default 1 / −1024 */
  rescale?: { slope: number; intercept: number };
}

export interface SyntheticSeries {
  files: Uint8Array[];
  /** HU per voxel, planar [i + cols·(j + rows·k)] in slice-position order */
  hu: Int16Array;
  /** 1 = tissue sphere, 2 = bone ball */
  truth: Uint8Array;
  studyUID: string;
  seriesUID: string;
}

export function syntheticSeries(o: SyntheticOptions = {}): SyntheticSeries {
  const cols = o.cols ?? 24, rows = o.rows ?? 20, n = o.slices ?? 6;
  const sp = o.spacing ?? [0.8, 0.9, 2.5];
  const ori = o.orientation ?? [1, 0, 0, 0, 1, 0];
  const seed = o.seed ?? 1;
  const normal = [
    ori[1] * ori[5] - ori[2] * ori[4],
    ori[2] * ori[3] - ori[0] * ori[5],
    ori[0] * ori[4] - ori[1] * ori[3],
  ];
  const origin = o.origin ?? [-10, -12, 30];
  const shear = o.shear ?? [0, 0, 0];
  const root = `2.25.${1000 + seed}`;
  const studyUID = `${root}.1`, seriesUID = `${root}.2`, forUID = `${root}.3`;
  const hu = new Int16Array(cols * rows * n);
  const truth = new Uint8Array(cols * rows * n);
  const c = [cols / 2, rows / 2, n / 2];
  for (let k = 0; k < n; k++) {
    for (let j = 0; j < rows; j++) {
      for (let i = 0; i < cols; i++) {
        const x = (i - c[0]) * sp[0], y = (j - c[1]) * sp[1], z = (k - c[2] + 0.5) * sp[2];
        const r = Math.hypot(x, y, z);
        const idx = i + cols * (j + rows * k);
        const bx = (i - c[0] - cols / 6) * sp[0];
        if (Math.hypot(bx, y, z) < Math.min(cols, rows) * 0.12 * sp[0] + 1) {
          hu[idx] = 900;
          truth[idx] = 2;
        } else if (r < Math.min(cols * sp[0], rows * sp[1]) * 0.35) {
          hu[idx] = 40 + ((i + j + k) % 7);
          truth[idx] = 1;
        } else hu[idx] = -1000;
      }
    }
  }
  const files: Uint8Array[] = [];
  for (let k = 0; k < n; k++) {
    const pos = [0, 1, 2].map((a) => origin[a] + normal[a] * sp[2] * k + shear[a] * k);
    const ds: NaturalizedDataset = {
      SpecificCharacterSet: "ISO_IR 192",
      ImageType: ["ORIGINAL", "PRIMARY", "AXIAL"],
      SOPClassUID: SopClass.CT,
      SOPInstanceUID: `${root}.4.${k + 1}`,
      StudyDate: "20260101",
      StudyTime: "120000",
      AccessionNumber: "A1",
      Modality: "CT",
      Manufacturer: "EdgeSeg synthetic",
      ReferringPhysicianName: "",
      StudyDescription: "Synthetic phantom",
      SeriesDescription: "Synthetic CT",
      PatientName: "Phantom^Synthetic",
      PatientID: `SYN${seed}`,
      PatientBirthDate: "",
      PatientSex: "O",
      BodyPartExamined: "ABDOMEN",
      SliceThickness: String(sp[2]),
      KVP: "120",
      AcquisitionNumber: "1",
      PatientPosition: "HFS",
      StudyInstanceUID: studyUID,
      SeriesInstanceUID: seriesUID,
      StudyID: "1",
      SeriesNumber: 1,
      InstanceNumber: k + 1,
      ImagePositionPatient: pos.map((v) => String(Math.round(v * 1e4) / 1e4)),
      ImageOrientationPatient: ori.map(String),
      FrameOfReferenceUID: forUID,
      PositionReferenceIndicator: "",
      SamplesPerPixel: 1,
      PhotometricInterpretation: "MONOCHROME2",
      Rows: rows,
      Columns: cols,
      PixelSpacing: [String(sp[1]), String(sp[0])],
      BitsAllocated: 16,
      BitsStored: 16,
      HighBit: 15,
      PixelRepresentation: 1,
      RescaleIntercept: String(o.rescale?.intercept ?? -1024),
      RescaleSlope: String(o.rescale?.slope ?? 1),
      RescaleType: "HU",
    };
    const head = writeDataset(ds);
    const { file, value } = allocateWithPixelElement(head, "PixelData", "OW", cols * rows * 2);
    const dv = new DataView(value.buffer, value.byteOffset, value.byteLength);
    const slope = o.rescale?.slope ?? 1, intercept = o.rescale?.intercept ?? -1024;
    for (let i = 0; i < cols * rows; i++) {
      dv.setInt16(2 * i, Math.round((hu[k * cols * rows + i] - intercept) / slope), true);
    }
    files.push(file);
  }
  return { files, hu, truth, studyUID, seriesUID };
}
