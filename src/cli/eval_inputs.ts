/** What `deno task eval` reads: input lists, references and masks on the model's grid, negative series. */
import { join } from "node:path";
import { InputError } from "../core/errors.ts";
import type { ModelManifest, Volume } from "../core/types.ts";
import { readSegmentation } from "../dicom/mod.ts";
import { readImage, readLabelImage, readNifti, sniffImageFormat } from "../io/mod.ts";
import { formatVolumeMl, segment } from "../segmentation/mod.ts";
import { openModel, parseUncertainty } from "./common.ts";
import { loadInputs } from "./inputs.ts";
import { ProgressBar } from "./progress.ts";

export async function listPaths(path: string): Promise<string[]> {
  const st = await Deno.stat(path);
  if (st.isFile) return [path];
  const out: string[] = [];
  for await (const e of Deno.readDir(path)) {
    if (e.name.startsWith(".")) continue;
    const p = join(path, e.name);
    if (e.isFile || (e.isSymlink && (await Deno.stat(p)).isFile)) out.push(p);
  }
  return out.sort();
}

/**
 * A reference label raster on the prediction's grid. Image labels (palette PNGs by palette index, see
 * readLabelImage): for a one-label model every non-zero pixel is the label (DRIVE's GIFs hold 0/255
 * or 0/1); for several labels, values that are label values are kept, otherwise the distinct non-zero
 * grey levels map in order onto the labels.
 */
export async function readReference(
  path: string,
  manifest: ModelManifest,
  grid: Volume,
): Promise<Uint16Array> {
  const bytes = await Deno.readFile(path);
  const n = grid.geometry.dims[0] * grid.geometry.dims[1] * grid.geometry.dims[2];
  let values: ArrayLike<number>;
  if (/\.nii(\.gz)?$/i.test(path)) {
    values = (await readNifti(bytes)).volume.data;
  } else if (sniffImageFormat(bytes)) {
    values = readLabelImage(bytes).data;
  } else {
    const seg = await readSegmentation(bytes, { geometry: grid.geometry, refs: grid.source?.instances });
    if (!seg.labelmap) {
      throw new InputError(
        "REFERENCE_SEG",
        `reference SEG ${path} could not be mapped onto the input series`,
      );
    }
    values = seg.labelmap.data;
  }
  if (values.length !== n) {
    throw new InputError(
      "REFERENCE_GRID",
      `reference ${path} has ${values.length} voxels, the input ${n}: expected the same grid`,
    );
  }
  const labelValues = manifest.labels.map((l) => l.value);
  const out = new Uint16Array(n);
  if (labelValues.length === 1) {
    for (let i = 0; i < n; i++) out[i] = values[i] > 0 ? labelValues[0] : 0;
    return out;
  }
  const distinct = new Set<number>();
  for (let i = 0; i < n; i++) if (values[i] > 0) distinct.add(Math.round(values[i]));
  const direct = [...distinct].every((v) => labelValues.includes(v));
  const order = [...distinct].sort((a, b) => a - b);
  const map = new Map(order.map((v, i) => [v, labelValues[Math.min(i, labelValues.length - 1)]]));
  for (let i = 0; i < n; i++) {
    const v = Math.round(values[i]);
    out[i] = v > 0 ? (direct ? v : map.get(v)!) : 0;
  }
  return out;
}

export async function readMask(path: string, n: number): Promise<Uint8Array> {
  const bytes = await Deno.readFile(path);
  const v = /\.nii(\.gz)?$/i.test(path)
    ? (await readNifti(bytes)).volume.data
    : readImage(bytes, { channels: 1 }).data;
  if (v.length !== n) {
    throw new InputError("FOV_GRID", `field-of-view mask ${path} has ${v.length} pixels, expected ${n}`);
  }
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = v[i] > 0 ? 1 : 0;
  return out;
}

/** A series without the target finding: whatever the model marks there is a false positive. */
export interface NegativeCase {
  case: string;
  input: string;
  /** false-positive volume over all labels, mL (pixel counts where the series has no spacing) */
  falsePositiveMl: number;
  perLabelMl: Record<string, number>;
  falsePositiveVoxels: number;
  triage?: { band: string; score: number; reasons: string[] };
  /** the region of interest's summary line, when the model declares one */
  roi?: string;
  windows: number;
}

/** Segment each series in `path` (which has no target finding) and measure what was marked. */
export async function evaluateNegative(
  path: string,
  runtime: Awaited<ReturnType<typeof openModel>>["runtime"],
  options: { roi: boolean; uncertainty: ReturnType<typeof parseUncertainty> },
): Promise<NegativeCase[]> {
  const out: NegativeCase[] = [];
  for (const c of await loadInputs(path, runtime.manifest)) {
    const bar = new ProgressBar(`negative ${c.name}`);
    const result = await segment(c.volume, runtime, {
      ...options.uncertainty,
      roi: options.roi,
      onProgress: bar.update,
    });
    const perLabelMl: Record<string, number> = {};
    for (const s of result.statistics) perLabelMl[s.label] = s.volumeMl;
    const record: NegativeCase = {
      case: c.name,
      input: path,
      falsePositiveMl: result.statistics.reduce((a, s) => a + s.volumeMl, 0),
      perLabelMl,
      falsePositiveVoxels: result.statistics.reduce((a, s) => a + s.voxels, 0),
      triage: result.triage,
      roi: result.provenance.roi?.summary,
      windows: result.provenance.windows,
    };
    bar.done(`negative ${c.name}: false positives ${formatVolumeMl(record.falsePositiveMl)}`);
    out.push(record);
  }
  return out;
}
