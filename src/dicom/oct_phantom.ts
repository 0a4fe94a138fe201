/**
 * A synthetic retinal OCT volume with fluid, written as a DICOM Ophthalmic Tomography Image (OPT,
 * PS3.3 A.41) multi-frame instance, with its ground-truth labels. No OCT data set is reachable here,
 * so this phantom is what the OPT reader, the SEG/Parametric Map writers for OPT sources and the
 * viewer are tested on.
 *
 * Each frame is a B-scan: columns run across the scan (6 mm), rows down into the eye (2 mm), frames
 * step across the 6 mm scan area. Layers from the vitreous down, as a spectral-domain scanner shows
 * them: RNFL (bright, thicker towards the nose), GCL+IPL, INL (dark), OPL, ONL (dark), the ellipsoid
 * zone, the RPE (brightest), the choroid (fading with depth). The inner layers thin out at the fovea
 * in the centre frame, which makes the foveal pit. Fluid of the three kinds the OCT reference design
 * segments (0 background, 1 IRF, 2 SRF, 3 PED):
 * - IRF, intraretinal fluid: dark cysts inside the INL/ONL, near the fovea;
 * - SRF, subretinal fluid: a dark lens between the photoreceptors and the RPE, lifting the retina;
 * - PED, pigment epithelial detachment: the RPE lifted off Bruch's membrane, a dark dome below it.
 * Speckle is multiplicative (a gamma-distributed intensity averaged over the scanner profile's number
 * of looks), drawn from a seeded PRNG: the same options give byte-identical output.
 *
 * The scanner profile (speckle, gain, contrast curve) is chosen by Manufacturer, because the OCT
 * reference normalises per scanner source (source-adaptive batch norm keyed by acquisition device):
 * tests of such a normalisation need volumes that differ the way scanners do. Pure: no Deno APIs.
 */
import { InputError } from "../core/errors.ts";
import { mulberry32 } from "../core/random.ts";
import type { Geometry, SegmentDescription, Vec3 } from "../core/types.ts";
import { EDGESEG_VERSION } from "../core/version.ts";
import { codeItem } from "./codes.ts";
import { ds } from "./common.ts";
import { writeImageInstance } from "./dataset.ts";
import { multiFrameDimensions, POSITION_DIMENSION } from "./macros.ts";
import { readSeries } from "./read.ts";
import { writeSegmentation } from "./seg.ts";
import {
  type Eye,
  ocularRegionImaged,
  OphthalmicCodes,
  requireEye,
  synchronization,
  unknownAcquisitionParameters,
} from "./ophthalmic.ts";

export const OPHTHALMIC_TOMOGRAPHY_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.77.1.5.4";

/** Fixed `2.25.` root (PS3.5 B.2) for the phantom's UIDs; the seed is part of every UID. */
export const OCT_PHANTOM_UID_ROOT = "2.25.301744021874455187130815064231934730861";

/** The ground-truth label values (the OCT reference's unified label space). */
export const OctLabel = { background: 0, irf: 1, srf: 2, ped: 3 } as const;

/** How a scanner's B-scans look: speckle (looks averaged), gain, contrast curve, noise floor. */
export interface ScannerProfile {
  manufacturer: string;
  /** what ManufacturerModelName says: always marks the phantom as synthetic */
  modelName: string;
  /** B-scans averaged per frame: more looks, less speckle (Spectralis' eye tracking averages many) */
  looks: number;
  gain: number;
  gamma: number;
  /** grey level of the noise floor (vitreous) */
  floor: number;
}

/** Known scanner families by Manufacturer; any other Manufacturer gets the generic profile. */
export const OCT_SCANNER_PROFILES: readonly ScannerProfile[] = [
  {
    manufacturer: "Heidelberg Engineering",
    modelName: "EdgeSeg OCT phantom (Spectralis-like)",
    looks: 9,
    gain: 1.0,
    gamma: 0.8,
    floor: 4,
  },
  {
    manufacturer: "Carl Zeiss Meditec",
    modelName: "EdgeSeg OCT phantom (Cirrus-like)",
    looks: 2,
    gain: 0.85,
    gamma: 1.0,
    floor: 12,
  },
  {
    manufacturer: "Topcon",
    modelName: "EdgeSeg OCT phantom (3D OCT-like)",
    looks: 3,
    gain: 0.9,
    gamma: 0.9,
    floor: 8,
  },
];

