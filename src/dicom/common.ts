/**
 * Dataset parts shared by the SEG and Parametric Map writers: patient/study copied from the source,
 * equipment, frame of reference, referenced series, derivation references, plane positions.
 */
import { EDGESEG_VERSION } from "../core/version.ts";
import { variantLabel } from "../core/contract.ts";
import { ConformanceError } from "../core/errors.ts";
import type { Code, Geometry, SourceInstanceRef, Vec3 } from "../core/types.ts";
import { codeItem, Codes } from "./codes.ts";
import { type NaturalizedDataset, nums, str } from "./dataset.ts";

export const SOFTWARE_NAME = "EdgeSeg";
/** EdgeSeg's version (package.json), as DICOM SoftwareVersions. */
export const SOFTWARE_VERSION = EDGESEG_VERSION;

/** What the writers need from the source series. */
export interface SourceSeries {
  /** metadata per slice k (as readSeries returns, or OHIF's instance metadata) */
  instances: NaturalizedDataset[];
  geometry: Geometry;
  /** per k, from Volume.source.instances: carries frame numbers of multi-frame sources */
  refs?: SourceInstanceRef[];
}

/** The model and run that produced the object (a subset of core Provenance, all optional). */
export interface ProvenanceLike {
  modelId?: string;
  modelName?: string;
  modelVersion?: string;
  modelSha256?: string;
  /** the manifest variant that ran instead of the main model, and its precision */
  variant?: string;
  precision?: string;
  [key: string]: unknown;
}

export interface CommonOptions {
  seriesDescription?: string;
  seriesNumber?: number;
  instanceNumber?: number;
  contentLabel?: string;
  contentDescription?: string;
  contentCreatorName?: string;
  /** injectable UIDs for golden tests */
  uids?: { series?: string; instance?: string; dimensionOrganization?: string };
  now?: Date;
  manufacturer?: string;
  deviceSerialNumber?: string;
}

/**
 * Patient- and Study-IE attributes copied from the source, so the derived object agrees with its
 * series (dcentvfy compares them across the files of a study).
 */
const PATIENT_STUDY_KEYS = [
  // Patient module, Clinical Trial Subject
  "PatientName",
  "PatientID",
  "IssuerOfPatientID",
  "IssuerOfPatientIDQualifiersSequence",
  "PatientBirthDate",
  "PatientBirthTime",
  "PatientSex",
  "OtherPatientIDsSequence",
  "PatientComments",
  "PatientSpeciesDescription",
  "PatientSpeciesCodeSequence",
  "PatientBreedDescription",
  "PatientIdentityRemoved",
  "DeidentificationMethod",
  "DeidentificationMethodCodeSequence",
  "ResponsiblePerson",
  "ResponsibleOrganization",
  "ClinicalTrialSponsorName",
  "ClinicalTrialProtocolID",
  "ClinicalTrialProtocolName",
  "ClinicalTrialSiteID",
  "ClinicalTrialSiteName",
  "ClinicalTrialSubjectID",
  "ClinicalTrialSubjectReadingID",
  // General Study, Patient Study, Clinical Trial Study
  "StudyInstanceUID",
  "StudyDate",
  "StudyTime",
  "ReferringPhysicianName",
  "StudyID",
  "AccessionNumber",
  "IssuerOfAccessionNumberSequence",
  "StudyDescription",
  "PhysiciansOfRecord",
  "NameOfPhysiciansReadingStudy",
  "ProcedureCodeSequence",
  "AdmittingDiagnosesDescription",
  "PatientAge",
  "PatientSize",
  "PatientWeight",
  "Occupation",
  "AdditionalPatientHistory",
  "ClinicalTrialTimePointID",
  "ClinicalTrialTimePointDescription",
];

/** Patient, study and type-2 defaults copied from the first source instance. */
export function patientStudyOf(first: NaturalizedDataset): NaturalizedDataset {
  const out: NaturalizedDataset = {
    PatientName: "",
    PatientID: "",
    PatientBirthDate: "",
    PatientSex: "",
    StudyDate: "",
    StudyTime: "",
    ReferringPhysicianName: "",
    StudyID: "",
    AccessionNumber: "",
  };
  for (const k of PATIENT_STUDY_KEYS) if (first[k] !== undefined && first[k] !== null) out[k] = first[k];
  return out;
}

