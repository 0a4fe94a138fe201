/**
 * Wraps a greyscale volume (a NIfTI file, or any 1-channel Volume) as a classic single-frame DICOM
 * series, MR Image Storage by default: one instance per slice k, Explicit VR Little Endian, 16-bit
 * unsigned stored values with RescaleSlope/RescaleIntercept, ImagePositionPatient and
 * ImageOrientationPatient from the volume's LPS geometry (src/io/nifti.ts already turned the NIfTI
 * sform/qform from RAS into LPS). So a research data set in NIfTI can be stored to the PACS and opened
 * in the viewer like a scanner's series.
 *
 * Stored values: a NIfTI with integer voxels and scl_slope/scl_inter keeps its integers and its
 * scaling (lossless); integer data that fit 16 bits are stored as they are (intercept = minimum when
 * negative); anything else is quantised linearly onto 0..65535, so a value comes back within half a
 * step (`maxError`). Classic MR Image Storage has no Modality LUT module, but RescaleSlope/Intercept
 * are what every reader (Cornerstone, dcmjs, pydicom, EdgeSeg's readSeries) applies, so dciodvfy
 * reports them as a warning ("not in IOD"), not an error; the Enhanced MR IOD would allow them, but
 * OHIF handles classic single-frame series best.
 *
 *   deno run -A src/dicom/wrap_volume.ts <volume.nii[.gz]> <out folder> [--body-part HEART]
 *       [--modality MR] [--patient-id ID] [--description TEXT]
 */

import { InputError } from "../core/errors.ts";
import type { Geometry, Volume } from "../core/types.ts";
import { readNifti } from "../io/nifti.ts";
import { ds, orientationOf, slicePosition } from "./common.ts";
import { writeImageInstance } from "./dataset.ts";
import { newUid } from "./uid.ts";

export const MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4";

export interface WrapVolumeOptions {
  /** DICOM Modality (default MR); only MR Image Storage is written */
  modality?: string;
  /** BodyPartExamined, e.g. HEART; omitted when absent */
  bodyPart?: string;
  patientName?: string;
  patientId?: string;
  studyDescription?: string;
  seriesDescription?: string;
  /** YYYYMMDD, default 20240101 (a fixed date keeps the output reproducible apart from UIDs) */
  date?: string;
  /** fixed UIDs (tests); new ones otherwise */
  uids?: { study?: string; series?: string; frameOfReference?: string };
  /**
   * The linear map the values came from (value = integer × slope + intercept), e.g. a NIfTI's
   * scl_slope/scl_inter: used when every voxel sits on its grid and the integers fit 16 bits.
   */
  scaling?: { slope: number; intercept: number };
}

export interface WrappedSeries {
  studyUID: string;
  seriesUID: string;
  frameOfReferenceUID: string;
  /** one per slice k of the input volume */
  sopInstanceUIDs: string[];
  /** one Part-10 file per slice k */
  files: Uint8Array<ArrayBuffer>[];
  /** what the files carry: value = stored × slope + intercept */
  rescale: { slope: number; intercept: number; kind: "source-scaling" | "integer" | "quantised" };
  /** the largest |decoded − input| over all voxels (0 when lossless, up to half a slope otherwise) */
  maxError: number;
}

const U16_MAX = 65535;

interface Quantised {
  stored: Uint16Array;
  slope: number;
  intercept: number;
  kind: WrappedSeries["rescale"]["kind"];
  maxError: number;
}

/** A slope or intercept exactly as a DS string will carry it, so encoding uses what readers decode. */
function asDs(v: number): number {
  return Number(ds(v));
}

function quantiseWith(data: ArrayLike<number>, slope: number, intercept: number): Quantised | null {
  const stored = new Uint16Array(data.length);
  let maxError = 0;
  for (let n = 0; n < data.length; n++) {
    const q = Math.round((data[n] - intercept) / slope);
    if (!(q >= 0 && q <= U16_MAX)) return null;
    stored[n] = q;
    const err = Math.abs(q * slope + intercept - data[n]);
    if (err > maxError) maxError = err;
  }
  return { stored, slope, intercept, kind: "quantised", maxError };
}

