/**
 * Per-segment statistics: voxel count, volume (mL) from spacing, intensity mean/SD on the original
 * volume, connected components, the volume's spread across stochastic passes, and mean uncertainty
 * inside the segment and on its boundary.
 */
import type { Geometry, LabelSpec, SegmentStatistics, VoxelArray } from "../core/types.ts";
import { countComponents } from "./postprocess.ts";

/** Linear-interpolated percentile (NumPy's default method) of `values`, q in [0, 100]. */
export function percentile(values: ArrayLike<number>, q: number): number {
  const n = values.length;
  if (n === 0) return NaN;
  const sorted = Float64Array.from(values).sort();
  const pos = (q / 100) * (n - 1);
  const lo = Math.floor(pos), hi = Math.min(n - 1, lo + 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/** Volume of one voxel in millilitres (spacing is in mm; 1 mL = 1000 mm³). */
export function voxelVolumeMl(geometry: Geometry): number {
  return (geometry.spacing[0] * geometry.spacing[1] * geometry.spacing[2]) / 1000;
}

/**
 * Boundary voxels of `value`: voxels of the segment with at least one face neighbour (6 in 3D,
 * in-volume neighbours only) that is not the segment.
 */
export function boundaryMask(
  labels: ArrayLike<number>,
  dims: [number, number, number],
  value: number,
): Uint8Array {
  const [nx, ny, nz] = dims;
  const out = new Uint8Array(nx * ny * nz);
  const sxy = nx * ny;
  for (let k = 0, p = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++, p++) {
        if (labels[p] !== value) continue;
        if (
          (i > 0 && labels[p - 1] !== value) || (i < nx - 1 && labels[p + 1] !== value) ||
          (j > 0 && labels[p - nx] !== value) || (j < ny - 1 && labels[p + nx] !== value) ||
          (k > 0 && labels[p - sxy] !== value) || (k < nz - 1 && labels[p + sxy] !== value)
        ) out[p] = 1;
      }
    }
  }
  return out;
}

export interface StatisticsInput {
  labels: Uint8Array | Uint16Array;
  geometry: Geometry;
  segments: Pick<LabelSpec, "value" | "name">[];
  /** one channel of the original volume (the first channel the model reads) */
  intensity: VoxelArray;
  /** per-voxel uncertainty on the same grid, when there is one */
  uncertainty?: Float32Array;
  /** voxel counts per pass, passVoxels[pass][segment index], when there were several passes */
  passVoxels?: number[][];
  /** a central zone (`TriageSpec.centre`): each segment's volume inside it is reported as centralVolumeMl */
  centre?: { radiusMm: number; axes?: number[] };
}

/**
 * Voxels within `radiusMm` of the grid's centre ((n − 1) / 2 along each axis), the distance measured
 * in mm along the listed voxel axes only (0 = i, 1 = j, 2 = k): axes [0, 2] of an OCT cube give a
 * cylinder through all depths around the scan's centre A-scan, i.e. the fovea of a fovea-centred scan.
 */
export function centralZoneMask(
  geometry: Geometry,
  radiusMm: number,
  axes: number[] = [0, 1, 2],
): Uint8Array {
  const [nx, ny, nz] = geometry.dims;
  const use = [0, 1, 2].map((a) => axes.includes(a));
  const d2 = (n: number, a: number) => {
    const c = (n - 1) / 2, out = new Float64Array(n);
    for (let t = 0; t < n; t++) out[t] = use[a] ? ((t - c) * geometry.spacing[a]) ** 2 : 0;
    return out;
  };
  const dx = d2(nx, 0), dy = d2(ny, 1), dz = d2(nz, 2);
  const r2 = radiusMm * radiusMm;
  const out = new Uint8Array(nx * ny * nz);
  for (let k = 0, p = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      const base = dz[k] + dy[j];
      for (let i = 0; i < nx; i++, p++) if (base + dx[i] <= r2) out[p] = 1;
    }
  }
  return out;
}

