/**
 * The contracts every part of EdgeSeg shares: geometry, volumes, labelmaps, model manifests and
 * segmentation results. Types only: no DOM, no Deno, no I/O (see docs/ARCHITECTURE in the brief).
 *
 * Coordinates are DICOM patient coordinates (LPS, millimetres). Voxel (i, j, k) lies at
 * `origin + direction · (spacing ⊙ [i, j, k])`, where `direction` holds the unit vectors of the
 * i, j, k axes as its columns, stored row-major: [Xi, Xj, Xk, Yi, Yj, Yk, Zi, Zj, Zk].
 */

export type Vec3 = [number, number, number];
export type Mat3 = [number, number, number, number, number, number, number, number, number];

export interface Geometry {
  /** [columns, rows, slices] */
  dims: Vec3;
  /** millimetres; the slice spacing comes from positions, never from SliceThickness */
  spacing: Vec3;
  /** centre of voxel (0, 0, 0), LPS mm */
  origin: Vec3;
  /** unit vectors of the i, j, k axes as columns, row-major */
  direction: Mat3;
}

export type VoxelArray = Float32Array | Int16Array | Uint16Array | Uint8Array;

export interface SourceInstanceRef {
  sopClassUID: string;
  sopInstanceUID: string;
  /** 1-based frame number inside a multi-frame instance */
  frame?: number;
}

export interface VolumeSource {
  studyUID: string;
  seriesUID: string;
  /** one entry per slice k, in k order */
  instances: SourceInstanceRef[];
}

export interface Volume {
  geometry: Geometry;
  /** 1 for CT/MR, 3 for RGB photographs */
  channels: number;
  /** planar layout: index = i + dims0 * (j + dims1 * (k + dims2 * c)) */
  data: VoxelArray;
  /** "CT", "MR", "OP" (ophthalmic photograph), "OT", … */
  modality: string;
  bodyPart?: string;
  /** DICOM Manufacturer (0008,0070) of the series, when known: picks per-scanner preprocessing */
  manufacturer?: string;
  frameOfReferenceUID?: string;
  source?: VolumeSource;
}

/** A coded concept, as DICOM writes it in a code sequence item. */
export interface Code {
  /** CodeValue */
  value: string;
  /** CodingSchemeDesignator: "SCT" for SNOMED CT, "DCM" for DICOM; never the retired "SRT" */
  scheme: string;
  /** CodeMeaning */
  meaning: string;
}

export type AlgorithmType = "AUTOMATIC" | "SEMIAUTOMATIC" | "MANUAL";

export interface SegmentDescription {
  /** the labelmap value and the DICOM SegmentNumber (1..65535) */
  number: number;
  label: string;
  category: Code;
  type: Code;
  /** display colour, sRGB 0..255 */
  color: Vec3;
  algorithmType: AlgorithmType;
  algorithmName?: string;
  algorithmVersion?: string;
  description?: string;
}

export interface Labelmap {
  geometry: Geometry;
  /** one value per voxel, same layout as a 1-channel Volume; 0 is background */
  data: Uint8Array | Uint16Array;
  segments: SegmentDescription[];
}

// ---------------------------------------------------------------------------------------------
// Model package manifest (models/<id>/manifest.json). docs/model-packages.md is the user's guide.

export type SpatialMode = "image2d" | "slice2d" | "patch3d";
export type Activation = "softmax" | "sigmoid" | "none";

export type IntensityTransform =
  | { kind: "none" }
  /** CT window: [center - width/2, center + width/2] → [outMin, outMax], clipped */
  | { kind: "window"; center: number; width: number; outMin: number; outMax: number }
  /** clip to [min, max], then map linearly to [outMin, outMax] */
  | { kind: "clipScale"; min: number; max: number; outMin: number; outMax: number }
  /** (x - mean) / sd, statistics taken over the voxels of `mask` ("all" or "nonzero") */
  | { kind: "zscore"; mask: "all" | "nonzero"; clip?: [number, number] }
  /** x * scale + offset */
  | { kind: "scale"; scale: number; offset: number };

