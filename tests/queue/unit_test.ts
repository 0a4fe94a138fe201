/** The queue's pure parts: derived UIDs, job ids, the cohort CSV, throughput, enqueue request bodies. */
import assert from "node:assert/strict";
import { cohortCsv, rowFromFailure, rowFromResult } from "../../src/queue/export.ts";
import { derivedUid, jobIdFor, resultUids } from "../../src/queue/ids.ts";
import { connection, throughputPerHour } from "../../src/queue/jobs.ts";
import type { SegmentJobResult } from "../../src/queue/jobs.ts";
import { failureReason, isTransient } from "../../src/queue/process.ts";
import { DicomWebError, InputError } from "../../src/core/errors.ts";
import { createEnqueueEndpoint, parseEnqueueBody } from "../../src/server/enqueue.ts";
import { startServer } from "../../src/server/mod.ts";

const KEY = { studyUID: "1.2.3", seriesUID: "1.2.3.4", modelId: "tiny-2d", modelVersion: "1.0.0" };

Deno.test("result UIDs are the same for the same study, series, model and version, and differ otherwise", async () => {
  const a = await resultUids(KEY);
  const b = await resultUids(KEY);
  assert.deepEqual(a, b);
  const all = [a.seg.series, a.seg.instance, a.pm.series, a.pm.instance, a.seg.dimensionOrganization];
  assert.equal(new Set(all).size, all.length);
  for (const changed of [{ modelVersion: "1.0.1" }, { seriesUID: "1.2.3.5" }, { modelId: "other" }]) {
    assert.notEqual((await resultUids({ ...KEY, ...changed })).seg.instance, a.seg.instance);
  }
});

Deno.test("derived UIDs are valid 2.25 UUID UIDs (version 8, RFC variant, at most 64 characters)", async () => {
  for (let i = 0; i < 50; i++) {
    const uid = await derivedUid("study", String(i));
    assert.match(uid, /^2\.25\.(0|[1-9][0-9]*)$/);
    assert.ok(uid.length <= 64);
    const hex = BigInt(uid.slice(5)).toString(16).padStart(32, "0");
    assert.equal(hex[12], "8");
    assert.ok("89ab".includes(hex[16]));
  }
  assert.notEqual(await derivedUid("a.b", "c"), await derivedUid("a", "b.c"));
});

Deno.test("job ids name study and model and never contain the ':' BullMQ refuses", () => {
  const id = jobIdFor("1.2.3", "ct-lung:infection/x");
  assert.equal(id, "seg_ct-lung_infection_x_1.2.3");
  assert.ok(!jobIdFor("1.2", "m", "1.2.9").includes(":"));
  assert.notEqual(jobIdFor("1.2", "m"), jobIdFor("1.2", "n"));
});

