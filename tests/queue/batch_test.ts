/**
 * Batch segmentation end to end on a real Redis and a real Orthanc: the Orthanc Lua hook enqueues
 * new studies through the edge server's enqueue endpoint, separate worker processes segment them and
 * store SEG + Parametric Map, and the PACS ends with exactly one result per study although a worker
 * was killed mid-job.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { openQueue } from "../../src/queue/jobs.ts";
import { createEnqueueEndpoint } from "../../src/server/enqueue.ts";
import { startServer } from "../../src/server/mod.ts";
import { startOrthanc } from "../helpers/orthanc.ts";
import { PROJECT_ROOT } from "../helpers/paths.ts";
import { startRedis } from "../helpers/redis.ts";
import {
  countByClass,
  counts,
  MODEL,
  needsServices,
  PM_CLASS,
  runCli,
  SEG_CLASS,
  spawnWorker,
  waitFor,
  writeStudy,
} from "./helpers.ts";

const TOKEN = "test-enqueue-token-0123456789";

Deno.test({
  name:
    "ten studies arriving in Orthanc are queued by the Lua hook, two workers segment them, one is killed mid-job, and Orthanc ends with exactly ten SEGs and ten PMs",
  ignore: needsServices(),
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const tmp = await Deno.makeTempDir({ prefix: "edgeseg-batch-" });
  const redis = await startRedis();
  const endpoint = createEnqueueEndpoint({ token: TOKEN, redisUrl: redis.url, defaultModel: MODEL });
  const edge = await startServer({ port: 0, dataDir: join(tmp, "edge"), seed: false, enqueue: endpoint });
  const settings = join(tmp, "edgeseg-settings.lua");
  await Deno.writeTextFile(
    settings,
    [
      `EDGESEG_ENQUEUE_URL = "${new URL("edgeseg/enqueue", edge.url).href}"`,
      `EDGESEG_ENQUEUE_TOKEN = "${TOKEN}"`,
      `EDGESEG_ENQUEUE_MODEL = "${MODEL}"`,
      `EDGESEG_MODALITIES = "CT,MR"`,
    ].join("\n") + "\n",
  );
  const pacs = await startOrthanc({
    config: {
      LuaScripts: [settings, join(PROJECT_ROOT, "deploy", "orthanc", "edgeseg-enqueue.lua")],
      StableAge: 1,
    },
  });
  const workers: ReturnType<typeof spawnWorker>[] = [];
  try {
    const studies: string[] = [];
    for (let i = 0; i < 10; i++) {
      const s = await writeStudy(tmp, i);
      studies.push(s.studyUID);
      await pacs.upload(s.files);
    }
    // The hook fires once a study has been quiet for StableAge seconds.
    await waitFor("the Lua hook to queue ten studies", async () => {
      const c = await counts(redis.url);
      return Object.values(c).reduce((a, b) => a + b, 0) === 10;
    });

    const a = spawnWorker(redis.url, pacs.dicomWebUrl, "worker-a");
    const b = spawnWorker(redis.url, pacs.dicomWebUrl, "worker-b");
    workers.push(a, b);
    const started = await a.waitForLine(/start seg_\S+/);
    const killedJob = /start (seg_\S+)/.exec(started)![1];
    await a.kill("SIGKILL");

    await waitFor(
      "ten completed jobs",
      async () => (await counts(redis.url)).completed === 10,
      180_000,
      async () => JSON.stringify(await counts(redis.url)) + "\n" + b.lines.slice(-15).join("\n"),
    );
    const c = await counts(redis.url);
    assert.equal(c.failed, 0);

    // The job worker-a held when it died was taken over by worker-b once its lock lapsed.
    const q = openQueue(redis.url);
    try {
      const job = await q.getJob(killedJob);
      assert.ok(job?.returnvalue, `job ${killedJob} has a result`);
      assert.equal(job.returnvalue.worker, "worker-b");
      assert.equal(job.returnvalue.provider === "cpu" || job.returnvalue.provider === "wasm", true);
    } finally {
      await q.close();
    }

    const seg = await countByClass(pacs, SEG_CLASS);
    const pm = await countByClass(pacs, PM_CLASS);
    assert.deepEqual(seg, { instances: 10, series: 10 });
    assert.deepEqual(pm, { instances: 10, series: 10 });

    // Our SEG and PM made each study change again, so the hook fired again: nothing was queued twice.
    const total = Object.values(await counts(redis.url)).reduce((x, y) => x + y, 0);
    assert.equal(total, 10);

    const csv = join(tmp, "cohort.csv");
    const json = join(tmp, "cohort.json");
    const exp = await runCli("queue", ["export", "--redis", redis.url, "--csv", csv, "--json", json]);
    assert.equal(exp.code, 0, exp.stderr);
    const lines = (await Deno.readTextFile(csv)).trim().split("\r\n");
    assert.equal(lines.length, 11, lines.join("\n"));
    assert.match(lines[0], /^study_uid,series_uid,model,model_version,status,.*Bright tissue volume_ml/);
    const rows = JSON.parse(await Deno.readTextFile(json)).rows as {
      studyUID: string;
      segUID: string;
      status: string;
    }[];
    assert.deepEqual(rows.map((r) => r.studyUID).sort(), [...studies].sort());
    assert.ok(rows.every((r) => r.segUID.startsWith("2.25.") && r.status !== "failed"));

    const st = await runCli("queue", ["status", "--redis", redis.url]);
    assert.equal(st.code, 0, st.stderr);
    assert.match(st.stdout, /waiting 0 · active 0 · retrying 0 · done 10 · failed 0/);
    assert.match(st.stdout, /throughput [\d.]+ studies\/h · ETA nothing left/);

    // Enqueueing the same cohort again by QIDO query adds nothing.
    const again = await runCli("enqueue", [
      "--redis",
      redis.url,
      "--pacs",
      pacs.dicomWebUrl,
      "--model",
      MODEL,
      "--query",
      "ModalitiesInStudy=CT",
    ]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /10 studies match/);
    assert.match(again.stderr, /queued 0 of 10 studies/);
  } finally {
    for (const w of workers) await w.kill("SIGKILL");
    await pacs.stop();
    await edge.close();
    await endpoint.close();
    await redis.stop();
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
});