/** Validates what every derived object needs from the source; throws ConformanceError naming the attribute. */
export function validateSource(source: SourceSeries, what: string): void {
  const n = source.geometry.dims[2];
  if (source.instances.length !== n) {
    throw new ConformanceError(
      "SOURCE_MISMATCH",
      `${what}: expected one source instance per slice (${n}), found ${source.instances.length}`,
    );
  }
  if (source.refs && source.refs.length !== n) {
    throw new ConformanceError(
      "SOURCE_MISMATCH",
      `${what}: expected ${n} source refs, found ${source.refs.length}`,
    );
  }
  const first = source.instances[0];
  for (const key of ["StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"]) {
    if (!str(first, key)) {
      throw new ConformanceError(
        "MISSING_ATTRIBUTE",
        `${what}: expected source attribute ${key} (Type 1 in the derived object), found none`,
      );
    }
  }
  source.instances.forEach((ds, k) => {
    const sop = refOf(source, k);
    if (!sop.sopClassUID || !sop.sopInstanceUID) {
      throw new ConformanceError(
        "MISSING_ATTRIBUTE",
        `${what}: expected SOPClassUID and SOPInstanceUID on source slice ${k}, found ${
          sop.sopClassUID || "none"
        } / ${sop.sopInstanceUID || "none"}`,
      );
    }
    if (str(ds, "StudyInstanceUID") !== str(first, "StudyInstanceUID")) {
      throw new ConformanceError(
        "MIXED_STUDIES",
        `${what}: expected every source slice in one study, found slice ${k} in another`,
      );
    }
  });
  const d = source.geometry.dims;
  if (!(d[0] > 0 && d[1] > 0 && d[2] > 0) || d[0] > 65535 || d[1] > 65535) {
    throw new ConformanceError(
      "BAD_DIMENSIONS",
      `${what}: expected 1..65535 rows and columns, found ${d[0]}×${d[1]}×${d[2]}`,
    );
  }
}

export function refOf(source: SourceSeries, k: number): SourceInstanceRef {
  const r = source.refs?.[k];
  if (r) return r;
  const ds = source.instances[k];
  return { sopClassUID: str(ds, "SOPClassUID") ?? "", sopInstanceUID: str(ds, "SOPInstanceUID") ?? "" };
}

/** Same grid: dims equal, spacing/origin/direction within a tolerance (mm, and unitless for direction). */
export function sameGrid(a: Geometry, b: Geometry, tol = 1e-3): boolean {
  for (let i = 0; i < 3; i++) {
    if (a.dims[i] !== b.dims[i]) return false;
    if (Math.abs(a.spacing[i] - b.spacing[i]) > tol) return false;
    if (Math.abs(a.origin[i] - b.origin[i]) > 10 * tol) return false;
  }
  for (let i = 0; i < 9; i++) if (Math.abs(a.direction[i] - b.direction[i]) > tol) return false;
  return true;
}

/** Centre of the first voxel of slice k (exact for sheared grids too). */
export function slicePosition(g: Geometry, k: number): Vec3 {
  const d = g.direction, s = g.spacing[2] * k;
  return [g.origin[0] + d[2] * s, g.origin[1] + d[5] * s, g.origin[2] + d[8] * s];
}

/** DS values: at most 16 characters (PS3.5 6.2), so round rather than print 17 significant digits. */
export function ds(v: number): string {
  if (Object.is(v, -0) || Math.abs(v) < 1e-10) return "0";
  for (let p = 10; p > 0; p--) {
    const s = String(Number(v.toPrecision(p)));
    if (s.length <= 16) return s;
  }
  return String(Math.round(v));
}

export function orientationOf(g: Geometry): string[] {
  const d = g.direction;
  return [d[0], d[3], d[6], d[1], d[4], d[7]].map(ds);
}

