/**
 * Fuzz runner: for each target, runs inputs `0..count-1` (input i is fixed by seed, target and i) in a
 * Worker, with a per-input time limit. An input that throws anything but a typed error, exceeds the
 * time limit ("hang"), kills the worker ("crash") or makes the isolate hold far more memory than it
 * should ("alloc") is a failure; the runner records it with the command that reproduces it and goes on
 * from the next index in a fresh worker.
 */
import { inputSeed, Rng } from "./mutators.ts";
import type { FailureReason, WorkerMessage, WorkerRequest } from "./protocol.ts";
import { TARGETS } from "./targets.ts";

export interface FuzzOptions {
  /** default 1 */
  seed?: number;
  /** inputs per target (default 200) */
  count?: number;
  /** target names (default: all of TARGETS) */
  targets?: string[];
  /** per-input time limit in ms (default 2000) */
  timeLimitMs?: number;
  /** time limit for a target's setup (seeds, server start) in ms (default 120000) */
  setupLimitMs?: number;
  /** how much one input may grow the isolate's heap + ArrayBuffers (default 256 MiB) */
  allocLimitBytes?: number;
  /** progress lines (one per target and every 10 % of it) */
  onProgress?: (line: string) => void;
}

export interface FuzzFailure {
  index: number;
  reason: FailureReason;
  message: string;
  reproduce: string;
}

export interface TargetReport {
  target: string;
  description: string;
  seeds: string;
  count: number;
  ok: number;
  rejected: Record<string, number>;
  rejectedTotal: number;
  failureCount: number;
  /** the first 50 failures */
  failures: FuzzFailure[];
  /** failures grouped by message with digits blanked, with a count */
  distinctFailures: { message: string; count: number; firstIndex: number }[];
  msPerInput: { mean: number; max: number };
  wallMs: number;
}

export interface FuzzReport {
  seed: number;
  countPerTarget: number;
  timeLimitMs: number;
  allocLimitBytes: number;
  startedAt: string;
  deno: string;
  targets: TargetReport[];
  totals: { inputs: number; ok: number; rejected: number; failures: number };
}

const reproduce = (target: string, seed: number, index: number) =>
  `deno task fuzz --target ${target} --seed ${seed} --index ${index}`;

async function runTarget(name: string, o: Required<Omit<FuzzOptions, "targets">>): Promise<TargetReport> {
  const factory = TARGETS[name];
  if (!factory) {
    throw new Error(`unknown fuzz target "${name}"; expected one of ${Object.keys(TARGETS).join(", ")}`);
  }
  const rep: TargetReport = {
    target: name,
    description: factory().description,
    seeds: "",
    count: o.count,
    ok: 0,
    rejected: {},
    rejectedTotal: 0,
    failureCount: 0,
    failures: [],
    distinctFailures: [],
    msPerInput: { mean: 0, max: 0 },
    wallMs: 0,
  };
  const distinct = new Map<string, { message: string; count: number; firstIndex: number }>();
  const fail = (index: number, reason: FailureReason, message: string) => {
    rep.failureCount++;
    if (rep.failures.length < 50) {
      rep.failures.push({ index, reason, message, reproduce: reproduce(name, o.seed, index) });
    }
    const key = `${reason}: ${message.replace(/[0-9]+/g, "#").slice(0, 300)}`;
    const d = distinct.get(key);
    if (d) d.count++;
    else distinct.set(key, { message: `${reason}: ${message.slice(0, 500)}`, count: 1, firstIndex: index });
  };
  const t0 = performance.now();
  let totalMs = 0;
  let next = 0;
  let lastProgress = 0;
  while (next < o.count) {
    // one worker per stretch of indices; a hang or crash ends the stretch
    next = await new Promise<number>((resolve) => {
      const worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
      let current = next - 1;
      let ready = false;
      let timer: ReturnType<typeof setTimeout> | undefined;
      let settled = false;
      const finish = (resumeAt: number) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        worker.terminate();
        resolve(resumeAt);
      };
      const arm = (ms: number, what: () => void) => {
        clearTimeout(timer);
        timer = setTimeout(what, ms);
      };
      const start = next;
      arm(o.setupLimitMs, () => {
        fail(start, "hang", `target setup did not finish within ${o.setupLimitMs} ms`);
        finish(o.count);
      });
      worker.onerror = (e) => {
        e.preventDefault();
        if (!ready) {
          fail(start, "crash", `target setup failed: ${e.message}`);
          finish(o.count);
        } else {
          // an input that was not started yet (current = start - 1) is charged to the next index
          const at = Math.max(current, start);
          fail(at, "crash", `worker died: ${e.message}`);
          finish(at + 1);
        }
      };
      worker.onmessage = (ev: MessageEvent<WorkerMessage>) => {
        const m = ev.data;
        if (m.type === "ready") {
          rep.seeds = m.note;
          ready = true;
          clearTimeout(timer);
        } else if (m.type === "start") {
          current = m.index;
          arm(o.timeLimitMs, () => {
            fail(current, "hang", `no result within ${o.timeLimitMs} ms`);
            finish(current + 1);
          });
        } else if (m.type === "done") {
          clearTimeout(timer);
          totalMs += m.ms;
          rep.msPerInput.max = Math.max(rep.msPerInput.max, m.ms);
          if (m.kind === "ok") rep.ok++;
          else if (m.kind === "rejected") {
            rep.rejected[m.code] = (rep.rejected[m.code] ?? 0) + 1;
            rep.rejectedTotal++;
          } else fail(m.index, m.reason, m.message);
          const doneCount = m.index + 1;
          if (doneCount - lastProgress >= Math.max(1, Math.ceil(o.count / 10))) {
            lastProgress = doneCount;
            o.onProgress(`  ${name}: ${doneCount}/${o.count} (${rep.failureCount} failures)`);
          }
        } else if (m.type === "finished") {
          finish(o.count);
        }
      };
      const req: WorkerRequest = {
        target: name,
        seed: o.seed,
        from: start,
        to: o.count,
        allocLimitBytes: o.allocLimitBytes,
      };
      worker.postMessage(req);
    });
  }
  const done = rep.ok + rep.rejectedTotal + rep.failureCount;
  rep.msPerInput.mean = done ? Math.round((totalMs / done) * 100) / 100 : 0;
  rep.msPerInput.max = Math.round(rep.msPerInput.max * 10) / 10;
  rep.wallMs = Math.round(performance.now() - t0);
  rep.distinctFailures = [...distinct.values()].sort((a, b) => b.count - a.count);
  rep.rejected = Object.fromEntries(Object.entries(rep.rejected).sort((a, b) => b[1] - a[1]));
  return rep;
}

