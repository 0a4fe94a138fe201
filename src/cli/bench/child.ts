/**
 * Child processes of `deno task bench`: one measurement in a fresh process (clean heap for memory
 * figures; ORT fixes its WASM threads when its WASM starts). Prints one JSON line.
 *
 *   deno run -A src/cli/bench/child.ts --child deno-wasm --model DIR --threads N --shape a,b,c --iters N
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

/** Times one model call `iters` times after a warm-up, with the load average before each call. */
async function denoWasm(args: Map<string, string>): Promise<void> {
  const threads = Number(args.get("threads") ?? "1");
  const shape = (args.get("shape") ?? "").split(",").map(Number);
  const iters = Number(args.get("iters") ?? "3");
  const { runtime } = await loadModel(args.get("model")!, { numThreads: threads, loadMembers: false });
  const n = shape.reduce((a, b) => a * b, 1);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.sin(i * 0.001);
  await runtime.members[0](x, shape);
  const times: number[] = [];
  const loads: (number | null)[] = [];
  for (let i = 0; i < iters; i++) {
    loads.push(Deno.loadavg()[0]);
    const t0 = performance.now();
    await runtime.members[0](x, shape);
    times.push(performance.now() - t0);
  }
  await runtime.release();
  console.log(JSON.stringify({ times, loads, threads: runtime.sessions[0].numThreads ?? threads }));
}

const args = parseArgs(Deno.args);
const kind = args.get("child");
if (kind === "deno-wasm") await denoWasm(args);
else if (kind === "pipeline") await (await import("./pipeline.ts")).pipelineChild(args);
else if (kind === "synthetic") await (await import("./synthetic.ts")).syntheticChild(args);
else throw new Error(`unknown --child ${kind}`);
