/**
 * Static files for the edge server: safe path resolution (no traversal, no symlinks out of the root,
 * no directory listing), content types, strong caching for content-hashed names, ETag with
 * conditional GET, and HTTP Range (single ranges; 206/416).
 */
import { extname, isAbsolute, join, normalize, sep } from "node:path";

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".cjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".wasm": "application/wasm",
  ".onnx": "application/octet-stream",
  ".ort": "application/octet-stream",
  ".bin": "application/octet-stream",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".gif": "image/gif",
  ".ico": "image/x-icon",
  ".webp": "image/webp",
  ".woff": "font/woff",
  ".woff2": "font/woff2",
  ".ttf": "font/ttf",
  ".txt": "text/plain; charset=utf-8",
  ".md": "text/markdown; charset=utf-8",
  ".xml": "application/xml",
  ".webmanifest": "application/manifest+json",
};

export function contentTypeFor(path: string): string {
  return CONTENT_TYPES[extname(path).toLowerCase()] ?? "application/octet-stream";
}

/**
 * Content-hashed names never change content: OHIF chunks (`1234.bundle.<16 hex>.js`), its hashed wasm
 * (`<16 hex>.wasm`, `<20 hex>.woff2`) and esbuild outputs (`name-<8 base32>.js`).
 */
export function isContentHashed(path: string): boolean {
  const base = path.split("/").pop() ?? "";
  return /\.[0-9a-f]{16,}\.(js|css|wasm)$/.test(base) ||
    /^[0-9a-f]{16,}\.(wasm|woff2?|ttf|png|svg)$/.test(base) ||
    /-[A-Z0-9]{8}\.(js|css|map)$/.test(base);
}

export type ResolveResult =
  | { kind: "file"; path: string; stat: Deno.FileInfo }
  | { kind: "missing" }
  | { kind: "forbidden"; reason: string };

/**
 * Resolves a URL path (already stripped of its mount prefix, still percent-encoded) inside `root`.
 * Rejects encoded or literal `..`, backslashes, NUL, absolute paths, and anything whose real path
 * (after symlinks) leaves the root. Directories are "missing" (no listing, no index files).
 */
export async function resolveStatic(root: string, urlPath: string): Promise<ResolveResult> {
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return { kind: "forbidden", reason: "malformed percent-encoding" };
  }
  if (decoded.includes("\0") || decoded.includes("\\")) {
    return { kind: "forbidden", reason: "NUL or backslash in path" };
  }
  const segments = decoded.split("/").filter((s) => s !== "");
  if (segments.some((s) => s === ".." || s === ".")) {
    return { kind: "forbidden", reason: "dot segment in path" };
  }
  const rel = segments.join("/");
  if (rel === "") return { kind: "missing" };
  if (isAbsolute(rel) || /^[a-zA-Z]:/.test(rel)) return { kind: "forbidden", reason: "absolute path" };
  const candidate = normalize(join(root, rel));
  let realRoot: string;
  try {
    realRoot = await Deno.realPath(root);
  } catch {
    return { kind: "missing" };
  }
  let real: string;
  try {
    real = await Deno.realPath(candidate);
  } catch {
    return { kind: "missing" };
  }
  if (real !== realRoot && !real.startsWith(realRoot + sep)) {
    return { kind: "forbidden", reason: "path resolves outside the served folder" };
  }
  const stat = await Deno.stat(real);
  if (!stat.isFile) return { kind: "missing" };
  return { kind: "file", path: real, stat };
}

function etagFor(stat: Deno.FileInfo): string {
  // npm-extracted files all share one mtime, so the inode joins size and mtime.
  return `"${stat.size.toString(16)}-${(stat.mtime?.getTime() ?? 0).toString(16)}-${
    (stat.ino ?? 0).toString(16)
  }"`;
}

/** Parses a single `bytes=` range; null when absent or unsupported (served in full), "invalid" → 416. */
function parseRange(header: string | null, size: number): { start: number; end: number } | null | "invalid" {
  if (!header) return null;
  const m = header.match(/^bytes=(\d*)-(\d*)$/);
  if (!m) return header.startsWith("bytes=") && header.includes(",") ? null : "invalid";
  const [, a, b] = m;
  if (a === "" && b === "") return "invalid";
  let start: number, end: number;
  if (a === "") {
    const n = Number(b);
    if (n === 0) return "invalid";
    start = Math.max(0, size - n);
    end = size - 1;
  } else {
    start = Number(a);
    end = b === "" ? size - 1 : Math.min(Number(b), size - 1);
  }
  if (start >= size || start > end) return "invalid";
  return { start, end };
}

export interface ServeFileOptions {
  cacheControl?: string;
  contentType?: string;
}

/** Serves a resolved file with caching, conditional GET and Range. */
export async function serveFile(
  req: Request,
  path: string,
  stat: Deno.FileInfo,
  opts: ServeFileOptions = {},
): Promise<Response> {
  const etag = etagFor(stat);
  const headers = new Headers({
    "content-type": opts.contentType ?? contentTypeFor(path),
    "etag": etag,
    "accept-ranges": "bytes",
    "cache-control": opts.cacheControl ??
      (isContentHashed(path) ? "public, max-age=31536000, immutable" : "no-cache"),
  });
  if (stat.mtime) headers.set("last-modified", stat.mtime.toUTCString());
  const inm = req.headers.get("if-none-match");
  if (inm && inm.split(",").map((s) => s.trim().replace(/^W\//, "")).some((t) => t === etag || t === "*")) {
    return new Response(null, { status: 304, headers });
  }
  const size = stat.size;
  const ifRange = req.headers.get("if-range");
  const range = ifRange && ifRange !== etag ? null : parseRange(req.headers.get("range"), size);
  if (range === "invalid") {
    headers.set("content-range", `bytes */${size}`);
    return new Response(null, { status: 416, headers });
  }
  if (req.method === "HEAD") {
    headers.set("content-length", String(range ? range.end - range.start + 1 : size));
    if (range) headers.set("content-range", `bytes ${range.start}-${range.end}/${size}`);
    return new Response(null, { status: range ? 206 : 200, headers });
  }
  const file = await Deno.open(path, { read: true });
  if (!range) {
    headers.set("content-length", String(size));
    return new Response(file.readable, { status: 200, headers });
  }
  const length = range.end - range.start + 1;
  await file.seek(range.start, Deno.SeekMode.Start);
  let remaining = length;
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const buf = new Uint8Array(Math.min(65536, remaining));
      const n = await file.read(buf);
      if (n === null || n === 0) {
        file.close();
        controller.close();
        return;
      }
      remaining -= n;
      controller.enqueue(buf.subarray(0, n));
      if (remaining <= 0) {
        file.close();
        controller.close();
      }
    },
    cancel() {
      file.close();
    },
  });
  headers.set("content-length", String(length));
  headers.set("content-range", `bytes ${range.start}-${range.end}/${size}`);
  return new Response(stream, { status: 206, headers });
}
