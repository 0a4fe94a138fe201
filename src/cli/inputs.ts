/**
 * What the CLI can segment: a DICOM folder, a DICOMweb study or series URL, a NIfTI file, or a 2D
 * image (PNG/JPEG/TIFF/GIF) or a folder of them. Each becomes one or more `CaseInput`s holding a
 * Volume and, for DICOM, the source metadata the SEG and Parametric Map writers need.
 */
import { basename, extname, join } from "node:path";
import { InputError } from "../core/errors.ts";
import type { ModelManifest, Volume } from "../core/types.ts";
import { DicomWebClient, parseDicomWebUrl, readSeries } from "../dicom/mod.ts";
import type { SourceSeries } from "../dicom/mod.ts";
import { readImage, readNifti, sniffImageFormat } from "../io/mod.ts";

export type InputKind = "dicom" | "nifti" | "image";

export interface CaseInput {
  name: string;
  kind: InputKind;
  volume: Volume;
  /** DICOM inputs: what the writers reference */
  source?: SourceSeries;
  /** notes for the report (assumptions made about the input) */
  notes: string[];
}

const IMAGE_EXT = /\.(png|jpe?g|gif|tiff?)$/i;
const NIFTI_EXT = /\.nii(\.gz)?$/i;

function isDicom(bytes: Uint8Array): boolean {
  return bytes.length > 132 && bytes[128] === 0x44 && bytes[129] === 0x49 && bytes[130] === 0x43 &&
    bytes[131] === 0x4d;
}

export function caseName(path: string): string {
  return basename(path).replace(/\.nii\.gz$/i, "").replace(/\.[^.]+$/, "");
}

async function listFiles(dir: string, recursive: boolean): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const p = join(dir, e.name);
    if (e.isFile) out.push(p);
    else if (e.isDirectory && recursive) out.push(...await listFiles(p, true));
  }
  return out.sort();
}

/**
 * 2D image files carry no modality and no HU. When the model expects a CT window and the image is
 * an 8-bit windowed slice, map grey value v back to the HU the window would have turned into v, so
 * the model sees exactly the input it was trained on (documented in docs/model-packages.md).
 */
function adaptImageToModel(volume: Volume, manifest: ModelManifest | undefined, notes: string[]): Volume {
  if (!manifest) return volume;
  const modalities = manifest.constraints.modalities;
  let modality = volume.modality;
  if (!modalities.includes(modality)) {
    modality = modalities[0];
    notes.push(`image files carry no modality: assumed ${modality} as the model requires`);
  }
  const t = manifest.preprocessing.intensity;
  if (t.kind === "window" && volume.channels === 1 && volume.data instanceof Uint8Array) {
    const lo = t.center - t.width / 2;
    const data = new Float32Array(volume.data.length);
    for (let i = 0; i < data.length; i++) data[i] = lo + (volume.data[i] / 255) * t.width;
    notes.push(
      `8-bit image read as a windowed slice: grey 0..255 mapped to HU ${lo}..${
        lo + t.width
      } (the model's window)`,
    );
    return { ...volume, modality, data };
  }
  if (volume.geometry.spacing[0] === 1 && volume.geometry.spacing[1] === 1) {
    notes.push("image files carry no pixel spacing: 1 mm assumed, so volumes are in pixel units");
  }
  return { ...volume, modality };
}

/** Reads one DICOM series from a list of Part 10 files. */
export async function dicomCase(name: string, files: Uint8Array[], seriesUID?: string): Promise<CaseInput> {
  const { volume, instances } = await readSeries(files, { seriesUID });
  return {
    name,
    kind: "dicom",
    volume,
    source: { instances, geometry: volume.geometry, refs: volume.source?.instances },
    notes: [],
  };
}

/** Fetches a study (first image series) or one series over DICOMweb: `…/studies/{uid}[/series/{uid}]`. */
export async function dicomWebCase(url: string): Promise<CaseInput> {
  const { baseUrl, studyUID, seriesUID: seriesArg } = parseDicomWebUrl(url);
  const client = new DicomWebClient({ baseUrl });
  let seriesUID = seriesArg;
  if (!seriesUID) {
    const series = await client.searchForSeries(studyUID);
    const image = series.find((s) =>
      !["SEG", "SR", "PR", "RTSTRUCT", "KO"].includes(String(s["00080060"]?.Value?.[0] ?? ""))
    );
    if (!image) {
      throw new InputError(
        "NO_IMAGE_SERIES",
        `study ${studyUID} has no image series (found ${series.length} series)`,
      );
    }
    seriesUID = String(image["0020000E"]?.Value?.[0]);
  }
  const files = await client.retrieve(studyUID, seriesUID);
  return dicomCase(`${studyUID}-${seriesUID}`, files, seriesUID);
}

