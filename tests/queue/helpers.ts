/**
 * Fixtures for the batch queue tests: small phantom studies, worker processes, state polling, and what
 * Orthanc holds. Every wait polls state (queue counts, Orthanc's index); nothing sleeps a fixed time.
 */
import { runScript, type ScriptRun } from "../helpers/cli.ts";
import { join } from "node:path";
import { PHANTOM_UID_ROOT, phantomSeries } from "../../src/dicom/phantom.ts";
import { parseDicom, writeDataset } from "../../src/dicom/mod.ts";
import { openQueue } from "../../src/queue/jobs.ts";
import { type Orthanc, orthancMissing } from "../helpers/orthanc.ts";
import { PROJECT_ROOT } from "../helpers/paths.ts";
import { redisMissing } from "../helpers/redis.ts";

export const MODEL = "tiny-2d";
export const SEG_CLASS = "1.2.840.10008.5.1.4.1.1.66.4";
export const PM_CLASS = "1.2.840.10008.5.1.4.1.1.30";

/**
 * `ignore` for tests that need redis-server and Orthanc: a reason is printed when they are missing,
 * but in CI (CI=true) a missing tool must fail the run, not skip it, so the test runs and fails.
 */
export function needsServices(): boolean {
  const missing = [redisMissing(), orthancMissing()].filter((m): m is string => m !== null);
  if (!missing.length) return false;
  if (Deno.env.get("CI") === "true") return false;
  console.warn(`skipping the queue tests: ${missing.join("; ")}`);
  return true;
}

/** A 3-slice 32×32 CT study with its own UIDs; returns the study UID and the folder of its files. */
export async function writeStudy(dir: string, index: number): Promise<{ studyUID: string; files: string[] }> {
  const ph = phantomSeries({
    slices: 3,
    size: 32,
    uidRoot: `${PHANTOM_UID_ROOT}.7${index}`,
    patientId: `QUEUE-${index}`,
    patientName: `Queue^Study${index}`,
    accessionNumber: `Q${index}`,
  });
  const files: string[] = [];
  for (const [i, f] of ph.files.entries()) {
    const path = join(dir, `s${index}-${i}.dcm`);
    await Deno.writeFile(path, f);
    files.push(path);
  }
  return { studyUID: ph.studyInstanceUID, files };
}

/** A study the CT model cannot segment: the same images, but an ultrasound modality. */
export async function writeBrokenStudy(
  dir: string,
  index: number,
): Promise<{ studyUID: string; files: string[] }> {
  const s = await writeStudy(dir, index);
  for (const path of s.files) {
    const parsed = parseDicom(await Deno.readFile(path));
    parsed.dataset.Modality = "US";
    await Deno.writeFile(path, writeDataset(parsed.dataset, parsed.transferSyntaxUID));
  }
  return s;
}

export interface WorkerProcess {
  child: Deno.ChildProcess;
  lines: string[];
  /** resolves with the first log line matching */
  waitForLine(re: RegExp, timeoutMs?: number): Promise<string>;
  kill(signal?: Deno.Signal): Promise<void>;
}

/** Starts `deno task worker` as its own process (so a test can SIGKILL it mid-job). */
export function spawnWorker(
  redisUrl: string,
  pacsUrl: string,
  name: string,
  extra: string[] = [],
): WorkerProcess {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      join(PROJECT_ROOT, "src", "cli", "worker.ts"),
      "--redis",
      redisUrl,
      "--pacs",
      pacsUrl,
      "--model",
      MODEL,
      "--name",
      name,
      // short locks so a killed worker's job comes back within seconds, not the default 30 s
      "--lock-ms",
      "4000",
      "--stalled-ms",
      "2000",
      ...extra,
    ],
    cwd: PROJECT_ROOT,
    stdout: "null",
    stderr: "piped",
    stdin: "null",
    env: { NO_COLOR: "1" },
  }).spawn();
  const lines: string[] = [];
  const waiters: { re: RegExp; resolve: (l: string) => void }[] = [];
  (async () => {
    const dec = new TextDecoder();
    let buf = "";
    for await (const chunk of child.stderr) {
      buf += dec.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        lines.push(line);
        if (Deno.env.get("EDGESEG_TEST_VERBOSE")) console.error(line);
        for (const w of [...waiters]) {
          if (w.re.test(line)) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve(line);
          }
        }
      }
    }
  })().catch(() => {});
  let exited = false;
  child.status.then(() => exited = true);
  return {
    child,
    lines,
    waitForLine(re, timeoutMs = 60_000) {
      const hit = lines.find((l) => re.test(l));
      if (hit) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () =>
            reject(
              new Error(
                `no worker line matching ${re} within ${timeoutMs} ms:\n${lines.slice(-20).join("\n")}`,
              ),
            ),
          timeoutMs,
        );
        waiters.push({ re, resolve: (l) => (clearTimeout(timer), resolve(l)) });
      });
    },
    async kill(signal: Deno.Signal = "SIGKILL") {
      if (!exited) {
        try {
          child.kill(signal);
        } catch {
          // already gone
        }
      }
      await child.status;
    },
  };
}

/** Polls `check` until it returns a truthy value; the error names what was awaited and the last value. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T>,
  timeoutMs = 120_000,
  describe?: () => Promise<string>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v) return v;
      last = v;
    } catch (e) {
      last = e instanceof Error ? e.message : e;
    }
    // polling state held by other processes (Redis, Orthanc); 200 ms keeps 2 cores for the workers
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what} (last: ${JSON.stringify(last)})${
      describe ? `\n${await describe().catch((e) => String(e))}` : ""
    }`,
  );
}

/** Job counts of the queue (a short-lived connection per call, so a Redis restart does not matter). */
export async function counts(redisUrl: string): Promise<Record<string, number>> {
  const q = openQueue(redisUrl);
  try {
    return await q.getJobCounts("waiting", "active", "delayed", "completed", "failed", "prioritized");
  } finally {
    await q.close();
  }
}

/** How many instances of a SOP class Orthanc holds, and in how many distinct series. */
export async function countByClass(
  pacs: Orthanc,
  sopClassUID: string,
): Promise<{ instances: number; series: number }> {
  const res = await fetch(`${pacs.dicomWebUrl}/instances?SOPClassUID=${sopClassUID}&includefield=0020000E`, {
    headers: { accept: "application/dicom+json" },
  });
  const list = res.status === 204 ? [] : await res.json() as Record<string, { Value?: unknown[] }>[];
  const series = new Set(list.map((d) => String(d["0020000E"]?.Value?.[0])));
  return { instances: list.length, series: series.size };
}

/** Runs a CLI (`deno task <name>`) to completion. */
export function runCli(script: string, args: string[]): Promise<ScriptRun> {
  return runScript(`src/cli/${script}.ts`, args);
}
