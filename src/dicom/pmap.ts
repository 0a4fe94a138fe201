/**
 * Parametric Map writer for the float32 uncertainty map: one frame per source slice, ascending along
 * the image normal (see frameOrder), FloatPixelData, Real World Value Mapping (label, explanation
 * naming the measure and the number of passes, unit "1" in UCUM, Quantity Definition), Frame VOI LUT
 * with LINEAR_EXACT, ContentQualification RESEARCH, RecognizableVisualFeatures NO, derivation
 * references per frame.
 */
import { ConformanceError } from "../core/errors.ts";
import type { Geometry, UncertaintyMeasure } from "../core/types.ts";
import { codeItem, Codes } from "./codes.ts";
import {
  checkPositiveInt,
  type CommonOptions,
  derivationImage,
  ds,
  equipment,
  type ProvenanceLike,
  sameGrid,
  type SourceSeries,
  validateSource,
} from "./common.ts";
import { allocateWithPixelElement, type NaturalizedDataset, SopClass, str } from "./dataset.ts";
import {
  derivedFromSource,
  multiFrameDimensions,
  planePosition,
  POSITION_DIMENSION,
  seriesAndContent,
  sharedGeometryGroups,
} from "./macros.ts";
import { writeWithTrailingSequence } from "./encode.ts";
import { dicomDateTime, newUid } from "./uid.ts";

export interface ParametricMapWriteInput {
  source: SourceSeries;
  /** the map on the source grid (UncertaintyMap fits) */
  map: {
    geometry: Geometry;
    data: Float32Array;
    measure?: UncertaintyMeasure;
    method?: string;
    passes?: number;
  };
  provenance?: ProvenanceLike;
  options?: CommonOptions & { lutLabel?: string; lutExplanation?: string };
}

const MEASURE_CODES = {
  entropy: Codes.entropy,
  mutualInformation: Codes.mutualInformation,
  variance: Codes.variance,
  sd: Codes.sd,
} as const;

const MEASURE_WORDS: Record<UncertaintyMeasure, string> = {
  entropy: "predictive entropy",
  mutualInformation: "mutual information",
  variance: "predictive variance",
  sd: "predictive standard deviation",
};

