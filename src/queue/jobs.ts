/**
 * The batch segmentation queue on BullMQ + Redis: job data and results, how jobs are added (once per
 * study and model), listed, retried, and summed up for `deno task queue status`.
 *
 * Deno note: `import { Queue } from "bullmq"` resolves, through node_modules ("nodeModulesDir":
 * "manual"), to BullMQ's CommonJS build. That matters: BullMQ 6 loads its optional `ioredis` driver
 * lazily with `require("ioredis")`, which exists in Deno's CommonJS loader but not in an ES module,
 * where BullMQ would throw "could not load the optional 'ioredis' package". `connection()` below
 * therefore passes plain options (BullMQ builds the client); checked on Deno 2.9.6, BullMQ 6.7.6,
 * ioredis 5.
 */
import { Queue } from "bullmq";
import type { Job, JobsOptions } from "bullmq";
import { jobIdFor } from "./ids.ts";

export const QUEUE_NAME = "edgeseg-segment";

/** What a job asks for. The PACS is the worker's (`--pacs`): jobs stay valid when the PACS moves. */
export interface SegmentJobData {
  studyUID: string;
  /** one series; without it the worker takes the study's first series the model accepts */
  seriesUID?: string;
  model: string;
  /** who asked: "enqueue", "query", "orthanc", "http" … (shown by `queue status`) */
  source?: string;
  enqueuedAt?: string;
}

export interface SegmentRow {
  label: string;
  voxels: number;
  volumeMl: number;
  /** spread of the volume over stochastic passes (SD), when there were any */
  volumeSdMl?: number;
  volumeCi95Ml?: [number, number];
  meanUncertainty?: number;
}

/** What a finished job returns (kept in Redis with the job; `queue export` reads it). */
export interface SegmentJobResult {
  studyUID: string;
  seriesUID: string;
  modelId: string;
  modelVersion: string;
  /** "stored": SEG (+ PM) stored now; "already-stored": found in the PACS, nothing stored; "no-findings" */
  outcome: "stored" | "already-stored" | "no-findings";
  segments: SegmentRow[];
  triageBand?: string;
  triageReasons?: string[];
  provider: string;
  providerReason?: string;
  /** the segment() pipeline (preprocessing, model, post-processing, statistics) */
  inferenceMs: number;
  /** the whole job: QIDO, retrieve, decode, pipeline, writing, QIDO check, STOW */
  totalMs: number;
  segUID?: string;
  segSeriesUID?: string;
  pmUID?: string;
  worker: string;
  notes: string[];
}

/** Parses `redis://[:password@]host:port[/db]` into the options BullMQ passes to ioredis. */
export function connection(redisUrl: string): {
  host: string;
  port: number;
  password?: string;
  username?: string;
  db?: number;
  maxRetriesPerRequest: null;
} {
  const u = new URL(redisUrl);
  if (u.protocol !== "redis:") throw new TypeError(`expected a redis:// URL, found ${redisUrl}`);
  const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : undefined;
  return {
    host: u.hostname || "127.0.0.1",
    port: Number(u.port || 6379),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(db !== undefined && Number.isInteger(db) ? { db } : {}),
    // BullMQ's workers block on Redis; ioredis must keep retrying a command while Redis restarts
    // instead of failing it after 20 tries (BullMQ requires null here).
    maxRetriesPerRequest: null,
  };
}

export interface RetryPolicy {
  /** tries per job, the first included (default 12) */
  attempts: number;
  /** first delay between tries, doubled each time (default 5 s: 12 tries span about 3 hours) */
  backoffMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 12, backoffMs: 5000 };

export function jobOptions(data: SegmentJobData, retry: RetryPolicy = DEFAULT_RETRY): JobsOptions {
  return {
    jobId: jobIdFor(data.studyUID, data.model, data.seriesUID),
    attempts: retry.attempts,
    backoff: { type: "exponential", delay: retry.backoffMs },
    // Results and failures stay in Redis: they are the cohort table and the list of what to re-run.
    removeOnComplete: false,
    removeOnFail: false,
  };
}

export function openQueue(redisUrl: string): Queue<SegmentJobData, SegmentJobResult> {
  return new Queue<SegmentJobData, SegmentJobResult>(QUEUE_NAME, { connection: connection(redisUrl) });
}

export interface EnqueueOutcome {
  studyUID: string;
  jobId: string;
  /** false when a job for this study and model already existed (waiting, done or failed) */
  added: boolean;
  state?: string;
}