export interface Preprocessing {
  /** which channels of the volume feed the model, in order (e.g. [1] = green of RGB); default all */
  channels?: number[];
  /** how to build input channels from a 1-channel volume when the model wants more: "repeat" */
  expandChannels?: "repeat";
  intensity: IntensityTransform;
  /**
   * Per-scanner intensity transforms keyed by DICOM Manufacturer: a key matches when the volume's
   * Manufacturer contains it (case-insensitive; the longest matching key wins); `intensity` is the
   * default for every other Manufacturer and for a volume without one.
   */
  intensityByManufacturer?: Record<string, IntensityTransform>;
  /** resample to this spacing (mm) before inference; null per axis keeps the native spacing */
  targetSpacingMm?: [number | null, number | null, number | null];
  /** pad each spatial dimension of a window to a multiple of this */
  padMultiple?: number;
  /** value used to pad outside the image, after intensity transform */
  padValue?: number;
}

export interface TensorSpec {
  name: string;
  dtype: "float32";
  /** numbers for fixed axes, strings for dynamic ones ("batch", "height", …) */
  shape: (number | string)[];
}

export interface LabelSpec {
  /** value in the labelmap and SegmentNumber */
  value: number;
  name: string;
  /** output channel that carries this label's probability */
  channel: number;
  category: Code;
  type: Code;
  color: Vec3;
  /** sigmoid outputs: probability above which the voxel is this label (default 0.5) */
  threshold?: number;
}

/**
 * Where the model can find something, computed from the image's CT numbers (`src/segmentation/roi.ts`).
 * `segment()` runs only windows that touch the region and reports background outside it.
 */
export interface RoiSpec {
  /** "lungs-from-hu": air enclosed by the body; "body-from-hu": the body with its holes filled */
  kind: "lungs-from-hu" | "body-from-hu";
  /** body = voxels at or above this HU (default -500) */
  bodyHu?: number;
  /** lungs-from-hu: air = voxels below this HU (default -400) */
  airHu?: number;
  /** in-plane opening radius in mm that cuts the table and blankets off the body (default 3) */
  openingMm?: number;
  /** lungs-from-hu: enclosed air components smaller than this (3D, mL) are not lung (default 0) */
  minComponentMl?: number;
  /** the region grows by at least this many mm along every axis */
  marginMm: number;
  /** a slice whose border is more than this fraction body was cropped inside the patient and is kept whole (default 0.3) */
  croppedBorderFraction?: number;
}

export interface PostprocessingSpec {
  /** keep only the largest connected component for these label values */
  largestComponent?: number[];
  /** fill holes (background components not touching the border) for these label values */
  fillHoles?: number[];
  /** remove components smaller than this many voxels, for every label */
  minComponentVoxels?: number;
  /**
   * remove 3D components smaller than this volume (mL), for every label; applied only to series
   * of more than one slice (a single image has no slice thickness to make a volume of)
   */
  minComponentMl?: number;
}

export interface McDropoutSpec {
  /** name of the model input that takes the dropout mask */
  input: string;
  /** shape of the mask for batch 1, e.g. [1, 32, 1, 1] */
  shape: number[];
  /** dropout probability p; kept channels are scaled by 1 / (1 - p) */
  rate: number;
  defaultPasses: number;
}

export interface UncertaintySpec {
  mcDropout?: McDropoutSpec;
  /** flips to average over; each entry lists the spatial axes flipped (0 = x/i, 1 = y/j, 2 = z/k) */
  tta?: { flips: number[][] };
  /** further ensemble members: file names in the package, same inputs and outputs */
  ensemble?: { members: string[] };
}

export interface ModelVariant {
  id: string;
  file: string;
  precision: "fp32" | "fp16" | "int8";
  description?: string;
  /** restricts the variant, e.g. { manufacturer: "SIEMENS" } */
  when?: Record<string, string>;
}

export interface TriageSpec {
  /** label values whose volume drives the score */
  labels: number[];
  /** volume (mL) at which the volume score reaches 1 */
  referenceVolumeMl: number;
  /** location multipliers by label value (default 1) */
  locationWeights?: Record<string, number>;
  /** weight of the boundary-uncertainty term */
  boundaryWeight: number;
  /** how strongly overall uncertainty discounts the score (0..1) */
  uncertaintyDiscount: number;
  /**
   * A central zone (e.g. the fovea of a fovea-centred macular scan): segment volume within `radiusMm`
   * of the grid's centre, distances measured along the voxel axes listed in `axes` (0 = i, 1 = j,
   * 2 = k; default all three), counts `weight` times in the location multiplier.
   */
  centre?: { radiusMm: number; weight: number; axes?: number[] };
  /** score thresholds: >= review → Review, >= urgent → Urgent */
  thresholds: { review: number; urgent: number };
}

export interface FileEntry {
  sha256: string;
  bytes: number;
}

