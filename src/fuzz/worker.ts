/**
 * Worker side of the fuzz runner: runs one target over an index range and reports each input's
 * outcome. Running in a Worker lets the runner stop an input that hangs (terminate) and survive one
 * that crashes the isolate, then carry on from the next index in a fresh worker.
 */
/// <reference lib="deno.worker" />
import { inputSeed, Rng } from "./mutators.ts";
import { TARGETS } from "./targets.ts";
import type { WorkerMessage, WorkerRequest } from "./protocol.ts";

function describe(e: unknown): string {
  if (e instanceof Error) {
    const frame = (e.stack ?? "").split("\n").find((l) => l.includes("/src/") && !l.includes("/src/fuzz/"));
    return `${e.name}: ${e.message}${frame ? ` (${frame.trim()})` : ""}`;
  }
  return `non-Error thrown: ${String(e)}`;
}

/** Bytes held by this isolate's heap and by ArrayBuffers (what an oversized allocation would show in). */
function heldBytes(): number {
  const m = Deno.memoryUsage();
  return m.heapUsed + m.external;
}

const post = (m: WorkerMessage) => self.postMessage(m);

self.onmessage = async (ev: MessageEvent<WorkerRequest>) => {
  const { target, seed, from, to, allocLimitBytes } = ev.data;
  const t = TARGETS[target]();
  const note = await t.setup();
  post({ type: "ready", note });
  for (let i = from; i < to; i++) {
    post({ type: "start", index: i });
    let input: unknown;
    try {
      input = t.input(new Rng(inputSeed(seed, target, i)), i);
    } catch (e) {
      post({
        type: "done",
        index: i,
        kind: "failure",
        reason: "exception",
        message: `harness: building the input failed: ${describe(e)}`,
        ms: 0,
      });
      continue;
    }
    const m0 = heldBytes();
    const t0 = performance.now();
    let msg: WorkerMessage;
    try {
      const r = await t.run(input);
      msg = r === "ok"
        ? { type: "done", index: i, kind: "ok", ms: 0 }
        : { type: "done", index: i, kind: "rejected", code: r.rejected, ms: 0 };
    } catch (e) {
      msg = { type: "done", index: i, kind: "failure", reason: "exception", message: describe(e), ms: 0 };
    }
    const grew = heldBytes() - m0;
    if (grew > allocLimitBytes && msg.type === "done" && msg.kind !== "failure") {
      msg = {
        type: "done",
        index: i,
        kind: "failure",
        reason: "alloc",
        message: `held memory grew by ${(grew / 2 ** 20).toFixed(0)} MiB for one input (limit ${
          (allocLimitBytes / 2 ** 20).toFixed(0)
        } MiB)`,
        ms: 0,
      };
    }
    if (msg.type === "done") msg.ms = performance.now() - t0;
    post(msg);
  }
  await t.teardown();
  post({ type: "finished" });
};