/** Chooses the 16-bit representation: the source's own scaling, plain integers, or a linear quantisation. */
function quantise(data: ArrayLike<number>, scaling?: WrapVolumeOptions["scaling"]): Quantised {
  let min = Infinity, max = -Infinity, integral = true;
  for (let n = 0; n < data.length; n++) {
    const v = data[n];
    if (!Number.isFinite(v)) {
      throw new InputError("VOLUME_NOT_FINITE", `expected finite voxel values, found ${v} at index ${n}`);
    }
    if (v < min) min = v;
    if (v > max) max = v;
    if (integral && !Number.isInteger(v)) integral = false;
  }
  if (scaling && Number.isFinite(scaling.slope) && scaling.slope > 0) {
    const slope = asDs(scaling.slope), intercept = asDs(scaling.intercept);
    const q = quantiseWith(data, slope, intercept);
    // On the source's grid when every value decodes to within a float32 rounding of itself.
    const tolerance = 1e-6 * Math.max(1, Math.abs(min), Math.abs(max));
    if (q && q.maxError <= tolerance) return { ...q, kind: "source-scaling" };
  }
  if (integral && max - min <= U16_MAX) {
    const intercept = min >= 0 && max <= U16_MAX ? 0 : min;
    return { ...quantiseWith(data, 1, intercept)!, kind: "integer" };
  }
  const intercept = asDs(min);
  let slope = max > min ? asDs((max - min) / U16_MAX) : 1;
  // DS rounding may shorten the slope so that the maximum lands above 65535: widen by one ulp of DS.
  while ((max - intercept) / slope > U16_MAX + 0.5) slope = asDs(slope * (1 + 1e-9));
  return quantiseWith(data, slope, intercept)!;
}

/** Lower and upper percentile of the stored values (histogram over 0..65535), for a default window. */
function percentiles(stored: Uint16Array, lo: number, hi: number): [number, number] {
  const hist = new Uint32Array(U16_MAX + 1);
  for (let n = 0; n < stored.length; n++) hist[stored[n]]++;
  const find = (p: number) => {
    const target = p * stored.length;
    let acc = 0;
    for (let v = 0; v <= U16_MAX; v++) {
      acc += hist[v];
      if (acc >= target) return v;
    }
    return U16_MAX;
  };
  return [find(lo), find(hi)];
}

function checkGeometry(volume: Volume): void {
  const { dims } = volume.geometry;
  if (volume.channels !== 1) {
    throw new InputError(
      "VOLUME_CHANNELS",
      `expected a greyscale volume (1 channel) to wrap as MR, found ${volume.channels} channels`,
    );
  }
  if (dims[0] > U16_MAX || dims[1] > U16_MAX) {
    throw new InputError(
      "VOLUME_DIMS",
      `expected at most ${U16_MAX} rows and columns, found ${dims[0]}×${dims[1]}`,
    );
  }
  const d = volume.geometry.direction;
  const dot = d[0] * d[1] + d[3] * d[4] + d[6] * d[7];
  if (Math.abs(dot) > 1e-4) {
    throw new InputError(
      "VOLUME_SHEARED",
      `expected perpendicular row and column axes (ImageOrientationPatient needs them), found cosine ${
        dot.toFixed(5)
      } between them`,
    );
  }
}

