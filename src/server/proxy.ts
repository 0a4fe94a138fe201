/**
 * The same-origin relay of `/dicom-web/*` to a PACS: the path is decoded and checked (guard.ts
 * `normaliseProxyPath`), only allow-listed headers cross in either direction, and a PACS that is
 * unreachable or slow answers 502/504 with a message naming it.
 */
import { errorResponse } from "./dicomweb.ts";
import { normaliseProxyPath, proxyRequestHeaders, proxyResponseHeaders } from "./guard.ts";

/** Relays `/dicom-web/*` to a PACS on the same origin (see the header notes inline). */
export async function proxyToPacs(
  req: Request,
  url: URL,
  subPath: string,
  pacsUrl: string,
  timeoutMs: number,
): Promise<Response> {
  const checked = normaliseProxyPath(subPath, req.method);
  if (!checked.ok) {
    await req.body?.cancel().catch(() => {});
    return errorResponse(
      checked.status,
      checked.code,
      checked.reason,
      checked.allow ? { allow: checked.allow } : {},
    );
  }
  const target = new URL(pacsUrl.replace(/\/+$/, "") + checked.path + url.search);
  // An allow-list (no Cookie, Origin, Sec-*, forwarding headers); no Accept-Encoding either: Deno's
  // fetch un-gzips transparently, and asking for identity keeps bodies and lengths consistent.
  const headers = proxyRequestHeaders(req.headers);
  // Orthanc builds RetrieveURL/BulkDataURI from RFC 7239 Forwarded (it ignores X-Forwarded-*).
  headers.set("forwarded", `host=${url.host};proto=${url.protocol.replace(":", "")}`);
  // The deadline covers the answer's body too; its timer is cleared when the body has been passed on
  // (an armed AbortSignal.timeout would keep a stopped server's process alive until it fires).
  const deadline = new AbortController();
  const timer = setTimeout(
    () => deadline.abort(new DOMException(`no answer within ${timeoutMs} ms`, "TimeoutError")),
    timeoutMs,
  );
  const init: RequestInit & { duplex?: string } = {
    method: req.method,
    headers,
    redirect: "manual",
    signal: deadline.signal,
  };
  if (req.body && req.method !== "GET" && req.method !== "HEAD") {
    init.body = req.body;
    init.duplex = "half";
  }
  let upstream: Response;
  try {
    upstream = await fetch(target, init);
  } catch (e) {
    clearTimeout(timer);
    const timeout = e instanceof DOMException && e.name === "TimeoutError";
    return errorResponse(
      timeout ? 504 : 502,
      timeout ? "PACS_TIMEOUT" : "PACS_UNREACHABLE",
      `the PACS at ${target.origin} ${
        timeout ? `did not answer within ${timeoutMs} ms` : `could not be reached: ${(e as Error).message}`
      }`,
    );
  }
  const out = proxyResponseHeaders(upstream.headers);
  const body = upstream.body?.pipeThrough(new TransformStream({ flush: () => clearTimeout(timer) })) ?? null;
  if (!body) clearTimeout(timer);
  return new Response(body, {
    status: upstream.status,
    statusText: upstream.statusText,
    headers: out,
  });
}
