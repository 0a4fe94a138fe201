/**
 * deno task segment --model <id|path> --input <DICOM folder | DICOMweb URL | NIfTI | image or folder>
 *   [--out <dir>] [--stow <DICOMweb url>] [--uncertainty none|tta|mc:N|ensemble|mc:N+tta]
 *   [--device auto|cpu|wasm|webgpu] [--seed N] [--seg-type BINARY|LABELMAP|FRACTIONAL] [--threads N] [--no-roi]
 *   [--variant <id>]
 *
 * Writes, per case: a DICOM SEG (+ uncertainty Parametric Map) for DICOM inputs, NIfTI or PNG masks
 * (+ float uncertainty as NIfTI) for the others, and report.json (statistics, triage, provenance).
 */
import { join } from "node:path";
import type { SegmentationResult } from "../core/types.ts";
import { variantLabel } from "../core/contract.ts";
import { DicomWebClient, storeWithRetention } from "../dicom/mod.ts";
import type { CommonOptions, SegmentationType } from "../dicom/mod.ts";
import { encodeResult } from "../dicom/result.ts";
import { FolderOutbox } from "../dicom/fs.ts";
import { writeNifti, writePng } from "../io/mod.ts";
import { segment } from "../segmentation/mod.ts";
import { type SegmentSize, segmentSize } from "../segmentation/statistics.ts";
import { flag, numberFlag, parseArgs, requireFlag } from "./args.ts";
import { openModel, parseUncertainty, reportError, UNCERTAINTY_GRAMMAR } from "./common.ts";
import { type CaseInput, loadInputs } from "./inputs.ts";
import { writeFileAtomic } from "./output.ts";
import { ProgressBar } from "./progress.ts";

const USAGE =
  `usage: deno task segment --model <id|path> --input <DICOM folder | DICOMweb study URL | NIfTI | image or folder>
  [--out <dir>] [--stow <DICOMweb url>] [--uncertainty ${UNCERTAINTY_GRAMMAR}] [--device auto|cpu|wasm|webgpu]
  [--series <SeriesInstanceUID>] [--seed N] [--seg-type BINARY|LABELMAP|FRACTIONAL] [--threads N] [--no-roi]
  [--variant <id>]
  --no-roi runs every window, ignoring the model's region of interest (for comparisons)
  --variant runs one of the manifest's variants (e.g. int8) instead of its main model ("main")`;

export interface CaseOutput {
  case: string;
  kind: string;
  files: string[];
  stored?: { status: number; instances: number };
  notes: string[];
  statistics: SegmentationResult["statistics"];
  /** false when the model found nothing: a result like any other ("no findings"), with its SEG */
  findings: boolean;
  /** how sizes should be read: mL for volumes, mm² for one image, px when the pixel size is unknown */
  sizeUnit: SegmentSize["unit"];
  triage?: SegmentationResult["triage"];
  provenance: SegmentationResult["provenance"];
}

/** A binary mask is written 0/255 so it is visible; several labels keep their values. */
function maskRaster(result: SegmentationResult): Uint8Array {
  const data = result.labelmap.data;
  const out = new Uint8Array(data.length);
  const single = result.labelmap.segments.length === 1;
  for (let i = 0; i < data.length; i++) out[i] = single ? (data[i] ? 255 : 0) : Math.min(255, data[i]);
  return out;
}

export async function writeCaseOutputs(
  c: CaseInput,
  result: SegmentationResult,
  outDir: string,
  opts: {
    segType?: SegmentationType;
    stow?: string;
    /** fixed UIDs (the batch worker derives them from study, series and model so a retry stores nothing twice) */
    uids?: { seg?: CommonOptions["uids"]; pm?: CommonOptions["uids"] };
  } = {},
): Promise<CaseOutput> {
  const files: string[] = [];
  const out: CaseOutput = {
    case: c.name,
    kind: c.kind,
    files,
    notes: c.notes,
    statistics: result.statistics,
    findings: result.statistics.some((s) => s.voxels > 0),
    sizeUnit: result.statistics[0]
      ? segmentSize(result.statistics[0], result.labelmap.geometry, spacingKnown(c)).unit
      : "voxels",
    triage: result.triage,
    provenance: result.provenance,
  };
  const dicomObjects: { id: string; bytes: Uint8Array }[] = [];
  if (c.kind === "dicom" && c.source) {
    const objects = encodeResult(result, c.source, { segType: opts.segType ?? "BINARY", uids: opts.uids });
    for (const obj of objects) {
      const name = `${c.name}_${obj.kind === "SEG" ? "seg" : "uncertainty_pm"}`;
      await writeFileAtomic(join(outDir, `${name}.dcm`), obj.bytes);
      files.push(`${name}.dcm`);
      dicomObjects.push({ id: name, bytes: obj.bytes });
    }
  } else if (c.kind === "image") {
    const [w, h] = result.labelmap.geometry.dims;
    await writeFileAtomic(join(outDir, `${c.name}_mask.png`), writePng(w, h, maskRaster(result)));
    files.push(`${c.name}_mask.png`);
  } else {
    await writeFileAtomic(
      join(outDir, `${c.name}_seg.nii.gz`),
      await writeNifti(result.labelmap.geometry, result.labelmap.data),
    );
    files.push(`${c.name}_seg.nii.gz`);
  }
  if (result.uncertainty && c.kind !== "dicom") {
    await writeFileAtomic(
      join(outDir, `${c.name}_uncertainty.nii.gz`),
      await writeNifti(result.uncertainty.geometry, result.uncertainty.data),
    );
    files.push(`${c.name}_uncertainty.nii.gz`);
  }
  if (opts.stow) {
    if (!dicomObjects.length) {
      out.notes.push("--stow applies to DICOM inputs only; nothing was stored for this case");
    } else {
      // Objects stay in <out>/outbox until the PACS confirms them (see DicomWebClient.store).
      const outbox = new FolderOutbox(join(outDir, "outbox"));
      const r = await storeWithRetention(new DicomWebClient({ baseUrl: opts.stow }), dicomObjects, outbox);
      out.stored = { status: r.status, instances: r.stored.length };
    }
  }
  return out;
}

