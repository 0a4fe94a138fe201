/**
 * The writing side of src/dicom without any codec: SEG and Parametric Map writers, the DICOMweb
 * client, colours, codes, UIDs. The OHIF extension bundles this entry, so its bundle carries dcmjs
 * but none of the Emscripten codec packages (which reference Node's fs/path and weigh megabytes).
 */
export { writeSegmentation } from "./seg.ts";
export type { SegmentationType, SegmentationWriteInput, SegmentationWriteOptions } from "./seg.ts";
export { writeParametricMap } from "./pmap.ts";
export type { ParametricMapWriteInput } from "./pmap.ts";
export type { CommonOptions, ProvenanceLike, SourceSeries } from "./common.ts";
export { parseDicom, SopClass, TransferSyntax } from "./dataset.ts";
export type { NaturalizedDataset } from "./dataset.ts";
export { dicomLabToSrgb, srgbToDicomLab } from "./color.ts";
export { codeItem, Codes } from "./codes.ts";
export { newUid } from "./uid.ts";
export { DicomWebClient, flushOutbox, MemoryOutbox, parseDicomWebUrl, storeWithRetention } from "./web.ts";
export type { DicomJson, DicomWebClientOptions, Outbox, StowResult } from "./web.ts";