export interface ModelManifest {
  schemaVersion: 1;
  id: string;
  name: string;
  /** semantic version, e.g. "1.2.0" */
  version: string;
  task: "segmentation";
  description: string;
  intendedUse: string;
  license: string;
  authors?: string[];
  citations?: string[];
  constraints: {
    modalities: string[];
    bodyParts?: string[];
    /** channels the volume must have (1 for CT/MR, 3 for RGB) */
    channels: number;
    minSlices?: number;
    maxVoxels?: number;
  };
  /** the main ONNX file in the package */
  model: string;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  /** how the first output becomes probabilities */
  activation: Activation;
  preprocessing: Preprocessing;
  spatial: {
    mode: SpatialMode;
    /** window size: [x, y] for image2d/slice2d, [x, y, z] for patch3d */
    window: number[];
    /** fraction of the window shared by neighbours, 0 ≤ overlap < 1 */
    overlap: number;
    blending: "gaussian" | "constant";
    /** Gaussian sigma as a fraction of the window (MONAI/nnU-Net use 1/8) */
    sigmaScale?: number;
    /** windows per model call when the batch axis is dynamic */
    batch?: number;
    /**
     * Tile only the bounding box of the region of interest (needs a `roi` block), not the whole grid:
     * with a window of -1 on an axis, one window spans the box on that axis. Applies when the grid is
     * not resampled in-plane (and along z for patch3d); otherwise the whole grid is tiled.
     */
    cropToRoi?: boolean;
  };
  labels: LabelSpec[];
  /**
   * The browser execution providers this package was verified to run on (`deno task package` runs a
   * probe window on each); absent when not audited. The runtime tries only these.
   */
  providers?: ("webgpu" | "wasm")[];
  postprocessing?: PostprocessingSpec;
  /** region of interest computed from the image (skip windows, background outside) */
  roi?: RoiSpec;
  uncertainty?: UncertaintySpec;
  variants?: ModelVariant[];
  triage?: TriageSpec;
  /** sha256 and size of every ONNX file in the package, by file name */
  files: Record<string, FileEntry>;
}

// ---------------------------------------------------------------------------------------------
// Results

export type UncertaintyMethod = "none" | "tta" | "mc" | "ensemble" | "mc+tta" | "mc+ensemble";
export type UncertaintyMeasure = "entropy" | "mutualInformation" | "variance" | "sd";

export interface UncertaintyMap {
  geometry: Geometry;
  data: Float32Array;
  measure: UncertaintyMeasure;
  method: UncertaintyMethod;
  passes: number;
}

export interface ProbabilityMaps {
  geometry: Geometry;
  /** one map per label (labels order), quantised 0..255 = probability 0..1, planar like Volume */
  data: Uint8Array;
  channels: number;
}

export interface SegmentStatistics {
  number: number;
  label: string;
  voxels: number;
  volumeMl: number;
  meanIntensity: number;
  sdIntensity: number;
  components: number;
  /** spread of the volume across stochastic passes, when there were any */
  volumeSdMl?: number;
  volumeCi95Ml?: [number, number];
  meanUncertainty?: number;
  meanBoundaryUncertainty?: number;
  /** volume inside the triage's central zone (`TriageSpec.centre`), when it has one */
  centralVolumeMl?: number;
}

export type TriageBand = "Monitor" | "Review" | "Urgent";

export interface TriageResult {
  band: TriageBand;
  score: number;
  reasons: string[];
  /** the score's terms (docs/triage.md) */
  terms?: TriageTerms;
}

export interface TriageTerms {
  totalVolumeMl: number;
  /** S_vol */
  volumeScore: number;
  /** M: location weights and the central zone, volume-weighted */
  locationMultiplier: number;
  /** volume inside the central zone (0 without one) */
  centralVolumeMl: number;
  /** B */
  boundaryUncertainty: number;
  /** U */
  overallUncertainty: number;
  /** 1 − uncertaintyDiscount · U */
  discount: number;
}

export type ExecutionProvider = "webgpu" | "webnn" | "wasm" | "cpu" | "fake";

export interface Provenance {
  modelId: string;
  modelName: string;
  modelVersion: string;
  modelSha256: string;
  variant?: string;
  /** the `preprocessing.intensityByManufacturer` key that normalised the input (per-scanner recipe) */
  intensityManufacturer?: string;
  provider: ExecutionProvider;
  /** why a preferred provider was not used, one entry per provider that failed */
  fallbackReasons: string[];
  precision: string;
  /** WASM threads the run used (browser runs), and why only one when threads were unavailable */
  threads?: number;
  threadsNote?: string;
  /** windows run, over all passes (fewer than planned when a region of interest skipped some) */
  windows: number;
  passes: number;
  /** the manifest's region of interest, when one was applied */
  roi?: RoiProvenance;
  seed?: number;
  uncertainty: UncertaintyMethod;
  timingsMs: Record<string, number>;
  startedAt: string;
  software: string;
}

