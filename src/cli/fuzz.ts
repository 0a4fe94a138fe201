/**
 * `deno task fuzz` — the fuzz harness (issue #8 §1).
 *
 *   deno task fuzz                              # every target, 200 inputs each, seed 1
 *   deno task fuzz --count 10000 --seed 1       # the on-demand run
 *   deno task fuzz --target dicom --target nifti --count 50
 *   deno task fuzz --target dicom --seed 1 --index 123   # reproduce one input (prints the stack)
 *
 * Flags: --seed N, --count N, --target NAME (repeatable), --time-limit MS (per input, default 2000),
 * --alloc-limit MIB (default 256), --out FILE (default artifacts/fuzz/report.json), --index N.
 * Exit status: 0 when no input failed, 1 when some did, 2 for bad arguments.
 */
import { dirname, join } from "node:path";
import { parseArgs } from "./args.ts";
import { runFuzz, runOne } from "../fuzz/runner.ts";
import { PROJECT_ROOT, TARGETS } from "../fuzz/targets.ts";

function intFlag(flags: Map<string, string[]>, name: string, dflt: number): number {
  const v = flags.get(name)?.at(-1);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) {
    throw new Error(`--${name}: expected a non-negative integer, found "${v}"`);
  }
  return n;
}

async function main(argv: string[]): Promise<number> {
  let seed: number, count: number, timeLimitMs: number, allocMiB: number, index: number;
  let targets: string[];
  let out: string;
  try {
    const { flags } = parseArgs(argv);
    seed = intFlag(flags, "seed", 1);
    count = intFlag(flags, "count", 200);
    timeLimitMs = intFlag(flags, "time-limit", 2000);
    allocMiB = intFlag(flags, "alloc-limit", 256);
    index = intFlag(flags, "index", -1 >>> 0);
    targets = flags.get("target") ?? Object.keys(TARGETS);
    for (const t of targets) {
      if (!TARGETS[t]) {
        throw new Error(`--target: expected one of ${Object.keys(TARGETS).join(", ")}, found "${t}"`);
      }
    }
    out = flags.get("out")?.at(-1) ?? join(PROJECT_ROOT, "artifacts", "fuzz", "report.json");
  } catch (e) {
    console.error(e instanceof Error ? e.message : String(e));
    return 2;
  }

  if (index !== -1 >>> 0) {
    for (const t of targets) {
      const r = await runOne(t, seed, index);
      console.log(`${t} seed ${seed} index ${index}: ${r.outcome}`);
      if (r.error !== undefined) console.error(r.error);
      if (r.input instanceof Uint8Array) {
        const p = join(PROJECT_ROOT, "artifacts", "fuzz", `input-${t}-${seed}-${index}.bin`);
        await Deno.mkdir(dirname(p), { recursive: true });
        await Deno.writeFile(p, r.input);
        console.log(`input written to ${p}`);
      } else if (typeof r.input === "string") console.log(`input: ${r.input.slice(0, 2000)}`);
      if (r.outcome === "failure") return 1;
    }
    return 0;
  }

  const report = await runFuzz({
    seed,
    count,
    targets,
    timeLimitMs,
    allocLimitBytes: allocMiB * 2 ** 20,
    onProgress: (l) => console.log(l),
  });
  await Deno.mkdir(dirname(out), { recursive: true });
  await Deno.writeTextFile(out, JSON.stringify(report, null, 2) + "\n");
  console.log("");
  console.log("target     inputs      ok  rejected  failures  ms/input  top rejection codes");
  for (const t of report.targets) {
    const codes = Object.entries(t.rejected).slice(0, 3).map(([c, n]) => `${c}×${n}`).join(", ");
    console.log(
      `${t.target.padEnd(10)} ${String(t.count).padStart(6)} ${String(t.ok).padStart(7)} ${
        String(t.rejectedTotal).padStart(9)
      } ${String(t.failureCount).padStart(9)} ${t.msPerInput.mean.toFixed(1).padStart(9)}  ${codes}`,
    );
    for (const f of t.distinctFailures.slice(0, 5)) {
      console.log(
        `    FAIL ×${f.count} (first: ${reproduceOf(t.target, seed, f.firstIndex)}): ${
          f.message.slice(0, 240)
        }`,
      );
    }
  }
  console.log(`\nreport: ${out}`);
  return report.totals.failures ? 1 : 0;
}

const reproduceOf = (t: string, seed: number, i: number) => `--target ${t} --seed ${seed} --index ${i}`;

if (import.meta.main) Deno.exit(await main(Deno.args));
