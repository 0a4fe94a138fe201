/**
 * What every request goes through, whatever its route: the Host check (DNS rebinding), the origin
 * check for writes, the raw-path traversal check, then the route table; every response then gets
 * COOP/COEP/CORP (cross-origin isolation, so WASM threads work), nosniff, a no-referrer policy and a
 * CSP that still lets the viewer run, shared assets their CORS grant, and one log line.
 */
import { isSharedAsset, withCors } from "./cors.ts";
import { errorResponse } from "./dicomweb.ts";
import { rawPathProblem } from "./guard.ts";
import { hostAllowed, type HostPolicy, isWriteMethod, ownOrigins, writeAllowed } from "./host_guard.ts";

/**
 * CSP for the OHIF 3.13.2 bundle: it has an inline script in index.html, evaluates code (rspack
 * runtime, codecs), compiles WASM, creates blob: workers and data:/blob: images. Everything else is
 * same-origin; nothing may be framed or sent elsewhere.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self' 'unsafe-inline' 'unsafe-eval' 'wasm-unsafe-eval' blob:",
  "worker-src 'self' blob:",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "font-src 'self' data:",
  "connect-src 'self' data: blob:",
  "media-src 'self' blob: data:",
  "object-src 'none'",
  "base-uri 'self'",
  "frame-ancestors 'none'",
  "form-action 'self'",
].join("; ");

const SECURITY_HEADERS: Record<string, string> = {
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-embedder-policy": "require-corp",
  "cross-origin-resource-policy": "same-origin",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "content-security-policy": CONTENT_SECURITY_POLICY,
};

function withSecurityHeaders(res: Response): Response {
  let headers: Headers;
  try {
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.headers.set(k, v);
    return res;
  } catch {
    // immutable headers (e.g. a fetch() response): copy
    headers = new Headers(res.headers);
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) headers.set(k, v);
    return new Response(res.body, { status: res.status, statusText: res.statusText, headers });
  }
}

/** The request target as the client sent it (Deno keeps it unnormalised in `Request.url`). */
function rawTarget(requestUrl: string): string {
  const afterScheme = requestUrl.indexOf("//") + 2;
  const slash = requestUrl.indexOf("/", afterScheme);
  return slash < 0 ? "/" : requestUrl.slice(slash);
}

export interface HandlerOptions {
  /** answers a request the guards let through (routes.ts) */
  route: (req: Request, url: URL) => Promise<Response>;
  /** the Host names answered now (the server widens them once it knows the address it bound) */
  hosts: () => HostPolicy;
  publicHosts?: string[];
  allowOrigins: ReadonlySet<string>;
  log: (line: string) => void;
}

/** The `Deno.serve` handler: guards, route, response headers, log line; an exception answers 500. */
export function createHandler(o: HandlerOptions): (req: Request) => Promise<Response> {
  return async (req) => {
    const t0 = performance.now();
    const url = new URL(req.url);
    let res: Response;
    try {
      const write = isWriteMethod(req.method)
        ? writeAllowed(
          { origin: req.headers.get("origin"), secFetchSite: req.headers.get("sec-fetch-site") },
          ownOrigins(url, o.publicHosts),
        )
        : { ok: true as const };
      // The Host check comes before any route: a page on a foreign name that resolves here (DNS
      // rebinding) gets nothing, not even a 404 that tells it which paths exist.
      if (!hostAllowed(req.headers.get("host"), o.hosts())) {
        await req.body?.cancel().catch(() => {});
        res = errorResponse(
          421,
          "MISDIRECTED",
          "this server does not answer to that Host name (start it with --public-host <name> to add one)",
        );
      } else if (!write.ok) {
        await req.body?.cancel().catch(() => {});
        res = errorResponse(403, "FOREIGN_ORIGIN", write.reason);
      } else if (rawPathProblem(rawTarget(req.url))) {
        // Reject traversal before any routing, on the path as sent: `new URL` would fold "..".
        res = errorResponse(400, "BAD_PATH", `rejected path: ${rawPathProblem(rawTarget(req.url))}`);
      } else {
        res = await o.route(req, url);
      }
    } catch (e) {
      o.log(`error: ${req.method} ${url.pathname}: ${(e as Error).stack ?? e}`);
      res = errorResponse(500, "INTERNAL", `the server failed on this request: ${(e as Error).message}`);
    }
    res = withSecurityHeaders(res);
    // Shared assets get the grant for a listed origin (a refused preflight gets none).
    if (isSharedAsset(url.pathname) && (req.method !== "OPTIONS" || res.status === 204)) {
      res = withCors(req, res, o.allowOrigins);
    }
    o.log(`${req.method} ${url.pathname} ${res.status} ${(performance.now() - t0).toFixed(1)}ms`);
    return res;
  };
}