const GENERIC_PROFILE: Omit<ScannerProfile, "manufacturer"> = {
  modelName: "EdgeSeg OCT phantom",
  looks: 4,
  gain: 0.95,
  gamma: 0.85,
  floor: 6,
};

/** The profile for a Manufacturer (case-insensitive prefix match), or the generic one under that name. */
export function scannerProfileOf(manufacturer: string): ScannerProfile {
  const m = manufacturer.trim().toLowerCase();
  const known = OCT_SCANNER_PROFILES.find((p) => m.startsWith(p.manufacturer.toLowerCase()));
  return known ? { ...known, manufacturer } : { ...GENERIC_PROFILE, manufacturer };
}

export interface OctPhantomOptions {
  /** B-scans (default 25) */
  frames?: number;
  /** A-scans per B-scan (default 256) */
  columns?: number;
  /** samples per A-scan (default 256) */
  rows?: number;
  /** speckle and fluid placement seed (default 1) */
  seed?: number;
  /** the eye (default R) */
  laterality?: Eye;
  /** chooses the scanner profile (default "EdgeSeg": the generic one) */
  manufacturer?: string;
  patientName?: string;
  patientId?: string;
  /** YYYYMMDD (default 20240101) */
  date?: string;
  /** UIDs; default derived from OCT_PHANTOM_UID_ROOT and the seed */
  uids?: { study?: string; series?: string; instance?: string; frameOfReference?: string };
}

export interface OctPhantom {
  /** the OPT instance, Part 10, Explicit VR Little Endian */
  bytes: Uint8Array<ArrayBuffer>;
  /** the encoded grey levels, planar [frame][row][column] */
  pixels: Uint8Array;
  /** ground truth on the same grid: OctLabel values */
  labels: Uint8Array;
  /** the grid readSeries builds from the instance (frame k = slice k) */
  geometry: Geometry;
  profile: ScannerProfile;
  laterality: Eye;
  studyUID: string;
  seriesUID: string;
  sopInstanceUID: string;
  frameOfReferenceUID: string;
  /** the root the phantom's default UIDs (and its ground truth SEG's) are made from */
  uidRoot: string;
}

/** Scan area: 6 mm across the B-scan and 6 mm across the frames, 2 mm deep. */
const SCAN_MM = 6;
const DEPTH_MM = 2;

/** Layer thicknesses in mm away from the fovea, and reflectivities (0..1). */
const LAYERS = {
  rnfl: 0.035,
  gclIpl: 0.085,
  inl: 0.035,
  opl: 0.03,
  onl: 0.075,
  ez: 0.03,
  rpe: 0.03,
  choroid: 0.28,
} as const;
const REFLECTIVITY = {
  vitreous: 0.03,
  rnfl: 0.78,
  gclIpl: 0.46,
  inl: 0.24,
  opl: 0.56,
  onl: 0.17,
  ez: 0.8,
  rpe: 0.97,
  choroid: 0.55,
  sclera: 0.22,
  fluid: 0.045,
} as const;

interface Cyst {
  x: number;
  z: number;
  rx: number;
  rz: number;
  /** centre depth as a fraction of the INL top → ONL bottom span */
  t: number;
  ry: number;
}

interface Dome {
  x: number;
  z: number;
  rx: number;
  rz: number;
  height: number;
}

/** Height of a dome footprint at (x, z) in mm: `shape` 1 = paraboloid (SRF lens), 0.5 = steeper (PED). */
function domeHeight(d: Dome, x: number, z: number, shape: number): number {
  const q = ((x - d.x) / d.rx) ** 2 + ((z - d.z) / d.rz) ** 2;
  return q >= 1 ? 0 : d.height * (1 - q) ** shape;
}

/** Gamma(looks, 1/looks) speckle: mean 1, variance 1/looks. */
function speckle(rand: () => number, looks: number): number {
  let s = 0;
  for (let l = 0; l < looks; l++) s -= Math.log(1 - rand());
  return s / looks;
}