/** Encodes a 1-channel volume as a single-frame MR series, one instance per slice k. */
export function wrapVolume(volume: Volume, options: WrapVolumeOptions = {}): WrappedSeries {
  checkGeometry(volume);
  const g: Geometry = volume.geometry;
  const [cols, rows, slices] = g.dims;
  const q = quantise(volume.data, options.scaling);
  const [p1, p99] = percentiles(q.stored, 0.005, 0.995);
  const windowLow = p1 * q.slope + q.intercept, windowHigh = p99 * q.slope + q.intercept;
  const studyUID = options.uids?.study ?? newUid();
  const seriesUID = options.uids?.series ?? newUid();
  const forUID = options.uids?.frameOfReference ?? newUid();
  const date = options.date ?? "20240101";
  const patientId = options.patientId ?? "EDGESEG-VOLUME-1";
  const sliceLen = cols * rows;
  const files: Uint8Array<ArrayBuffer>[] = [];
  const sopInstanceUIDs: string[] = [];
  for (let k = 0; k < slices; k++) {
    const sopUID = newUid();
    sopInstanceUIDs.push(sopUID);
    const dataset: Record<string, unknown> = {
      SpecificCharacterSet: "ISO_IR 192",
      // Converted from a research file: derived, and the acquisition parameters are not known.
      ImageType: ["DERIVED", "SECONDARY", "OTHER"],
      SOPClassUID: MR_IMAGE_STORAGE,
      SOPInstanceUID: sopUID,
      StudyDate: date,
      SeriesDate: date,
      ContentDate: date,
      StudyTime: "120000",
      SeriesTime: "120000",
      ContentTime: "120000",
      AccessionNumber: "",
      Modality: options.modality ?? "MR",
      Manufacturer: "EdgeSeg",
      ReferringPhysicianName: "",
      StudyDescription: options.studyDescription ?? "Wrapped volume",
      SeriesDescription: options.seriesDescription ?? "Wrapped volume",
      DerivationDescription: "Converted from a research volume file by EdgeSeg (wrap_volume)",
      PatientName: options.patientName ?? patientId,
      PatientID: patientId,
      PatientBirthDate: "",
      PatientSex: "",
      // Laterality is Type 2C (paired body parts): present and empty when the body part is not known.
      ...(options.bodyPart ? { BodyPartExamined: options.bodyPart.toUpperCase() } : { Laterality: "" }),
      // MR Image module, Type 1 and 2: "RM" (research mode) since the sequence is not recorded.
      ScanningSequence: "RM",
      SequenceVariant: "NONE",
      ScanOptions: "",
      MRAcquisitionType: "",
      RepetitionTime: "",
      EchoTime: "",
      EchoTrainLength: "",
      SliceThickness: ds(g.spacing[2]),
      SpacingBetweenSlices: ds(g.spacing[2]),
      StudyInstanceUID: studyUID,
      SeriesInstanceUID: seriesUID,
      StudyID: "1",
      SeriesNumber: 1,
      InstanceNumber: k + 1,
      PatientPosition: "",
      ImagePositionPatient: slicePosition(g, k).map(ds),
      ImageOrientationPatient: orientationOf(g),
      FrameOfReferenceUID: forUID,
      PositionReferenceIndicator: "",
      SamplesPerPixel: 1,
      PhotometricInterpretation: "MONOCHROME2",
      Rows: rows,
      Columns: cols,
      // PixelSpacing is row spacing (along j, down a column) then column spacing (along i).
      PixelSpacing: [ds(g.spacing[1]), ds(g.spacing[0])],
      BitsAllocated: 16,
      BitsStored: 16,
      HighBit: 15,
      PixelRepresentation: 0,
      WindowCenter: ds((windowLow + windowHigh) / 2),
      WindowWidth: ds(Math.max(windowHigh - windowLow, q.slope)),
      RescaleIntercept: ds(q.intercept),
      RescaleSlope: ds(q.slope),
    };
    files.push(writeImageInstance(dataset, q.stored.subarray(k * sliceLen, (k + 1) * sliceLen)));
  }
  return {
    studyUID,
    seriesUID,
    frameOfReferenceUID: forUID,
    sopInstanceUIDs,
    files,
    rescale: { slope: q.slope, intercept: q.intercept, kind: q.kind },
    maxError: q.maxError,
  };
}

/** The case id of a NIfTI file name: `<case>_image.nii.gz` → `<case>`, `scan.nii` → `scan`. */
export function caseIdOf(fileName: string): string {
  const base = fileName.split(/[\\/]/).pop() ?? fileName;
  return base.replace(/\.nii(\.gz)?$/i, "").replace(/_image$/i, "");
}

/** Reads a NIfTI file and wraps it; the case id (from `fileName`) names the patient unless told otherwise. */
export async function wrapNifti(
  bytes: Uint8Array,
  fileName: string,
  options: WrapVolumeOptions = {},
): Promise<WrappedSeries> {
  const nifti = await readNifti(bytes, options.modality ?? "MR");
  const caseId = caseIdOf(fileName);
  return wrapVolume(nifti.volume, {
    patientId: caseId,
    patientName: caseId,
    seriesDescription: `${caseId} (wrapped NIfTI)`,
    scaling: nifti.scaling,
    ...options,
  });
}
