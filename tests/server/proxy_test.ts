import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { withServer } from "./helpers.ts";

interface Seen {
  method: string;
  path: string;
  headers: Headers;
  body: Uint8Array;
}

/** A fake PACS on an ephemeral port: records requests, answers gzip-compressed JSON. */
async function withFakePacs(fn: (base: string, seen: Seen[]) => Promise<void>): Promise<void> {
  const seen: Seen[] = [];
  const { promise, resolve } = Promise.withResolvers<number>();
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen: (a) => resolve(a.port) },
    async (req) => {
      const url = new URL(req.url);
      const body = new Uint8Array(await req.arrayBuffer());
      seen.push({ method: req.method, path: url.pathname + url.search, headers: req.headers, body });
      if (url.searchParams.has("slow")) await new Promise((r) => setTimeout(r, 2000));
      const fwd = req.headers.get("forwarded") ?? "";
      const host = /host=([^;]+)/.exec(fwd)?.[1] ?? url.host;
      const json = JSON.stringify([{
        "00081190": { vr: "UR", Value: [`http://${host}/dicom-web/studies/1.2.3`] },
      }]);
      // Always gzip, as a PACS may: the proxy must not pass a stale content-encoding along.
      return new Response(gzipSync(new TextEncoder().encode(json)), {
        status: req.method === "POST" ? 200 : 200,
        headers: {
          "content-type": "application/dicom+json",
          "content-encoding": "gzip",
          "x-upstream": "yes",
        },
      });
    },
  );
  const port = await promise;
  try {
    await fn(`http://127.0.0.1:${port}/dicom-web`, seen);
  } finally {
    await server.shutdown();
  }
}

Deno.test("proxy mode forwards /dicom-web to the PACS with Forwarded host/proto and strips content-encoding", async () => {
  await withFakePacs(async (pacs, seen) => {
    await withServer({ pacsUrl: pacs }, async (s) => {
      const res = await fetch(s.at("/dicom-web/studies?PatientName=DOE*&limit=5"), {
        headers: { accept: "application/dicom+json", "accept-encoding": "gzip" },
      });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("content-encoding"), null);
      assert.equal(res.headers.get("x-upstream"), "yes");
      assert.equal(res.headers.get("cross-origin-embedder-policy"), "require-corp");
      const json = await res.json();
      const host = new URL(s.url).host;
      assert.equal(json[0]["00081190"].Value[0], `http://${host}/dicom-web/studies/1.2.3`);
      assert.equal(seen.length, 1);
      assert.equal(seen[0].path, "/dicom-web/studies?PatientName=DOE*&limit=5");
      assert.equal(seen[0].headers.get("forwarded"), `host=${host};proto=http`);
      assert.equal(seen[0].headers.get("accept"), "application/dicom+json");
      assert.notEqual(seen[0].headers.get("accept-encoding"), "gzip");
      assert.equal(s.store, undefined);
    });
  });
});

Deno.test("proxy mode streams a STOW body to the PACS unchanged", async () => {
  await withFakePacs(async (pacs, seen) => {
    await withServer({ pacsUrl: pacs }, async (s) => {
      const body = new Uint8Array(300_000).map((_, i) => (i * 7) & 255);
      const ct = 'multipart/related; type="application/dicom"; boundary=XYZ';
      const res = await fetch(s.at("/dicom-web/studies"), {
        method: "POST",
        headers: { "content-type": ct },
        body,
      });
      assert.equal(res.status, 200);
      await res.body?.cancel();
      assert.equal(seen[0].method, "POST");
      assert.equal(seen[0].headers.get("content-type"), ct);
      assert.deepEqual(seen[0].body, body);
    });
  });
});

Deno.test("an unreachable PACS gives 502 and a slow one 504, as JSON", async () => {
  await withServer({ pacsUrl: "http://127.0.0.1:9/dicom-web" }, async (s) => {
    const res = await fetch(s.at("/dicom-web/studies"));
    assert.equal(res.status, 502);
    assert.equal((await res.json()).error, "PACS_UNREACHABLE");
  });
  await withFakePacs(async (pacs) => {
    await withServer({ pacsUrl: pacs, proxyTimeoutMs: 200 }, async (s) => {
      const res = await fetch(s.at("/dicom-web/studies?slow=1"));
      assert.equal(res.status, 504);
      assert.equal((await res.json()).error, "PACS_TIMEOUT");
    });
  });
});
