/**
 * Wraps a 2D photograph (TIFF, PNG, JPEG, GIF — e.g. a DRIVE fundus image) as a DICOM instance, RGB
 * 8-bit, Explicit VR Little Endian, so it can be stored to the PACS and opened in the viewer like any
 * series:
 * - a Secondary Capture (default): modality OP unless told otherwise; it carries no patient geometry,
 *   so none is invented;
 * - an Ophthalmic Photography 8 Bit Image (`sopClass: "op"`, PS3.3 A.39.1), what a fundus camera
 *   writes: the ophthalmic modules with the eye (`laterality`, required: it cannot be guessed), the
 *   acquisition device (a fundus camera) and the parameters a converted photograph does not know
 *   left empty (Type 2).
 *
 *   deno task wrap-image <image> <out.dcm> [--modality OP]
 */
import { readImage } from "../io/image2d.ts";
import { codeItem } from "./codes.ts";
import { writeImageInstance } from "./dataset.ts";
import {
  ocularRegionImaged,
  OphthalmicCodes,
  requireEye,
  synchronization,
  unknownAcquisitionParameters,
} from "./ophthalmic.ts";
import { newUid } from "./uid.ts";

export const SECONDARY_CAPTURE_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.7";
export const OPHTHALMIC_PHOTOGRAPHY_8BIT_STORAGE = "1.2.840.10008.5.1.4.1.1.77.1.5.1";

export interface WrapImageOptions {
  /** "sc" (Secondary Capture, default) or "op" (Ophthalmic Photography 8 Bit Image) */
  sopClass?: "sc" | "op";
  /** the eye, R or L: required for "op" (ImageLaterality is Type 1) */
  laterality?: "R" | "L";
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

/** Encodes the image's pixels, unchanged, as an RGB Secondary Capture or Ophthalmic Photography instance. */
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
  if (options.sopClass === "op") {
    // Secondary Capture's own attributes (SC Equipment, General Series' Laterality) are not in the OP IOD
    delete dataset.ConversionType;
    delete dataset.Laterality;
    Object.assign(dataset, ophthalmicPhotography(options, date, dataset.FrameOfReferenceUID as string));
  }
  const bytes = writeImageInstance(dataset, pixels);
  return { bytes, studyUID, seriesUID, sopInstanceUID, width, height };
}

/**
 * What an Ophthalmic Photography 8 Bit Image adds to (and changes in) the Secondary Capture dataset:
 * the SOP class, the Multi-frame module (one frame), Acquisition Context, the Ophthalmic Photography
 * Image, Ocular Region Imaged, Acquisition Parameters and Photographic Parameters modules.
 */
function ophthalmicPhotography(
  options: WrapImageOptions,
  date: string,
  frameOfReference: string,
): Record<string, unknown> {
  const eye = requireEye(options.laterality, "an Ophthalmic Photography image");
  return {
    SOPClassUID: OPHTHALMIC_PHOTOGRAPHY_8BIT_STORAGE,
    Modality: "OP",
    // the camera's pixels, unchanged: an original, primary image
    ImageType: ["ORIGINAL", "PRIMARY"],
    NumberOfFrames: 1,
    FrameIncrementPointer: 0x00181063, // FrameTime
    FrameTime: 0,
    AcquisitionDateTime: `${date}120000`,
    AcquisitionContextSequence: [],
    ...synchronization(frameOfReference),
    BurnedInAnnotation: "NO",
    ...ocularRegionImaged(eye),
    PatientEyeMovementCommanded: "",
    // Type 2 and unknown for a converted photograph: present and empty
    ...unknownAcquisitionParameters(),
    AcquisitionDeviceTypeCodeSequence: [codeItem(OphthalmicCodes.fundusCamera)],
    IlluminationTypeCodeSequence: [],
    LightPathFilterTypeStackCodeSequence: [],
    ImagePathFilterTypeStackCodeSequence: [],
    LensesCodeSequence: [],
    DetectorType: "",
  };
}
