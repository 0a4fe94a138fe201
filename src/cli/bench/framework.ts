/**
 * The bench's framework: what a section gets (`BenchContext`), what it returns (`SectionResult`),
 * interleaved measurement with a load average before every run, child processes, and the machine,
 * versions and git commit every results file carries. Sections live beside this file, one per file.
 */
import { join } from "node:path";
import { PROJECT_ROOT } from "../../inference/deno.ts";
import { type Figure, figure, interleaveOrder, type Sample } from "./stats.ts";

export { PROJECT_ROOT };

export interface BenchContext {
  root: string;
  /** git-ignored scratch folder (bench/tmp) */
  tmp: string;
  quick: boolean;
  /** timed runs per figure (default 5; 1 is a smoke run) */
  runs: number;
  /** a run longer than this (s) ends that figure's runs: it is recorded and not repeated */
  longRunS: number;
  /**
   * before each run, wait up to this many seconds for the 1-minute load average to fall below `cores`
   * (`--settle S`; 0 = do not wait). A long browser run leaves its own load behind it; waiting for it
   * to decay keeps the next run's figure clean. The wait is logged; a run that still starts busy is
   * marked busy as before.
   */
  settleS: number;
  /** "all threads" = this many; a load average above it marks a figure busy */
  cores: number;
  flags: Set<string>;
  values: Map<string, string>;
  log: (msg: string) => void;
}

export interface SectionResult {
  /** JSON-serialisable results */
  data: unknown;
  /** a short markdown block (tables, notes) */
  markdown: string;
  /** true when any figure in the section is busy */
  busy?: boolean;
}

export interface BenchSection {
  name: string;
  description: string;
  run(ctx: BenchContext): Promise<SectionResult>;
}

/** The 1-minute load average now, or null where the OS does not say. */
export function load1(): number | null {
  try {
    return Deno.loadavg()[0];
  } catch {
    return null;
  }
}

/**
 * Waits until the 1-minute load average is below `ctx.cores` or `ctx.settleS` seconds have passed,
 * polling every 2 s; returns the seconds waited. No wait where the OS gives no load average.
 */
export async function settle(
  ctx: BenchContext,
  poll = (ms: number) => new Promise((r) => setTimeout(r, ms)),
) {
  const t0 = performance.now();
  let l = load1();
  while (ctx.settleS > 0 && l !== null && l >= ctx.cores && (performance.now() - t0) / 1000 < ctx.settleS) {
    await poll(2000);
    l = load1();
  }
  const waited = (performance.now() - t0) / 1000;
  if (waited >= 2) ctx.log(`  settled for ${waited.toFixed(0)} s (load ${l?.toFixed(2) ?? "?"})`);
  return waited;
}

/** One variant of an interleaved comparison: `run` times one run and returns its value (and extras). */
export interface Variant<T = unknown> {
  key: string;
  unit: string;
  run: () => Promise<{ value: number; extra?: T }>;
}

export interface Measured<T = unknown> {
  key: string;
  figure: Figure;
  /** what each run returned besides its value (per-phase timings, windows, …), in run order */
  extras: T[];
  errors: string[];
}

/**
 * Runs `variants` ctx.runs times each, interleaved (A B A B …), reading the load average before each
 * run. A failed run is recorded as an error and not counted; a run longer than ctx.longRunS ends that
 * variant's runs (the figure says so) while the others go on.
 */
export async function measureInterleaved<T>(
  ctx: BenchContext,
  variants: Variant<T>[],
): Promise<Measured<T>[]> {
  const samples: Sample[][] = variants.map(() => []);
  const extras: T[][] = variants.map(() => []);
  const errors: string[][] = variants.map(() => []);
  const stopped: (string | undefined)[] = variants.map(() => undefined);
  for (const [round, v] of interleaveOrder(variants.length, ctx.runs)) {
    if (stopped[v]) continue;
    await settle(ctx);
    const l = load1();
    const t0 = performance.now();
    try {
      const r = await variants[v].run();
      samples[v].push({ value: r.value, load1: l });
      if (r.extra !== undefined) extras[v].push(r.extra);
      ctx.log(
        `  ${variants[v].key}: run ${round + 1}/${ctx.runs}: ${r.value.toFixed(1)} ${variants[v].unit} ` +
          `(load ${l?.toFixed(2) ?? "?"})`,
      );
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      errors[v].push(msg);
      ctx.log(`  ${variants[v].key}: run ${round + 1} failed: ${msg.slice(0, 300)}`);
    }
    const s = (performance.now() - t0) / 1000;
    if (s > ctx.longRunS && round + 1 < ctx.runs) {
      stopped[v] = `stopped after ${samples[v].length} run(s): a run took ${s.toFixed(0)} s ` +
        `(limit ${ctx.longRunS} s, --long-run-s)`;
      ctx.log(`  ${variants[v].key}: ${stopped[v]}`);
    }
  }
  return variants.map((v, i) => ({
    key: v.key,
    figure: figure(
      samples[i],
      ctx.cores,
      v.unit,
      stopped[i] ?? (errors[i].length ? errors[i][0].slice(0, 120) : undefined),
    ),
    extras: extras[i],
    errors: errors[i],
  }));
}

