/**
 * Request guards of the edge server, as pure functions so each rule is tested alone:
 *
 * - which `Host` names the server answers (DNS rebinding: a foreign page whose name resolves to
 *   127.0.0.1 must not read the store),
 * - which browser origins may write (STOW, DELETE, proxied writes),
 * - how a `/dicom-web/` path is decoded and matched before it reaches the store or a PACS,
 * - which headers cross the PACS proxy in each direction,
 * - bounded work: frame lists and concurrent uploads,
 * - whether a bind address is loopback, decided by IP and not by how the name is spelled.
 *
 * Nothing here does I/O except `resolvesToLoopback`, which takes its resolver as an argument.
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
// Addresses

/** The 16 bytes of an IPv6 address or the 4 of an IPv4 one, or null when `text` is not an IP literal. */
export function parseIp(text: string): { version: 4 | 6; bytes: number[] } | null {
  const s = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
  const v4 = parseIpv4(s);
  if (v4) return { version: 4, bytes: v4 };
  const v6 = parseIpv6(s.replace(/%.*$/, "")); // a zone id (fe80::1%eth0) does not change the address
  return v6 ? { version: 6, bytes: v6 } : null;
}

function parseIpv4(s: string): number[] | null {
  const parts = s.split(".");
  if (parts.length !== 4) return null;
  const out: number[] = [];
  for (const p of parts) {
    // Decimal only: "0x7f.1" and "0177.0.0.1" are spellings some resolvers accept; we refuse them.
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    out.push(n);
  }
  return out;
}

function parseIpv6(s: string): number[] | null {
  if (!/^[0-9a-fA-F:.]+$/.test(s) || !s.includes(":")) return null;
  const halves = s.split("::");
  if (halves.length > 2) return null;
  const groups = (part: string): number[] | null => {
    if (part === "") return [];
    const out: number[] = [];
    const items = part.split(":");
    for (let i = 0; i < items.length; i++) {
      const it = items[i];
      if (i === items.length - 1 && it.includes(".")) {
        const v4 = parseIpv4(it);
        if (!v4) return null;
        out.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(it)) {
        out.push(parseInt(it, 16));
      } else return null;
    }
    return out;
  };
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if (!head || !tail) return null;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  const words = [...head, ...new Array(missing).fill(0), ...tail];
  return words.flatMap((w) => [w >> 8, w & 0xff]);
}