export function sliceThicknessOf(source: SourceSeries): number {
  const t = Number(str(source.instances[0], "SliceThickness"));
  return Number.isFinite(t) && t > 0 ? t : source.geometry.spacing[2];
}

/** Referenced Series Sequence (Common Instance Reference module): every source instance once. */
export function referencedSeries(source: SourceSeries): NaturalizedDataset[] {
  const seen = new Set<string>();
  const items: NaturalizedDataset[] = [];
  source.instances.forEach((_, k) => {
    const r = refOf(source, k);
    if (seen.has(r.sopInstanceUID)) return;
    seen.add(r.sopInstanceUID);
    items.push({ ReferencedSOPClassUID: r.sopClassUID, ReferencedSOPInstanceUID: r.sopInstanceUID });
  });
  return [{
    SeriesInstanceUID: str(source.instances[0], "SeriesInstanceUID"),
    ReferencedInstanceSequence: items,
  }];
}

/** A per-frame Derivation Image item pointing at source slice k. */
export function derivationImage(
  source: SourceSeries,
  k: number,
  derivation: Code = Codes.segmentation,
): NaturalizedDataset[] {
  const r = refOf(source, k);
  const src: NaturalizedDataset = {
    ReferencedSOPClassUID: r.sopClassUID,
    ReferencedSOPInstanceUID: r.sopInstanceUID,
    PurposeOfReferenceCodeSequence: [codeItem(Codes.sourceImageForProcessing)],
  };
  // ReferencedFrameNumber only for multi-frame sources (dciodvfy flags it on single-frame ones)
  if (r.frame !== undefined) src.ReferencedFrameNumber = r.frame;
  return [{ SourceImageSequence: [src], DerivationCodeSequence: [codeItem(derivation)] }];
}

/**
 * Equipment, Enhanced General Equipment, and Contributing Equipment naming the model (IHE AI Results),
 * and the variant when one ran instead of the main model (its sha256 is then the variant file's).
 */
export function equipment(
  options: CommonOptions,
  provenance: ProvenanceLike | undefined,
  now: Date,
): NaturalizedDataset {
  const manufacturer = options.manufacturer ?? SOFTWARE_NAME;
  const out: NaturalizedDataset = {
    Manufacturer: manufacturer,
    ManufacturerModelName: SOFTWARE_NAME,
    DeviceSerialNumber: options.deviceSerialNumber ?? "0",
    SoftwareVersions: SOFTWARE_VERSION,
  };
  const p = (n: number) => String(n).padStart(2, "0");
  const dt = `${now.getUTCFullYear()}${p(now.getUTCMonth() + 1)}${p(now.getUTCDate())}${
    p(now.getUTCHours())
  }${p(now.getUTCMinutes())}${p(now.getUTCSeconds())}+0000`;
  if (provenance?.modelName || provenance?.modelId) {
    const variant = variantLabel(provenance);
    out.ContributingEquipmentSequence = [{
      PurposeOfReferenceCodeSequence: [codeItem(Codes.processingEquipment)],
      Manufacturer: manufacturer,
      ManufacturerModelName: String(provenance.modelName ?? provenance.modelId).slice(0, 64),
      SoftwareVersions: String(provenance.modelVersion ?? "unknown").slice(0, 64),
      ContributionDateTime: dt,
      ContributionDescription: `Segmentation by model ${provenance.modelId ?? provenance.modelName}${
        variant ? ` ${variant}` : ""
      }${provenance.modelSha256 ? ` sha256 ${provenance.modelSha256}` : ""}`.slice(
        0,
        1024,
      ),
    }];
  }
  return out;
}

export function checkPositiveInt(name: string, v: number | undefined, max: number): void {
  if (v === undefined) return;
  if (!Number.isInteger(v) || v < 0 || v > max) {
    throw new ConformanceError("BAD_OPTION", `expected ${name} an integer 0..${max}, found ${v}`);
  }
}

export function firstPositions(source: SourceSeries): Vec3 | undefined {
  const p = nums(source.instances[0], "ImagePositionPatient");
  return p && p.length === 3 ? [p[0], p[1], p[2]] : undefined;
}