/** Adds one job per study (a study already queued, done or failed for this model is left as it is). */
export async function enqueueStudies(
  queue: Queue<SegmentJobData, SegmentJobResult>,
  items: SegmentJobData[],
  retry?: RetryPolicy,
): Promise<EnqueueOutcome[]> {
  const out: EnqueueOutcome[] = [];
  for (const item of items) {
    const opts = jobOptions(item, retry);
    const existing = await queue.getJob(opts.jobId!);
    if (existing) {
      out.push({
        studyUID: item.studyUID,
        jobId: opts.jobId!,
        added: false,
        state: await existing.getState(),
      });
      continue;
    }
    await queue.add("segment", { ...item, enqueuedAt: item.enqueuedAt ?? new Date().toISOString() }, opts);
    out.push({ studyUID: item.studyUID, jobId: opts.jobId!, added: true, state: "waiting" });
  }
  return out;
}

/** Moves failed jobs back to waiting (all, or those of the given studies); returns their ids. */
export async function retryFailed(
  queue: Queue<SegmentJobData, SegmentJobResult>,
  studies?: ReadonlySet<string>,
): Promise<string[]> {
  const failed = await allJobs(queue, "failed");
  const ids: string[] = [];
  for (const job of failed) {
    if (studies && !studies.has(job.data.studyUID)) continue;
    await job.retry("failed");
    ids.push(job.id!);
  }
  return ids;
}

type State = "waiting" | "active" | "delayed" | "completed" | "failed" | "prioritized";

/** Every job in a state, paged so a ten-thousand-study cohort is not one Redis reply. */
export async function allJobs(
  queue: Queue<SegmentJobData, SegmentJobResult>,
  state: State,
): Promise<Job<SegmentJobData, SegmentJobResult>[]> {
  const out: Job<SegmentJobData, SegmentJobResult>[] = [];
  const page = 500;
  for (let start = 0;; start += page) {
    const jobs = await queue.getJobs([state], start, start + page - 1, true);
    out.push(...jobs.filter((j): j is Job<SegmentJobData, SegmentJobResult> => Boolean(j)));
    if (jobs.length < page) return out;
  }
}

export interface QueueStatus {
  counts: { waiting: number; active: number; delayed: number; done: number; failed: number };
  /** studies per hour over the completed jobs of the last hour (or all of them, if fewer) */
  throughputPerHour: number | null;
  /** waiting + active + delayed at that throughput */
  etaSeconds: number | null;
  failed: { studyUID: string; model: string; reason: string; attempts: number; finishedAt?: string }[];
  /** jobs waiting for another try after an error that may pass (PACS down …) */
  retrying: { studyUID: string; model: string; reason: string; attempts: number }[];
  active: { studyUID: string; model: string; startedAt?: string }[];
}

/** Throughput over the finish times: (n − 1) / (last − first) over the last hour's jobs. */
export function throughputPerHour(finishedOnMs: number[], nowMs: number): number | null {
  const recent = finishedOnMs.filter((t) => nowMs - t <= 3600_000).sort((a, b) => a - b);
  const xs = recent.length >= 2 ? recent : [...finishedOnMs].sort((a, b) => a - b);
  if (xs.length < 2) return null;
  const spanMs = xs[xs.length - 1] - xs[0];
  if (spanMs <= 0) return null;
  return ((xs.length - 1) / spanMs) * 3600_000;
}

export async function queueStatus(
  queue: Queue<SegmentJobData, SegmentJobResult>,
  nowMs = Date.now(),
): Promise<QueueStatus> {
  const c = await queue.getJobCounts("waiting", "active", "delayed", "completed", "failed", "prioritized");
  const counts = {
    waiting: (c.waiting ?? 0) + (c.prioritized ?? 0),
    active: c.active ?? 0,
    delayed: c.delayed ?? 0,
    done: c.completed ?? 0,
    failed: c.failed ?? 0,
  };
  const completed = await allJobs(queue, "completed");
  const tp = throughputPerHour(completed.map((j) => j.finishedOn ?? 0).filter((t) => t > 0), nowMs);
  const left = counts.waiting + counts.active + counts.delayed;
  const iso = (t?: number) => (t ? new Date(t).toISOString() : undefined);
  return {
    counts,
    throughputPerHour: tp,
    etaSeconds: tp && left ? Math.round((left / tp) * 3600) : left ? null : 0,
    failed: (await allJobs(queue, "failed")).map((j) => ({
      studyUID: j.data.studyUID,
      model: j.data.model,
      reason: j.failedReason ?? "",
      attempts: j.attemptsMade,
      finishedAt: iso(j.finishedOn),
    })),
    retrying: (await allJobs(queue, "delayed")).map((j) => ({
      studyUID: j.data.studyUID,
      model: j.data.model,
      reason: j.failedReason ?? "",
      attempts: j.attemptsMade,
    })),
    active: (await allJobs(queue, "active")).map((j) => ({
      studyUID: j.data.studyUID,
      model: j.data.model,
      startedAt: iso(j.processedOn),
    })),
  };
}
