/**
 * The pure segmentation core: preprocessing, resampling, sliding windows and blending, activations,
 * post-processing, uncertainty, statistics, triage, metrics and `segment()`. No DOM, no Deno APIs.
 */
export { applyIntensity, modelInputChannels, preprocessVolume, selectChannels } from "./preprocess.ts";
export { resampleLinear, resampleNearest, targetGeometry } from "./resample.ts";
export {
  axisStarts,
  blendInto,
  constantImportance,
  copyInto,
  type Dims3,
  extractWindow,
  gaussianImportance,
  isDisjoint,
  normaliseBlend,
  planWindows,
  resolveWindow,
  type WindowBox,
  type WindowPlan,
} from "./windows.ts";
export { applyActivation, decide, decisionRule, labelArray } from "./activation.ts";
export {
  type Components,
  connectedComponents,
  countComponents,
  fillHoles,
  keepLargestComponent,
  postprocessLabels,
  removeSmallComponents,
} from "./postprocess.ts";
export {
  dropoutMask,
  type EntropyKind,
  flipVolume,
  identityMask,
  measureMaximum,
  mulberry32,
  StreamingAggregator,
  tileBatch,
} from "./uncertainty.ts";
export {
  boundaryMask,
  formatVolumeMl,
  percentile,
  segmentStatistics,
  type StatisticsInput,
  voxelVolumeMl,
} from "./statistics.ts";
export {
  backgroundOutside,
  boxTouches,
  computeRoi,
  morph1d,
  type RegionOfInterest,
  resolveRoiSpec,
  ROI_ANALYSIS_SPACING_MM,
  ROI_DEFAULTS,
  sourceRange,
} from "./roi.ts";
export { triage, type TriageOutcome, type TriageTerms } from "./triage.ts";
export {
  aucRoc,
  type CalibrationBin,
  type Confusion,
  confusion,
  edtSquared,
  evaluateSegmentation,
  type EvaluationResult,
  expectedCalibrationError,
  type LabelMetrics,
  nanMean,
  type OverlapMetrics,
  overlapMetrics,
  type SurfaceDistances,
  surfaceDistances,
  surfaceMask,
} from "./metrics.ts";
export {
  defaultSlabVoxels,
  estimateWorkingSetBytes,
  modelOutputChannels,
  type PassSpec,
  planPasses,
  planSlabs,
  type SlabPlan,
  windowsInRoi,
} from "./plan.ts";
export { type SweepContext, sweepRows, sweepWindows } from "./sweep.ts";
export { validateInput } from "./validate.ts";
export { segment, type SegmentTuning } from "./segment.ts";
/** Software name and version written into provenance. */
export { SOFTWARE } from "../core/version.ts";
