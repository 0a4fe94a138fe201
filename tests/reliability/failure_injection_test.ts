/**
 * Failure injection (issue #8 §2): a real Orthanc behind a fault-injecting proxy. In every case the
 * result object is never lost — it stays in the outbox (storeWithRetention) and a later flushOutbox
 * stores it once the PACS answers again — the error says what happened, and retries are bounded
 * with backoff. Also: the edge server in proxy mode with the PACS down answers 502/504 JSON at once.
 */
import assert from "node:assert/strict";
import { DicomWebError } from "../../src/core/errors.ts";
import { phantomSeries } from "../../src/dicom/phantom.ts";
import { DicomWebClient, flushOutbox, MemoryOutbox, storeWithRetention } from "../../src/dicom/web.ts";
import { FolderOutbox } from "../../src/dicom/fs.ts";
import { startServer } from "../../src/server/mod.ts";
import { freePort, orthancMissing, startOrthanc } from "../helpers/orthanc.ts";
import { type Fault, startFaultProxy } from "./fault_proxy.ts";

const missing = orthancMissing();
if (missing) console.log(`failure injection with Orthanc skipped: ${missing}`);

let uidCounter = 0;
/** A fresh small instance (own UIDs) standing in for a result object. */
function resultObject(): { id: string; bytes: Uint8Array; sop: string } {
  const ph = phantomSeries({ slices: 1, size: 32, uidRoot: `2.25.88${Date.now() % 1e9}${++uidCounter}` });
  return { id: `result-${uidCounter}.dcm`, bytes: ph.files[0], sop: ph.sopInstanceUIDs[0] };
}

const isStow = (req: Request) => req.method === "POST";

async function countInPacs(dicomWebUrl: string, sop: string): Promise<number> {
  const c = new DicomWebClient({ baseUrl: dicomWebUrl, retries: 0 });
  return (await c.searchForInstances(undefined, undefined, { SOPInstanceUID: sop })).length;
}

