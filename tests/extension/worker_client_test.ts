import assert from "node:assert/strict";
import { CANCEL_GRACE_MS, SegmentationWorker } from "../../extension/src/worker_client.ts";
import type { Volume } from "../../src/core/types.ts";

type Listener = (ev: { data?: unknown; message?: string }) => void;

/** A Worker stand-in: records what the page posts and lets the test answer. */
class FakeWorker {
  posted: { msg: Record<string, unknown>; transfer?: unknown[] }[] = [];
  listeners: Record<string, Listener[]> = { message: [], error: [] };
  terminated = false;
  postMessage(msg: unknown, transfer?: unknown[]) {
    this.posted.push({ msg: msg as Record<string, unknown>, transfer });
  }
  addEventListener(type: "message" | "error", fn: Listener) {
    this.listeners[type].push(fn);
  }
  terminate() {
    this.terminated = true;
  }
  answer(data: unknown) {
    for (const fn of this.listeners.message) fn({ data });
  }
}

function volume(): Volume {
  return {
    geometry: {
      dims: [2, 2, 1],
      spacing: [1, 1, 1],
      origin: [0, 0, 0],
      direction: [1, 0, 0, 0, 1, 0, 0, 0, 1],
    },
    channels: 1,
    data: new Int16Array([1, 2, 3, 4]),
    modality: "CT",
  };
}

Deno.test("a run posts the volume as a transferable, streams progress and resolves with the result", async () => {
  const fake = new FakeWorker();
  const client = new SegmentationWorker(() => fake);
  const seen: string[] = [];
  const handle = client.run(
    { volume: volume(), modelUrl: "/models/m/", options: {} },
    (p) => seen.push(`${p.phase}:${p.done}`),
  );
  const { msg, transfer } = fake.posted[0];
  assert.equal(msg.type, "run");
  assert.equal(msg.id, handle.id);
  assert.equal(transfer?.length, 1, "the voxel buffer is transferred");
  fake.answer({ type: "progress", id: handle.id, progress: { phase: "inference", done: 1, total: 2 } });
  fake.answer({ type: "progress", id: "someone-else", progress: { phase: "inference", done: 9, total: 9 } });
  fake.answer({ type: "result", id: handle.id, result: { statistics: [], marker: 42 } });
  const result = await handle.result as unknown as { marker: number };
  assert.equal(result.marker, 42);
  assert.deepEqual(seen, ["inference:1"]);
});

Deno.test("a worker error comes back as the typed error with its code", async () => {
  const fake = new FakeWorker();
  const client = new SegmentationWorker(() => fake);
  const handle = client.run({ volume: volume(), modelUrl: "/models/m/", options: {} });
  fake.answer({
    type: "error",
    id: handle.id,
    error: { name: "InputError", code: "TOO_FEW_SLICES", message: "needs 8 slices, found 1" },
  });
  await assert.rejects(
    handle.result,
    (e: unknown) => (e as { code?: string }).code === "TOO_FEW_SLICES" && /found 1/.test(String(e)),
  );
});

Deno.test("cancel asks the worker first and, if it does not answer in time, stops it with CANCELLED", async () => {
  const fake = new FakeWorker();
  const client = new SegmentationWorker(() => fake);
  const handle = client.run({ volume: volume(), modelUrl: "/models/m/", options: {} });
  const started = Date.now();
  handle.cancel();
  assert.deepEqual(fake.posted[1].msg, { type: "cancel", id: handle.id });
  await assert.rejects(handle.result, (e: unknown) => (e as { code?: string }).code === "CANCELLED");
  assert.ok(Date.now() - started >= CANCEL_GRACE_MS - 5);
  assert.equal(fake.terminated, true);
  assert.equal(client.stopped, true);
});

Deno.test("a cancel the worker acknowledges leaves the worker running", async () => {
  const fake = new FakeWorker();
  const client = new SegmentationWorker(() => fake);
  const handle = client.run({ volume: volume(), modelUrl: "/models/m/", options: {} });
  handle.cancel();
  fake.answer({
    type: "error",
    id: handle.id,
    error: { name: "CancelledError", code: "CANCELLED", message: "cancelled" },
  });
  await assert.rejects(handle.result, (e: unknown) => (e as { code?: string }).code === "CANCELLED");
  await new Promise((r) => setTimeout(r, CANCEL_GRACE_MS + 20)); // let the grace timer fire
  assert.equal(fake.terminated, false);
  assert.equal(client.stopped, false);
});
