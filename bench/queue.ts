/**
 * Batch throughput: N copies of a study in a private Orthanc, a private Redis, 1 and then 2 worker
 * processes; studies/hour from the first job taken to the last job done (worker start-up excluded and
 * reported apart), peak RSS per worker, and CPU seconds of workers, Orthanc and Redis (what saturates).
 *
 *   deno run -A bench/queue.ts [--model tiny-2d] [--studies 12] [--slices 8] [--size 64]
 *     [--workers 1,2] [--device auto|cpu|wasm] [--uncertainty auto|none|…] [--ct <DICOM folder>]
 *
 * `--ct` uses the series in that folder (copied under new study UIDs) instead of the phantom.
 * Results go to stdout as one JSON object per configuration and a table.
 */
import { join } from "node:path";
import { PHANTOM_UID_ROOT, phantomSeries } from "../src/dicom/phantom.ts";
import { parseDicom, writeDataset } from "../src/dicom/mod.ts";
import { enqueueStudies, openQueue } from "../src/queue/jobs.ts";
import { flag, parseArgs } from "../src/cli/args.ts";
import { startOrthanc } from "../tests/helpers/orthanc.ts";
import { startRedis } from "../tests/helpers/redis.ts";
import { spawnWorker, waitFor } from "../tests/queue/helpers.ts";

const args = parseArgs(Deno.args);
const model = flag(args, "model") ?? "tiny-2d";
const nStudies = Number(flag(args, "studies") ?? 12);
const slices = Number(flag(args, "slices") ?? 8);
const size = Number(flag(args, "size") ?? 64);
const workerCounts = (flag(args, "workers") ?? "1,2").split(",").map(Number);
const device = flag(args, "device") ?? "auto";
const uncertainty = flag(args, "uncertainty") ?? "auto";
const ct = flag(args, "ct");

/** utime + stime of a process in seconds (Linux /proc; clock ticks are 100 Hz on Debian). */
async function cpuSeconds(pid: number): Promise<number> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return NaN;
  }
}