/** Statistics for every segment listed (including segments with no voxels). */
export function segmentStatistics(input: StatisticsInput): SegmentStatistics[] {
  const { labels, geometry, intensity, uncertainty, passVoxels } = input;
  const dims = geometry.dims;
  const voxelMl = voxelVolumeMl(geometry);
  const zone = input.centre ? centralZoneMask(geometry, input.centre.radiusMm, input.centre.axes) : undefined;
  return input.segments.map((seg, s) => {
    let n = 0, mean = 0, m2 = 0, uSum = 0;
    for (let p = 0; p < labels.length; p++) {
      if (labels[p] !== seg.value) continue;
      n++;
      const x = intensity[p];
      const d = x - mean;
      mean += d / n;
      m2 += d * (x - mean);
      if (uncertainty) uSum += uncertainty[p];
    }
    const stats: SegmentStatistics = {
      number: seg.value,
      label: seg.name,
      voxels: n,
      volumeMl: n * voxelMl,
      meanIntensity: n > 0 ? mean : 0,
      sdIntensity: n > 1 ? Math.sqrt(m2 / (n - 1)) : 0,
      components: n > 0 ? countComponents(labels, dims, seg.value) : 0,
    };
    if (zone) {
      let c = 0;
      for (let p = 0; p < labels.length; p++) if (zone[p] && labels[p] === seg.value) c++;
      stats.centralVolumeMl = c * voxelMl;
    }
    if (uncertainty) {
      stats.meanUncertainty = n > 0 ? uSum / n : 0;
      const edge = boundaryMask(labels, dims, seg.value);
      let b = 0, bSum = 0;
      for (let p = 0; p < edge.length; p++) {
        if (edge[p]) {
          b++;
          bSum += uncertainty[p];
        }
      }
      stats.meanBoundaryUncertainty = b > 0 ? bSum / b : 0;
    }
    if (passVoxels && passVoxels.length > 1) {
      const vols = passVoxels.map((counts) => counts[s] * voxelMl);
      const mu = vols.reduce((a, b) => a + b, 0) / vols.length;
      const ss = vols.reduce((a, b) => a + (b - mu) ** 2, 0);
      // sample SD: the passes are a sample of the model's predictive distribution
      stats.volumeSdMl = Math.sqrt(ss / (vols.length - 1));
      // empirical 2.5th / 97.5th percentiles: no normality assumed
      stats.volumeCi95Ml = [percentile(vols, 2.5), percentile(vols, 97.5)];
    }
    return stats;
  });
}

/** One segment's size as the segment list shows it. */
export interface SegmentSize {
  /** the unit of `value`: mL for a volume, mm² for one image, px / voxels when the pixel size is unknown */
  unit: "mL" | "mm²" | "px" | "voxels";
  value: number;
  /** for people: a volume under 1 mL is written in mm³ (see formatVolumeMl) */
  text: string;
}

/** The number of decimals that shows `x` to 3 significant digits (0 from 100 up). */
function decimalsFor(x: number): number {
  if (x >= 100) return 0;
  return Math.max(0, 2 - Math.floor(Math.log10(x)));
}

/**
 * A volume as people read it: from 1 mL up in mL with one decimal ("45.0 mL"), below 1 mL in mm³
 * (= µL) to 3 significant digits ("23.4 mm³", "0.512 mm³"), as OCT devices state retinal and fluid
 * volumes and Lung-RADS states nodule volumes; "0.0 mL" would hide an OCT fluid pocket or a small
 * nodule altogether. `sdMl` (the spread across MC passes) follows in the same unit and decimals.
 */
export function formatVolumeMl(volumeMl: number, sdMl?: number): string {
  const mm3 = volumeMl * 1000;
  // decimals from the value rounded to 3 digits, so 99.96 reads "100", not "100.0", and 999.7 reads "1.0 mL"
  const rounded = Number(mm3.toPrecision(3));
  if (volumeMl <= 0 || rounded >= 1000 || !Number.isFinite(volumeMl)) {
    return `${volumeMl.toFixed(1)} mL${sdMl !== undefined ? ` ± ${sdMl.toFixed(1)}` : ""}`;
  }
  const decimals = decimalsFor(rounded);
  return `${mm3.toFixed(decimals)} mm³${sdMl !== undefined ? ` ± ${(sdMl * 1000).toFixed(decimals)}` : ""}`;
}

/**
 * Volume (mL) for a series of slices with real spacing, area (mm²) for a single image with real
 * spacing, and a pixel or voxel count when the spacing is unknown — never a volume for a photograph.
 */
export function segmentSize(
  stat: Pick<SegmentStatistics, "voxels" | "volumeMl" | "volumeSdMl">,
  geometry: Pick<Geometry, "dims" | "spacing">,
  spacingKnown: boolean,
): SegmentSize {
  const single = geometry.dims[2] === 1;
  if (!spacingKnown) {
    const unit = single ? "px" : "voxels";
    return { unit, value: stat.voxels, text: `${stat.voxels.toLocaleString("en-US")} ${unit}` };
  }
  if (single) {
    const mm2 = stat.voxels * geometry.spacing[0] * geometry.spacing[1];
    return { unit: "mm²", value: mm2, text: `${mm2.toFixed(mm2 < 100 ? 1 : 0)} mm²` };
  }
  return { unit: "mL", value: stat.volumeMl, text: formatVolumeMl(stat.volumeMl, stat.volumeSdMl) };
}
