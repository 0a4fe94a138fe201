/**
 * multipart/related (RFC 2387) for DICOMweb: a streaming parser for STOW bodies that writes each part
 * to its own file as it arrives (memory stays bounded by one chunk, however large the upload), and a
 * builder for WADO responses.
 */
import { Buffer } from "node:buffer";

/** Raised for a malformed body; `status` is the HTTP status to answer with. */
export class MultipartError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
    this.name = "MultipartError";
  }
}

/** Parameters of a Content-Type or Accept media range, keys lower-cased, quotes removed. */
export function parseMediaType(value: string): { type: string; params: Record<string, string> } {
  const parts: string[] = [];
  let cur = "";
  let quoted = false;
  for (const ch of value) {
    if (ch === '"') quoted = !quoted;
    if (ch === ";" && !quoted) {
      parts.push(cur);
      cur = "";
    } else cur += ch;
  }
  parts.push(cur);
  const type = (parts.shift() ?? "").trim().toLowerCase();
  const params: Record<string, string> = {};
  for (const p of parts) {
    const eq = p.indexOf("=");
    if (eq < 0) continue;
    let v = p.slice(eq + 1).trim();
    if (v.startsWith('"') && v.endsWith('"') && v.length >= 2) v = v.slice(1, -1);
    params[p.slice(0, eq).trim().toLowerCase()] = v;
  }
  return { type, params };
}

