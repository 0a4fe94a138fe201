/**
 * Child processes of `deno task bench`: one measurement in a fresh process (clean heap for memory
 * figures; ORT fixes its WASM threads when its WASM starts). Prints one JSON line.
 *
 *   deno run -A src/cli/bench/child.ts --child deno-wasm --model DIR --threads N --shape a,b,c --iters N
 *     [--variants main,int8]   several variants of the package in one process, interleaved (A B A B …)
 *   deno run -A src/cli/bench/child.ts --child pipeline --input DIR --model DIR --device cpu|wasm --roi on|off
 *   deno run -A src/cli/bench/child.ts --child synthetic --case I --model DIR --threads N [--quick]
 */
import { loadModel } from "../../inference/deno.ts";

function parseArgs(argv: string[]): Map<string, string> {
  const values = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    if (!argv[i].startsWith("--")) continue;
    const next = argv[i + 1];
    if (next === undefined || next.startsWith("--")) values.set(argv[i].slice(2), "1");
    else values.set(argv[i].slice(2), argv[++i]);
  }
  return values;
}

/**
 * Times one model call `iters` times after a warm-up, with the load average before each call. With
 * `--variants a,b`, each variant of the package gets its own session in this process (same WASM, same
 * threads) and the calls alternate a b a b …; `times[v]` and `loads[v]` are then per variant.
 */
async function denoWasm(args: Map<string, string>): Promise<void> {
  const threads = Number(args.get("threads") ?? "1");
  const shape = (args.get("shape") ?? "").split(",").map(Number);
  const iters = Number(args.get("iters") ?? "3");
  const variants = args.get("variants")?.split(",");
  const runtimes = [];
  for (const variant of variants ?? [undefined]) {
    runtimes.push(
      (await loadModel(args.get("model")!, { numThreads: threads, loadMembers: false, variant }))
        .runtime,
    );
  }
  const n = shape.reduce((a, b) => a * b, 1);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.sin(i * 0.001);
  for (const r of runtimes) await r.members[0](x, shape);
  const times: number[][] = runtimes.map(() => []);
  const loads: (number | null)[][] = runtimes.map(() => []);
  for (let i = 0; i < iters; i++) {
    for (const [v, r] of runtimes.entries()) {
      loads[v].push(Deno.loadavg()[0]);
      const t0 = performance.now();
      await r.members[0](x, shape);
      times[v].push(performance.now() - t0);
    }
  }
  for (const r of runtimes) await r.release();
  const used = runtimes[0].sessions[0].numThreads ?? threads;
  console.log(JSON.stringify(
    variants
      ? { variants, times, loads, threads: used }
      : { times: times[0], loads: loads[0], threads: used },
  ));
}

const args = parseArgs(Deno.args);
const kind = args.get("child");
if (kind === "deno-wasm") await denoWasm(args);
else if (kind === "pipeline") await (await import("./pipeline.ts")).pipelineChild(args);
else if (kind === "synthetic") await (await import("./synthetic.ts")).syntheticChild(args);
else throw new Error(`unknown --child ${kind}`);
