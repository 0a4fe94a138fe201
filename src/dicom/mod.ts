/** Public surface of src/dicom: read series, write and read SEG / Parametric Map, DICOMweb. Pure (no Deno APIs). */
export { readSeries } from "./read.ts";
export type { ReadSeriesOptions, SeriesRead } from "./read.ts";
export { writeSegmentation } from "./seg.ts";
export type { SegmentationType, SegmentationWriteInput, SegmentationWriteOptions } from "./seg.ts";
export { writeParametricMap } from "./pmap.ts";
export type { ParametricMapWriteInput } from "./pmap.ts";
export { readParametricMap, readSegmentation } from "./segread.ts";
export type { ParametricMapRead, ReadTarget, SegmentationRead } from "./segread.ts";
export type { CommonOptions, ProvenanceLike, SourceSeries } from "./common.ts";
export { parseDicom, SopClass, TransferSyntax, writeDataset } from "./dataset.ts";
export type { NaturalizedDataset, ParsedDicom } from "./dataset.ts";
export { decodeFrame, decodeRle, isSupportedTransferSyntax } from "./codecs.ts";
export { dicomLabToSrgb, srgbToDicomLab, srgbToLab } from "./color.ts";
export { codeItem, Codes } from "./codes.ts";
export { newUid } from "./uid.ts";
export {
  DicomWebClient,
  flushOutbox,
  MemoryOutbox,
  multipartBody,
  multipartParts,
  parseDicomWebUrl,
  storeWithRetention,
} from "./web.ts";
export type { DicomJson, DicomWebClientOptions, Outbox, StowResult } from "./web.ts";
export { readSeriesFromDicomWeb } from "./web_series.ts";