/** Builds the phantom: pixels, labels and the OPT instance. Deterministic for the same options. */
export function octPhantom(options: OctPhantomOptions = {}): OctPhantom {
  const frames = options.frames ?? 25;
  const cols = options.columns ?? 256;
  const rows = options.rows ?? 256;
  for (const [name, v, min] of [["frames", frames, 1], ["columns", cols, 16], ["rows", rows, 64]] as const) {
    if (!Number.isInteger(v) || v < min || v > 4096) {
      throw new InputError("BAD_OPTION", `OCT phantom: expected ${name} an integer ${min}..4096, found ${v}`);
    }
  }
  const seed = options.seed ?? 1;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new InputError("BAD_OPTION", `OCT phantom: expected seed an integer 0..4294967295, found ${seed}`);
  }
  const eye = requireEye(options.laterality ?? "R", "an Ophthalmic Tomography image");
  const profile = scannerProfileOf(options.manufacturer ?? "EdgeSeg");
  const rand = mulberry32(seed);

  const dx = SCAN_MM / cols, dy = DEPTH_MM / rows;
  const dz = frames > 1 ? SCAN_MM / (frames - 1) : dx;
  // the nose is towards the patient's midline: patient left (+x in LPS) for the right eye
  const nasal = eye === "R" ? 1 : -1;

  // Fluid placement from the seed: the SRF lens under the fovea, a PED beside it, IRF cysts around it.
  const jitter = (a: number) => (rand() * 2 - 1) * a;
  const srf: Dome = {
    x: jitter(0.3),
    z: jitter(0.3),
    rx: 1.1 + jitter(0.2),
    rz: 0.9 + jitter(0.2),
    height: 0.13,
  };
  const ped: Dome = {
    x: -nasal * (1.1 + jitter(0.2)),
    z: jitter(0.6),
    rx: 0.6 + jitter(0.1),
    rz: 0.55 + jitter(0.1),
    height: 0.16,
  };
  const cysts: Cyst[] = [];
  for (let c = 0; c < 6; c++) {
    const angle = rand() * 2 * Math.PI, r = 0.35 + rand() * 0.9;
    cysts.push({
      x: r * Math.cos(angle),
      z: r * Math.sin(angle),
      rx: 0.12 + rand() * 0.12,
      rz: 0.3 + rand() * 0.25,
      t: 0.35 + rand() * 0.4,
      ry: 0.025 + rand() * 0.02,
    });
  }

  const P = cols * rows;
  const pixels = new Uint8Array(P * frames);
  const labels = new Uint8Array(P * frames);
  const refl = new Float32Array(rows);
  const lab = new Uint8Array(rows);
  for (let k = 0; k < frames; k++) {
    const z = frames > 1 ? -SCAN_MM / 2 + k * dz : 0;
    for (let i = 0; i < cols; i++) {
      const x = -SCAN_MM / 2 + (i + 0.5) * dx;
      const r2 = x * x + z * z;
      // the fovea: inner layers thin out within ~0.5 mm of the centre, the ONL thickens a little
      const fovea = Math.exp(-r2 / (2 * 0.42 ** 2));
      const inner = 1 - 0.92 * fovea;
      // the posterior pole is concave towards the scanner: the fovea lies deepest, the edges rise;
      // Bruch's membrane is the reference surface the layers are stacked on
      const bruch = 1.4 - 0.02 * r2;
      const p = domeHeight(ped, x, z, 0.5);
      const h = domeHeight(srf, x, z, 1);
      const rpeBottom = bruch - p;
      const rpeTop = rpeBottom - LAYERS.rpe;
      const ezBottom = rpeTop - h;
      const ezTop = ezBottom - LAYERS.ez;
      const onlTop = ezTop - LAYERS.onl * (1 + 0.35 * fovea);
      const oplTop = onlTop - LAYERS.opl * inner;
      const inlTop = oplTop - LAYERS.inl * inner;
      const gclTop = inlTop - LAYERS.gclIpl * inner;
      const rnfl = LAYERS.rnfl * (1 + 0.8 / (1 + Math.exp(-3 * nasal * x))) * (1 - 0.97 * fovea);
      const ilm = gclTop - rnfl;
      const choroidBottom = bruch + LAYERS.choroid;
      for (let j = 0; j < rows; j++) {
        const y = (j + 0.5) * dy;
        let v: number = REFLECTIVITY.vitreous;
        let l: number = OctLabel.background;
        if (y < ilm) v = REFLECTIVITY.vitreous;
        else if (y < gclTop) v = REFLECTIVITY.rnfl;
        else if (y < inlTop) v = REFLECTIVITY.gclIpl;
        else if (y < oplTop) v = REFLECTIVITY.inl;
        else if (y < onlTop) v = REFLECTIVITY.opl;
        else if (y < ezTop) v = REFLECTIVITY.onl;
        else if (y < ezBottom) v = REFLECTIVITY.ez;
        else if (y < rpeTop) [v, l] = [REFLECTIVITY.fluid, OctLabel.srf];
        else if (y < rpeBottom) v = REFLECTIVITY.rpe;
        else if (y < bruch) [v, l] = [REFLECTIVITY.fluid, OctLabel.ped];
        else if (y < choroidBottom) {
          // choroid: bright below Bruch's membrane, fading with depth, large vessels as dark gaps
          const d = (y - bruch) / LAYERS.choroid;
          const vessel = Math.sin(x * 9 + z * 5) * Math.sin(d * 11 + x * 3) > 0.55;
          v = REFLECTIVITY.choroid * (1 - 0.55 * d) * (vessel ? 0.45 : 1);
        } else v = REFLECTIVITY.sclera * Math.exp(-(y - choroidBottom) / 0.25);
        // IRF: cysts in the INL/ONL, following the layers
        if (y >= inlTop && y < ezTop) {
          const span = ezTop - inlTop;
          for (const c of cysts) {
            const q = ((x - c.x) / c.rx) ** 2 + ((z - c.z) / c.rz) ** 2 +
              ((y - (inlTop + c.t * span)) / c.ry) ** 2;
            if (q <= 1) {
              v = REFLECTIVITY.fluid;
              l = OctLabel.irf;
              break;
            }
          }
        }
        refl[j] = v;
        lab[j] = l;
      }
      for (let j = 0; j < rows; j++) {
        const s = refl[j] * speckle(rand, profile.looks);
        const grey = profile.floor +
          (255 - profile.floor) * profile.gain * Math.pow(Math.min(s, 1), profile.gamma);
        const n = k * P + j * cols + i;
        pixels[n] = Math.max(0, Math.min(255, Math.round(grey)));
        labels[n] = lab[j];
      }
    }
  }

  const root = `${OCT_PHANTOM_UID_ROOT}.${seed}`;
  const studyUID = options.uids?.study ?? `${root}.1`;
  const seriesUID = options.uids?.series ?? `${root}.2`;
  const sopInstanceUID = options.uids?.instance ?? `${root}.3`;
  const forUID = options.uids?.frameOfReference ?? `${root}.4`;
  // LPS: columns towards the patient's left, rows posterior (into the eye), frames superior
  const origin: Vec3 = [-SCAN_MM / 2 + dx / 2, dy / 2, frames > 1 ? -SCAN_MM / 2 : 0];
  const geometry: Geometry = {
    dims: [cols, rows, frames],
    spacing: [dx, dy, dz],
    origin,
    direction: [1, 0, 0, 0, 1, 0, 0, 0, 1],
  };
  const bytes = writeImageInstance(
    optDataset({ options, profile, eye, geometry, studyUID, seriesUID, sopInstanceUID, forUID, root }),
    pixels,
  );
  return {
    bytes,
    pixels,
    labels,
    geometry,
    profile,
    laterality: eye,
    studyUID,
    seriesUID,
    sopInstanceUID,
    frameOfReferenceUID: forUID,
    uidRoot: root,
  };
}

