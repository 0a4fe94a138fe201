/**
 * deno task worker --redis <redis://host:port> --pacs <DICOMweb url> [--model <id|path>]…
 *   [--concurrency N] [--device auto|cpu|wasm] [--threads N] [--uncertainty auto|none|tta|mc:N|…]
 *   [--lock-ms 30000] [--stalled-ms 30000] [--name NAME]
 *
 * Takes segmentation jobs from the shared BullMQ queue (any number of workers on any number of
 * machines), runs the `segment` pipeline on each study and stores SEG + uncertainty Parametric Map to
 * the PACS. Native onnxruntime-node where it loads, WASM otherwise (`--device auto`); the provider
 * used is in every result. SIGTERM / SIGINT finish the jobs in hand, then exit; a worker that dies
 * (SIGKILL, power) loses nothing: its job's lock lapses after --lock-ms and another worker takes it.
 */
import { hostname } from "node:os";
import { join } from "node:path";
import { Worker } from "bullmq";
import { InputError } from "../core/errors.ts";
import type { ExecutionProvider } from "../core/types.ts";
import { loadModel } from "../inference/deno.ts";
import type { OrtModelRuntime } from "../inference/runtime.ts";
import { connection, QUEUE_NAME } from "../queue/jobs.ts";
import type { SegmentJobData, SegmentJobResult } from "../queue/jobs.ts";
import { createProcessor } from "../queue/process.ts";
import { formatVolumeMl } from "../segmentation/mod.ts";
import { flag, numberFlag, parseArgs, requireFlag } from "./args.ts";
import { parseUncertainty, reportError, UNCERTAINTY_GRAMMAR } from "./common.ts";
import { PROJECT_ROOT } from "../inference/deno.ts";

const USAGE = `usage: deno task worker --redis <redis://host:port> --pacs <DICOMweb url> [--model <id|path>]…
  [--concurrency N] [--device auto|cpu|wasm] [--threads N] [--uncertainty auto|${UNCERTAINTY_GRAMMAR}]
  [--lock-ms 30000] [--stalled-ms 30000] [--name NAME]`;

function providers(device: string | undefined): ExecutionProvider[] {
  switch (device ?? "auto") {
    case "auto":
      return ["cpu", "wasm"];
    case "cpu":
    case "native":
      return ["cpu"];
    case "wasm":
      return ["wasm"];
    default:
      throw new InputError(
        "BAD_DEVICE",
        `--device expects auto, cpu or wasm, found ${JSON.stringify(device)}`,
      );
  }
}

async function main(): Promise<void> {
  const args = parseArgs(Deno.args, ["help"]);
  if (args.flags.has("help")) {
    console.log(USAGE);
    return;
  }
  const redisUrl = requireFlag(args, "redis", USAGE);
  const pacsUrl = requireFlag(args, "pacs", USAGE);
  const concurrency = numberFlag(args, "concurrency", 1);
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new InputError("BAD_CONCURRENCY", `--concurrency expects a positive integer, found ${concurrency}`);
  }
  const lockMs = numberFlag(args, "lock-ms", 30_000);
  const stalledMs = numberFlag(args, "stalled-ms", lockMs);
  const threads = flag(args, "threads") ? numberFlag(args, "threads", 1) : undefined;
  const unc = flag(args, "uncertainty");
  const uncertainty = !unc || unc === "auto" ? "auto" as const : parseUncertainty(unc);
  const name = flag(args, "name") ?? `${hostname()}-${Deno.pid}`;
  const log = (line: string) => console.error(`[worker ${name}] ${line}`);
  const workDir = join(PROJECT_ROOT, ".edgeseg", "worker");
  await Deno.mkdir(workDir, { recursive: true });

  const runtimes = new Map<string, Promise<OrtModelRuntime>>();
  const loadRuntime = (model: string) => {
    let r = runtimes.get(model);
    if (!r) {
      r = loadModel(model, {
        providers: providers(flag(args, "device")),
        ...(threads ? { numThreads: threads } : {}),
      })
        .then(({ runtime }) => {
          log(
            `model ${runtime.manifest.id} ${runtime.manifest.version} on ${runtime.provider}${
              runtime.fallbackReasons.length ? ` (${runtime.fallbackReasons.join("; ")})` : ""
            }`,
          );
          return runtime;
        });
      r.catch(() => runtimes.delete(model));
      runtimes.set(model, r);
    }
    return r;
  };
  // Load the named models before taking a job, so a wrong --model fails here and not per study.
  for (const m of args.flags.get("model") ?? []) await loadRuntime(m);

  const processJob = createProcessor({ pacsUrl, loadRuntime, uncertainty, workerName: name, workDir, log });
  const worker = new Worker<SegmentJobData, SegmentJobResult>(
    QUEUE_NAME,
    async (job) => {
      log(`start ${job.id} study ${job.data.studyUID} (try ${job.attemptsMade + 1})`);
      return await processJob(job.data);
    },
    {
      connection: connection(redisUrl),
      concurrency,
      // A killed worker's job returns to the queue once its lock lapses (checked every stalledMs).
      lockDuration: lockMs,
      stalledInterval: stalledMs,
      maxStalledCount: 3,
      autorun: false,
    },
  );
  worker.on("completed", (job, r) =>
    log(
      `done ${job.id}: ${r.outcome}, ${
        r.segments.map((s) => `${s.label} ${formatVolumeMl(s.volumeMl)}`).join(", ")
      }` +
        ` · ${r.triageBand ?? "-"} · ${r.provider} · ${Math.round(r.totalMs)} ms`,
    ));
  worker.on(
    "failed",
    (job, err) =>
      log(
        `failed ${job?.id} (try ${job?.attemptsMade}): ${err.message}${
          job && job.opts.attempts && job.attemptsMade < job.opts.attempts &&
            err.name !== "UnrecoverableError"
            ? " — will retry"
            : ""
        }`,
      ),
  );
  worker.on("error", (err) => log(`queue error: ${err.message}`));

  let closing = false;
  const shutdown = async (sig: string) => {
    if (closing) return;
    closing = true;
    log(`${sig}: finishing the jobs in hand, then exiting`);
    await worker.close();
    for (const r of runtimes.values()) await (await r.catch(() => undefined))?.release();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", () => shutdown("SIGTERM"));
  Deno.addSignalListener("SIGINT", () => shutdown("SIGINT"));
  log(
    `ready: queue ${QUEUE_NAME} on ${
      redisUrl.replace(/\/\/[^@]*@/, "//***@")
    }, PACS ${pacsUrl}, concurrency ${concurrency}`,
  );
  await worker.run();
}

if (import.meta.main) await main().catch(reportError);
