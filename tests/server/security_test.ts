/**
 * Issue #16 §1 against a running server: DNS rebinding (Host), writes from foreign pages, the PACS
 * proxy's path, methods and headers, bounded work, partial STOW reports, UID-checked header values,
 * what is served under /models, and that docs/security.md says what the code does.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import dcmjs from "dcmjs";
import { main as startMain } from "../../src/cli/start.ts";
import { CONTENT_SECURITY_POLICY } from "../../src/server/handler.ts";
import { DEFAULT_MAX_UPLOAD } from "../../src/server/mod.ts";
import {
  countStored,
  rawRequest,
  smallPhantom,
  stow,
  STOW_TYPE,
  stowBody,
  type TestServer,
  val,
  withServer,
} from "./helpers.ts";

type Dataset = Record<string, { Value?: unknown[] }>;
const items = (ds: Dataset, tag: string) => (ds[tag]?.Value ?? []) as Dataset[];

Deno.test("a request for a foreign Host name is answered 421 before any route (DNS rebinding)", async () => {
  await withServer({ seed: true, publicHosts: ["viewer.example.org"] }, async (s) => {
    const port = new URL(s.url).port;
    for (const path of ["/dicom-web/studies", "/app-config.js", "/models/index.json", "/nothing-here"]) {
      const r = await rawRequest(s, path, { headers: { host: `evil.example.com:${port}` } });
      assert.equal(r.status, 421, path);
      assert.equal(JSON.parse(r.text).error, "MISDIRECTED");
      assert.ok(!r.text.includes("0020000D"), "no study data in the answer");
      assert.equal(r.headers.get("cross-origin-resource-policy"), "same-origin");
    }
    const post = await rawRequest(s, "/dicom-web/studies", {
      method: "POST",
      headers: { host: "rebind.attacker.test", "content-type": STOW_TYPE() },
      body: stowBody(smallPhantom({ uidRoot: "2.25.5151" }).files),
    });
    assert.equal(post.status, 421);
    for (
      const host of [
        `127.0.0.1:${port}`,
        `localhost:${port}`,
        "viewer.example.org",
        `viewer.example.org:${port}`,
      ]
    ) {
      const r = await rawRequest(s, "/dicom-web/studies", { headers: { host } });
      assert.equal(r.status, 200, host);
    }
    // fetch by both loopback names, as the test suites do
    for (const url of [s.at("/dicom-web/studies"), `http://localhost:${port}/dicom-web/studies`]) {
      const res = await fetch(url);
      assert.equal(res.status, 200, url);
      await res.body?.cancel();
    }
    assert.equal(await countStored(s.dataDir), 64, "the rebinding POST stored nothing");
  });
});

Deno.test("STOW from another origin's page is refused 403; the own origin and clients without Origin store", async () => {
  await withServer({ publicHosts: ["viewer.example.org"] }, async (s) => {
    const post = (headers: Record<string, string>, uidRoot: string) =>
      fetch(s.at("/dicom-web/studies"), {
        method: "POST",
        headers: { "content-type": STOW_TYPE(), ...headers },
        body: stowBody(smallPhantom({ uidRoot, slices: 1 }).files),
      });
    const foreign: Record<string, string>[] = [
      { origin: "http://evil.example.com" },
      { origin: "null" },
      { origin: "http://127.0.0.1:1" },
      { "sec-fetch-site": "cross-site" },
      { "sec-fetch-site": "same-site" },
    ];
    for (const headers of foreign) {
      const res = await post(headers, "2.25.6161");
      assert.equal(res.status, 403, JSON.stringify(headers));
      assert.equal((await res.json()).error, "FOREIGN_ORIGIN");
    }
    assert.equal(await countStored(s.dataDir), 0);
    const own = new URL(s.url).origin;
    const allowed: Record<string, string>[] = [
      { origin: own },
      { origin: own, "sec-fetch-site": "same-origin" },
      { origin: "https://viewer.example.org" },
      {},
    ];
    for (const [i, headers] of allowed.entries()) {
      const res = await post(headers, `2.25.717${i}`);
      assert.equal(res.status, 200, JSON.stringify(headers));
      await res.body?.cancel();
    }
    assert.equal(await countStored(s.dataDir), 4);
    const del = await fetch(s.at("/dicom-web/studies/1.2.3"), {
      method: "DELETE",
      headers: { origin: "http://evil.example.com" },
    });
    assert.equal(del.status, 403);
    await del.body?.cancel();
  });
});

interface Seen {
  method: string;
  path: string;
  headers: Headers;
}

/** A PACS that records what reaches it and answers with headers a proxy must not pass on. */
async function withNaughtyPacs(fn: (base: string, seen: Seen[]) => Promise<void>): Promise<void> {
  const seen: Seen[] = [];
  const { promise, resolve } = Promise.withResolvers<number>();
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen: (a) => resolve(a.port) },
    async (req) => {
      const url = new URL(req.url);
      await req.body?.cancel();
      seen.push({ method: req.method, path: url.pathname + url.search, headers: req.headers });
      return new Response("[]", {
        headers: [
          ["content-type", "application/dicom+json"],
          ["set-cookie", "pacs-session=abc; Path=/"],
          ["www-authenticate", 'Basic realm="pacs"'],
          ["access-control-allow-origin", "*"],
          ["access-control-allow-credentials", "true"],
          ["etag", '"v1"'],
        ],
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

Deno.test("the PACS proxy refuses encoded dots and slashes, non-DICOMweb paths and methods, forwarding nothing", async () => {
  await withNaughtyPacs(async (pacs, seen) => {
    await withServer({ pacsUrl: pacs }, async (s) => {
      for (
        const [path, status] of [
          ["/dicom-web/.%2e%2fsystem", 400],
          ["/dicom-web/studies/.%2e%2f.%2e%2ftools/find", 400],
          ["/dicom-web/studies/1.2.3%2f..%2fpatients", 400],
          ["/dicom-web/studies/%252e%252e/x", 400],
          ["/dicom-web/system", 404],
          ["/dicom-web/tools/find", 404],
          ["/dicom-web/studies/1.2.3/series/4.5/instances/6.7/frames/" + Array(3000).fill(1).join(","), 400],
        ] as const
      ) {
        const r = await rawRequest(s, path);
        assert.equal(r.status, status, path);
      }
      for (
        const [method, path] of [["DELETE", "/dicom-web/studies/1.2.3"], ["PUT", "/dicom-web/studies"], [
          "POST",
          "/dicom-web/studies/1.2.3/series",
        ]]
      ) {
        const r = await rawRequest(s, path, { method, body: new Uint8Array(4) });
        assert.equal(r.status, 405, `${method} ${path}`);
        assert.ok(r.headers.get("allow"), "405 says what is allowed");
      }
      assert.deepEqual(seen, [], "none of these reached the PACS");
    });
  });
});

Deno.test("the PACS proxy forwards an allow-list of headers (never Cookie) and drops Set-Cookie, WWW-Authenticate and CORS grants", async () => {
  await withNaughtyPacs(async (pacs, seen) => {
    await withServer({ pacsUrl: pacs }, async (s) => {
      const res = await fetch(s.at("/dicom-web/studies/1.2.3/series?limit=2"), {
        headers: {
          accept: "application/dicom+json",
          authorization: "Bearer user-token",
          cookie: "edgeseg=1; other-app-session=secret",
          "x-forwarded-for": "6.6.6.6",
          "if-none-match": '"v0"',
        },
      });
      assert.equal(res.status, 200);
      await res.body?.cancel();
      assert.equal(seen.length, 1);
      assert.equal(seen[0].path, "/dicom-web/studies/1.2.3/series?limit=2");
      const h = seen[0].headers;
      assert.equal(h.get("cookie"), null);
      assert.equal(h.get("x-forwarded-for"), null);
      assert.equal(h.get("authorization"), "Bearer user-token");
      assert.equal(h.get("if-none-match"), '"v0"');
      assert.equal(h.get("accept"), "application/dicom+json");
      assert.match(h.get("forwarded") ?? "", /^host=127\.0\.0\.1:\d+;proto=http$/);
      for (
        const name of [
          "set-cookie",
          "www-authenticate",
          "access-control-allow-origin",
          "access-control-allow-credentials",
        ]
      ) {
        assert.equal(res.headers.get(name), null, name);
      }
      assert.equal(res.headers.get("etag"), '"v1"');
    });
  });
});

Deno.test("a WADO frames list is de-duplicated and capped", async () => {
  await withServer({}, async (s) => {
    const ph = smallPhantom();
    await stow(s, ph.files);
    const base = `/dicom-web/studies/${ph.studyInstanceUID}/series/${ph.seriesInstanceUID}/instances/${
      ph.sopInstanceUIDs[0]
    }/frames/`;
    const res = await fetch(s.at(base + "1,1,1,1"));
    assert.equal(res.status, 200);
    const body = new Uint8Array(await res.arrayBuffer());
    assert.equal(body.length < 2 * 32 * 32 * 2, true, `one frame, not four (${body.length} bytes)`);
    const many = await fetch(s.at(base + Array(5000).fill(1).join(",")));
    assert.equal(many.status, 400);
    assert.equal((await many.json()).error, "BAD_FRAMES");
  });
});

Deno.test("STOWs beyond the concurrency bound and its queue get 503 with Retry-After", async () => {
  await withServer({ maxConcurrentStows: 1, maxQueuedStows: 0 }, async (s) => {
    // Hold one STOW open: its body is a stream that has not finished.
    const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
    const writer = writable.getWriter();
    const ph = smallPhantom({ uidRoot: "2.25.818181", slices: 1 });
    const body = stowBody(ph.files);
    const first = fetch(s.at("/dicom-web/studies"), {
      method: "POST",
      headers: { "content-type": STOW_TYPE() },
      body: readable,
    });
    await writer.write(body.subarray(0, 100));
    await new Promise((r) => setTimeout(r, 100));
    const second = await stow(s, smallPhantom({ uidRoot: "2.25.828282", slices: 1 }).files);
    assert.equal(second.status, 503);
    assert.equal((second.json as { error: string }).error, "BUSY");
    await writer.write(body.subarray(100));
    await writer.close();
    const done = await first;
    assert.equal(done.status, 200);
    await done.body?.cancel();
    const third = await stow(s, smallPhantom({ uidRoot: "2.25.838383", slices: 1 }).files);
    assert.equal(third.status, 200, "the slot is free again");
  });
  // A queue absorbs a burst: 6 at once with one slot and a queue of 8 all land.
  await withServer({ maxConcurrentStows: 1, maxQueuedStows: 8 }, async (s) => {
    const rs = await Promise.all(
      Array.from(
        { length: 6 },
        (_, i) => stow(s, smallPhantom({ uidRoot: `2.25.84848${i}`, slices: 1 }).files),
      ),
    );
    assert.deepEqual(rs.map((r) => r.status), [200, 200, 200, 200, 200, 200]);
  });
  const head = await rawRequestWith503();
  assert.equal(head, "5");
});

/** Retry-After comes with the 503 (read from the raw answer, as a client would). */
async function rawRequestWith503(): Promise<string | null> {
  let retry: string | null = null;
  await withServer({ maxConcurrentStows: 0, maxQueuedStows: 0 }, async (s) => {
    const r = await rawRequest(s, "/dicom-web/studies", {
      method: "POST",
      headers: { "content-type": STOW_TYPE() },
      body: stowBody(smallPhantom({ slices: 1 }).files),
    });
    assert.equal(r.status, 503);
    retry = r.headers.get("retry-after");
  });
  return retry;
}

Deno.test("the default upload limit is 1 GiB and is enforced from Content-Length before reading", async () => {
  assert.equal(DEFAULT_MAX_UPLOAD, 1024 * 1024 * 1024);
  await withServer({ uploadTimeoutMs: 3000 }, async (s) => {
    const r = await rawRequest(s, "/dicom-web/studies", {
      method: "POST",
      headers: { "content-type": STOW_TYPE(), "content-length": String(DEFAULT_MAX_UPLOAD + 1) },
      headersOnly: true,
    });
    assert.equal(r.status, 413);
  });
});

Deno.test("a batch STOW that fails half-way lists exactly which instances were stored and which failed", async () => {
  await withServer({}, async (s) => {
    const ph = smallPhantom({ uidRoot: "2.25.919191", slices: 4 });
    // A non-empty folder where instance 2 must go: its rename fails, the others' do not.
    const blocked = join(
      s.dataDir,
      "instances",
      ph.studyInstanceUID,
      ph.seriesInstanceUID,
      `${ph.sopInstanceUIDs[1]}.dcm`,
    );
    await Deno.mkdir(join(blocked, "in-the-way"), { recursive: true });
    const r = await stow(s, ph.files);
    assert.equal(r.status, 202);
    const json = r.json as Dataset;
    const storedUids = items(json, "00081199").map((it) => val(it, "00081155"));
    const failed = items(json, "00081198");
    assert.deepEqual(storedUids, [ph.sopInstanceUIDs[0], ph.sopInstanceUIDs[2], ph.sopInstanceUIDs[3]]);
    assert.deepEqual(failed.map((it) => val(it, "00081155")), [ph.sopInstanceUIDs[1]]);
    assert.equal(val(failed[0], "00081197"), 0x0110);
    // What the answer says is what the store has.
    const listed = await (await fetch(s.at(`/dicom-web/studies/${ph.studyInstanceUID}/instances`)))
      .json() as Dataset[];
    assert.deepEqual(listed.map((d) => val(d, "00080018")).sort(), [...storedUids].sort());
    assert.deepEqual(
      [...Deno.readDirSync(join(s.dataDir, "tmp"))].filter((e) => e.name.startsWith("stow")),
      [],
    );
  });
});

Deno.test("a TransferSyntaxUID that is not a UID is refused at STOW, so it never reaches a header", async () => {
  await withServer({}, async (s) => {
    const ph = smallPhantom({ uidRoot: "2.25.929292", slices: 1 });
    const msg = dcmjs.data.DicomMessage.readFile(ph.files[0].slice().buffer);
    msg.meta["00020010"].Value = ["1.2.840.10008.1.2.1.."];
    const r = await stow(s, [new Uint8Array(msg.write())]);
    assert.equal(r.status, 400);
    assert.equal((r.json as { error: string }).error, "BAD_UID");
    assert.equal(await countStored(s.dataDir), 0);
  });
});

async function withModels(fn: (s: TestServer) => Promise<void>): Promise<void> {
  const models = await Deno.makeTempDir({ prefix: "edgeseg-models-" });
  await Deno.mkdir(join(models, "training"), { recursive: true });
  await Deno.writeTextFile(join(models, "training", "README.md"), "training notes");
  await Deno.writeTextFile(join(models, "training", "train.py"), "print('x')");
  await Deno.mkdir(join(models, "demo", ".git"), { recursive: true });
  await Deno.writeTextFile(join(models, "demo", ".git", "config"), "[core]");
  await Deno.writeTextFile(join(models, "demo", "MODEL_CARD.md"), "# demo");
  try {
    await withServer({ modelsDir: models }, fn);
  } finally {
    await Deno.remove(models, { recursive: true });
  }
}

Deno.test("/models serves packages but not models/training or hidden files", async () => {
  await withModels(async (s) => {
    assert.equal((await rawRequest(s, "/models/demo/MODEL_CARD.md")).status, 200);
    // an empty segment is refused before routing (400), so it cannot reach training/ either
    assert.equal((await rawRequest(s, "/models//training/README.md")).status, 400);
    for (
      const p of [
        "/models/training/README.md",
        "/models/training/train.py",
        "/models/%74raining/train.py",
        "/models/demo/.git/config",
      ]
    ) {
      const r = await rawRequest(s, p);
      assert.equal(r.status, 404, p);
      assert.ok(!r.text.includes("training notes") && !r.text.includes("print("), p);
    }
  });
});

Deno.test("--host 127.example.org is not loopback: start refuses it without --expose", async () => {
  await assert.rejects(
    () => startMain(["--host", "127.example.org", "--port", "0"]),
    (e: Error & { code?: string }) => e.code === "NOT_LOOPBACK",
  );
  await assert.rejects(
    () => startMain(["--host", "127.0.0.1.nip.io.invalid", "--port", "0"]),
    (e: Error & { code?: string }) => e.code === "NOT_LOOPBACK",
  );
});

Deno.test("docs/security.md states the CSP as sent and the routes as served", async () => {
  const doc = await Deno.readTextFile(new URL("../../docs/security.md", import.meta.url));
  const csp = /```\n\s*(default-src[^`]+)```/.exec(doc)?.[1].replace(/\s+/g, " ").trim();
  assert.equal(csp, CONTENT_SECURITY_POLICY);
  assert.match(doc, /`\/edgeseg\/ort\/\*`/);
  assert.match(doc, /`\/models\/training` is not served/);
  assert.match(doc, /--public-host/);
  assert.match(doc, /421/);
  assert.match(doc, /--allow-origin/);
  assert.match(doc, /--plugin-only/);
  await withServer({}, async (s) => {
    const r = await fetch(s.url);
    await r.body?.cancel();
    assert.equal(r.headers.get("content-security-policy"), csp);
  });
});
