/**
 * Load check for issue #8 §4, as the bench reports it: 100 concurrent WADO-RS frame requests and 20
 * concurrent STOW-RS uploads against a fresh embedded store on loopback. The measurement itself is
 * the server's `runStoreLoad` (src/server/load.ts, already in `deno task bench`'s "load" section);
 * this adds the pass/fail verdict the reliability criteria ask for (0 errors, bounded time).
 */
import { runStoreLoad, type StoreLoadResult } from "../server/load.ts";

export interface LoadBenchResult extends StoreLoadResult {
  /** true when no request failed and every phase finished within the time bound */
  pass: boolean;
  problems: string[];
}

export async function runLoadBench(
  opts: { frameRequests?: number; stows?: number; timeoutMs?: number } = {},
): Promise<LoadBenchResult> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const r = await runStoreLoad({
    frameRequests: opts.frameRequests ?? 100,
    stows: opts.stows ?? 20,
    timeoutMs,
  });
  const problems: string[] = [];
  for (const [name, s] of [["WADO-RS frames", r.frames], ["STOW-RS", r.stow]] as const) {
    if (s.errors) problems.push(`${name}: ${s.errors} of ${s.count} requests failed`);
    if (s.wallMs > timeoutMs) problems.push(`${name}: took ${s.wallMs} ms, bound ${timeoutMs} ms`);
  }
  return { ...r, pass: problems.length === 0, problems };
}