/** Writes a Parametric Map (Part 10, Explicit VR Little Endian, FloatPixelData). */
export function writeParametricMap(input: ParametricMapWriteInput): Uint8Array {
  const { source, map } = input;
  const options = input.options ?? {};
  validateSource(source, "Parametric Map");
  checkPositiveInt("SeriesNumber", options.seriesNumber, 2147483647);
  if (!sameGrid(map.geometry, source.geometry)) {
    throw new ConformanceError(
      "GEOMETRY_MISMATCH",
      `map: expected the source grid ${JSON.stringify(source.geometry)}, found ${
        JSON.stringify(map.geometry)
      }`,
    );
  }
  const [cols, rows, K] = source.geometry.dims;
  const P = cols * rows;
  if (!(map.data instanceof Float32Array) || map.data.length !== P * K) {
    throw new ConformanceError(
      "BAD_MAP",
      `map: expected a Float32Array of ${P * K} values, found ${map.data?.length ?? "none"}`,
    );
  }
  const measure: UncertaintyMeasure = map.measure ?? "entropy";
  if (!(measure in MEASURE_CODES)) {
    throw new ConformanceError(
      "BAD_MEASURE",
      `map.measure: expected entropy, mutualInformation, variance or sd, found ${measure}`,
    );
  }
  let lo = Infinity, hi = -Infinity, nonFinite = 0;
  for (let i = 0; i < map.data.length; i++) {
    const v = map.data[i];
    if (!Number.isFinite(v)) nonFinite++;
    else {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  if (nonFinite > 0) {
    throw new ConformanceError(
      "NON_FINITE",
      `map: expected finite values, found ${nonFinite} NaN or infinite voxels`,
    );
  }
  if (hi === lo) hi = lo + 1;

  const now = options.now ?? new Date();
  const { date, time } = dicomDateTime(now);
  const first = source.instances[0];
  const g = source.geometry;
  const dimOrgUID = options.uids?.dimensionOrganization ?? newUid();
  const passes = map.passes ?? 1;
  const words = MEASURE_WORDS[measure];
  const explanation = options.lutExplanation ??
    `${words[0].toUpperCase()}${words.slice(1)} of the model output over ${passes} ${
      map.method ?? "stochastic"
    } pass${passes === 1 ? "" : "es"}`;

  const rwvm: NaturalizedDataset = {
    LUTExplanation: explanation.slice(0, 64),
    LUTLabel: (options.lutLabel ?? measure.toUpperCase()).slice(0, 16),
    MeasurementUnitsCodeSequence: [codeItem(Codes.unitlessUcum)],
    RealWorldValueFirstValueMapped: 0,
    RealWorldValueLastValueMapped: 0,
    DoubleFloatRealWorldValueFirstValueMapped: lo,
    DoubleFloatRealWorldValueLastValueMapped: hi,
    RealWorldValueIntercept: 0,
    RealWorldValueSlope: 1,
    QuantityDefinitionSequence: [
      {
        ValueType: "CODE",
        ConceptNameCodeSequence: [codeItem(Codes.quantity)],
        ConceptCodeSequence: [codeItem(MEASURE_CODES[measure])],
      },
      {
        ValueType: "CODE",
        ConceptNameCodeSequence: [codeItem(Codes.measurementMethod)],
        ConceptCodeSequence: [codeItem(Codes.modelUncertainty)],
      },
    ],
  };
  delete rwvm.RealWorldValueFirstValueMapped;
  delete rwvm.RealWorldValueLastValueMapped;

  const order = frameOrder(g);
  const perFrame: NaturalizedDataset[] = [];
  for (const k of order) {
    perFrame.push({
      DerivationImageSequence: derivationImage(source, k, Codes.modelUncertainty),
      FrameContentSequence: [{ DimensionIndexValues: [perFrame.length + 1] }],
      PlanePositionSequence: planePosition(g, k),
    });
  }
  const dataset: NaturalizedDataset = {
    SpecificCharacterSet: "ISO_IR 192",
    // PS3.3 C.8.32.2: four values, value 3 image flavor, value 4 derived pixel contrast
    ImageType: ["DERIVED", "PRIMARY", "VOLUME", "NONE"],
    InstanceCreationDate: date,
    InstanceCreationTime: time,
    SOPClassUID: SopClass.ParametricMap,
    SOPInstanceUID: options.uids?.instance ?? newUid(),
    ContentDate: date,
    ContentTime: time,
    Modality: str(first, "Modality") ?? "OT",
    ...derivedFromSource(source),
    ...equipment(options, input.provenance, now),
    SeriesInstanceUID: options.uids?.series ?? newUid(),
    Laterality: seriesLateralityOf(first),
    ...seriesAndContent(options, {
      seriesNumber: 9902,
      seriesDescription: `EdgeSeg uncertainty (${words})`,
      contentDescription: `Model uncertainty: ${words}`,
    }),
    ContentLabel: "UNCERTAINTY",
    ContentQualification: "RESEARCH",
    RecognizableVisualFeatures: "NO",
    BurnedInAnnotation: "NO",
    LossyImageCompression: "00",
    PresentationLUTShape: "IDENTITY",
    SamplesPerPixel: 1,
    PhotometricInterpretation: "MONOCHROME2",
    Rows: rows,
    Columns: cols,
    BitsAllocated: 32,
    NumberOfFrames: K,
    AcquisitionContextSequence: [],
    SharedFunctionalGroupsSequence: [{
      ...sharedGeometryGroups(source),
      RealWorldValueMappingSequence: [rwvm],
      FrameVOILUTSequence: [{
        WindowCenter: ds((lo + hi) / 2),
        WindowWidth: ds(Math.max(hi - lo, 1e-6)),
        VOILUTFunction: "LINEAR_EXACT",
      }],
      ParametricMapFrameTypeSequence: [{ FrameType: ["DERIVED", "PRIMARY", "VOLUME", "NONE"] }],
      // Identity Pixel Value Transformation macro: the real-world mapping does the scaling
      PixelValueTransformationSequence: [{ RescaleIntercept: "0", RescaleSlope: "1", RescaleType: "US" }],
    }],
    ...multiFrameDimensions(dimOrgUID, [POSITION_DIMENSION]),
  };
  // dcmjs writes the dataset; the per-frame sequence (5200,9230), the highest tag before the pixel
  // data, is appended by the fast encoder (see encode.ts for the measured reason)
  const head = writeWithTrailingSequence(dataset, "PerFrameFunctionalGroupsSequence", perFrame);
  const { file, value } = allocateWithPixelElement(head, "FloatPixelData", "OF", P * K * 4);
  // Float32 frames are the map's planar slices in frame order; copy the bytes (little-endian hosts)
  const bytes = new Uint8Array(map.data.buffer, map.data.byteOffset, P * K * 4);
  order.forEach((k, f) => value.set(bytes.subarray(k * P * 4, (k + 1) * P * 4), f * P * 4));
  return file;
}

/**
 * General Series Laterality (Type 2C, paired body parts) of the map: the source series' own, else the
 * eye of an ophthalmic source (ImageLaterality R or L: OP and OPT images carry the eye per image, not
 * per series), else empty, which says "unknown".
 */
function seriesLateralityOf(first: NaturalizedDataset): string {
  const own = str(first, "Laterality");
  if (own !== undefined) return own;
  const eye = str(first, "ImageLaterality");
  return eye === "R" || eye === "L" ? eye : "";
}

/**
 * Slice indices in frame order: ascending along the image normal (row × column direction). OHIF's
 * PMAP loader (extension cornerstone-dicom-pmap, 3.13.2) copies the frames in file order into a volume
 * derived from the referenced series, whose slices Cornerstone sorts ascending along that normal; it
 * does not place frames by their references or positions. A grid whose k axis points against the
 * normal is therefore written last slice first, so every frame lands on its own source slice there.
 */
export function frameOrder(g: Geometry): number[] {
  const d = g.direction;
  const normal = [
    d[3] * d[7] - d[6] * d[4],
    d[6] * d[1] - d[0] * d[7],
    d[0] * d[4] - d[3] * d[1],
  ];
  const along = normal[0] * d[2] + normal[1] * d[5] + normal[2] * d[8];
  const ks = Array.from({ length: g.dims[2] }, (_, k) => k);
  return along < 0 ? ks.reverse() : ks;
}