/** Loads every case an `--input` argument names. */
export interface LoadInputsOptions {
  /** for a DICOM folder with several series: the SeriesInstanceUID to segment */
  seriesUID?: string;
}

/** A DICOMDIR (the media index, not an image) is named so by PS3.10. */
function isDicomDir(path: string): boolean {
  return basename(path).toUpperCase() === "DICOMDIR";
}

/**
 * Gives every case a distinct name: `scan.png` and `scan.nii.gz` in one folder would otherwise write
 * `scan_mask.png` and `scan_seg.nii.gz` side by side but overwrite each other's report rows.
 */
export function uniqueCaseNames(cases: CaseInput[], paths: (string | undefined)[]): CaseInput[] {
  const count = new Map<string, number>();
  for (const c of cases) count.set(c.name, (count.get(c.name) ?? 0) + 1);
  const used = new Set<string>();
  return cases.map((c, i) => {
    if ((count.get(c.name) ?? 0) < 2) return c;
    const ext = (paths[i]?.match(/\.(nii\.gz|[^./]+)$/)?.[1] ?? c.kind).replace(/\./g, "_").toLowerCase();
    let name = `${c.name}_${ext}`;
    for (let n = 2; used.has(name); n++) name = `${c.name}_${ext}${n}`;
    used.add(name);
    return { ...c, name, notes: [...c.notes, `renamed from ${c.name}: another input has the same stem`] };
  });
}

export async function loadInputs(
  input: string,
  manifest?: ModelManifest,
  options: LoadInputsOptions = {},
): Promise<CaseInput[]> {
  if (/^https?:\/\//i.test(input)) return [await dicomWebCase(input)];
  let stat: Deno.FileInfo;
  try {
    stat = await Deno.stat(input);
  } catch {
    throw new InputError("INPUT_NOT_FOUND", `--input ${input}: no such file or folder`);
  }
  if (stat.isFile) return [await fileCase(input, manifest)];
  const files = await listFiles(input, true);
  const fileInputs = files.filter((f) => IMAGE_EXT.test(f) || NIFTI_EXT.test(f));
  const out: CaseInput[] = [];
  const paths: (string | undefined)[] = [];
  for (
    const f of [
      ...fileInputs.filter((f) => NIFTI_EXT.test(f)),
      ...fileInputs.filter((f) => IMAGE_EXT.test(f)),
    ]
  ) {
    out.push(await fileCase(f, manifest));
    paths.push(f);
  }
  // The rest may be DICOM: a folder with images and DICOM segments both, never silently one of them.
  const dicom: Uint8Array[] = [];
  let skipped = 0, dicomDirs = 0;
  for (const f of files) {
    if (IMAGE_EXT.test(f) || NIFTI_EXT.test(f)) continue;
    if (isDicomDir(f)) {
      dicomDirs++;
      continue;
    }
    const bytes = await Deno.readFile(f);
    if (isDicom(bytes)) dicom.push(bytes);
    else skipped++;
  }
  if (dicom.length) {
    const c = await dicomCase(basename(input), dicom, options.seriesUID);
    if (skipped) c.notes.push(`${skipped} non-DICOM files in the folder were skipped`);
    if (dicomDirs) c.notes.push("the DICOMDIR (a media index, not an image) was skipped");
    if (out.length) {
      c.notes.push(`the folder also holds ${out.length} image/NIfTI inputs, segmented as their own cases`);
    }
    out.push(c);
    paths.push(undefined);
  }
  if (!out.length) {
    throw new InputError(
      "NO_INPUT_FILES",
      `--input ${input}: expected DICOM, NIfTI or image files, found none (${skipped} other files${
        dicomDirs ? " and a DICOMDIR" : ""
      })`,
    );
  }
  return uniqueCaseNames(out, paths);
}

export async function fileCase(path: string, manifest?: ModelManifest): Promise<CaseInput> {
  const bytes = await Deno.readFile(path);
  const name = caseName(path);
  const notes: string[] = [];
  if (NIFTI_EXT.test(path)) {
    const modality = manifest?.constraints.modalities[0] ?? "MR";
    const { volume } = await readNifti(bytes, modality);
    notes.push(`NIfTI carries no modality: assumed ${modality}`);
    return { name, kind: "nifti", volume, notes };
  }
  if (sniffImageFormat(bytes)) {
    return { name, kind: "image", volume: adaptImageToModel(readImage(bytes), manifest, notes), notes };
  }
  if (isDicom(bytes)) return dicomCase(name, [bytes]);
  throw new InputError(
    "INPUT_FORMAT",
    `${path}: expected DICOM, NIfTI (.nii/.nii.gz) or an image (PNG/JPEG/TIFF/GIF), found ${
      extname(path) || "no extension"
    } with unknown content`,
  );
}
