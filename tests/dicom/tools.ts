/**
 * Test helpers for the DICOM suite: where the shared data sets are, external validators (dciodvfy,
 * pydicom under the Debian Python) with skip messages when absent, and common fixtures.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { SegmentDescription } from "../../src/core/types.ts";
import { missingAmong, PYTHON } from "../helpers/tools.ts";

export const projectRoot = fileURLToPath(new URL("../../", import.meta.url));
export const dataRoot = fileURLToPath(new URL("../../../shared/data/dicom/", import.meta.url));
export const artifacts = `${projectRoot}artifacts/dicom/`;
Deno.mkdirSync(artifacts, { recursive: true });

export function haveData(rel: string): boolean {
  const ok = existsSync(dataRoot + rel);
  if (!ok) console.log(`skip: ../shared/data/dicom/${rel} is absent`);
  return ok;
}

export { PYTHON };

/**
 * The validators this suite checks writer output with: dciodvfy (dicom3tools) and pydicom. Without
 * them a test that needs them is skipped and counted as skipped; under CI it fails
 * (tests/helpers/tools.ts).
 */
const validatorsMissing = missingAmong(["dciodvfy", "pydicom"]);

type TestFn = () => void | Promise<void>;

/** `Deno.test` for a test that validates with dciodvfy and pydicom: it never passes without them. */
export function conformanceTest(
  def: string | { name: string; ignore?: boolean; fn: TestFn },
  fn?: TestFn,
): void {
  const d = typeof def === "string" ? { name: def, fn: fn! } : def;
  Deno.test({ ...d, ignore: Boolean(d.ignore) || validatorsMissing !== null });
}

export interface Dciodvfy {
  errors: string[];
  warnings: string[];
}

/** Runs dciodvfy; errors are lines starting "Error" (and tag-prefixed "- Error -" lines). */
export function dciodvfy(path: string): Dciodvfy {
  const out = new Deno.Command("dciodvfy", { args: [path], stdout: "piped", stderr: "piped" }).outputSync();
  const lines = new TextDecoder().decode(out.stderr).split("\n").concat(
    new TextDecoder().decode(out.stdout).split("\n"),
  );
  return {
    errors: lines.filter((l) => /^Error/.test(l) || / - Error - /.test(l)),
    warnings: lines.filter((l) => /^Warning/.test(l) || / - Warning - /.test(l)),
  };
}

/** dcentvfy across files of one study: lines saying an attribute differs or is missing between them. */
export function dcentvfy(paths: string[]): string[] {
  const out = new Deno.Command("dcentvfy", { args: paths, stdout: "piped", stderr: "piped" }).outputSync();
  return (new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout)).split("\n").filter((
    l,
  ) => /^(Error|Warning)/.test(l));
}

export interface PydicomSummary {
  sop: string;
  type?: string;
  bits: number;
  shape: number[];
  /** non-zero pixels per frame */
  nonzero: number[];
  sum: number;
  /** ReferencedSegmentNumber per frame (BINARY/FRACTIONAL) */
  segment: number[];
  /** ImagePositionPatient per frame */
  ipp: number[][];
  /** source SOP Instance UID per frame */
  ref: string[];
  values?: Record<string, number>;
}

const SUMMARY_PY = `
import sys, json, pydicom, numpy as np
ds = pydicom.dcmread(sys.argv[1])
arr = ds.pixel_array if 'PixelData' in ds else np.frombuffer(ds.FloatPixelData, dtype='<f4').reshape(int(ds.get('NumberOfFrames', 1)), ds.Rows, ds.Columns)
n = int(ds.get('NumberOfFrames', 1))
arr = arr.reshape(n, ds.Rows, ds.Columns)
pf = ds.get('PerFrameFunctionalGroupsSequence', [])
seg = [int(f.SegmentIdentificationSequence[0].ReferencedSegmentNumber) if 'SegmentIdentificationSequence' in f else 0 for f in pf]
ipp = [[float(x) for x in f.PlanePositionSequence[0].ImagePositionPatient] for f in pf]
ref = [str(f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID) for f in pf]
out = dict(sop=str(ds.SOPClassUID), type=str(ds.get('SegmentationType', '')), bits=int(ds.BitsAllocated), shape=list(arr.shape),
  nonzero=[int(np.count_nonzero(a)) for a in arr], sum=float(arr.astype(np.float64).sum()), segment=seg, ipp=ipp, ref=ref)
if arr.dtype.kind in 'ui' and ds.BitsAllocated > 1:
  u, c = np.unique(arr, return_counts=True)
  out['values'] = {str(int(a)): int(b) for a, b in zip(u, c)}
print(json.dumps(out))
`;

/** pydicom's view of a file: frames, non-zero counts, segment refs, positions. */
export function pydicomSummary(path: string): PydicomSummary {
  const out = new Deno.Command(PYTHON, { args: ["-c", SUMMARY_PY, path], stdout: "piped", stderr: "piped" })
    .outputSync();
  if (!out.success) throw new Error(`pydicom failed on ${path}: ${new TextDecoder().decode(out.stderr)}`);
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

export function listDicom(rel: string): Uint8Array[] {
  const dir = dataRoot + rel;
  return [...Deno.readDirSync(dir)].filter((e) => e.isFile && e.name.endsWith(".dcm")).map((e) => e.name)
    .sort()
    .map((n) => Deno.readFileSync(`${dir}/${n}`));
}

export const SCT = (value: string, meaning: string) => ({ value, scheme: "SCT", meaning });
export const anatomical = SCT("91723000", "Anatomical structure");

export function segment(
  number: number,
  label: string,
  type = SCT("85756007", "Tissue"),
  color: [number, number, number] = [200, 80, 60],
): SegmentDescription {
  return {
    number,
    label,
    category: anatomical,
    type,
    color,
    algorithmType: "AUTOMATIC",
    algorithmName: "EdgeSeg test model",
    algorithmVersion: "1.2.3",
  };
}

export const provenance = {
  modelId: "test-model",
  modelName: "EdgeSeg test model",
  modelVersion: "1.2.3",
  modelSha256: "ab".repeat(32),
};