/** What the region of interest bought, for the provenance line and the report. */
export interface RoiProvenance {
  kind: RoiSpec["kind"];
  marginMm: number;
  /** windows run and windows the plan had, over all passes */
  windowsRun: number;
  windowsPlanned: number;
  /** slices with no voxel of the region: no window ran there and they are background */
  slicesSkipped: number;
  slices: number;
  /** slices kept whole because their field of view was cropped inside the body */
  croppedSlices: number;
  /** volume of the (dilated) region */
  volumeMl: number;
  /** `spatial.cropToRoi`: the region's bounding box (x, y, z voxels) the windows tiled */
  cropBox?: [number, number, number];
  /** voxels fed to the model over all passes, and what the full sweep would feed */
  voxelsRun: number;
  voxelsPlanned: number;
  /** e.g. "142 of 1,206 windows run; 88 of 134 slices outside the lung region skipped" */
  summary: string;
}

export interface SegmentationResult {
  labelmap: Labelmap;
  probabilities?: ProbabilityMaps;
  uncertainty?: UncertaintyMap;
  statistics: SegmentStatistics[];
  triage?: TriageResult;
  provenance: Provenance;
}

/**
 * The segmentation core sees only this: a function from an input tensor (NCHW or NCDHW) to the
 * model's first output, same batch and spatial shape. `extra` carries further named inputs
 * (e.g. an MC dropout mask).
 */
/** The part of AbortSignal the pure core needs (the core type-checks without DOM libs). */
export interface AbortSignalLike {
  readonly aborted: boolean;
  readonly reason?: unknown;
}

export type Predictor = (
  input: Float32Array,
  shape: number[],
  signal?: AbortSignalLike,
  extra?: Record<string, { data: Float32Array; shape: number[] }>,
) => Promise<Float32Array>;

export interface Progress {
  phase: "loading" | "preprocessing" | "inference" | "postprocessing" | "writing";
  done: number;
  total: number;
  message?: string;
}

/**
 * A model ready to run: what `src/inference` hands to `segment()`. The segmentation core never sees
 * ONNX Runtime; tests build a ModelRuntime from fake predictors.
 */
export interface ModelRuntime {
  manifest: ModelManifest;
  /** one predictor per ensemble member; members[0] is the package's main model */
  members: Predictor[];
  provider: ExecutionProvider;
  /** why preferred providers were not used */
  fallbackReasons: string[];
  /** sha256 of the main ONNX file (or of the variant used) */
  modelSha256: string;
  variant?: string;
  precision: string;
}

export interface SegmentOptions {
  /** default "none"; "mc" needs manifest.uncertainty.mcDropout, "ensemble" needs ≥ 2 members */
  uncertainty?: UncertaintyMethod;
  /** stochastic passes for MC dropout (default manifest.uncertainty.mcDropout.defaultPasses) */
  passes?: number;
  /** base seed of the dropout-mask PRNG; recorded in provenance */
  seed?: number;
  /** which uncertainty measure the map holds (default "entropy") */
  measure?: UncertaintyMeasure;
  signal?: AbortSignalLike;
  onProgress?: (progress: Progress) => void;
  /** refuse before allocating when the estimated working set exceeds this */
  memoryBudgetBytes?: number;
  /** keep quantised per-label probabilities in the result */
  keepProbabilities?: boolean;
  /** TTA intensity jitter: relative scale factors applied in addition to flips, e.g. [0.95, 1.05] */
  ttaIntensityScales?: number[];
  /** apply the manifest's region of interest (default true); false runs every window */
  roi?: boolean;
  /**
   * The slice the user is looking at (0-based, the volume's slice order): slice-wise models run the
   * slab holding it first, then the slabs next to it, alternately after and before (the labels are the
   * same in any order). patch3d and z-resampling models ignore it.
   */
  focusSlice?: number;
  /**
   * Called as soon as slices [z0, z1) are decided, with their labels (a view into the labelmap; copy it to
   * keep it), before whole-volume post-processing: a preview the viewer can paint while the rest runs.
   * Every slab is reported once, those outside the region of interest too (all background).
   */
  onSlices?: (z0: number, z1: number, labels: Uint8Array | Uint16Array) => void;
}