async function main(): Promise<void> {
  const args = parseArgs(Deno.args, ["help", "no-roi"]);
  if (args.flags.has("help")) {
    console.log(USAGE);
    return;
  }
  const model = requireFlag(args, "model", USAGE);
  const input = requireFlag(args, "input", USAGE);
  const outDir = flag(args, "out") ?? "edgeseg-out";
  const unc = parseUncertainty(flag(args, "uncertainty"));
  const segType = (flag(args, "seg-type") ?? "BINARY").toUpperCase() as SegmentationType;
  if (!["BINARY", "LABELMAP", "FRACTIONAL"].includes(segType)) {
    throw new Error(`--seg-type expects BINARY, LABELMAP or FRACTIONAL, found ${segType}`);
  }
  const threads = flag(args, "threads") ? numberFlag(args, "threads", 0) : undefined;
  const { runtime } = await openModel(model, flag(args, "device"), threads, flag(args, "variant"));
  const cases = await loadInputs(input, runtime.manifest, { seriesUID: flag(args, "series") });
  const outputs: CaseOutput[] = [];
  const failed: { case: string; code: string; message: string }[] = [];
  for (const c of cases) {
    const bar = new ProgressBar(c.name);
    try {
      const result = await segment(c.volume, runtime, {
        ...unc,
        seed: flag(args, "seed") ? numberFlag(args, "seed", 0) : undefined,
        keepProbabilities: segType === "FRACTIONAL",
        onProgress: bar.update,
        roi: !args.flags.has("no-roi"),
      });
      const o = await writeCaseOutputs(c, result, outDir, { segType, stow: flag(args, "stow") });
      outputs.push(o);
      bar.done(caseSummary(c, result, o));
    } catch (e) {
      // One bad input does not cost the others their results: note it, go on, exit non-zero at the end.
      const err = e as { code?: string; message?: string };
      failed.push({ case: c.name, code: err.code ?? "FAILED", message: err.message ?? String(e) });
      bar.done(`${c.name}: failed: ${err.message ?? e}`);
    }
  }
  const report = {
    model: {
      id: runtime.manifest.id,
      version: runtime.manifest.version,
      sha256: runtime.modelSha256,
      // as eval's JSON: the variant that ran instead of the main model, and its precision
      ...(runtime.variant ? { variant: runtime.variant, precision: runtime.precision } : {}),
    },
    input,
    cases: outputs,
    failed,
  };
  await Deno.mkdir(outDir, { recursive: true });
  await writeFileAtomic(join(outDir, "report.json"), JSON.stringify(report, null, 2) + "\n");
  console.log(`wrote ${outputs.reduce((n, o) => n + o.files.length, 0) + 1} files to ${outDir}`);
  if (failed.length) {
    console.error(
      `${failed.length} of ${cases.length} inputs failed: ${
        failed.map((f) => `${f.case} (${f.code})`).join(", ")
      }`,
    );
    Deno.exit(1);
  }
}

/**
 * Whether the input states its pixel size: a DICOM image with PixelSpacing (or ImagerPixelSpacing, or
 * the multi-frame measures), a NIfTI always; a photograph never. Without it sizes are pixel counts.
 */
export function spacingKnown(c: CaseInput): boolean {
  if (c.kind === "nifti") return true;
  if (c.kind === "image") return false;
  const first = c.source?.instances[0] as Record<string, unknown> | undefined;
  return !!first &&
    (first.PixelSpacing !== undefined || first.ImagerPixelSpacing !== undefined ||
      first.SharedFunctionalGroupsSequence !== undefined);
}

/** The line printed for a finished case: sizes in mL, mm² or px as the input allows, and "no findings". */
export function caseSummary(c: CaseInput, result: SegmentationResult, o: CaseOutput): string {
  const known = spacingKnown(c);
  const sizes = result.statistics.map((s) =>
    `${s.label} ${segmentSize(s, result.labelmap.geometry, known).text}`
  );
  const findings = result.statistics.some((s) => s.voxels > 0) ? sizes.join(", ") : "no findings";
  return `${c.name}: ${findings}${result.triage ? ` · triage ${result.triage.band}` : ""} · ` +
    `${variantLabel(result.provenance) ? `${variantLabel(result.provenance)} · ` : ""}` +
    `${result.provenance.provider} · ${Math.round(result.provenance.timingsMs.total)} ms` +
    `${result.provenance.roi ? ` · ${result.provenance.roi.summary}` : ""}` +
    `${o.stored ? ` · stored ${o.stored.instances} to PACS` : ""}`;
}

if (import.meta.main) await main().catch(reportError);
