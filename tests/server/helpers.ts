/** Shared fixtures for the server tests: a small phantom, temp dirs, a server on an ephemeral port. */
import { join } from "node:path";
import { type PhantomSeries, phantomSeries } from "../../src/dicom/phantom.ts";
import { type RunningServer, type ServerOptions, startServer } from "../../src/server/mod.ts";

/** A 4-slice 32×32 phantom: fast to build, same code path as the seeded one. */
export function smallPhantom(overrides: Parameters<typeof phantomSeries>[0] = {}): PhantomSeries {
  return phantomSeries({ slices: 4, size: 32, ...overrides });
}

/** A second, distinct study (other UIDs, patient, date, accession). */
export function otherPhantom(): PhantomSeries {
  return smallPhantom({
    uidRoot: "2.25.99887766554433221100",
    patientName: "Doe^Jane",
    patientId: "PID-2",
    studyDate: "20231105",
    accessionNumber: "ACC2",
    studyDescription: "Second study",
  });
}

export interface TestServer extends RunningServer {
  dataDir: string;
  logs: string[];
  /** absolute URL for a path like "/dicom-web/studies" */
  at(path: string): string;
}

export async function withServer(
  opts: Partial<ServerOptions>,
  fn: (s: TestServer) => Promise<void>,
): Promise<void> {
  const dataDir = opts.dataDir ?? await Deno.makeTempDir({ prefix: "edgeseg-store-" });
  const logs: string[] = [];
  const running = await startServer({ port: 0, seed: false, ...opts, dataDir, log: (l) => logs.push(l) });
  const s: TestServer = { ...running, dataDir, logs, at: (p) => new URL(p, running.url).href };
  try {
    await fn(s);
  } finally {
    await running.close();
    if (!opts.dataDir) await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
}

/** A STOW-RS body with one application/dicom part per file. */
export function stowBody(files: Uint8Array[], boundary = "EDGESEG-TEST-BOUNDARY"): Uint8Array<ArrayBuffer> {
  const enc = new TextEncoder();
  const chunks: Uint8Array[] = [];
  for (const f of files) {
    chunks.push(
      enc.encode(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`),
      f,
      enc.encode("\r\n"),
    );
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

export const STOW_TYPE = (boundary = "EDGESEG-TEST-BOUNDARY") =>
  `multipart/related; type="application/dicom"; boundary=${boundary}`;

/** POSTs files to /dicom-web/studies and returns the response (body consumed as JSON when possible). */
export async function stow(
  s: TestServer,
  files: Uint8Array[],
  path = "/dicom-web/studies",
): Promise<{ status: number; json: unknown }> {
  const res = await fetch(s.at(path), {
    method: "POST",
    headers: { "content-type": STOW_TYPE(), accept: "application/dicom+json" },
    body: stowBody(files),
  });
  const text = await res.text();
  let json: unknown = text;
  try {
    json = JSON.parse(text);
  } catch { /* not JSON */ }
  return { status: res.status, json };
}

/** Splits a multipart/related response body into parts (headers + bytes). */
export function parseMultipartResponse(
  body: Uint8Array,
  contentType: string,
): { headers: Record<string, string>; body: Uint8Array }[] {
  const m = contentType.match(/boundary=("?)([^";]+)\1/);
  if (!m) throw new Error(`no boundary in ${contentType}`);
  const delim = new TextEncoder().encode(`--${m[2]}`);
  const find = (from: number) => {
    outer: for (let i = from; i <= body.length - delim.length; i++) {
      for (let j = 0; j < delim.length; j++) if (body[i + j] !== delim[j]) continue outer;
      return i;
    }
    return -1;
  };
  const parts: { headers: Record<string, string>; body: Uint8Array }[] = [];
  let pos = find(0);
  while (pos >= 0) {
    const afterDelim = pos + delim.length;
    if (body[afterDelim] === 0x2d && body[afterDelim + 1] === 0x2d) break;
    const headStart = afterDelim + 2;
    let headEnd = headStart;
    while (
      !(body[headEnd] === 13 && body[headEnd + 1] === 10 && body[headEnd + 2] === 13 &&
        body[headEnd + 3] === 10)
    ) headEnd++;
    const headers: Record<string, string> = {};
    for (const line of new TextDecoder().decode(body.subarray(headStart, headEnd)).split("\r\n")) {
      const c = line.indexOf(":");
      if (c > 0) headers[line.slice(0, c).trim().toLowerCase()] = line.slice(c + 1).trim();
    }
    const bodyStart = headEnd + 4;
    const len = headers["content-length"] ? Number(headers["content-length"]) : -1;
    const next = find(len >= 0 ? bodyStart + len : bodyStart);
    const bodyEnd = len >= 0 ? bodyStart + len : next - 2;
    parts.push({ headers, body: body.subarray(bodyStart, bodyEnd) });
    pos = next;
  }
  return parts;
}

export async function getJson(
  s: TestServer,
  path: string,
): Promise<
  {
    status: number;
    json: Record<string, { vr: string; Value?: unknown[]; BulkDataURI?: string }>[];
    headers: Headers;
  }
> {
  const res = await fetch(s.at(path), { headers: { accept: "application/dicom+json" } });
  const json = await res.json();
  return { status: res.status, json, headers: res.headers };
}

/** First value of a tag in a DICOM JSON dataset. */
export function val(ds: Record<string, { Value?: unknown[] }>, tag: string): unknown {
  return ds[tag]?.Value?.[0];
}

/** Number of stored .dcm files under a data dir. */
export async function countStored(dataDir: string): Promise<number> {
  let n = 0;
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      if (e.isDirectory) await walk(join(d, e.name));
      else if (e.name.endsWith(".dcm")) n++;
    }
  };
  await walk(join(dataDir, "instances")).catch(() => {});
  return n;
}

export function sharedDataDir(...parts: string[]): string | null {
  const p = join(new URL("../../..", import.meta.url).pathname, "shared", "data", ...parts);
  try {
    Deno.statSync(p);
    return p;
  } catch {
    return null;
  }
}

/**
 * One HTTP/1.1 request over a plain TCP connection, so the test controls what fetch() would
 * normalise or refuse to send: the Host header, percent-encoded dot segments, Origin.
 */
export async function rawRequest(
  s: { url: string },
  path: string,
  opts: { method?: string; headers?: Record<string, string>; body?: Uint8Array; headersOnly?: boolean } = {},
): Promise<{ status: number; headers: Headers; text: string }> {
  const url = new URL(s.url);
  const conn = await Deno.connect({ hostname: url.hostname.replace(/^\[|\]$/g, ""), port: Number(url.port) });
  const headers: Record<string, string> = { host: url.host, connection: "close", ...opts.headers };
  if (opts.body) headers["content-length"] = String(opts.body.length);
  const head = `${opts.method ?? "GET"} ${path} HTTP/1.1\r\n` +
    Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("") + "\r\n";
  await conn.write(new TextEncoder().encode(head));
  if (opts.body) {
    let off = 0;
    while (off < opts.body.length) off += await conn.write(opts.body.subarray(off));
  }
  let text = "";
  if (opts.headersOnly) {
    // The server may keep the connection open for a body it will not read (413 on Content-Length).
    const reader = conn.readable.getReader();
    const dec = new TextDecoder();
    while (!text.includes("\r\n\r\n")) {
      const { done, value } = await reader.read();
      if (done) break;
      text += dec.decode(value, { stream: true });
    }
    await reader.cancel().catch(() => {});
  } else {
    text = new TextDecoder().decode(await new Response(conn.readable).arrayBuffer());
  }
  const [statusLine, ...lines] = text.slice(0, text.indexOf("\r\n\r\n")).split("\r\n");
  const out = new Headers();
  for (const l of lines) {
    const c = l.indexOf(":");
    if (c > 0) out.append(l.slice(0, c).trim(), l.slice(c + 1).trim());
  }
  return {
    status: Number(statusLine.split(" ")[1]),
    headers: out,
    text: text.slice(text.indexOf("\r\n\r\n") + 4),
  };
}
