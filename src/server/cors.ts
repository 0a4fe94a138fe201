/**
 * Cross-origin access to EdgeSeg's static assets, for a hospital's own OHIF on another origin
 * (`--allow-origin`). Only the plugin, the model packages and onnxruntime-web's runtime files are ever
 * shared, only with the listed origins, and only for reading: the DICOMweb store, the PACS proxy,
 * app-config.js and the viewer never get CORS headers (a foreign page must not read studies or write).
 * No credentials are allowed; the assets are public build output.
 */
import { InputError } from "../core/errors.ts";

/** The URL prefixes other origins may read when listed. */
export const SHARED_PREFIXES = ["/plugins/", "/models/", "/edgeseg/ort/"] as const;

/** Request headers a cross-origin reader of static files may send (a preflight asks for them). */
const ALLOWED_REQUEST_HEADERS = ["accept", "range", "if-none-match", "if-modified-since", "cache-control"];
/** Response headers the reader's script may see (ORT and the package loader read lengths and ranges). */
const EXPOSED_HEADERS = "Content-Length, Content-Range, Accept-Ranges, ETag, Last-Modified";

export function isSharedAsset(pathname: string): boolean {
  return SHARED_PREFIXES.some((p) => pathname.startsWith(p));
}

/**
 * Normalises `--allow-origin` values to `scheme://host[:port]`. Refuses wildcards, paths, credentials
 * and anything but http(s): an admin lists the exact origins of their OHIF deployments.
 */
export function parseAllowedOrigins(values: readonly string[]): Set<string> {
  const out = new Set<string>();
  for (const raw of values) {
    const value = raw.trim();
    if (value === "*" || value === "null") {
      throw new InputError(
        "BAD_ORIGIN",
        `--allow-origin expects an origin such as https://ohif.hospital.example, found ${
          JSON.stringify(value)
        } (wildcards are not accepted: list each OHIF origin)`,
      );
    }
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      throw new InputError(
        "BAD_ORIGIN",
        `--allow-origin expects an origin such as https://ohif.hospital.example, found ${
          JSON.stringify(value)
        }`,
      );
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new InputError("BAD_ORIGIN", `--allow-origin expects http or https, found ${url.protocol}`);
    }
    if ((url.pathname !== "/" && url.pathname !== "") || url.search || url.hash || url.username) {
      throw new InputError(
        "BAD_ORIGIN",
        `--allow-origin expects an origin without path, query or credentials, found ${JSON.stringify(value)}`,
      );
    }
    out.add(url.origin);
  }
  return out;
}

/** The CORS headers for a shared asset's response, or none when the request's origin is not listed. */
export function corsHeadersFor(
  req: Request,
  allowed: ReadonlySet<string>,
): Record<string, string> | undefined {
  const origin = req.headers.get("origin");
  if (!origin || !allowed.has(origin)) return undefined;
  return {
    "access-control-allow-origin": origin,
    "access-control-expose-headers": EXPOSED_HEADERS,
    // Only this answer may be embedded cross-origin (a COEP host page checks it for no-cors loads).
    "cross-origin-resource-policy": "cross-origin",
  };
}

/** Adds the CORS grant for a listed origin to a shared asset's response (after the security headers). */
export function withCors(req: Request, res: Response, allowOrigins: ReadonlySet<string>): Response {
  res.headers.append("vary", "Origin");
  const cors = corsHeadersFor(req, allowOrigins);
  if (cors) { for (const [k, v] of Object.entries(cors)) res.headers.set(k, v); }
  return res;
}

/**
 * Answers a preflight (OPTIONS with Access-Control-Request-Method) for a shared asset: 204 with the
 * grant for a listed origin asking to read, 403 without any CORS header otherwise.
 */
export function preflight(req: Request, allowed: ReadonlySet<string>): Response {
  const origin = req.headers.get("origin");
  const method = (req.headers.get("access-control-request-method") ?? "").toUpperCase();
  const headers = new Headers({
    vary: "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
  });
  if (!origin || !allowed.has(origin) || (method !== "GET" && method !== "HEAD")) {
    headers.set("content-type", "application/json; charset=utf-8");
    const why = !origin || !allowed.has(origin)
      ? `origin ${JSON.stringify(origin)} is not allowed (start the server with --allow-origin <origin>)`
      : `expected GET or HEAD, found ${JSON.stringify(method)}`;
    // The same body shape as every other error of the server (dicomweb.ts errorResponse).
    return new Response(JSON.stringify({ error: "CORS_REFUSED", message: why }), {
      status: 403,
      headers,
    });
  }
  const asked = (req.headers.get("access-control-request-headers") ?? "")
    .split(",").map((h) => h.trim().toLowerCase()).filter((h) => h !== "");
  const granted = asked.filter((h) => ALLOWED_REQUEST_HEADERS.includes(h));
  headers.set("access-control-allow-origin", origin);
  headers.set("access-control-allow-methods", "GET, HEAD");
  if (granted.length) headers.set("access-control-allow-headers", granted.join(", "));
  headers.set("access-control-max-age", "600");
  headers.set("cross-origin-resource-policy", "cross-origin");
  return new Response(null, { status: 204, headers });
}
