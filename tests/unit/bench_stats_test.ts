/** Issue #15: the bench's statistics — min/median/max, busy marking, interleaving order, README verdicts. */
import assert from "node:assert/strict";
import { cell, figure, interleaveOrder, isBusy, median, ratio } from "../../src/cli/bench/stats.ts";
import { readmeTable, spliceReadme } from "../../src/cli/bench/report.ts";
import type { Results } from "../../src/cli/bench/report.ts";
import { type BenchContext, settle } from "../../src/cli/bench/framework.ts";

Deno.test("median of odd and even counts, unsorted input left as it was; no values throws", () => {
  const xs = [5, 1, 3];
  assert.equal(median(xs), 3);
  assert.deepEqual(xs, [5, 1, 3], "the input is not sorted in place");
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([7]), 7);
  assert.throws(() => median([]));
});

Deno.test("a figure has min/median/max over its runs and is busy when any run started above the core count", () => {
  const quiet = figure(
    [{ value: 10, load1: 0.5 }, { value: 30, load1: 1.9 }, { value: 20, load1: 2 }],
    2,
    "ms",
  );
  assert.deepEqual([quiet.runs, quiet.min, quiet.median, quiet.max], [3, 10, 20, 30]);
  assert.equal(quiet.busy, false, "a load average equal to the cores is not busy");
  assert.equal(quiet.maxLoad1, 2);
  const busy = figure([{ value: 10, load1: 0.5 }, { value: 12, load1: 2.01 }], 2, "ms");
  assert.equal(busy.busy, true);
  assert.match(cell(busy), /\*\*busy\*\* \(load 2\.01\)/, "a busy figure never shows without its mark");
  assert.doesNotMatch(cell(quiet), /busy/);
  assert.equal(isBusy(null, 2), false, "no load average: not marked");
  const empty = figure([], 2, "s", "skipped");
  assert.equal(empty.median, null);
  assert.equal(cell(empty), "– (skipped)");
  assert.equal(cell(figure([{ value: 1.25, load1: 0 }], 2, "s")), "1.3 (n=1)");
});

Deno.test("interleaving runs every variant once per round, in order: A B A B …", () => {
  assert.deepEqual(interleaveOrder(2, 3), [[0, 0], [0, 1], [1, 0], [1, 1], [2, 0], [2, 1]]);
  assert.deepEqual(interleaveOrder(3, 1), [[0, 0], [0, 1], [0, 2]]);
  assert.deepEqual(interleaveOrder(2, 0), []);
});

Deno.test("a ratio of two figures is busy when either is", () => {
  const a = figure([{ value: 30, load1: 3 }], 2, "ms");
  const b = figure([{ value: 10, load1: 1 }], 2, "ms");
  assert.deepEqual(ratio(a, b), { value: 3, busy: true });
  assert.deepEqual(ratio(a, null), { value: null, busy: false });
});

Deno.test("README's table says a busy or smoke figure is not a result, and splices between its markers", () => {
  const total = figure([{ value: 25, load1: 7 }], 2, "s");
  const results: Results = {
    generatedAt: "2026-01-01T00:00:00.000Z",
    commit: "abc",
    machine: { cpu: "x", cores: 2, memoryGiB: 1, os: "linux" },
    versions: {},
    sections: {
      pipeline: {
        data: { rows: [{ key: "native onnxruntime-node, ROI", total, windows: "1 / 2", provider: "cpu" }] },
        markdown: "",
        at: "",
        quick: false,
      },
    },
  };
  const table = readmeTable(results);
  assert.match(
    table,
    /CLI `segment` \(native.*\| 25\.0 \(n=1\) \*\*busy\*\* \(load 7\.00\) s \| met \(busy, smoke: not a result\) \|/,
  );
  const once = spliceReadme("# X\n\n## Performance targets\n\nold\n", table);
  const twice = spliceReadme(once, table);
  assert.equal(once, twice, "regenerating replaces the block");
  assert.ok(once.includes("<!-- bench:performance-table:begin -->"));
});

Deno.test("settle waits for the load average to fall below the cores, up to --settle seconds", async () => {
  const logs: string[] = [];
  const ctx = (cores: number, settleS: number) =>
    ({ cores, settleS, log: (m: string) => logs.push(m) }) as unknown as BenchContext;
  let polls = 0;
  const poll = () => (polls++, new Promise<void>((r) => setTimeout(r, 1)));
  // a load below the cores: no wait at all
  assert.ok(await settle(ctx(1e9, 60), poll) < 1);
  assert.equal(polls, 0);
  // --settle 0: never waits, however busy
  await settle(ctx(-1, 0), poll);
  assert.equal(polls, 0);
  // always busy (cores below any load): polls until the limit, then gives up
  const waited = await settle(ctx(-1, 0.05), poll);
  assert.ok(polls > 0 && waited >= 0.05, `polled ${polls} times, waited ${waited} s`);
});
