/**
 * The coded concepts EdgeSeg writes, as typed values (never loose strings). DCM codes from PS3.16
 * Annex D; SNOMED CT ("SCT", never the retired "SRT") for segmented properties.
 */
import type { Code } from "../core/types.ts";

export const Codes = {
  /** CID 7162 Segmentation Algorithm Family */
  artificialIntelligence: { value: "123110", scheme: "DCM", meaning: "Artificial Intelligence" },
  /** CID 7202 Source Image Purpose of Reference */
  sourceImageForProcessing: {
    value: "121322",
    scheme: "DCM",
    meaning: "Source image for image processing operation",
  },
  /** CID 7203 Image Derivation */
  segmentation: { value: "113076", scheme: "DCM", meaning: "Segmentation" },
  /** CID 7005 Contributing Equipment Purpose of Reference (IHE AIR: the algorithm as processing equipment) */
  processingEquipment: { value: "109102", scheme: "DCM", meaning: "Processing Equipment" },
  /** LABELMAP background segment (value 0): category as dcmqi writes it, type Background */
  spatialAndRelationalConcept: {
    value: "309825002",
    scheme: "SCT",
    meaning: "Spatial and Relational Concept",
  },
  background: { value: "125040", scheme: "DCM", meaning: "Background" },
  /** unit "1" (UCUM, dimensionless) for the uncertainty map */
  unitlessUcum: { value: "1", scheme: "UCUM", meaning: "no units" },
  /** CID 7180 quantity for the Parametric Map's Quantity Definition */
  quantity: { value: "246205007", scheme: "SCT", meaning: "Quantity" },
  /**
   * Uncertainty measures have no standard code (code values are SH: at most 16 characters): a private coding scheme (PS3.3 8.2: designators
   * starting "99" are local) names them, documented in docs/conformance.md.
   */
  entropy: { value: "ENTROPY", scheme: "99EDGESEG", meaning: "Predictive entropy" },
  mutualInformation: { value: "MUTUAL_INFO", scheme: "99EDGESEG", meaning: "Mutual information" },
  variance: { value: "VARIANCE", scheme: "99EDGESEG", meaning: "Predictive variance" },
  sd: { value: "SD", scheme: "99EDGESEG", meaning: "Predictive standard deviation" },
  modelUncertainty: { value: "UNCERTAINTY", scheme: "99EDGESEG", meaning: "Model uncertainty estimation" },
  /** Measurement Method concept name */
  measurementMethod: { value: "370129005", scheme: "SCT", meaning: "Measurement Method" },
  tissue: { value: "85756007", scheme: "SCT", meaning: "Tissue" },
} as const satisfies Record<string, Code>;

/** One DICOM code sequence item from a Code. */
export function codeItem(code: Code): Record<string, string> {
  return { CodeValue: code.value, CodingSchemeDesignator: code.scheme, CodeMeaning: code.meaning };
}

/** A Code from a code sequence item, or undefined when the item lacks a value or scheme. */
export function codeFromItem(item: Record<string, unknown> | undefined): Code | undefined {
  if (!item) return undefined;
  const value = item.CodeValue ?? item.LongCodeValue ?? item.URNCodeValue;
  const scheme = item.CodingSchemeDesignator;
  if (typeof value !== "string" || typeof scheme !== "string") return undefined;
  return { value, scheme, meaning: typeof item.CodeMeaning === "string" ? item.CodeMeaning : "" };
}
