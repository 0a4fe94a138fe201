/**
 * The fuzz harness at a small count (issue #8 §1): each target, seed 1, 50 inputs, zero failures.
 * Every input must work or be refused with a typed error / HTTP 4xx; no hang, crash or oversized
 * allocation. The full run is `deno task fuzz` (200 per target; `--count 10000` on demand).
 */
import assert from "node:assert/strict";
import { runFuzz } from "../../src/fuzz/runner.ts";
import { KNOWN_STORED_INCOMPLETE, TARGETS } from "../../src/fuzz/targets.ts";

const COUNT = 50;

for (const target of Object.keys(TARGETS)) {
  Deno.test({
    name:
      `fuzz target "${target}": ${COUNT} mutated inputs (seed 1) are each accepted or refused with a typed error`,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      // 4 s per input rather than the CLI's 2 s: this machine's cores are shared while tests run
      const report = await runFuzz({ seed: 1, count: COUNT, targets: [target], timeLimitMs: 4000 });
      const r = report.targets[0];
      const failures = r.distinctFailures.map((f) => `×${f.count} (index ${f.firstIndex}) ${f.message}`).join(
        "\n",
      );
      // the one known, documented stow failure is checked by the ignored test below
      const known = r.distinctFailures.filter((f) => f.message.includes(KNOWN_STORED_INCOMPLETE))
        .reduce((n, f) => n + f.count, 0);
      assert.equal(r.failureCount - known, 0, `failures:\n${failures}`);
      assert.equal(r.ok + r.rejectedTotal + known, COUNT);
      // the mutations must reach both the accepting and the refusing paths
      assert.ok(r.rejectedTotal > 0, "no input was refused: the mutators are not reaching the checks");
      if (target !== "qido") {
        assert.ok(Object.keys(r.rejected).length >= 2, `rejection codes: ${JSON.stringify(r.rejected)}`);
      }
    },
  });
}

Deno.test({
  name: "the embedded store refuses a truncated instance instead of storing it (fuzz stow, seed 1, index 27)",
  // Found by the fuzzer: the store parsed with dcmjs ignoreErrors, which returns half a dataset for a
  // truncated file. It now parses strictly first (src/server/dicomfile.ts). Reproduce the old failure:
  // deno task fuzz --target stow --seed 1 --index 27
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const report = await runFuzz({ seed: 1, count: 50, targets: ["stow"], timeLimitMs: 4000 });
    assert.equal(report.targets[0].failureCount, 0);
  },
});
