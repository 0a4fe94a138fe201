/**
 * A loopback HTTP server for running onnxruntime-web in Chromium from Deno (the package tool's op
 * audit, the inference bench, the inference tests): every answer is cross-origin isolated
 * (COOP/COEP/CORP, so WASM threads and SharedArrayBuffer work) and uncached, and `route` decides what
 * a path serves. `filesUnder` serves folders under URL prefixes, refusing paths that leave them.
 */
import { extname, join, normalize } from "node:path";

export interface IsolatedServer {
  origin: string;
  close(): Promise<void>;
}

/** What a route answers: a body with its content type, or undefined for 404. */
export type Served = { body: BodyInit; type: string } | { status: number } | undefined;

/** The content type of the page a route serves at "/". */
export const HTML = "text/html; charset=utf-8";

const TYPES: Record<string, string> = {
  ".html": HTML,
  ".js": "text/javascript",
  ".mjs": "text/javascript",
  ".wasm": "application/wasm",
  ".json": "application/json",
};

export function contentType(path: string): string {
  return TYPES[extname(path)] ?? "application/octet-stream";
}

export function startIsolatedServer(route: (path: string) => Served | Promise<Served>): IsolatedServer {
  const ac = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} },
    async (req) => {
      const headers = new Headers({
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Embedder-Policy": "require-corp",
        "Cross-Origin-Resource-Policy": "same-origin",
        "Cache-Control": "no-store",
      });
      const served = await route(decodeURIComponent(new URL(req.url).pathname));
      if (served && "body" in served) {
        headers.set("Content-Type", served.type);
        return new Response(served.body, { headers });
      }
      const status = served?.status ?? 404;
      return new Response(status === 400 ? "bad path" : "not found", { status, headers });
    },
  );
  return {
    origin: `http://127.0.0.1:${server.addr.port}`,
    close: async () => {
      ac.abort();
      await server.finished;
    },
  };
}

/**
 * The file a path names under one of `roots` ([URL prefix, folder]): `{ file }`, `{ status: 400 }` for a
 * path that leaves its folder, or undefined when no prefix matches.
 */
export function fileUnder(
  roots: readonly (readonly [string, string])[],
  path: string,
): { file: string; prefix: string } | { status: number } | undefined {
  for (const [prefix, dir] of roots) {
    if (!path.startsWith(prefix)) continue;
    const rel = normalize(path.slice(prefix.length));
    if (rel.startsWith("..") || rel.split("/").includes("..")) return { status: 400 };
    return { file: join(dir, rel), prefix };
  }
  return undefined;
}

/** Reads a file as a served body, or undefined (404) when it cannot be read. */
export async function readServed(file: string, edit?: (bytes: Uint8Array) => Uint8Array): Promise<Served> {
  try {
    const bytes = await Deno.readFile(file);
    return { body: (edit ? edit(bytes) : bytes) as Uint8Array<ArrayBuffer>, type: contentType(file) };
  } catch {
    return undefined;
  }
}