Deno.test("redis URLs become ioredis options with maxRetriesPerRequest null", () => {
  assert.deepEqual(connection("redis://:s%40cret@10.0.0.5:6380/2"), {
    host: "10.0.0.5",
    port: 6380,
    password: "s@cret",
    db: 2,
    maxRetriesPerRequest: null,
  });
  assert.throws(() => connection("http://x"), /redis:\/\//);
});

function result(over: Partial<SegmentJobResult> = {}): SegmentJobResult {
  return {
    studyUID: "1.2.3",
    seriesUID: "1.2.3.4",
    modelId: "tiny-2d",
    modelVersion: "1.0.0",
    outcome: "stored",
    segments: [{
      label: "Bright tissue",
      voxels: 10,
      volumeMl: 2.91666,
      volumeSdMl: 0.1234,
      volumeCi95Ml: [2.7, 3.1],
    }],
    triageBand: "Monitor",
    provider: "cpu",
    inferenceMs: 12.4,
    totalMs: 40.6,
    segUID: "2.25.1",
    pmUID: "2.25.2",
    worker: "w",
    notes: [],
    ...over,
  };
}

Deno.test("the cohort CSV has one row per job, per-segment volume and spread columns, and quotes what needs it", () => {
  const csv = cohortCsv([
    rowFromResult(result(), Date.UTC(2026, 0, 2)),
    rowFromFailure({ studyUID: "9.9", model: "tiny-2d" }, '[NO_MATCHING_SERIES] found US, "really"'),
  ]);
  const lines = csv.split("\r\n");
  assert.equal(lines.length, 4); // header, two rows, trailing empty
  assert.equal(
    lines[0],
    "study_uid,series_uid,model,model_version,status,reason,triage_band,provider,inference_ms,total_ms,seg_uid,pm_uid," +
      "finished_at,Bright tissue volume_ml,Bright tissue volume_sd_ml,Bright tissue volume_ci95_low_ml," +
      "Bright tissue volume_ci95_high_ml",
  );
  assert.equal(
    lines[1],
    "1.2.3,1.2.3.4,tiny-2d,1.0.0,stored,,Monitor,cpu,12,41,2.25.1,2.25.2,2026-01-02T00:00:00.000Z,2.917,0.123,2.7,3.1",
  );
  assert.equal(lines[2], '9.9,,tiny-2d,,failed,"[NO_MATCHING_SERIES] found US, ""really""",,,,,,,,,,,');
});

Deno.test("throughput is jobs per hour over the finish times of the last hour", () => {
  const now = 10 * 3600_000;
  assert.equal(throughputPerHour([], now), null);
  assert.equal(throughputPerHour([now - 1000], now), null);
  // 5 jobs, 4 intervals over 2 minutes → 120 per hour
  const t = [0, 30, 60, 90, 120].map((s) => now - 120_000 + s * 1000);
  assert.equal(throughputPerHour(t, now), 120);
  // old jobs do not dilute the recent rate
  assert.equal(throughputPerHour([0, 1000, ...t], now), 120);
});

Deno.test("PACS outages are transient, everything else about a study is permanent and keeps its code", () => {
  assert.equal(isTransient(new DicomWebError(0, "connection refused")), true);
  assert.equal(isTransient(new DicomWebError(503, "busy")), true);
  assert.equal(isTransient(new DicomWebError(429, "slow down")), true);
  assert.equal(isTransient(new DicomWebError(404, "no such study")), false);
  assert.equal(isTransient(new InputError("NO_MATCHING_SERIES", "x")), false);
  assert.equal(failureReason(new InputError("NO_MATCHING_SERIES", "no CT")), "[NO_MATCHING_SERIES] no CT");
  assert.equal(failureReason(new RangeError("bad")), "[RANGEERROR] bad");
});

Deno.test("enqueue bodies: one study or a list, a model id (never a path or URL), a series only with one study", () => {
  assert.deepEqual(parseEnqueueBody({ study: "1.2.3" }, "tiny-2d"), [
    { studyUID: "1.2.3", model: "tiny-2d", source: "http" },
  ]);
  assert.deepEqual(parseEnqueueBody({ studies: ["1.2", "1.3"], model: "m", source: "orthanc" }), [
    { studyUID: "1.2", model: "m", source: "orthanc" },
    { studyUID: "1.3", model: "m", source: "orthanc" },
  ]);
  assert.match(parseEnqueueBody({ study: "1.2.3" }) as string, /no default model/);
  assert.match(parseEnqueueBody({ study: "1.2.3", model: "../../etc" }) as string, /package id/);
  assert.match(parseEnqueueBody({ study: "1.2.3", model: "https://evil.example/m" }) as string, /package id/);
  assert.match(parseEnqueueBody({ study: "1.2;DROP" }, "m") as string, /StudyInstanceUIDs/);
  assert.match(
    parseEnqueueBody({ studies: ["1.2", "1.3"], series: "1.2.1" }, "m") as string,
    /exactly one study/,
  );
  assert.match(parseEnqueueBody([1], "m") as string, /JSON object/);
});

Deno.test("the enqueue endpoint does not exist unless configured, and refuses a missing or wrong token", async () => {
  const dataDir = await Deno.makeTempDir();
  const off = await startServer({ port: 0, dataDir, seed: false });
  try {
    const res = await fetch(new URL("edgeseg/enqueue", off.url), { method: "POST", body: "{}" });
    await res.body?.cancel();
    assert.equal(res.status, 405);
  } finally {
    await off.close();
  }
  // Redis is never reached here: every request is refused before the queue is opened.
  const endpoint = createEnqueueEndpoint({ token: "x".repeat(24), redisUrl: "redis://127.0.0.1:1" });
  const on = await startServer({ port: 0, dataDir, seed: false, enqueue: endpoint });
  try {
    const url = new URL("edgeseg/enqueue", on.url);
    for (const auth of [undefined, "Bearer wrong-token", `Basic ${"x".repeat(24)}`]) {
      const res = await fetch(url, {
        method: "POST",
        body: JSON.stringify({ study: "1.2.3", model: "tiny-2d" }),
        headers: auth ? { authorization: auth } : {},
      });
      assert.equal(res.status, 401);
      assert.equal((await res.json()).error, "UNAUTHORIZED");
    }
    const bad = await fetch(url, {
      method: "POST",
      body: "{not json",
      headers: { authorization: `Bearer ${"x".repeat(24)}` },
    });
    assert.equal(bad.status, 400);
    await bad.body?.cancel();
    assert.throws(
      () => createEnqueueEndpoint({ token: "short", redisUrl: "redis://127.0.0.1:1" }),
      /16 characters/,
    );
  } finally {
    await on.close();
    await endpoint.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});