/** True for 127.0.0.0/8, ::1 and IPv4-mapped ::ffff:127.x.y.z; false for names and other addresses. */
export function isLoopbackIp(text: string): boolean {
  const ip = parseIp(text);
  if (!ip) return false;
  if (ip.version === 4) return ip.bytes[0] === 127;
  const b = ip.bytes;
  if (b.slice(0, 15).every((x) => x === 0) && b[15] === 1) return true;
  const mapped = b.slice(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
  return mapped && b[12] === 127;
}

/** True for the unspecified addresses a server binds to listen on every interface. */
export function isWildcardAddress(text: string): boolean {
  const ip = parseIp(text);
  return ip !== null && ip.bytes.every((x) => x === 0);
}

type Resolver = (name: string, type: "A" | "AAAA") => Promise<string[]>;

/**
 * Whether binding `host` keeps the server on this machine. An IP literal decides by its value;
 * `localhost` is loopback by definition (RFC 6761 §6.3); any other name is resolved and counts as
 * loopback only when it resolves and every address it resolves to is loopback. `127.example.org`
 * is therefore a name like any other, whatever it starts with.
 */
export async function resolvesToLoopback(host: string, resolve: Resolver): Promise<boolean> {
  if (parseIp(host)) return isLoopbackIp(host);
  const name = host.toLowerCase().replace(/\.$/, "");
  if (name === "localhost") return true;
  // NXDOMAIN, no record of a type or no resolver at all count as "not known to be loopback".
  const answers = await Promise.allSettled([resolve(name, "A"), resolve(name, "AAAA")]);
  const addresses = answers.flatMap((a) => (a.status === "fulfilled" ? a.value : []));
  return addresses.length > 0 && addresses.every(isLoopbackIp);
}

// ---------------------------------------------------------------------------------------------
// Host header

/** The host names (lower case, IPv6 in brackets, no port) the server answers to. */
export interface HostPolicy {
  names: ReadonlySet<string>;
  /** `name:port` entries from --public-host that pin a port */
  namesWithPort: ReadonlySet<string>;
}

/** Lower case, without a trailing dot; an IPv6 literal in its compressed canonical brackets. */
function canonicalHostName(name: string): string {
  const n = name.toLowerCase().replace(/\.$/, "");
  const ip = parseIp(n);
  if (ip?.version === 6) {
    const words: string[] = [];
    for (let i = 0; i < 16; i += 2) words.push(((ip.bytes[i] << 8) | ip.bytes[i + 1]).toString(16));
    return `[${words.join(":")}]`;
  }
  return n;
}

/** Splits a Host header value ("name", "name:port", "[v6]:port"); null when it is malformed. */
export function splitHost(host: string): { name: string; port: string } | null {
  const m = /^(\[[0-9a-fA-F:.%a-zA-Z]+\]|[^:\[\]\s/@]+)(?::([0-9]{1,5}))?$/.exec(host.trim());
  if (!m) return null;
  return { name: canonicalHostName(m[1]), port: m[2] ?? "" };
}

/**
 * The names a server bound to `bindAddress` answers to: that address; `localhost`, 127.0.0.1 and
 * [::1] when it is loopback; every interface address when it listens on all of them (0.0.0.0 / ::);
 * and the `publicHosts` an operator names for a reverse proxy or DNS name (`name` or `name:port`).
 */
export function hostPolicy(opts: {
  bindAddress: string;
  loopback: boolean;
  publicHosts?: string[];
  interfaceAddresses?: string[];
}): HostPolicy {
  const names = new Set<string>();
  const namesWithPort = new Set<string>();
  const add = (n: string) => {
    const h = splitHost(parseIp(n)?.version === 6 && !n.startsWith("[") ? `[${n}]` : n);
    if (!h) throw new TypeError(`not a host name: ${JSON.stringify(n)}`);
    if (h.port) namesWithPort.add(`${h.name}:${h.port}`);
    else names.add(h.name);
  };
  if (isWildcardAddress(opts.bindAddress)) {
    for (const a of opts.interfaceAddresses ?? []) add(a);
    for (const n of ["localhost", "127.0.0.1", "::1"]) add(n);
  } else {
    add(opts.bindAddress);
    if (opts.loopback) { for (const n of ["localhost", "127.0.0.1", "::1"]) add(n); }
  }
  for (const p of opts.publicHosts ?? []) add(p);
  return { names, namesWithPort };
}

/**
 * Whether a request's Host header names this server. A request without one cannot come from a
 * browser (browsers always send it), so it passes; a malformed one does not.
 */
export function hostAllowed(hostHeader: string | null, policy: HostPolicy): boolean {
  if (hostHeader === null) return true;
  const h = splitHost(hostHeader);
  if (!h) return false;
  return policy.names.has(h.name) || (h.port !== "" && policy.namesWithPort.has(`${h.name}:${h.port}`));
}

// ---------------------------------------------------------------------------------------------
// Writes from browsers

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/** True for methods that change state and so need `writeAllowed`. */
export function isWriteMethod(method: string): boolean {
  return !SAFE_METHODS.has(method.toUpperCase());
}

/**
 * The origins a browser page of this server has: the one the request was addressed to (its Host is
 * already checked) and, for each public host, its http and https origins (a TLS-terminating reverse
 * proxy in front changes the scheme and port the browser sees).
 */
export function ownOrigins(requestUrl: URL, publicHosts: string[] = []): Set<string> {
  const out = new Set([requestUrl.origin]);
  for (const p of publicHosts) {
    const h = splitHost(p);
    if (!h) continue;
    const host = h.port ? `${h.name}:${h.port}` : h.name;
    out.add(new URL(`http://${host}`).origin);
    out.add(new URL(`https://${host}`).origin);
  }
  return out;
}

/**
 * Whether a state-changing request may proceed. Browsers send `Origin` on every POST/DELETE and
 * `Sec-Fetch-Site` on every request; a page of another origin is refused, whatever its content
 * type (a "simple" cross-site form POST needs no preflight). Clients that send neither (the CLI,
 * curl, other servers) are not browsers acting for a foreign page and pass.
 */
export function writeAllowed(
  headers: { origin: string | null; secFetchSite: string | null },
  origins: ReadonlySet<string>,
): { ok: true } | { ok: false; reason: string } {
  const { origin, secFetchSite } = headers;
  if (origin !== null) {
    let normalised = origin;
    try {
      normalised = origin === "null" ? "null" : new URL(origin).origin;
    } catch {
      return { ok: false, reason: `the Origin header ${JSON.stringify(origin.slice(0, 100))} is malformed` };
    }
    if (origins.has(normalised)) return { ok: true };
    return {
      ok: false,
      reason: `writes are accepted only from this server's own pages; the request came from ${
        JSON.stringify(normalised.slice(0, 100))
      }`,
    };
  }
  const site = secFetchSite?.toLowerCase() ?? null;
  if (site !== null && site !== "same-origin" && site !== "none") {
    return {
      ok: false,
      reason: `writes are accepted only from this server's own pages (Sec-Fetch-Site: ${site})`,
    };
  }
  return { ok: true };
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