/** Runs every requested target; never throws for a failing input (they are in the report). */
export async function runFuzz(opts: FuzzOptions = {}): Promise<FuzzReport> {
  const o = {
    seed: opts.seed ?? 1,
    count: opts.count ?? 200,
    timeLimitMs: opts.timeLimitMs ?? 2000,
    setupLimitMs: opts.setupLimitMs ?? 120_000,
    allocLimitBytes: opts.allocLimitBytes ?? 256 * 2 ** 20,
    onProgress: opts.onProgress ?? (() => {}),
  };
  const names = opts.targets ?? Object.keys(TARGETS);
  const report: FuzzReport = {
    seed: o.seed,
    countPerTarget: o.count,
    timeLimitMs: o.timeLimitMs,
    allocLimitBytes: o.allocLimitBytes,
    startedAt: new Date().toISOString(),
    deno: Deno.version.deno,
    targets: [],
    totals: { inputs: 0, ok: 0, rejected: 0, failures: 0 },
  };
  for (const name of names) {
    o.onProgress(`${name}: ${o.count} inputs, seed ${o.seed}`);
    const r = await runTarget(name, o);
    report.targets.push(r);
    report.totals.inputs += r.count;
    report.totals.ok += r.ok;
    report.totals.rejected += r.rejectedTotal;
    report.totals.failures += r.failureCount;
  }
  return report;
}

/**
 * Runs one input in this isolate (no worker, no time limit) to reproduce a failure; returns the
 * outcome and, for a failure, the thrown value so the caller can print its stack.
 */
export async function runOne(
  target: string,
  seed: number,
  index: number,
): Promise<{ outcome: "ok" | string; error?: unknown; input: unknown }> {
  const factory = TARGETS[target];
  if (!factory) {
    throw new Error(`unknown fuzz target "${target}"; expected one of ${Object.keys(TARGETS).join(", ")}`);
  }
  const t = factory();
  await t.setup();
  try {
    const input = t.input(new Rng(inputSeed(seed, target, index)), index);
    try {
      const r = await t.run(input);
      return { outcome: r === "ok" ? "ok" : `rejected ${r.rejected}`, input };
    } catch (e) {
      return { outcome: "failure", error: e, input };
    }
  } finally {
    await t.teardown();
  }
}
