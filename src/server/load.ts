/**
 * Loopback load check for the embedded store (issue #8 §4): N concurrent WADO-RS frame requests and
 * M concurrent STOW-RS uploads against a fresh server, bounded in count and time. Reports errors and
 * p50/p99 latency. `deno task bench` can call `runStoreLoad`; runnable as main (prints JSON).
 */
import { phantomSeries } from "../dicom/phantom.ts";
import { startServer } from "./mod.ts";

export interface LatencySummary {
  count: number;
  errors: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  wallMs: number;
}

export interface StoreLoadResult {
  frames: LatencySummary;
  stow: LatencySummary;
}

function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)];
}

async function timed(
  n: number,
  fn: (i: number) => Promise<boolean>,
  timeoutMs: number,
): Promise<LatencySummary> {
  const t0 = performance.now();
  const times: number[] = [];
  let errors = 0;
  const deadline = AbortSignal.timeout(timeoutMs);
  await Promise.all(Array.from({ length: n }, async (_, i) => {
    const t = performance.now();
    let ok = false;
    try {
      ok = await Promise.race([
        fn(i),
        new Promise<boolean>((resolve) =>
          deadline.addEventListener("abort", () => resolve(false), { once: true })
        ),
      ]);
    } catch {
      ok = false;
    }
    if (!ok) errors++;
    times.push(performance.now() - t);
  }));
  times.sort((a, b) => a - b);
  const r = (x: number) => Math.round(x * 10) / 10;
  return {
    count: n,
    errors,
    p50Ms: r(percentile(times, 0.5)),
    p99Ms: r(percentile(times, 0.99)),
    maxMs: r(times[times.length - 1] ?? NaN),
    wallMs: r(performance.now() - t0),
  };
}

/** Runs the load check against a throwaway server and data dir. */
export async function runStoreLoad(
  opts: { frameRequests?: number; stows?: number; timeoutMs?: number } = {},
): Promise<StoreLoadResult> {
  const frameRequests = opts.frameRequests ?? 100;
  const stows = opts.stows ?? 20;
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const dataDir = await Deno.makeTempDir({ prefix: "edgeseg-load-" });
  const server = await startServer({ port: 0, dataDir, seed: true });
  try {
    const ph = phantomSeries();
    const base =
      `${server.url}dicom-web/studies/${ph.studyInstanceUID}/series/${ph.seriesInstanceUID}/instances/`;
    const accept = "multipart/related; type=application/octet-stream; transfer-syntax=*";
    const frames = await timed(frameRequests, async (i) => {
      const res = await fetch(`${base}${ph.sopInstanceUIDs[i % ph.sopInstanceUIDs.length]}/frames/1`, {
        headers: { accept },
      });
      const body = await res.arrayBuffer();
      return res.status === 200 && body.byteLength > ph.rows * ph.columns * 2;
    }, timeoutMs);
    // Each STOW sends its own small study (4 slices of 128²), so all of them must land.
    const bodies = Array.from({ length: stows }, (_, i) => {
      const s = phantomSeries({ slices: 4, size: 128, uidRoot: `2.25.7700${i}` });
      const enc = new TextEncoder();
      const chunks: Uint8Array[] = [];
      for (const f of s.files) {
        chunks.push(enc.encode("--LOAD\r\nContent-Type: application/dicom\r\n\r\n"), f, enc.encode("\r\n"));
      }
      chunks.push(enc.encode("--LOAD--\r\n"));
      return new Blob(chunks as Uint8Array<ArrayBuffer>[]);
    });
    const stow = await timed(stows, async (i) => {
      const res = await fetch(`${server.url}dicom-web/studies`, {
        method: "POST",
        headers: { "content-type": 'multipart/related; type="application/dicom"; boundary=LOAD' },
        body: bodies[i],
      });
      const json = await res.json();
      return res.status === 200 && json["00081199"]?.Value?.length === 4;
    }, timeoutMs);
    return { frames, stow };
  } finally {
    await server.close();
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
}
