import assert from "node:assert/strict";
import { runStoreLoad } from "../../src/server/load.ts";

Deno.test("concurrent frame requests and STOWs against the store finish with zero errors", async () => {
  const r = await runStoreLoad({ frameRequests: 20, stows: 4, timeoutMs: 30_000 });
  assert.equal(r.frames.count, 20);
  assert.equal(r.frames.errors, 0);
  assert.equal(r.stow.count, 4);
  assert.equal(r.stow.errors, 0);
  assert.ok(r.frames.p50Ms > 0 && r.frames.p99Ms >= r.frames.p50Ms);
});
