/**
 * What a request may ask of the edge server, as pure functions so each rule is tested alone:
 *
 * - how a `/dicom-web/` path is decoded and matched before it reaches the store or a PACS,
 * - which headers cross the PACS proxy in each direction,
 * - bounded work: frame lists and concurrent uploads,
 * - raw request targets (traversal) and which files under `/models/` are served,
 * - UIDs that go into file names, URLs and headers.
 *
 * Nothing here does I/O. Who may ask (bind address, Host, Origin) is in host_guard.ts.
 */

/** A DICOM UID (PS3.5 §9.1): digits and dots, no empty component, at most 64 characters. */
const UID_SYNTAX = /^[0-9]+(\.[0-9]+)*$/;

/** True when `value` has UID syntax, so it is safe in a file name, a URL or a header parameter. */
export function isUid(value: string): boolean {
  return value.length <= 64 && UID_SYNTAX.test(value);
}

/**
 * A UID that is about to go into a response header (e.g. `transfer-syntax=`); anything else would let
 * stored data write header syntax, so it throws instead of answering with it.
 */
export function headerUid(value: string): string {
  if (!isUid(value)) {
    throw new TypeError(`refusing to put a non-UID value into a header: ${JSON.stringify(value)}`);
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// DICOMweb paths

const UID = "([0-9]+(?:\\.[0-9]+)*)";
/** Route names and patterns of the DICOMweb resources (PS3.18 §10) we serve or proxy. */
export const DICOMWEB_ROUTES: readonly (readonly [RegExp, string])[] = [
  [new RegExp(`^/studies$`), "studies"],
  [new RegExp(`^/series$`), "allSeries"],
  [new RegExp(`^/instances$`), "allInstances"],
  [new RegExp(`^/studies/${UID}$`), "study"],
  [new RegExp(`^/studies/${UID}/metadata$`), "studyMetadata"],
  [new RegExp(`^/studies/${UID}/series$`), "studySeries"],
  [new RegExp(`^/studies/${UID}/instances$`), "studyInstances"],
  [new RegExp(`^/studies/${UID}/series/${UID}$`), "series"],
  [new RegExp(`^/studies/${UID}/series/${UID}/metadata$`), "seriesMetadata"],
  [new RegExp(`^/studies/${UID}/series/${UID}/instances$`), "seriesInstances"],
  [new RegExp(`^/studies/${UID}/series/${UID}/instances/${UID}$`), "instance"],
  [new RegExp(`^/studies/${UID}/series/${UID}/instances/${UID}/metadata$`), "instanceMetadata"],
  [new RegExp(`^/studies/${UID}/series/${UID}/instances/${UID}/frames/([0-9, ]+)$`), "frames"],
  [new RegExp(`^/studies/${UID}/series/${UID}/instances/${UID}/bulk/([0-9A-Fa-f]{8})$`), "bulk"],
];

/**
 * Routes a PACS has beyond the embedded store's: nested bulk data (a tag inside a sequence item) and
 * rendered/thumbnail resources. Read-only, and still nothing but digits, dots and hex.
 */
const PROXY_ONLY_ROUTES: readonly (readonly [RegExp, string])[] = [
  [
    new RegExp(
      `^/studies/${UID}/series/${UID}/instances/${UID}/bulk/([0-9A-Fa-f]{8}(?:/[0-9]{1,6}/[0-9A-Fa-f]{8}){1,8})$`,
    ),
    "nestedBulk",
  ],
  [
    new RegExp(
      `^/studies/${UID}(?:/series/${UID}(?:/instances/${UID}(?:/frames/[0-9,]+)?)?)?/(rendered|thumbnail)$`,
    ),
    "rendered",
  ],
];

/** Matches a decoded DICOMweb sub-path (`/studies/…`) against the store's routes. */
export function matchDicomWebRoute(path: string): { name: string; groups: string[] } | null {
  for (const [re, name] of DICOMWEB_ROUTES) {
    const m = path.match(re);
    if (m) return { name, groups: m.slice(1) };
  }
  return null;
}

/** The methods each proxied route takes: reads everywhere, STOW on /studies and /studies/{uid}. */
function proxyMethods(route: string): string[] {
  return route === "studies" || route === "study" ? ["GET", "HEAD", "POST"] : ["GET", "HEAD"];
}

export type ProxyPathResult =
  | { ok: true; path: string; route: string }
  | { ok: false; status: 400 | 404 | 405; code: string; reason: string; allow?: string };

/**
 * Decodes and checks the part of a request path after `/dicom-web` before it goes to a PACS: each
 * segment is percent-decoded once, and a segment that decodes to `.`, `..`, or contains a slash,
 * backslash, `%` (double encoding), a control character or a space is refused (400); what is left
 * must be one of the DICOMweb routes (404 otherwise) and the method one that route takes (405). The
 * returned path is rebuilt from the decoded segments, so the PACS never sees an encoding we did not
 * check.
 */
export function normaliseProxyPath(rawSubPath: string, method: string): ProxyPathResult {
  const segments = rawSubPath.split("/");
  const decoded: string[] = [];
  for (const seg of segments) {
    let d: string;
    try {
      d = decodeURIComponent(seg);
    } catch {
      return { ok: false, status: 400, code: "BAD_PATH", reason: "malformed percent-encoding" };
    }
    // Only the characters a DICOMweb path can hold survive (digits, letters, dots, commas, hyphens).
    if (/%(2e|2f|5c|00)/i.test(seg) || d === "." || d === ".." || /[^0-9A-Za-z.,_-]/.test(d)) {
      return {
        ok: false,
        status: 400,
        code: "BAD_PATH",
        reason: "dot segments, encoded dots or slashes, backslashes and control characters are refused",
      };
    }
    decoded.push(d);
  }
  const path = decoded.join("/").replace(/\/+$/, "") || "/";
  let route: string | null = matchDicomWebRoute(path)?.name ?? null;
  if (!route) {
    for (const [re, name] of PROXY_ONLY_ROUTES) if (re.test(path)) route = name;
  }
  if (!route) {
    return { ok: false, status: 404, code: "NOT_FOUND", reason: `no DICOMweb resource at /dicom-web${path}` };
  }
  const allowed = proxyMethods(route);
  if (!allowed.includes(method.toUpperCase())) {
    return {
      ok: false,
      status: 405,
      code: "METHOD_NOT_ALLOWED",
      reason: `${method} is not a DICOMweb method on /dicom-web${path}`,
      allow: allowed.join(", "),
    };
  }
  if (route === "frames") {
    const frames = parseFrameList(path.slice(path.lastIndexOf("/") + 1));
    if (!frames.ok) return { ok: false, status: 400, code: "BAD_FRAMES", reason: frames.reason };
  }
  return { ok: true, path, route };
}

// ---------------------------------------------------------------------------------------------
// Proxy headers

/**
 * Request headers a DICOMweb client needs the PACS to see. Everything else stays at the edge: the
 * browser's Cookie (the edge server's site is not the PACS's), Origin/Referer, Sec-* and forwarding
 * headers a client could forge. `Forwarded` is set by the proxy itself.
 */
const PROXY_REQUEST_HEADERS = [
  "accept",
  "accept-language",
  "authorization",
  "cache-control",
  "content-type",
  "if-match",
  "if-modified-since",
  "if-none-match",
  "if-range",
  "if-unmodified-since",
  "range",
];

/** The allow-listed request headers, copied. */
export function proxyRequestHeaders(incoming: Headers): Headers {
  const out = new Headers();
  for (const name of PROXY_REQUEST_HEADERS) {
    const v = incoming.get(name);
    if (v !== null) out.set(name, v);
  }
  return out;
}

/**
 * Response headers the PACS must not set on the edge server's origin: cookies (they would land on our
 * origin), authentication challenges (a browser would pop up a login for the PACS), CORS grants (the
 * edge server decides its own), and hop-by-hop/encoding headers that Deno's fetch has already undone.
 */
const DROPPED_RESPONSE_HEADERS =
  /^(set-cookie2?|www-authenticate|proxy-authenticate|access-control-.*|content-encoding|content-length|transfer-encoding|connection|keep-alive|proxy-connection|upgrade|trailer|te|alt-svc|strict-transport-security|content-security-policy(-report-only)?|cross-origin-.*|x-frame-options|x-content-type-options|referrer-policy)$/i;

/** The upstream response headers minus the dropped ones (the security headers are set afterwards). */
export function proxyResponseHeaders(upstream: Headers): Headers {
  const out = new Headers();
  for (const [name, value] of upstream) {
    if (!DROPPED_RESPONSE_HEADERS.test(name)) out.append(name, value);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Bounded work

/** The most distinct frames one WADO-RS frames request may ask for. */
export const MAX_FRAMES_PER_REQUEST = 2048;

/**
 * Parses a WADO-RS frame list ("1,2,3"): positive integers, duplicates dropped (first order kept),
 * at most `max` entries as written (so "1,1,1,…" cannot make the server loop either).
 */
export function parseFrameList(
  list: string,
  max = MAX_FRAMES_PER_REQUEST,
): { ok: true; frames: number[] } | { ok: false; reason: string } {
  const items = list.split(",");
  if (items.length > max) {
    return { ok: false, reason: `at most ${max} frames per request, found ${items.length}` };
  }
  const seen = new Set<number>();
  const frames: number[] = [];
  for (const item of items) {
    const t = item.trim();
    const n = /^[0-9]{1,9}$/.test(t) ? Number(t) : NaN;
    if (!Number.isInteger(n) || n < 1) {
      return {
        ok: false,
        reason: `expected a comma-separated list of frame numbers ≥ 1, found "${list.slice(0, 100)}"`,
      };
    }
    if (!seen.has(n)) {
      seen.add(n);
      frames.push(n);
    }
  }
  return { ok: true, frames };
}

/**
 * A counting gate with a bounded queue: `enter()` resolves to a release function once fewer than
 * `max` holders are inside, waiting in line behind at most `queue` others; beyond that it gives null
 * at once (the caller answers 503), so a burst of uploads neither runs unbounded nor waits unbounded.
 */
export class ConcurrencyGate {
  #inside = 0;
  #waiting: (() => void)[] = [];
  constructor(readonly max: number, readonly queue = 0) {}
  get inside(): number {
    return this.#inside;
  }
  get waiting(): number {
    return this.#waiting.length;
  }
  enter(): Promise<() => void> | null {
    if (this.#inside < this.max) {
      this.#inside++;
      return Promise.resolve(this.#release());
    }
    if (this.#waiting.length >= this.queue) return null;
    return new Promise((resolve) => this.#waiting.push(() => resolve(this.#release())));
  }
  #release(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiting.shift();
      if (next) next(); // the slot passes straight to the next in line
      else this.#inside--;
    };
  }
}

// ---------------------------------------------------------------------------------------------
// Request targets

/**
 * Why a raw request target (the path as the client sent it, before URL parsing folds dot segments)
 * is refused, or null. Browsers normalise paths before sending them, so a dot segment (literal or
 * percent-encoded, `..`, `.%2e`, `%2E%2e`), an encoded slash, backslash or NUL, or an empty segment
 * outside `/dicom-web/` is never a real viewer request: it is a traversal attempt, answered 400
 * rather than folded into some other file.
 */
export function rawPathProblem(rawPath: string): string | null {
  const path = rawPath.split("?")[0].split("#")[0];
  if (/%(2f|5c|00)/i.test(path) || path.includes("\\")) return "encoded slash, backslash or NUL";
  const segments = path.split("/").slice(1);
  for (const seg of segments) {
    const dots = seg.replace(/%2e/gi, ".");
    if (dots === "." || dots === "..") return "dot segment";
  }
  if (!/^\/dicom-web(\/|$)/.test(path) && segments.slice(0, -1).some((seg) => seg === "")) {
    return "empty path segment";
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Model packages

/**
 * Whether a path under `/models/` (still percent-encoded) is part of a served model package:
 * `models/training/` (training scripts, checkpoints, data lists) and hidden files are not.
 */
export function modelPathServed(rest: string): boolean {
  let decoded: string;
  try {
    decoded = decodeURIComponent(rest);
  } catch {
    return true; // resolveStatic refuses it with its own reason
  }
  const segments = decoded.split(/[\/\\]/).filter((s) => s !== "");
  if (segments.length === 0) return true;
  return segments[0].toLowerCase() !== "training" && !segments.some((s) => s.startsWith("."));
}
