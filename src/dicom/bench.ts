/**
 * Encode benchmarks for `deno task bench`: SEG (BINARY, 5 segments) and Parametric Map on a
 * CT-sized grid (default 512×512×300). Pure apart from the optional memory probe the caller passes
 * (Deno: `() => Deno.memoryUsage().rss`), so the same code can be timed in a browser.
 */
import type { Geometry, SegmentDescription } from "../core/types.ts";
import type { NaturalizedDataset } from "./dataset.ts";
import { writeParametricMap } from "./pmap.ts";
import { writeSegmentation } from "./seg.ts";

export interface EncodeBench {
  name: string;
  dims: [number, number, number];
  /** median of the runs */
  ms: number;
  runsMs: number[];
  outputBytes: number;
  /** the labelmap (SEG) or map (PM) bytes the encoder was given */
  inputBytes: number;
  /** resident memory growth during the first run, when a probe was given */
  extraBytes?: number;
}

function syntheticSource(dims: [number, number, number]) {
  const geometry: Geometry = {
    dims,
    spacing: [0.8, 0.8, 1.5],
    origin: [-200, -200, 0],
    direction: [1, 0, 0, 0, 1, 0, 0, 0, 1],
  };
  const instances: NaturalizedDataset[] = [];
  for (let k = 0; k < dims[2]; k++) {
    instances.push({
      SOPClassUID: "1.2.840.10008.5.1.4.1.1.2",
      SOPInstanceUID: `2.25.1234.${k + 1}`,
      StudyInstanceUID: "2.25.1234",
      SeriesInstanceUID: "2.25.1235",
      FrameOfReferenceUID: "2.25.1236",
      Modality: "CT",
      ImagePositionPatient: ["-200", "-200", String(1.5 * k)],
      SliceThickness: "1.5",
    });
  }
  return { instances, geometry };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** SEG BINARY encode of an ellipsoid-like 5-label labelmap (about 30 % foreground). */
export function benchSegEncode(
  options: { dims?: [number, number, number]; runs?: number; memory?: () => number } = {},
): EncodeBench {
  const dims = options.dims ?? [512, 512, 300];
  const source = syntheticSource(dims);
  const [nx, ny, nz] = dims;
  const data = new Uint8Array(nx * ny * nz);
  for (let k = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++) {
        const x = (i - nx / 2) / (nx / 2), y = (j - ny / 2) / (ny / 2), z = (k - nz / 2) / (nz / 2);
        const r = x * x + y * y + z * z;
        data[i + nx * (j + ny * k)] = r < 0.55 ? 1 + (((i >> 5) + (j >> 5)) % 5) : 0;
      }
    }
  }
  const segments: SegmentDescription[] = [1, 2, 3, 4, 5].map((n) => ({
    number: n,
    label: `Organ ${n}`,
    category: { value: "91723000", scheme: "SCT", meaning: "Anatomical structure" },
    type: { value: "85756007", scheme: "SCT", meaning: "Tissue" },
    color: [40 * n, 255 - 40 * n, 128],
    algorithmType: "AUTOMATIC",
  }));
  const runs: number[] = [];
  let outputBytes = 0, extraBytes: number | undefined;
  for (let r = 0; r < (options.runs ?? 3); r++) {
    const m0 = options.memory?.();
    const t0 = performance.now();
    const out = writeSegmentation({ source, labelmap: { geometry: source.geometry, data, segments } });
    runs.push(performance.now() - t0);
    if (r === 0 && m0 !== undefined) extraBytes = options.memory!() - m0;
    outputBytes = out.length;
  }
  return {
    name: "SEG BINARY encode, 5 segments",
    dims,
    ms: median(runs),
    runsMs: runs,
    outputBytes,
    inputBytes: data.byteLength,
    extraBytes,
  };
}

/** Parametric Map (float32) encode on the same grid. */
export function benchPmapEncode(
  options: { dims?: [number, number, number]; runs?: number; memory?: () => number } = {},
): EncodeBench {
  const dims = options.dims ?? [512, 512, 300];
  const source = syntheticSource(dims);
  const data = new Float32Array(dims[0] * dims[1] * dims[2]);
  for (let i = 0; i < data.length; i++) data[i] = (i % 1000) / 1000;
  const runs: number[] = [];
  let outputBytes = 0, extraBytes: number | undefined;
  for (let r = 0; r < (options.runs ?? 3); r++) {
    const m0 = options.memory?.();
    const t0 = performance.now();
    const out = writeParametricMap({
      source,
      map: { geometry: source.geometry, data, measure: "entropy", method: "mc", passes: 20 },
    });
    runs.push(performance.now() - t0);
    if (r === 0 && m0 !== undefined) extraBytes = options.memory!() - m0;
    outputBytes = out.length;
  }
  return {
    name: "Parametric Map float32 encode",
    dims,
    ms: median(runs),
    runsMs: runs,
    outputBytes,
    inputBytes: data.byteLength,
    extraBytes,
  };
}
