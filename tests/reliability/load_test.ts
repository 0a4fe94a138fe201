/** Load (issue #8 §4) at full scale — it is small on loopback: 100 frame requests, 20 STOWs, 0 errors. */
import assert from "node:assert/strict";
import { runLoadBench } from "../../src/fuzz/load.ts";

Deno.test({
  name: "100 concurrent WADO-RS frame requests and 20 concurrent STOWs on loopback all succeed within 60 s",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const r = await runLoadBench({ frameRequests: 100, stows: 20, timeoutMs: 60_000 });
    console.log(
      `frames p50 ${r.frames.p50Ms} ms p99 ${r.frames.p99Ms} ms; STOW p50 ${r.stow.p50Ms} ms p99 ${r.stow.p99Ms} ms`,
    );
    assert.deepEqual(r.problems, []);
    assert.equal(r.frames.count, 100);
    assert.equal(r.stow.count, 20);
    assert.ok(r.frames.p50Ms <= r.frames.p99Ms && r.stow.p50Ms <= r.stow.p99Ms);
  },
});
