/**
 * Named builders for the multi-frame macros the Segmentation and the Parametric Map share (PS3.3
 * C.7.6.16 Multi-frame Functional Groups, C.7.6.17 Multi-frame Dimension, C.7.4.1 Frame of
 * Reference, C.7.3.1 General Series), so each writer states only what is its own. Attribute pointers
 * are given by keyword and looked up in the dictionary, never written as hex.
 */
import type { Geometry } from "../core/types.ts";
import type { CommonOptions, SourceSeries } from "./common.ts";
import {
  ds,
  orientationOf,
  patientStudyOf,
  referencedSeries,
  slicePosition,
  sliceThicknessOf,
} from "./common.ts";
import { type NaturalizedDataset, str } from "./dataset.ts";
import { tagOf } from "./encode.ts";

/**
 * True when the volume's k axis is not perpendicular to its rows and columns (a gantry tilt carried as
 * sheared geometry): SpacingBetweenSlices is then not the slice normal distance and is left out.
 */
export function isSheared(g: Geometry): boolean {
  const d = g.direction;
  const det = d[2] * (d[3] * d[7] - d[6] * d[4]) + d[5] * (d[6] * d[1] - d[0] * d[7]) +
    d[8] * (d[0] * d[4] - d[3] * d[1]);
  return Math.abs(det) < 0.9999;
}

/** Pixel Measures (C.7.6.16.2.1): spacing of the source grid and its slice thickness. */
export function pixelMeasures(source: SourceSeries): NaturalizedDataset {
  const g = source.geometry;
  const out: NaturalizedDataset = {
    PixelSpacing: [ds(g.spacing[1]), ds(g.spacing[0])],
    SliceThickness: ds(sliceThicknessOf(source)),
  };
  if (!isSheared(g)) out.SpacingBetweenSlices = ds(g.spacing[2]);
  return out;
}

/** The shared functional groups every frame has in common: Pixel Measures and Plane Orientation. */
export function sharedGeometryGroups(source: SourceSeries): NaturalizedDataset {
  return {
    PixelMeasuresSequence: [pixelMeasures(source)],
    PlaneOrientationSequence: [{ ImageOrientationPatient: orientationOf(source.geometry) }],
  };
}

/** Plane Position (C.7.6.16.2.3) of slice k. */
export function planePosition(g: Geometry, k: number): NaturalizedDataset[] {
  return [{ ImagePositionPatient: slicePosition(g, k).map(ds) }];
}

/** One dimension of a multi-frame object: the attribute indexed and the functional group holding it. */
export interface Dimension {
  index: string;
  group: string;
  label: string;
}

/** The dimension every EdgeSeg object has: the frame's position along the slice normal. */
export const POSITION_DIMENSION: Dimension = {
  index: "ImagePositionPatient",
  group: "PlanePositionSequence",
  label: "Image Position Patient",
};

/** The segment dimension of BINARY and FRACTIONAL segmentations. */
export const SEGMENT_DIMENSION: Dimension = {
  index: "ReferencedSegmentNumber",
  group: "SegmentIdentificationSequence",
  label: "Segment Number",
};

/** Multi-frame Dimension module (C.7.6.17) for the given dimensions, in index order. */
export function multiFrameDimensions(uid: string, dimensions: Dimension[]): NaturalizedDataset {
  return {
    DimensionOrganizationSequence: [{ DimensionOrganizationUID: uid }],
    DimensionOrganizationType: "3D",
    DimensionIndexSequence: dimensions.map((d) => ({
      DimensionOrganizationUID: uid,
      DimensionIndexPointer: tagOf(d.index).tag,
      FunctionalGroupPointer: tagOf(d.group).tag,
      DimensionDescriptionLabel: d.label,
    })),
  };
}

/**
 * Patient, study, frame of reference and the reference to the source series: what a derived object
 * copies from its source (its own series attributes are the writer's).
 */
export function derivedFromSource(source: SourceSeries): NaturalizedDataset {
  const first = source.instances[0];
  return {
    ...patientStudyOf(first),
    FrameOfReferenceUID: str(first, "FrameOfReferenceUID"),
    PositionReferenceIndicator: str(first, "PositionReferenceIndicator") ?? "",
    ReferencedSeriesSequence: referencedSeries(source),
  };
}

/** General Series numbering and the content identification defaults of EdgeSeg's objects. */
export function seriesAndContent(
  options: CommonOptions,
  defaults: { seriesNumber: number; seriesDescription: string; contentDescription: string },
): NaturalizedDataset {
  return {
    SeriesNumber: options.seriesNumber ?? defaults.seriesNumber,
    SeriesDescription: (options.seriesDescription ?? defaults.seriesDescription).slice(0, 64),
    InstanceNumber: options.instanceNumber ?? 1,
    ContentDescription: (options.contentDescription ?? defaults.contentDescription).slice(0, 64),
    ContentCreatorName: options.contentCreatorName ?? "EdgeSeg^AI",
  };
}
