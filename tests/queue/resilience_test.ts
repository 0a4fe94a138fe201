/**
 * What the queue survives: Redis restarted (kill -9, AOF) with jobs waiting and while a worker runs;
 * the PACS down for a while (jobs retry with backoff and finish once it is back); a study the model
 * cannot take (one failed job with its reason, the rest done, and re-runnable).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type Orthanc, startOrthanc } from "../helpers/orthanc.ts";
import { type Redis, startRedis } from "../helpers/redis.ts";
import {
  countByClass,
  counts,
  MODEL,
  needsServices,
  runCli,
  SEG_CLASS,
  spawnWorker,
  waitFor,
  type WorkerProcess,
  writeBrokenStudy,
  writeStudy,
} from "./helpers.ts";

interface Env {
  tmp: string;
  redis: Redis;
  pacs: Orthanc;
  workers: WorkerProcess[];
}

async function withEnv(fn: (env: Env) => Promise<void>): Promise<void> {
  const tmp = await Deno.makeTempDir({ prefix: "edgeseg-queue-" });
  const redis = await startRedis();
  const pacs = await startOrthanc();
  const env: Env = { tmp, redis, pacs, workers: [] };
  try {
    await fn(env);
  } finally {
    for (const w of env.workers) await w.kill("SIGKILL");
    await pacs.stop();
    await redis.stop();
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

async function uploadStudies(env: Env, n: number, first = 0): Promise<string[]> {
  const uids: string[] = [];
  for (let i = first; i < first + n; i++) {
    const s = await writeStudy(env.tmp, i);
    await env.pacs.upload(s.files);
    uids.push(s.studyUID);
  }
  return uids;
}

async function enqueue(env: Env, studies: string[], extra: string[] = []): Promise<void> {
  const r = await runCli("enqueue", [
    "--redis",
    env.redis.url,
    "--model",
    MODEL,
    ...studies.flatMap((s) => ["--study", s]),
    ...extra,
  ]);
  assert.equal(r.code, 0, r.stderr);
}

const total = (c: Record<string, number>) => Object.values(c).reduce((a, b) => a + b, 0);

const opts = { ignore: needsServices(), sanitizeOps: false, sanitizeResources: false };

Deno.test({
  ...opts,
  name: "jobs survive Redis being killed and restarted, both while they wait and while a worker runs",
}, async () => {
  await withEnv(async (env) => {
    const studies = await uploadStudies(env, 4);
    await enqueue(env, studies);
    assert.equal((await counts(env.redis.url)).waiting, 4);

    // kill -9 with nothing but the AOF to recover from
    await env.redis.kill();
    await env.redis.start();
    assert.equal((await counts(env.redis.url)).waiting, 4, "all four jobs are back after the restart");

    const w = spawnWorker(env.redis.url, env.pacs.dicomWebUrl, "worker-r");
    env.workers.push(w);
    await w.waitForLine(/done seg_/, 90_000);
    await env.redis.kill();
    await env.redis.start();

    // The running worker reconnects by itself: a study queued after the restart is done too.
    await enqueue(env, await uploadStudies(env, 1, 4));
    await waitFor(
      "five completed jobs after the second restart",
      async () => (await counts(env.redis.url)).completed === 5,
      120_000,
      async () => JSON.stringify(await counts(env.redis.url)) + "\n" + w.lines.slice(-10).join("\n"),
    );
    assert.equal(total(await counts(env.redis.url)), 5);
    assert.deepEqual(await countByClass(env.pacs, SEG_CLASS), { instances: 5, series: 5 });
  });
});

Deno.test({
  ...opts,
  name: "while the PACS is down jobs wait and retry with backoff, and they finish once it is back",
}, async () => {
  await withEnv(async (env) => {
    const studies = await uploadStudies(env, 2);
    await enqueue(env, studies, ["--backoff-ms", "500", "--attempts", "30"]);
    await env.pacs.kill();

    const w = spawnWorker(env.redis.url, env.pacs.dicomWebUrl, "worker-p");
    env.workers.push(w);
    // A try fails (connection refused), and the job waits for its next one: "retrying".
    await w.waitForLine(/failed seg_\S+ \(try 1\): .*will retry/, 90_000);
    const st = await runCli("queue", ["status", "--redis", env.redis.url]);
    assert.match(st.stdout, /retrying seg|retrying \d/);
    assert.equal((await counts(env.redis.url)).completed, 0);

    await env.pacs.start();
    await waitFor(
      "both jobs completed after the PACS came back",
      async () => (await counts(env.redis.url)).completed === 2,
      120_000,
      async () => JSON.stringify(await counts(env.redis.url)) + "\n" + w.lines.slice(-10).join("\n"),
    );
    assert.equal((await counts(env.redis.url)).failed, 0);
    assert.deepEqual(await countByClass(env.pacs, SEG_CLASS), { instances: 2, series: 2 });
  });
});

Deno.test({
  ...opts,
  name:
    "a study the model cannot take fails alone with its reason, the others are done, and it can be re-run",
}, async () => {
  await withEnv(async (env) => {
    const good = await uploadStudies(env, 3);
    const broken = await writeBrokenStudy(env.tmp, 9);
    await env.pacs.upload(broken.files);
    // by QIDO query: every study in the PACS
    const r = await runCli("enqueue", [
      "--redis",
      env.redis.url,
      "--pacs",
      env.pacs.dicomWebUrl,
      "--model",
      MODEL,
      "--query",
      "PatientID=QUEUE-*",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /queued 4 of 4/);

    const w = spawnWorker(env.redis.url, env.pacs.dicomWebUrl, "worker-f");
    env.workers.push(w);
    await waitFor(
      "three done and one failed",
      async () => {
        const c = await counts(env.redis.url);
        return c.completed === 3 && c.failed === 1;
      },
      120_000,
      async () => JSON.stringify(await counts(env.redis.url)) + "\n" + w.lines.slice(-10).join("\n"),
    );
    assert.deepEqual(await countByClass(env.pacs, SEG_CLASS), { instances: 3, series: 3 });

    const st = await runCli("queue", ["status", "--redis", env.redis.url, "--json"]);
    const status = JSON.parse(st.stdout);
    assert.equal(status.failed.length, 1);
    assert.equal(status.failed[0].studyUID, broken.studyUID);
    assert.match(status.failed[0].reason, /^\[NO_MATCHING_SERIES\] .*expected a CT or MR series .*found US/);
    assert.equal(status.failed[0].attempts, 1, "a permanent error is not retried");

    const csv = join(env.tmp, "cohort.csv");
    assert.equal((await runCli("queue", ["export", "--redis", env.redis.url, "--csv", csv])).code, 0);
    const lines = (await Deno.readTextFile(csv)).trim().split("\r\n");
    assert.equal(lines.length, 5);
    assert.equal(lines.filter((l) => l.includes(",failed,")).length, 1);
    assert.ok(good.every((uid) => lines.some((l) => l.startsWith(`${uid},`) && l.includes(",stored,"))));

    // After a fix (here: none) the failed study runs again; it fails again, with the same reason.
    const retry = await runCli("queue", ["retry", "--redis", env.redis.url, "--study", broken.studyUID]);
    assert.match(retry.stdout, /moved 1 failed jobs back/);
    await w.waitForLine(/failed seg_\S+ \(try 2\)/, 60_000);
    assert.equal((await counts(env.redis.url)).failed, 1);
  });
});