/** The OPT dataset without pixel data: the modules of PS3.3 A.41 and the per-frame functional groups. */
function optDataset(a: {
  options: OctPhantomOptions;
  profile: ScannerProfile;
  eye: Eye;
  geometry: Geometry;
  studyUID: string;
  seriesUID: string;
  sopInstanceUID: string;
  forUID: string;
  root: string;
}): Record<string, unknown> {
  const { options, profile, geometry: g } = a;
  const [cols, rows, frames] = g.dims;
  const date = options.date ?? "20240101";
  const time = "120000";
  const um = (mm: number) => Number((mm * 1000).toFixed(3));
  // one B-scan of `cols` A-scans at 40 kHz, a spectral-domain scanner's line rate
  const bscanMs = Number((cols / 40).toFixed(3));
  const perFrame = Array.from({ length: frames }, (_, k) => ({
    FrameContentSequence: [{
      FrameAcquisitionDateTime: `${date}${time}`,
      FrameReferenceDateTime: `${date}${time}`,
      FrameAcquisitionDuration: bscanMs,
      StackID: "1",
      InStackPositionNumber: k + 1,
      DimensionIndexValues: [k + 1],
    }],
    PlanePositionSequence: [{
      ImagePositionPatient: [g.origin[0], g.origin[1], g.origin[2] + k * g.spacing[2]].map(ds),
    }],
  }));
  return {
    SpecificCharacterSet: "ISO_IR 192",
    // Ophthalmic Tomography Image module: what a scanner writes for its own B-scans
    ImageType: ["ORIGINAL", "PRIMARY"],
    InstanceCreationDate: date,
    InstanceCreationTime: time,
    SOPClassUID: OPHTHALMIC_TOMOGRAPHY_IMAGE_STORAGE,
    SOPInstanceUID: a.sopInstanceUID,
    StudyDate: date,
    SeriesDate: date,
    ContentDate: date,
    StudyTime: time,
    SeriesTime: time,
    ContentTime: time,
    AcquisitionDateTime: `${date}${time}`,
    AcquisitionDuration: Number(((frames * bscanMs) / 1000).toFixed(4)),
    AcquisitionNumber: 1,
    AccessionNumber: "",
    Modality: "OPT",
    Manufacturer: profile.manufacturer,
    ManufacturerModelName: profile.modelName,
    DeviceSerialNumber: "0",
    SoftwareVersions: `EdgeSeg ${EDGESEG_VERSION}`,
    ReferringPhysicianName: "",
    StudyDescription: "Synthetic OCT phantom",
    SeriesDescription: `OCT macula ${SCAN_MM}x${SCAN_MM} mm, ${frames} B-scans (synthetic)`,
    PatientName: options.patientName ?? "EdgeSeg^OCT",
    PatientID: options.patientId ?? "EDGESEG-OCT-1",
    PatientBirthDate: "",
    PatientSex: "",
    StudyInstanceUID: a.studyUID,
    SeriesInstanceUID: a.seriesUID,
    StudyID: "1",
    SeriesNumber: 1,
    InstanceNumber: 1,
    FrameOfReferenceUID: a.forUID,
    PositionReferenceIndicator: "",
    ...synchronization(a.forUID),
    ...ocularRegionImaged(a.eye),
    // Ophthalmic Tomography Acquisition Parameters (C.8.17.8): unknown for a phantom, Type 2
    AxialLengthOfTheEye: [],
    ...unknownAcquisitionParameters(),
    // Ophthalmic Tomography Parameters (C.8.17.9): a spectral-domain scanner; resolutions are the
    // phantom's sampling (two samples per resolved distance), distortions 0 (the grid is exact)
    AcquisitionDeviceTypeCodeSequence: [codeItem(OphthalmicCodes.octScanner)],
    LightPathFilterTypeStackCodeSequence: [],
    DetectorType: "CCD",
    IlluminationWaveLength: 870,
    IlluminationPower: 1.2,
    IlluminationBandwidth: 50,
    DepthSpatialResolution: um(2 * g.spacing[1]),
    MaximumDepthDistortion: 0,
    AlongScanSpatialResolution: um(2 * g.spacing[0]),
    MaximumAlongScanDistortion: 0,
    AcrossScanSpatialResolution: um(2 * g.spacing[2]),
    MaximumAcrossScanDistortion: 0,
    AcquisitionContextSequence: [],
    BurnedInAnnotation: "NO",
    LossyImageCompression: "00",
    PresentationLUTShape: "IDENTITY",
    SamplesPerPixel: 1,
    PhotometricInterpretation: "MONOCHROME2",
    Rows: rows,
    Columns: cols,
    BitsAllocated: 8,
    BitsStored: 8,
    HighBit: 7,
    PixelRepresentation: 0,
    NumberOfFrames: frames,
    // Type 1 in the OPT Image module: an instance that is not part of a concatenation is offset 0,
    // number 1 of 1
    ConcatenationFrameOffsetNumber: 0,
    InConcatenationNumber: 1,
    InConcatenationTotalNumber: 1,
    SharedFunctionalGroupsSequence: [{
      // PixelSpacing: row spacing (depth, along j) then column spacing (across the B-scan, along i)
      PixelMeasuresSequence: [{
        PixelSpacing: [ds(g.spacing[1]), ds(g.spacing[0])],
        SliceThickness: ds(g.spacing[2]),
      }],
      PlaneOrientationSequence: [{ ImageOrientationPatient: ["1", "0", "0", "0", "1", "0"] }],
      FrameAnatomySequence: [{
        ...ocularRegionImaged(a.eye),
        FrameLaterality: a.eye,
        ImageLaterality: undefined,
      }],
    }],
    PerFrameFunctionalGroupsSequence: perFrame,
    ...multiFrameDimensions(`${a.root}.5`, [POSITION_DIMENSION]),
  };
}

