/**
 * Who may talk to the edge server, as pure functions so each rule is tested alone:
 *
 * - whether a bind address is loopback, decided by IP and not by how the name is spelled,
 * - which `Host` names the server answers (DNS rebinding: a foreign page whose name resolves to
 *   127.0.0.1 must not read the store),
 * - which browser origins may write (STOW, DELETE, proxied writes).
 *
 * Nothing here does I/O except `resolvesToLoopback`, which takes its resolver as an argument. What a
 * request may ask for (paths, frames, proxied headers) is in guard.ts.
 */

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