/** Figures of a number every run of a variant returned in its extras (e.g. one phase's time). */
export function extraFigure<T>(
  ctx: BenchContext,
  m: Measured<T>,
  pick: (x: T) => number | undefined,
  unit: string,
): Figure {
  const samples: Sample[] = [];
  m.extras.forEach((x, i) => {
    const v = pick(x);
    if (v !== undefined && Number.isFinite(v)) {
      samples.push({ value: v, load1: m.figure.samples[i]?.load1 ?? null });
    }
  });
  return figure(samples, ctx.cores, unit);
}

export async function exists(p: string): Promise<boolean> {
  return await Deno.stat(p).then(() => true, () => false);
}

export async function runCommand(
  cmd: string,
  args: string[],
  opts: { cwd?: string; timeoutMs?: number } = {},
): Promise<{ ok: boolean; out: string; err: string }> {
  const child = new Deno.Command(cmd, {
    args,
    cwd: opts.cwd ?? PROJECT_ROOT,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let timedOut = false;
  const timer = opts.timeoutMs
    ? setTimeout(() => {
      timedOut = true;
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
    }, opts.timeoutMs)
    : undefined;
  const r = await child.output();
  clearTimeout(timer);
  const dec = new TextDecoder();
  const err = dec.decode(r.stderr) + (timedOut ? `\nkilled after ${opts.timeoutMs! / 1000} s` : "");
  return { ok: r.success && !timedOut, out: dec.decode(r.stdout), err };
}

/** `deno run -A src/cli/bench/child.ts --child <kind> …` in a fresh process; returns its last JSON line. */
export async function runChild(kind: string, args: string[], timeoutMs?: number): Promise<unknown> {
  const r = await runCommand(
    Deno.execPath(),
    ["run", "-A", join(PROJECT_ROOT, "src", "cli", "bench", "child.ts"), "--child", kind, ...args],
    { timeoutMs },
  );
  if (!r.ok) throw new Error(r.err.trim().split("\n").slice(-3).join(" "));
  return lastJsonLine(r.out);
}

export function lastJsonLine(text: string): unknown {
  const lines = text.trim().split("\n").reverse();
  for (const l of lines) {
    if (l.startsWith("{")) return JSON.parse(l);
  }
  throw new Error(`no JSON line in output: ${text.slice(-500)}`);
}

// ---------------------------------------------------------------------------------------------
// machine, versions, commit

export async function machine() {
  let cpu = "unknown";
  try {
    cpu = (await Deno.readTextFile("/proc/cpuinfo")).match(/model name\s*:\s*(.+)/)?.[1]?.trim() ?? cpu;
  } catch { /* not Linux */ }
  const mem = Deno.systemMemoryInfo();
  return {
    cpu,
    cores: navigator.hardwareConcurrency,
    memoryGiB: +(mem.total / 1024 ** 3).toFixed(1),
    os: `${Deno.build.os} ${Deno.build.arch}`,
  };
}

export async function pkgVersion(name: string): Promise<string | null> {
  try {
    return JSON.parse(await Deno.readTextFile(join(PROJECT_ROOT, "node_modules", name, "package.json")))
      .version;
  } catch {
    return null;
  }
}

/** The checked-out commit, with "-dirty" when tracked files differ from it. */
export async function gitCommit(): Promise<string | null> {
  const head = await runCommand("git", ["rev-parse", "HEAD"]).catch(() => null);
  if (!head?.ok) return null;
  const dirty = await runCommand("git", ["status", "--porcelain", "--untracked-files=no"]).catch(() => null);
  return head.out.trim() + (dirty?.ok && dirty.out.trim() ? "-dirty" : "");
}

/** The Chromium the bench drives (`chromium --version`), or null when it is absent. */
export async function chromiumVersion(): Promise<string | null> {
  const { CHROMIUM } = await import("../chromium.ts");
  if (!(await exists(CHROMIUM))) return null;
  const r = await runCommand(CHROMIUM, ["--version"]).catch(() => null);
  return r?.ok ? r.out.trim().replace(/^Chromium\s+/, "").split(/\s/)[0] : null;
}

export const MiB = 1024 * 1024;
