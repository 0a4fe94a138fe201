/**
 * Runs every test suite (each folder under tests/ with *_test.ts files; e2e last) with `deno test`,
 * streams their output and ends with one line that sums them: `N passed, N failed, N skipped`.
 * A test that cannot run is registered with `Deno.test({ ignore })` and counted as skipped (never as
 * passed); the reasons the suites printed ("skipped: …") are listed before the totals.
 *
 *   deno task test                 all suites
 *   deno task test --only e2e      one suite (repeatable)
 *   deno task test --skip e2e      all but one (repeatable)
 */
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const testsDir = join(root, "tests");

function argValues(flag: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < Deno.args.length; i++) {
    if (Deno.args[i] === flag && Deno.args[i + 1]) out.push(Deno.args[++i]);
  }
  return out;
}
const only = argValues("--only");
const skip = argValues("--skip");

async function hasTests(dir: string): Promise<boolean> {
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && entry.name.endsWith("_test.ts")) return true;
    if (entry.isDirectory && await hasTests(join(dir, entry.name))) return true;
  }
  return false;
}

const suites: string[] = [];
for await (const entry of Deno.readDir(testsDir)) {
  if (!entry.isDirectory || entry.name === "fixtures" || entry.name === "helpers") continue;
  if (only.length && !only.includes(entry.name)) continue;
  if (skip.includes(entry.name)) continue;
  if (await hasTests(join(testsDir, entry.name))) suites.push(entry.name);
}
suites.sort((a, b) => (a === "e2e" ? 1 : 0) - (b === "e2e" ? 1 : 0) || a.localeCompare(b));

let passed = 0, failed = 0, skipped = 0;
const summary: string[] = [];
const skipReasons = new Set<string>();
for (const suite of suites) {
  console.log(`\n=== suite: ${suite} ===`);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["test", "-A", "--no-check=remote", join("tests", suite)],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  let text = "";
  const decoder = new TextDecoder();
  const pump = async (stream: ReadableStream<Uint8Array>, sink: (s: Uint8Array) => void) => {
    for await (const chunk of stream) {
      text += decoder.decode(chunk, { stream: true });
      sink(chunk);
    }
  };
  await Promise.all([
    pump(child.stdout, (c) => Deno.stdout.writeSync(c)),
    pump(child.stderr, (c) => Deno.stderr.writeSync(c)),
  ]);
  const status = await child.status;
  const m = text.match(
    /(?:ok|FAILED) \| (\d+) passed(?: \((\d+) steps?\))? \| (\d+) failed(?: \((\d+) steps?\))?(?: \| (\d+) ignored)?/g,
  );
  let p = 0, f = 0, s = 0;
  if (m) {
    const last = m[m.length - 1];
    const nums = last.match(/(\d+) passed.*?\| (\d+) failed(?:.*?\| (\d+) ignored)?/);
    if (nums) {
      p = Number(nums[1]);
      f = Number(nums[2]);
      s = Number(nums[3] ?? 0);
    }
  }
  if (!status.success && f === 0) f = 1; // a suite that crashed before reporting counts as a failure
  passed += p;
  failed += f;
  skipped += s;
  summary.push(`${suite}: ${p} passed, ${f} failed, ${s} skipped`);
  for (const line of text.split("\n")) {
    const m = /^(?:skipped|skip): (.+)$/.exec(line.trim());
    if (m) skipReasons.add(`${suite}: ${m[1]}`);
  }
}
console.log("\n=== summary ===");
for (const line of summary) console.log(line);
if (skipReasons.size) {
  console.log("skip reasons:");
  for (const r of skipReasons) console.log(`  ${r}`);
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
Deno.exit(failed > 0 ? 1 : 0);