async function peakRssMb(pid: number): Promise<number> {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(await Deno.readTextFile(`/proc/${pid}/status`));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

async function pidOfPort(port: number): Promise<number | undefined> {
  const out = await new Deno.Command("ss", { args: ["-ltnpH", `sport = :${port}`], stdout: "piped" }).output();
  const m = /pid=(\d+)/.exec(new TextDecoder().decode(out.stdout));
  return m ? Number(m[1]) : undefined;
}

/** The study files for copy i: the phantom, or the --ct series with new UIDs. */
async function studyFiles(dir: string, i: number, ctFiles: Uint8Array[] | null): Promise<string[]> {
  const paths: string[] = [];
  if (!ctFiles) {
    const ph = phantomSeries({ slices, size, uidRoot: `${PHANTOM_UID_ROOT}.8${i}`, patientId: `BENCH-${i}` });
    for (const [k, f] of ph.files.entries()) {
      paths.push(join(dir, `b${i}-${k}.dcm`));
      await Deno.writeFile(paths[k], f);
    }
    return paths;
  }
  const root = `${PHANTOM_UID_ROOT}.9${i}`;
  for (const [k, bytes] of ctFiles.entries()) {
    const p = parseDicom(bytes);
    p.dataset.StudyInstanceUID = `${root}.1`;
    p.dataset.SeriesInstanceUID = `${root}.2`;
    p.dataset.SOPInstanceUID = `${root}.3.${k + 1}`;
    p.dataset.PatientID = `BENCH-${i}`;
    paths.push(join(dir, `c${i}-${k}.dcm`));
    await Deno.writeFile(paths[k], writeDataset(p.dataset, p.transferSyntaxUID));
  }
  return paths;
}

const ctFiles = ct
  ? await Promise.all([...Deno.readDirSync(ct)].filter((e) => e.isFile).map((e) => Deno.readFile(join(ct, e.name))))
  : null;
const results = [];
for (const nWorkers of workerCounts) {
  const tmp = await Deno.makeTempDir({ prefix: "edgeseg-bench-" });
  const redis = await startRedis();
  const pacs = await startOrthanc();
  const workers: ReturnType<typeof spawnWorker>[] = [];
  try {
    const uids: string[] = [];
    for (let i = 0; i < nStudies; i++) {
      const files = await studyFiles(tmp, i, ctFiles);
      await pacs.upload(files);
      uids.push(ct ? `${PHANTOM_UID_ROOT}.9${i}.1` : `${PHANTOM_UID_ROOT}.8${i}.1`);
    }
    const t0 = performance.now();
    for (let w = 0; w < nWorkers; w++) {
      workers.push(
        spawnWorker(redis.url, pacs.dicomWebUrl, `bench-${w}`, [
          "--device",
          device,
          "--uncertainty",
          uncertainty,
          "--model",
          model,
          // the production defaults, not the tests' short locks
          "--lock-ms",
          "30000",
          "--stalled-ms",
          "30000",
        ]),
      );
    }
    await Promise.all(workers.map((w) => w.waitForLine(/ready: queue/, 300_000)));
    const startupS = (performance.now() - t0) / 1000;
    const orthancPid = await pidOfPort(pacs.httpPort);
    const redisPid = await pidOfPort(redis.port);
    const cpu0 = {
      workers: await Promise.all(workers.map((w) => cpuSeconds(w.child.pid))),
      orthanc: orthancPid ? await cpuSeconds(orthancPid) : NaN,
      redis: redisPid ? await cpuSeconds(redisPid) : NaN,
    };
    const q = openQueue(redis.url);
    const t1 = performance.now();
    await enqueueStudies(q, uids.map((studyUID) => ({ studyUID, model, source: "bench" })));
    await waitFor("all jobs done", async () => {
      const c = await q.getJobCounts("completed", "failed");
      return (c.completed ?? 0) + (c.failed ?? 0) === nStudies;
    }, 3600_000);
    const wallS = (performance.now() - t1) / 1000;
    const done = await q.getJobs(["completed"]);
    const failed = (await q.getJobCounts("failed")).failed ?? 0;
    await q.close();
    const providers = [...new Set(done.map((j) => j.returnvalue?.provider))];
    const inferMs = done.map((j) => j.returnvalue?.inferenceMs ?? 0);
    const totalMs = done.map((j) => j.returnvalue?.totalMs ?? 0);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
    const r = {
      model,
      study: ct ? `${ctFiles!.length} slices from ${ct.split("/").slice(-3).join("/")}` : `phantom ${slices}×${size}²`,
      workers: nWorkers,
      device,
      uncertainty,
      providers,
      studies: nStudies,
      failed,
      wallS: Number(wallS.toFixed(1)),
      studiesPerHour: Math.round((done.length / wallS) * 3600),
      meanJobS: Number((mean(totalMs) / 1000).toFixed(2)),
      meanInferenceS: Number((mean(inferMs) / 1000).toFixed(2)),
      workerStartupS: Number(startupS.toFixed(1)),
      peakRssMbPerWorker: await Promise.all(workers.map(async (w) => Math.round(await peakRssMb(w.child.pid)))),
      cpuS: {
        workers: Number(
          (await Promise.all(workers.map((w, i) => cpuSeconds(w.child.pid).then((c) => c - cpu0.workers[i]))))
            .reduce((a, b) => a + b, 0).toFixed(1),
        ),
        orthanc: Number(((orthancPid ? await cpuSeconds(orthancPid) : NaN) - cpu0.orthanc).toFixed(1)),
        redis: Number(((redisPid ? await cpuSeconds(redisPid) : NaN) - cpu0.redis).toFixed(2)),
      },
      /** job starts beyond one per study: stalled jobs taken over (should be 0) */
      restarts: workers.reduce((n, w) => n + w.lines.filter((l) => / start seg_/.test(l)).length, 0) - nStudies,
      loadAverage: (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" "),
    };
    results.push(r);
    console.log(JSON.stringify(r));
  } finally {
    for (const w of workers) await w.kill("SIGTERM");
    await pacs.stop();
    await redis.stop();
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}
console.log("\n| workers | provider | studies/h | mean job s | inference s | peak RSS MB/worker | CPU s workers/Orthanc/Redis | load |");
console.log("|---|---|---|---|---|---|---|---|");
for (const r of results) {
  console.log(
    `| ${r.workers} | ${r.providers.join(",")} | ${r.studiesPerHour} | ${r.meanJobS} | ${r.meanInferenceS} | ${
      r.peakRssMbPerWorker.join(", ")
    } | ${r.cpuS.workers} / ${r.cpuS.orthanc} / ${r.cpuS.redis} | ${r.loadAverage} |`,
  );
}