Deno.test({
  name: "a result survives 5xx, 409, slow, truncated and stalled PACS responses and a PACS stopped mid-STOW",
  ignore: missing !== null,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    let pacs = await startOrthanc();
    let plan: (n: number, req: Request) => Fault = () => ({ kind: "pass" });
    const proxy = startFaultProxy(pacs.url, (n, req) => plan(n, req));
    const dicomWeb = `${proxy.url}/dicom-web`;
    const retries: { attempt: number; delayMs: number; reason: string }[] = [];
    const client = (o: { retries?: number; timeoutMs?: number } = {}) =>
      new DicomWebClient({
        baseUrl: dicomWeb,
        retries: o.retries ?? 3,
        backoffMs: 40,
        maxBackoffMs: 100,
        timeoutMs: o.timeoutMs ?? 10_000,
        onRetry: (i) => retries.push(i),
      });
    try {
      await t.step(
        "5xx twice, then success: retried with doubling backoff, stored once, outbox empty",
        async () => {
          retries.length = 0;
          let stows = 0;
          plan = (_, req) => isStow(req) && ++stows <= 2 ? { kind: "status", status: 503 } : { kind: "pass" };
          const outbox = new MemoryOutbox();
          const r = resultObject();
          const res = await storeWithRetention(client(), [r], outbox);
          assert.equal(res.stored.length, 1);
          assert.deepEqual(retries.map((x) => x.delayMs), [40, 80]);
          assert.ok(retries.every((x) => x.reason === "HTTP 503"));
          assert.deepEqual(await outbox.list(), []);
          plan = () => ({ kind: "pass" });
          assert.equal(await countInPacs(pacs.dicomWebUrl, r.sop), 1);
        },
      );

      await t.step(
        "5xx on every attempt: bounded retries (3 after the first), then kept in the outbox",
        async () => {
          retries.length = 0;
          plan = (_, req) => isStow(req) ? { kind: "status", status: 500 } : { kind: "pass" };
          const outbox = new MemoryOutbox();
          const r = resultObject();
          const t0 = performance.now();
          await assert.rejects(storeWithRetention(client(), [r], outbox), (e: unknown) => {
            assert.ok(e instanceof DicomWebError);
            assert.equal(e.status, 500);
            assert.match(e.message, /failed after 4 attempts/);
            assert.match(e.message, new RegExp(`kept in the outbox for retry: ${r.id}`));
            return true;
          });
          assert.equal(retries.length, 3);
          assert.deepEqual(retries.map((x) => x.delayMs), [40, 80, 100]); // capped by maxBackoffMs
          assert.ok(performance.now() - t0 < 5000);
          assert.deepEqual(await outbox.list(), [r.id]);
          plan = () => ({ kind: "pass" });
          assert.deepEqual(await flushOutbox(client(), outbox), { stored: [r.id], pending: [] });
          assert.equal(await countInPacs(pacs.dicomWebUrl, r.sop), 1);
        },
      );

      await t.step("409 from the real Orthanc: DicomWebError 409 with its text, no retry, kept", async () => {
        retries.length = 0;
        plan = () => ({ kind: "pass" });
        const outbox = new MemoryOutbox();
        const r = resultObject();
        const c = client();
        // a STOW to another study's URL: Orthanc refuses the instance with 409
        await assert.rejects(
          (async () => {
            await outbox.put(r.id, r.bytes);
            await c.store([r.bytes], "2.25.999");
          })(),
          (e: unknown) =>
            e instanceof DicomWebError && e.status === 409 && e.code === "HTTP_409" &&
            e.responseText.length > 0,
        );
        assert.equal(retries.length, 0);
        assert.deepEqual(await outbox.list(), [r.id]);
        assert.deepEqual(await flushOutbox(c, outbox), { stored: [r.id], pending: [] });
      });

      await t.step(
        "slow PACS: the request times out (no hang), retries are bounded, kept, flushed later",
        async () => {
          retries.length = 0;
          plan = (_, req) => isStow(req) ? { kind: "slow", delayMs: 3000 } : { kind: "pass" };
          const outbox = new MemoryOutbox();
          const r = resultObject();
          const t0 = performance.now();
          await assert.rejects(
            storeWithRetention(client({ retries: 1, timeoutMs: 300 }), [r], outbox),
            (e: unknown) => {
              assert.ok(e instanceof DicomWebError);
              assert.equal(e.status, 0);
              assert.equal(e.code, "NETWORK");
              assert.match(e.message, /timeout after 300 ms/);
              assert.match(e.message, /kept in the outbox/);
              return true;
            },
          );
          const elapsed = performance.now() - t0;
          assert.ok(
            elapsed < 2000,
            `gave up after ${elapsed.toFixed(0)} ms; expected ≈ 2×300 ms + 40 ms backoff`,
          );
          assert.equal(retries.length, 1);
          assert.deepEqual(await outbox.list(), [r.id]);
          plan = () => ({ kind: "pass" });
          assert.deepEqual(await flushOutbox(client(), outbox), { stored: [r.id], pending: [] });
          assert.equal(await countInPacs(pacs.dicomWebUrl, r.sop), 1);
        },
      );

      await t.step(
        "truncated STOW response: a typed error (not a raw TypeError), kept, stored once after flush",
        async () => {
          plan = (_, req) => isStow(req) ? { kind: "truncate", keepBytes: 20 } : { kind: "pass" };
          const dir = await Deno.makeTempDir({ prefix: "edgeseg-outbox-" });
          try {
            const outbox = new FolderOutbox(dir);
            const r = resultObject();
            await assert.rejects(storeWithRetention(client(), [r], outbox), (e: unknown) => {
              assert.ok(e instanceof DicomWebError, `expected DicomWebError, found ${e}`);
              assert.match(e.message, /response body was not received completely/);
              assert.match(e.message, /kept in the outbox/);
              return true;
            });
            assert.deepEqual(await outbox.list(), [r.id]);
            plan = () => ({ kind: "pass" });
            // Orthanc did store it before the answer was cut: storing again must not duplicate it
            assert.deepEqual(await flushOutbox(client(), outbox), { stored: [r.id], pending: [] });
            assert.deepEqual(await outbox.list(), []);
            assert.equal(await countInPacs(pacs.dicomWebUrl, r.sop), 1);
          } finally {
            await Deno.remove(dir, { recursive: true });
          }
        },
      );

      await t.step(
        "stalled STOW response body: ends with a timeout error instead of waiting forever",
        async () => {
          plan = (_, req) => isStow(req) ? { kind: "stall" } : { kind: "pass" };
          const outbox = new MemoryOutbox();
          const r = resultObject();
          const t0 = performance.now();
          await assert.rejects(storeWithRetention(client({ timeoutMs: 400 }), [r], outbox), (e: unknown) => {
            assert.ok(e instanceof DicomWebError);
            assert.match(e.message, /no complete body within 400 ms/);
            return true;
          });
          assert.ok(performance.now() - t0 < 3000);
          assert.deepEqual(await outbox.list(), [r.id]);
          plan = () => ({ kind: "pass" });
          assert.deepEqual(await flushOutbox(client(), outbox), { stored: [r.id], pending: [] });
        },
      );

      await t.step(
        "PACS stopped mid-STOW: network error after bounded retries, kept; a restarted PACS gets it",
        async () => {
          retries.length = 0;
          const dir = await Deno.makeTempDir({ prefix: "edgeseg-outbox-" });
          try {
            const outbox = new FolderOutbox(dir);
            // a bigger upload (8 slices of 256²) so the PACS dies while it is being sent
            const ph = phantomSeries({ slices: 8, size: 256, uidRoot: `2.25.89${Date.now() % 1e9}` });
            const files = ph.files.map((bytes, i) => ({ id: `slice-${i}.dcm`, bytes }));
            let stopping: Promise<void> | undefined;
            plan = (_, req) => {
              if (!isStow(req)) return { kind: "pass" };
              stopping ??= pacs.stop();
              return { kind: "drop", afterBytes: 64 * 1024 };
            };
            await assert.rejects(storeWithRetention(client({ retries: 2 }), files, outbox), (e: unknown) => {
              assert.ok(e instanceof DicomWebError);
              assert.equal(e.status, 0);
              assert.match(e.message, /kept in the outbox for retry: slice-0\.dcm/);
              return true;
            });
            await stopping;
            assert.equal((await outbox.list()).length, 8);
            // while the PACS is down, a flush keeps everything pending
            plan = () => ({ kind: "pass" });
            const down = await flushOutbox(client({ retries: 0 }), outbox);
            assert.deepEqual(down.stored, []);
            assert.equal(down.pending.length, 8);
            // the PACS comes back (a fresh Orthanc behind the same address)
            pacs = await startOrthanc();
            proxy.setUpstream(pacs.url);
            const up = await flushOutbox(client(), outbox);
            assert.equal(up.stored.length, 8);
            assert.deepEqual(up.pending, []);
            assert.deepEqual(await outbox.list(), []);
            for (const sop of ph.sopInstanceUIDs) assert.equal(await countInPacs(pacs.dicomWebUrl, sop), 1);
          } finally {
            await Deno.remove(dir, { recursive: true });
          }
        },
      );
    } finally {
      plan = () => ({ kind: "pass" });
      await proxy.close();
      await pacs.stop();
    }
  },
});

