/**
 * Wraps a 2D photograph (TIFF, PNG, JPEG, GIF — e.g. a DRIVE fundus image) as a DICOM Secondary
 * Capture instance, RGB 8-bit, Explicit VR Little Endian, so it can be stored to the PACS and opened
 * in the viewer like any series. Modality OP (ophthalmic photography) unless told otherwise; a
 * Secondary Capture carries no patient geometry, so none is invented.
 *
 *   deno run -A src/dicom/wrap_image.ts <image> <out.dcm> [--modality OP]
 */
import { readImage } from "../io/image2d.ts";
import { writeImageInstance } from "./dataset.ts";
import { newUid } from "./uid.ts";

export const SECONDARY_CAPTURE_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.7";

export interface WrapImageOptions {
  modality?: string;
  patientName?: string;
  patientId?: string;
  studyDescription?: string;
  seriesDescription?: string;
  /** fixed UIDs (tests); new ones otherwise */
  uids?: { study?: string; series?: string; instance?: string; frameOfReference?: string };
  /** YYYYMMDD, default 20240101 (a fixed date keeps the output deterministic) */
  date?: string;
}

export interface WrappedImage {
  bytes: Uint8Array;
  studyUID: string;
  seriesUID: string;
  sopInstanceUID: string;
  width: number;
  height: number;
}

/** Encodes the image's pixels, unchanged, as an RGB Secondary Capture instance. */
export function wrapImage(image: Uint8Array, options: WrapImageOptions = {}): WrappedImage {
  const vol = readImage(image, { channels: 3 });
  const [width, height] = vol.geometry.dims;
  const n = width * height;
  const planar = vol.data;
  // PlanarConfiguration 0 (RGBRGB…): what every viewer reads.
  const pixels = new Uint8Array(n * 3);
  for (let p = 0; p < n; p++) {
    pixels[3 * p] = planar[p];
    pixels[3 * p + 1] = planar[n + p];
    pixels[3 * p + 2] = planar[2 * n + p];
  }
  const studyUID = options.uids?.study ?? newUid();
  const seriesUID = options.uids?.series ?? newUid();
  const sopInstanceUID = options.uids?.instance ?? newUid();
  const date = options.date ?? "20240101";
  const dataset: Record<string, unknown> = {
    SpecificCharacterSet: "ISO_IR 192",
    ImageType: ["DERIVED", "SECONDARY"],
    SOPClassUID: SECONDARY_CAPTURE_IMAGE_STORAGE,
    SOPInstanceUID: sopInstanceUID,
    StudyDate: date,
    ContentDate: date,
    StudyTime: "120000",
    ContentTime: "120000",
    AccessionNumber: "",
    Modality: options.modality ?? "OP",
    ConversionType: "DI",
    Manufacturer: "EdgeSeg",
    ReferringPhysicianName: "",
    StudyDescription: options.studyDescription ?? "Fundus photograph",
    SeriesDescription: options.seriesDescription ?? "Colour fundus",
    PatientName: options.patientName ?? "EdgeSeg^Fundus",
    PatientID: options.patientId ?? "EDGESEG-FUNDUS-1",
    PatientBirthDate: "",
    PatientSex: "",
    StudyInstanceUID: studyUID,
    SeriesInstanceUID: seriesUID,
    StudyID: "1",
    SeriesNumber: 1,
    InstanceNumber: 1,
    // A frame of reference lets a SEG derived from the photograph name the space it lives in (the
    // project's SEG writer requires one); the SC IOD permits the module as user optional.
    FrameOfReferenceUID: options.uids?.frameOfReference ?? newUid(),
    PositionReferenceIndicator: "",
    PatientOrientation: "",
    // DRIVE does not say which eye; Type 2C, so present and empty.
    Laterality: "",
    SamplesPerPixel: 3,
    PhotometricInterpretation: "RGB",
    PlanarConfiguration: 0,
    Rows: height,
    Columns: width,
    BitsAllocated: 8,
    BitsStored: 8,
    HighBit: 7,
    PixelRepresentation: 0,
    LossyImageCompression: "00",
  };
  const bytes = writeImageInstance(dataset, pixels);
  return { bytes, studyUID, seriesUID, sopInstanceUID, width, height };
}
