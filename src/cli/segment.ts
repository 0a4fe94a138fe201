/**
 * deno task segment --model <id|path> --input <DICOM folder | DICOMweb URL | NIfTI | image or folder>
 *   [--out <dir>] [--stow <DICOMweb url>] [--uncertainty none|tta|mc:N|ensemble|mc:N+tta]
 *   [--device wasm|webgpu|cpu] [--seed N] [--seg-type BINARY|LABELMAP|FRACTIONAL] [--threads N]
 *
 * Writes, per case: a DICOM SEG (+ uncertainty Parametric Map) for DICOM inputs, NIfTI or PNG masks
 * (+ float uncertainty as NIfTI) for the others, and report.json (statistics, triage, provenance).
 */
import { join } from "node:path";
import type { SegmentationResult } from "../core/types.ts";
import { DicomWebClient, storeWithRetention, writeParametricMap, writeSegmentation } from "../dicom/mod.ts";
import type { CommonOptions, ProvenanceLike, SegmentationType } from "../dicom/mod.ts";
import { FolderOutbox } from "../dicom/fs.ts";
import { writeNifti, writePng } from "../io/mod.ts";
import { segment } from "../segmentation/mod.ts";
import { flag, numberFlag, parseArgs, requireFlag } from "./args.ts";
import { openModel, parseUncertainty, reportError, UNCERTAINTY_GRAMMAR } from "./common.ts";
import { type CaseInput, loadInputs } from "./inputs.ts";
import { writeFileAtomic } from "./output.ts";
import { ProgressBar } from "./progress.ts";

const USAGE =
  `usage: deno task segment --model <id|path> --input <DICOM folder | DICOMweb study URL | NIfTI | image or folder>
  [--out <dir>] [--stow <DICOMweb url>] [--uncertainty ${UNCERTAINTY_GRAMMAR}] [--device wasm|webgpu|cpu]
  [--seed N] [--seg-type BINARY|LABELMAP|FRACTIONAL] [--threads N]`;

export interface CaseOutput {
  case: string;
  kind: string;
  files: string[];
  stored?: { status: number; instances: number };
  notes: string[];
  statistics: SegmentationResult["statistics"];
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
    triage: result.triage,
    provenance: result.provenance,
  };
  const provenance = { ...result.provenance } as ProvenanceLike;
  const dicomObjects: { id: string; bytes: Uint8Array }[] = [];
  if (c.kind === "dicom" && c.source) {
    const seg = writeSegmentation({
      source: c.source,
      labelmap: result.labelmap,
      provenance,
      options: {
        type: opts.segType ?? "BINARY",
        fractional: opts.segType === "FRACTIONAL" && result.probabilities
          ? { data: result.probabilities.data, channels: result.probabilities.channels }
          : undefined,
        seriesDescription: `EdgeSeg ${result.provenance.modelName}`,
        uids: opts.uids?.seg,
      },
    });
    await writeFileAtomic(join(outDir, `${c.name}_seg.dcm`), seg);
    files.push(`${c.name}_seg.dcm`);
    dicomObjects.push({ id: `${c.name}_seg`, bytes: seg });
    if (result.uncertainty) {
      const pm = writeParametricMap({
        source: c.source,
        map: result.uncertainty,
        provenance,
        options: { uids: opts.uids?.pm },
      });
      await writeFileAtomic(join(outDir, `${c.name}_uncertainty_pm.dcm`), pm);
      files.push(`${c.name}_uncertainty_pm.dcm`);
      dicomObjects.push({ id: `${c.name}_uncertainty_pm`, bytes: pm });
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
  const args = parseArgs(Deno.args, ["help"]);
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
  const { runtime } = await openModel(model, flag(args, "device"), threads);
  const cases = await loadInputs(input, runtime.manifest);
  const outputs: CaseOutput[] = [];
  for (const c of cases) {
    const bar = new ProgressBar(c.name);
    const result = await segment(c.volume, runtime, {
      ...unc,
      seed: flag(args, "seed") ? numberFlag(args, "seed", 0) : undefined,
      keepProbabilities: segType === "FRACTIONAL",
      onProgress: bar.update,
    });
    const o = await writeCaseOutputs(c, result, outDir, { segType, stow: flag(args, "stow") });
    outputs.push(o);
    const stats = result.statistics.map((s) => `${s.label} ${s.volumeMl.toFixed(2)} mL`).join(", ");
    bar.done(
      `${c.name}: ${stats || "no segments"}${result.triage ? ` · triage ${result.triage.band}` : ""} · ` +
        `${result.provenance.provider} · ${
          Math.round(Object.values(result.provenance.timingsMs).reduce((a, b) => a + b, 0))
        } ms` +
        `${o.stored ? ` · stored ${o.stored.instances} to PACS` : ""}`,
    );
  }
  const report = {
    model: { id: runtime.manifest.id, version: runtime.manifest.version, sha256: runtime.modelSha256 },
    input,
    cases: outputs,
  };
  await writeFileAtomic(join(outDir, "report.json"), JSON.stringify(report, null, 2) + "\n");
  console.log(`wrote ${outputs.reduce((n, o) => n + o.files.length, 0) + 1} files to ${outDir}`);
}

if (import.meta.main) await main().catch(reportError);