Deno.test({
  name:
    "the edge server in proxy mode answers 502 JSON when the PACS is down and 504 JSON when it is too slow",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dataDir = await Deno.makeTempDir({ prefix: "edgeseg-proxy-" });
    const closedPort = freePort();
    const down = await startServer({ port: 0, dataDir, pacsUrl: `http://127.0.0.1:${closedPort}/dicom-web` });
    const slow = startFaultProxy(`http://127.0.0.1:${closedPort}`, () => ({ kind: "slow", delayMs: 5000 }));
    const timing = await startServer({
      port: 0,
      dataDir,
      pacsUrl: `${slow.url}/dicom-web`,
      proxyTimeoutMs: 300,
    });
    try {
      let t0 = performance.now();
      let res = await fetch(`${down.url}dicom-web/studies`, {
        headers: { accept: "application/dicom+json" },
      });
      let json = await res.json();
      assert.equal(res.status, 502);
      assert.equal(json.error, "PACS_UNREACHABLE");
      assert.match(json.message, /could not be reached/);
      assert.ok(performance.now() - t0 < 2000);

      t0 = performance.now();
      res = await fetch(`${timing.url}dicom-web/studies`, { headers: { accept: "application/dicom+json" } });
      json = await res.json();
      assert.equal(res.status, 504);
      assert.equal(json.error, "PACS_TIMEOUT");
      assert.match(json.message, /did not answer within 300 ms/);
      assert.ok(performance.now() - t0 < 2000, "504 must come at the proxy timeout, not after the PACS");
    } finally {
      await down.close();
      await timing.close();
      await slow.close();
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});
