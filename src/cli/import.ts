/**
 * `deno task import <folder> [--data .edgeseg/data]`: loads a folder of DICOM files into the embedded
 * store, recursively. Non-DICOM files are skipped and counted. Each instance goes through the same
 * validate → stage → fsync → rename path as STOW-RS, so an interrupted import never leaves a
 * half-written instance. When a server is running on the data dir (it leaves `server.json` there), the
 * files are STOWed through it instead, so the running viewer sees the new studies at once; a marker
 * left by a server that no longer answers is ignored.
 */
import { join, relative, resolve } from "node:path";
import { InputError } from "../core/errors.ts";
import { DicomStore, type ValidatedInstance } from "../server/store.ts";
import { hasPart10Header } from "../server/dicomfile.ts";
import { PROJECT_ROOT } from "../server/ohif.ts";
import { SERVER_MARKER } from "../server/mod.ts";
import { DicomWebClient } from "../dicom/web.ts";
import { flag, parseArgs } from "./args.ts";

const USAGE = "usage: deno task import <folder> [--data DIR]";

export interface ImportSummary {
  files: number;
  imported: number;
  /** files that are not DICOM Part-10 (by header) */
  skippedNonDicom: number;
  /** files with a DICOM header that could not be stored, with the reason */
  failed: { path: string; reason: string }[];
  studies: number;
  series: number;
}

function emptySummary(): ImportSummary {
  return { files: 0, imported: 0, skippedNonDicom: 0, failed: [], studies: 0, series: 0 };
}

async function* walkFiles(dir: string): AsyncGenerator<string> {
  const entries = await Array.fromAsync(Deno.readDir(dir));
  entries.sort((a, b) => a.name.localeCompare(b.name));
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory) yield* walkFiles(p);
    else if (e.isFile) yield p;
  }
}

/** The URL of a server running on `dataDir` that answers, or undefined. */
export async function runningServer(dataDir: string): Promise<string | undefined> {
  let url: string;
  try {
    url = JSON.parse(await Deno.readTextFile(join(dataDir, SERVER_MARKER))).url;
    if (typeof url !== "string") return undefined;
  } catch {
    return undefined;
  }
  try {
    const res = await fetch(new URL("dicom-web/studies?limit=1", url), { signal: AbortSignal.timeout(3000) });
    await res.body?.cancel();
    return res.ok ? url : undefined;
  } catch {
    return undefined; // a marker left by a server that was killed
  }
}

/** Every file under `folder`, read, with whether it is a DICOM Part-10 file; counts go to `summary`. */
async function* dicomFiles(
  folder: string,
  summary: ImportSummary,
): AsyncGenerator<{ path: string; bytes: Uint8Array }> {
  for await (const path of walkFiles(folder)) {
    summary.files++;
    const bytes = await Deno.readFile(path);
    if (!hasPart10Header(bytes)) {
      summary.skippedNonDicom++;
      continue;
    }
    yield { path, bytes };
  }
}

/** Imports every DICOM file under `folder` through a running server's STOW-RS, in batches. */
async function importThroughServer(
  folder: string,
  serverUrl: string,
  onProgress?: (done: number, path: string) => void,
): Promise<ImportSummary> {
  const client = new DicomWebClient({ baseUrl: new URL("dicom-web", serverUrl).href });
  const summary = emptySummary();
  const studies = new Set<string>(), series = new Set<string>();
  let batch: { path: string; bytes: Uint8Array }[] = [];
  const flush = async () => {
    if (!batch.length) return;
    const r = await client.store(batch.map((b) => b.bytes));
    summary.imported += r.stored.length;
    for (const st of r.stored) {
      // RetrieveURL: …/studies/{study}/series/{series}/instances/{sop}
      const m = /\/studies\/([^/]+)\/series\/([^/]+)\//.exec(st.retrieveURL ?? "");
      if (m) {
        studies.add(m[1]);
        series.add(m[2]);
      }
    }
    for (const f of r.failed) {
      summary.failed.push({ path: String(f.sopInstanceUID ?? "?"), reason: String(f.reason ?? "") });
    }
    batch = [];
  };
  for await (const file of dicomFiles(folder, summary)) {
    batch.push(file);
    if (batch.length >= 16) await flush();
    onProgress?.(summary.files, file.path);
  }
  await flush();
  summary.studies = studies.size;
  summary.series = series.size;
  return summary;
}

/** Imports every DICOM file under `folder` into the store in `dataDir`. */
export async function importFolder(
  folder: string,
  dataDir: string,
  onProgress?: (done: number, path: string) => void,
): Promise<ImportSummary> {
  const stat = await Deno.stat(folder).catch(() => null);
  if (!stat?.isDirectory) {
    throw new InputError(
      "NOT_A_FOLDER",
      `expected a folder to import, found ${stat ? "a file" : "nothing"} at ${folder}`,
    );
  }
  const server = await runningServer(dataDir);
  if (server) return importThroughServer(folder, server, onProgress);
  const store = await DicomStore.open(dataDir);
  const summary = emptySummary();
  const studies = new Set<string>(), series = new Set<string>();
  let batch: ValidatedInstance[] = [];
  const flush = async () => {
    for (const rec of await store.commit(batch)) {
      summary.imported++;
      studies.add(rec.studyInstanceUID);
      series.add(rec.seriesInstanceUID);
    }
    batch = [];
  };
  for await (const { path, bytes } of dicomFiles(folder, summary)) {
    try {
      batch.push(await store.validate({ bytes }));
    } catch (e) {
      if (!(e instanceof InputError)) throw e;
      summary.failed.push({ path: relative(folder, path), reason: e.message });
    }
    // Commit in batches: each file is still renamed into place atomically; the index is written once per batch.
    if (batch.length >= 32) await flush();
    onProgress?.(summary.files, path);
  }
  await flush();
  summary.studies = studies.size;
  summary.series = series.size;
  return summary;
}

if (import.meta.main) {
  try {
    const args = parseArgs(Deno.args);
    const folder = args.positional[0];
    if (!folder) throw new InputError("ARG_REQUIRED", `a folder to import is required\n${USAGE}`);
    const dataDir = resolve(flag(args, "data") ?? join(PROJECT_ROOT, ".edgeseg", "data"));
    const t = performance.now();
    const s = await importFolder(resolve(folder), dataDir, (n) => {
      if (n % 50 === 0) console.error(`  … ${n} files`);
    });
    console.log(
      `imported ${s.imported} instance(s) (${s.studies} stud${
        s.studies === 1 ? "y" : "ies"
      }, ${s.series} series) ` +
        `from ${s.files} file(s) in ${((performance.now() - t) / 1000).toFixed(1)} s into ${dataDir}`,
    );
    console.log(`skipped ${s.skippedNonDicom} non-DICOM file(s)`);
    if (s.failed.length) {
      console.log(`failed ${s.failed.length} DICOM file(s):`);
      for (const f of s.failed) console.log(`  ${f.path}: ${f.reason}`);
      Deno.exitCode = 1;
    }
  } catch (e) {
    console.error(e instanceof InputError ? `error: ${e.message}` : e);
    Deno.exit(2);
  }
}
