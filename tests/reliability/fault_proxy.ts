/**
 * A fault-injecting HTTP proxy on 127.0.0.1:0 for the failure-injection tests. It forwards to an
 * upstream (a real Orthanc) and, per request, applies the fault chosen by `plan(n, req)`:
 *   pass       forward unchanged
 *   status     answer `status` itself (e.g. 503) without contacting the upstream
 *   slow       wait `delayMs` before forwarding (headers arrive late)
 *   truncate   forward, then cut the response body after `keepBytes` and drop the connection
 *   stall      forward the headers, then never send the body
 *   drop       read part of the request body, then drop the connection (a PACS dying mid-STOW)
 * The upstream can be switched (a restarted PACS on a new port) without the client noticing.
 */
export type Fault =
  | { kind: "pass" }
  | { kind: "status"; status: number; body?: string }
  | { kind: "slow"; delayMs: number }
  | { kind: "truncate"; keepBytes: number }
  | { kind: "stall" }
  | { kind: "drop"; afterBytes: number };

export interface FaultProxy {
  url: string;
  /** requests seen so far */
  count(): number;
  setUpstream(url: string): void;
  setPlan(plan: (n: number, req: Request) => Fault): void;
  close(): Promise<void>;
}

export function startFaultProxy(upstream: string, plan: (n: number, req: Request) => Fault): FaultProxy {
  let n = 0;
  let up = upstream.replace(/\/+$/, "");
  let currentPlan = plan;
  const pending = new Set<ReturnType<typeof setTimeout>>();
  const stalls = new Set<ReadableStreamDefaultController<Uint8Array>>();
  const wait = (ms: number) =>
    new Promise<void>((r) => {
      const t = setTimeout(() => {
        pending.delete(t);
        r();
      }, ms);
      pending.add(t);
    });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const fault = currentPlan(++n, req);
    const url = new URL(req.url);
    const target = `${up}${url.pathname}${url.search}`;
    if (fault.kind === "status") {
      await req.body?.cancel();
      return new Response(fault.body ?? `injected ${fault.status}`, { status: fault.status });
    }
    if (fault.kind === "drop") {
      // read some of the upload, then fail the response stream: the client sees the connection die
      const reader = req.body?.getReader();
      let got = 0;
      while (reader && got < fault.afterBytes) {
        const { done, value } = await reader.read();
        if (done) break;
        got += value.length;
      }
      await reader?.cancel().catch(() => {});
      return new Response(
        new ReadableStream({
          start(c) {
            c.error(new Error("injected: connection dropped"));
          },
        }),
        { status: 200 },
      );
    }
    if (fault.kind === "slow") await wait(fault.delayMs);
    const body = req.body ? new Uint8Array(await req.arrayBuffer()) : undefined;
    let res: Response;
    try {
      res = await fetch(target, { method: req.method, headers: req.headers, body });
    } catch {
      // upstream down: look like it to the client (a dropped connection, not a proxy's 5xx)
      return new Response(
        new ReadableStream({
          start(c) {
            c.error(new Error("injected: upstream unreachable"));
          },
        }),
        { status: 200 },
      );
    }
    const headers = new Headers(res.headers);
    headers.delete("content-length");
    headers.delete("transfer-encoding");
    if (fault.kind === "truncate") {
      const bytes = new Uint8Array(await res.arrayBuffer());
      return new Response(
        new ReadableStream({
          start(c) {
            c.enqueue(bytes.slice(0, fault.keepBytes));
            c.error(new Error("injected: body cut off"));
          },
        }),
        { status: res.status, headers },
      );
    }
    if (fault.kind === "stall") {
      await res.body?.cancel();
      return new Response(
        new ReadableStream<Uint8Array>({
          start(c) {
            stalls.add(c);
          },
        }),
        { status: res.status, headers },
      );
    }
    return new Response(res.body, { status: res.status, headers });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    count: () => n,
    setUpstream: (u) => (up = u.replace(/\/+$/, "")),
    setPlan: (p) => (currentPlan = p),
    async close() {
      for (const t of pending) clearTimeout(t);
      for (const c of stalls) {
        try {
          c.close();
        } catch {
          // already closed by the client's cancel
        }
      }
      // graceful shutdown waits for the connections the faults left half-open; give it a moment only
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([server.shutdown(), new Promise((r) => (timer = setTimeout(r, 500)))]);
      clearTimeout(timer);
    },
  };
}