/**
 * The segments of the ground truth, as a SEG of it describes them. IRF, SRF and PED have no code in
 * the tables EdgeSeg carries, so they are coded in the project's local scheme (PS3.3 8.2: "99…"),
 * as the uncertainty measures are; the category is SNOMED CT's Morphologically Altered Structure.
 */
export function octPhantomSegments(): SegmentDescription[] {
  const category = { value: "49755003", scheme: "SCT", meaning: "Morphologically Altered Structure" };
  const seg = (
    number: number,
    label: string,
    value: string,
    meaning: string,
    color: Vec3,
  ): SegmentDescription => ({
    number,
    label,
    description: meaning,
    category,
    type: { value, scheme: "99EDGESEG", meaning },
    color,
    algorithmType: "AUTOMATIC",
    algorithmName: "EdgeSeg OCT phantom",
    algorithmVersion: EDGESEG_VERSION,
  });
  return [
    seg(OctLabel.irf, "IRF", "IRF", "Intraretinal fluid", [80, 200, 255]),
    seg(OctLabel.srf, "SRF", "SRF", "Subretinal fluid", [255, 210, 60]),
    seg(OctLabel.ped, "PED", "PED", "Pigment epithelial detachment", [240, 80, 160]),
  ];
}

/**
 * The ground truth as a BINARY DICOM Segmentation of the phantom's OPT instance: one frame per
 * (fluid kind, B-scan) that holds it, each referencing its B-scan by frame number. Read back by
 * `deno task eval --reference`, mapped onto the input by those references. Deterministic: UIDs come
 * from the phantom's, the content date is the study date.
 */
export async function octPhantomTruthSeg(phantom: OctPhantom): Promise<Uint8Array> {
  const { volume, instances } = await readSeries([phantom.bytes]);
  const root = phantom.uidRoot;
  const date = String(instances[0].StudyDate ?? "20240101");
  return writeSegmentation({
    source: { instances, geometry: volume.geometry, refs: volume.source?.instances },
    labelmap: { geometry: volume.geometry, data: phantom.labels, segments: octPhantomSegments() },
    provenance: { modelId: "oct-phantom", modelName: "EdgeSeg OCT phantom", modelVersion: EDGESEG_VERSION },
    options: {
      seriesNumber: 2,
      seriesDescription: "Ground truth (synthetic OCT phantom)",
      contentDescription: "Fluid ground truth of the OCT phantom",
      contentLabel: "GROUND_TRUTH",
      uids: { series: `${root}.6`, instance: `${root}.7`, dimensionOrganization: `${root}.8` },
      now: new Date(`${date.slice(0, 4)}-${date.slice(4, 6)}-${date.slice(6, 8)}T12:00:00Z`),
    },
  });
}
