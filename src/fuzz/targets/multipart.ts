/** Fuzz target "multipart": mutated STOW bodies in random chunks → the multipart parser. */
import { phantomSeries } from "../../dicom/phantom.ts";
import { multipartBody } from "../../dicom/web.ts";
import { MAX_BOUNDARY_LENGTH, parseMultipartStream } from "../../server/multipart.ts";
import { genericMutation, multipartStructure, Rng, truncate } from "../mutators.ts";
import { type FuzzTarget, guarded } from "./common.ts";

export interface MultipartInput {
  body: Uint8Array;
  boundary: string;
  /** chunk sizes the body is streamed in (exercises delimiters split across reads) */
  chunks: number[];
  contentType?: string;
}

export function stowBody(rng: Rng, index: number, uidPrefix: string): MultipartInput {
  const n = 1 + rng.int(3);
  const ph = phantomSeries({ slices: n, size: 16 + rng.int(3) * 8, uidRoot: `${uidPrefix}.${index + 1}` });
  const boundary = rng.pick(["b", "edgeseg-0123456789abcdef", "x".repeat(70), "a'()+_,-./:=?"]);
  let body = multipartBody(ph.files, boundary);
  const m = rng.int(10);
  if (m < 4) body = multipartStructure(body, boundary, rng);
  else if (m < 7) body = genericMutation(body, rng);
  else if (m < 8) body = truncate(body, rng);
  // else: valid body (some inputs must pass, so the "ok" path is exercised too)
  const chunks: number[] = [];
  for (let left = body.length; left > 0;) {
    const c = 1 + rng.int(rng.chance(0.5) ? 64 : 65536);
    chunks.push(Math.min(c, left));
    left -= c;
  }
  let declaredBoundary = boundary;
  if (rng.chance(0.15)) {
    declaredBoundary = rng.pick([
      "",
      boundary + "x",
      "x".repeat(MAX_BOUNDARY_LENGTH + 1), // over the limit real clients need (Orthanc sends 73)
      boundary.slice(1),
      '"',
      `"${boundary}"`,
    ]);
  }
  const contentType = rng.chance(0.1)
    ? rng.pick([
      "multipart/related",
      "application/dicom",
      "",
      'multipart/related; type="application/dicom"; boundary=',
    ])
    : `multipart/related; type="application/dicom"; boundary=${declaredBoundary}`;
  return { body, boundary: declaredBoundary, chunks, contentType };
}

export function streamOf(input: MultipartInput): ReadableStream<Uint8Array> {
  let off = 0, c = 0;
  return new ReadableStream({
    pull(ctl) {
      if (off >= input.body.length) return ctl.close();
      const n = input.chunks[c++] ?? input.body.length - off;
      ctl.enqueue(input.body.slice(off, off + n));
      off += n;
    },
  });
}

/** A sink that keeps part bytes in memory, bounded (a part larger than the body is impossible). */
class MemorySink {
  size = 0;
  write(chunk: Uint8Array): Promise<void> {
    this.size += chunk.length;
    return Promise.resolve();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

export function multipartTarget(): FuzzTarget {
  return {
    name: "multipart",
    description: "mutated multipart/related STOW bodies, streamed in random chunks → parseMultipartStream",
    setup: () => Promise.resolve("phantom instances (1–3 per body) in multipartBody()"),
    input: (rng, index) => stowBody(rng, index, "2.25.1001"),
    run: (raw) =>
      guarded(async () => {
        const input = raw as MultipartInput;
        const max = 4 * 1024 * 1024;
        const parts = await parseMultipartStream(streamOf(input), input.boundary, () =>
          Promise.resolve(new MemorySink()), max);
        const total = parts.reduce((s, p) =>
          s + p.result.size, 0);
        if (total > input.body.length) {
          throw new Error(`parser produced ${total} part bytes from a ${input.body.length}-byte body`);
        }
      }),
    teardown: () => Promise.resolve(),
  };
}
