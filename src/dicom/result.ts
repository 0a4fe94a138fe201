/**
 * A segmentation result as DICOM: the one encoder the viewer's export and the CLI both call. The SEG
 * always; the uncertainty Parametric Map when the result has an uncertainty map. Series descriptions
 * come from the writers' defaults (model name; "EdgeSeg uncertainty (<measure>, <method> × N)"), so
 * the same result gives the same objects from either caller, apart from UIDs and dates.
 *
 * This module carries no codec: the extension bundles it (dcmjs and the writers only).
 */
import type { Labelmap, SegmentationResult } from "../core/types.ts";
import type { CommonOptions, ProvenanceLike, SourceSeries } from "./common.ts";
import { writeParametricMap } from "./pmap.ts";
import { type SegmentationType, writeSegmentation } from "./seg.ts";
import { newUid } from "./uid.ts";

export interface EncodeResultOptions {
  /** SEG encoding (default BINARY); FRACTIONAL needs the result's probabilities */
  segType?: SegmentationType;
  /** the labelmap to write instead of the result's own (e.g. after edits in the viewer) */
  labelmap?: Labelmap;
  /**
   * UIDs of each object (series, instance, dimension organization; default: new ones). Deterministic
   * UIDs make a retried store idempotent: the PACS then holds one SEG per result, not one per attempt.
   */
  uids?: { seg?: CommonOptions["uids"]; pm?: CommonOptions["uids"] };
}

export interface EncodedObject {
  kind: "SEG" | "PM";
  bytes: Uint8Array;
  seriesInstanceUID: string;
}

/** What the encoder reads of a result; provenance is any record of the run (model, provider, …). */
type EncodableResult = Pick<SegmentationResult, "labelmap" | "uncertainty" | "probabilities"> & {
  provenance: object;
};

/** Writes the SEG (and the Parametric Map when there is an uncertainty map) for a result on `source`. */
export function encodeResult(
  result: EncodableResult,
  source: SourceSeries,
  options: EncodeResultOptions = {},
): EncodedObject[] {
  const provenance = { ...result.provenance } as ProvenanceLike;
  const segType = options.segType ?? "BINARY";
  const segSeries = options.uids?.seg?.series ?? newUid();
  const out: EncodedObject[] = [{
    kind: "SEG",
    bytes: writeSegmentation({
      source,
      labelmap: options.labelmap ?? result.labelmap,
      provenance,
      options: {
        type: segType,
        fractional: segType === "FRACTIONAL" && result.probabilities
          ? { data: result.probabilities.data, channels: result.probabilities.channels }
          : undefined,
        uids: { ...options.uids?.seg, series: segSeries },
      },
    }),
    seriesInstanceUID: segSeries,
  }];
  if (result.uncertainty) {
    const pmSeries = options.uids?.pm?.series ?? newUid();
    out.push({
      kind: "PM",
      bytes: writeParametricMap({
        source,
        map: result.uncertainty,
        provenance,
        options: { uids: { ...options.uids?.pm, series: pmSeries } },
      }),
      seriesInstanceUID: pmSeries,
    });
  }
  return out;
}