export interface PartSink {
  write(chunk: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

export interface ParsedPart<T> {
  headers: Record<string, string>;
  result: T;
  size: number;
}

const CRLF = Buffer.from("\r\n");
const HEADER_END = Buffer.from("\r\n\r\n");
const MAX_HEADER_BYTES = 16 * 1024;
/**
 * RFC 2046 §5.1.1 caps a boundary at 70 characters, but real clients send longer ones: Orthanc's
 * DICOMweb client (1.7) sends 73. Be liberal in what we accept (RFC 1122 §1.2.2): the parser keeps
 * only a delimiter-sized tail between chunks, so the cap only bounds that tail and the header scan.
 */
export const MAX_BOUNDARY_LENGTH = 200;

/**
 * Streams a multipart body. For each part, `openPart(headers)` returns a sink that receives its body
 * bytes; `maxBytes` bounds the whole body (413 when exceeded).
 */
export async function parseMultipartStream<T extends PartSink>(
  body: ReadableStream<Uint8Array>,
  boundary: string,
  openPart: (headers: Record<string, string>, index: number) => Promise<T>,
  maxBytes: number,
  signal?: AbortSignal,
): Promise<ParsedPart<T>[]> {
  if (!boundary || boundary.length > MAX_BOUNDARY_LENGTH) {
    throw new MultipartError(
      400,
      "BAD_BOUNDARY",
      `expected a boundary of 1..${MAX_BOUNDARY_LENGTH} characters, found ${boundary.length}`,
    );
  }
  // A leading CRLF lets the first "--boundary" match the same delimiter as the others.
  const delim = Buffer.from(`\r\n--${boundary}`);
  let buf: Buffer = Buffer.from(CRLF);
  let total = 0;
  type State = "preamble" | "afterDelim" | "headers" | "body" | "done";
  let state = "preamble" as State;
  const parts: ParsedPart<T>[] = [];
  let current = null as ParsedPart<T> | null;

  const step = async (final: boolean): Promise<void> => {
    for (;;) {
      if (state === "preamble") {
        const i = buf.indexOf(delim);
        if (i < 0) {
          buf = buf.subarray(Math.max(0, buf.length - delim.length + 1));
          return;
        }
        buf = buf.subarray(i + delim.length);
        state = "afterDelim";
      } else if (state === "afterDelim") {
        if (buf.length < 2) return;
        if (buf[0] === 0x2d && buf[1] === 0x2d) {
          state = "done";
          return;
        }
        // transport padding (spaces/tabs) then CRLF
        const i = buf.indexOf(CRLF);
        if (i < 0) {
          if (buf.length > 1024) {
            throw new MultipartError(400, "BAD_MULTIPART", "expected CRLF after a boundary");
          }
          return;
        }
        buf = buf.subarray(i + 2);
        state = "headers";
      } else if (state === "headers") {
        // Headers end with an empty line; a part with no headers starts with CRLF at once.
        let end: number, skip: number;
        if (buf.length >= 2 && buf[0] === 0x0d && buf[1] === 0x0a) {
          end = 0;
          skip = 2;
        } else {
          end = buf.indexOf(HEADER_END);
          skip = 4;
        }
        if (end < 0) {
          if (buf.length > MAX_HEADER_BYTES) {
            throw new MultipartError(
              400,
              "BAD_MULTIPART",
              `part headers longer than ${MAX_HEADER_BYTES} bytes`,
            );
          }
          return;
        }
        const text = buf.subarray(0, end).toString("latin1");
        buf = buf.subarray(end + skip);
        const headers: Record<string, string> = {};
        for (const line of text.split("\r\n")) {
          const c = line.indexOf(":");
          if (c > 0) headers[line.slice(0, c).trim().toLowerCase()] = line.slice(c + 1).trim();
        }
        current = { headers, result: await openPart(headers, parts.length), size: 0 };
        state = "body";
      } else if (state === "body") {
        const cur = current!;
        const i = buf.indexOf(delim);
        if (i < 0) {
          // keep a tail that could be the start of a delimiter split across chunks
          const keep = delim.length - 1;
          if (buf.length > keep) {
            const out = buf.subarray(0, buf.length - keep);
            await cur.result.write(new Uint8Array(out));
            cur.size += out.length;
            buf = buf.subarray(buf.length - keep);
          }
          return;
        }
        if (i > 0) {
          await cur.result.write(new Uint8Array(buf.subarray(0, i)));
          cur.size += i;
        }
        await cur.result.close();
        parts.push(cur);
        current = null;
        buf = buf.subarray(i + delim.length);
        state = "afterDelim";
      } else {
        return;
      }
      if (final && buf.length === 0) return;
    }
  };

  const reader = body.getReader();
  // A stalled client must not hold a STOW open forever: every read races the deadline.
  const aborted = new Promise<never>((_, reject) => {
    const fail = () =>
      reject(new MultipartError(408, "TIMEOUT", "the upload did not finish within the time limit"));
    if (signal?.aborted) fail();
    signal?.addEventListener("abort", fail, { once: true });
  });
  aborted.catch(() => {});
  try {
    for (;;) {
      const { done, value: chunk } = signal
        ? await Promise.race([reader.read(), aborted])
        : await reader.read();
      if (done) break;
      total += chunk.length;
      if (total > maxBytes) {
        throw new MultipartError(413, "TOO_LARGE", `upload exceeds the limit of ${maxBytes} bytes`);
      }
      if (state === "done") continue; // epilogue is ignored
      buf = buf.length ? Buffer.concat([buf, chunk]) : Buffer.from(chunk);
      await step(false);
    }
    await step(true);
  } catch (e) {
    if (current) await current.result.close().catch(() => {});
    await reader.cancel().catch(() => {});
    throw e;
  }
  if (state !== "done") {
    if (current) await current.result.close().catch(() => {});
    throw new MultipartError(
      400,
      "BAD_MULTIPART",
      parts.length === 0 && state === "preamble"
        ? `expected parts delimited by "--${boundary}", found no such boundary in the body`
        : `expected the closing delimiter "--${boundary}--", the body ended before it`,
    );
  }
  return parts;
}

/** A random boundary that cannot occur by accident in DICOM bytes. */
export function newBoundary(): string {
  return `edgeseg-${crypto.randomUUID()}`;
}

/** Builds a multipart/related body from parts. */
export function buildMultipart(
  parts: { contentType: string; body: Uint8Array; location?: string }[],
  boundary: string,
): Uint8Array<ArrayBuffer> {
  const enc = new TextEncoder();
  const chunks: Uint8Array[] = [];
  for (const p of parts) {
    let head = `--${boundary}\r\nContent-Type: ${p.contentType}\r\nContent-Length: ${p.body.length}\r\n`;
    if (p.location) head += `Content-Location: ${p.location}\r\n`;
    chunks.push(enc.encode(head + "\r\n"), p.body, enc.encode("\r\n"));
  }
  chunks.push(enc.encode(`--${boundary}--\r\n`));
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}
