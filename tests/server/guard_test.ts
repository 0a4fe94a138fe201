/** The edge server's request guards as pure functions (src/server/host_guard.ts, src/server/guard.ts). */
import assert from "node:assert/strict";
import {
  ConcurrencyGate,
  headerUid,
  modelPathServed,
  normaliseProxyPath,
  parseFrameList,
  proxyRequestHeaders,
  proxyResponseHeaders,
} from "../../src/server/guard.ts";
import {
  hostAllowed,
  hostPolicy,
  isLoopbackIp,
  ownOrigins,
  resolvesToLoopback,
  writeAllowed,
} from "../../src/server/host_guard.ts";

Deno.test("loopback is decided by the IP: 127.example.org and 127.0.0.1.nip.io are names, not loopback", async () => {
  for (const ip of ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1"]) {
    assert.ok(isLoopbackIp(ip), ip);
  }
  for (const ip of ["128.0.0.1", "10.0.0.1", "::", "0.0.0.0", "127.example.org", "localhost", "0x7f.0.0.1"]) {
    assert.ok(!isLoopbackIp(ip), ip);
  }
  const nowhere = () => Promise.reject(new Error("NXDOMAIN"));
  assert.equal(await resolvesToLoopback("127.example.org", nowhere), false);
  assert.equal(await resolvesToLoopback("127.0.0.1.nip.io", nowhere), false);
  assert.equal(await resolvesToLoopback("localhost", nowhere), true);
  assert.equal(await resolvesToLoopback("127.0.0.2", nowhere), true);
  assert.equal(await resolvesToLoopback("192.168.1.4", nowhere), false);
  const to = (a: string[], aaaa: string[] = []) => (_: string, t: "A" | "AAAA") =>
    Promise.resolve(t === "A" ? a : aaaa);
  assert.equal(await resolvesToLoopback("127.example.org", to(["93.184.215.14"])), false);
  assert.equal(await resolvesToLoopback("dev.internal", to(["127.0.0.1"], ["::1"])), true);
  assert.equal(await resolvesToLoopback("split.internal", to(["127.0.0.1"], ["2001:db8::1"])), false);
});

Deno.test("the Host policy takes the bind address, loopback names when loopback, and public hosts", () => {
  const loop = hostPolicy({ bindAddress: "127.0.0.1", loopback: true, publicHosts: ["viewer.example.org"] });
  for (
    const h of [
      "127.0.0.1:8042",
      "localhost:8042",
      "LOCALHOST",
      "[::1]:8042",
      "viewer.example.org",
      "localhost.",
    ]
  ) {
    assert.ok(hostAllowed(h, loop), h);
  }
  for (
    const h of ["evil.example.com", "evil.example.com:8042", "127.0.0.1.evil.com", "", "a b", "x@127.0.0.1"]
  ) {
    assert.ok(!hostAllowed(h, loop), h);
  }
  assert.ok(hostAllowed(null, loop), "a request without Host is not from a browser");
  const lan = hostPolicy({ bindAddress: "192.168.1.4", loopback: false, publicHosts: ["pacs-edge:443"] });
  assert.ok(hostAllowed("192.168.1.4:8042", lan));
  assert.ok(!hostAllowed("localhost:8042", lan), "not bound on loopback: localhost is some other server");
  assert.ok(hostAllowed("pacs-edge:443", lan));
  assert.ok(!hostAllowed("pacs-edge:8042", lan), "a public host given with a port pins it");
  const any = hostPolicy({
    bindAddress: "0.0.0.0",
    loopback: false,
    interfaceAddresses: ["10.1.2.3", "fe80::1"],
  });
  assert.ok(hostAllowed("10.1.2.3:8042", any));
  assert.ok(hostAllowed("[fe80::1]:8042", any));
  assert.ok(hostAllowed("127.0.0.1:8042", any));
  assert.ok(!hostAllowed("rebind.example.net:8042", any));
});

Deno.test("writes pass from the server's own origin and from clients without Origin, never from another page", () => {
  const own = ownOrigins(new URL("http://127.0.0.1:8042/dicom-web/studies"), ["viewer.example.org"]);
  const w = (origin: string | null, secFetchSite: string | null = null) =>
    writeAllowed({ origin, secFetchSite }, own);
  assert.ok(w("http://127.0.0.1:8042").ok);
  assert.ok(w("https://viewer.example.org").ok, "behind a TLS reverse proxy");
  assert.ok(w(null).ok, "CLI and curl send no Origin");
  assert.ok(w(null, "same-origin").ok);
  assert.ok(!w("http://evil.example.com").ok);
  assert.ok(!w("http://127.0.0.1:3000").ok, "another port is another origin");
  assert.ok(!w("null").ok, "sandboxed frames and file: pages send Origin: null");
  assert.ok(!w("not a url").ok);
  assert.ok(!w(null, "cross-site").ok);
  assert.ok(!w(null, "same-site").ok);
});

Deno.test("proxy paths are decoded once and must be a DICOMweb route with a DICOMweb method", () => {
  const ok = (p: string, m = "GET") => {
    const r = normaliseProxyPath(p, m);
    assert.ok(r.ok, `${m} ${p}: ${!r.ok ? r.reason : ""}`);
    return r.ok ? r.path : "";
  };
  const refused = (p: string, m: string, status: number) => {
    const r = normaliseProxyPath(p, m);
    assert.ok(!r.ok && r.status === status, `${m} ${p} should be ${status}, got ${JSON.stringify(r)}`);
  };
  assert.equal(ok("/studies"), "/studies");
  assert.equal(
    ok("/studies/1.2.3/series/4.5/instances/6.7/frames/1,2"),
    "/studies/1.2.3/series/4.5/instances/6.7/frames/1,2",
  );
  assert.equal(
    ok("/studies/1.2.3/series/4.5/instances/6.7/frames/1%2C2"),
    "/studies/1.2.3/series/4.5/instances/6.7/frames/1,2",
  );
  assert.equal(
    ok("/studies/1.2.3/series/4.5/instances/6.7/bulk/7fe00010"),
    "/studies/1.2.3/series/4.5/instances/6.7/bulk/7fe00010",
  );
  ok("/studies/1.2.3/series/4.5/instances/6.7/bulk/00540016/0/00181072");
  ok("/studies/1.2.3/rendered");
  assert.equal(ok("/studies/", "POST"), "/studies");
  ok("/studies/1.2.3", "POST");
  ok("/studies/1.2.3/metadata", "HEAD");
  for (
    const p of [
      "/.%2e%2fsystem",
      "/studies/.%2e%2f..%2fsystem",
      "/studies/%2e%2e/tools",
      "/studies/1.2.3/%2e",
      "/studies/1.2.3%2f..%2f..%2ftools",
      "/studies/..",
      "/studies/1.2.3%5c..",
      "/studies/%252e%252e",
      "/studies/1.2.3%00",
      "/studies/%zz",
    ]
  ) refused(p, "GET", 400);
  for (
    const p of ["/", "/system", "/tools/find", "/instances/abc", "/studies/1..2", "/studies/.1", "/patients"]
  ) {
    refused(p, "GET", 404);
  }
  refused("/studies/1.2.3", "DELETE", 405);
  refused("/studies/1.2.3/series", "POST", 405);
  refused("/studies", "PUT", 405);
  refused("/studies", "PATCH", 405);
  refused("/studies/1.2.3/series/4.5/instances/6.7/frames/" + Array(5000).fill(1).join(","), "GET", 400);
});

Deno.test("proxy headers: an allow-list upstream (no Cookie), and no cookies, challenges or CORS grants back", () => {
  const up = proxyRequestHeaders(
    new Headers({
      accept: "multipart/related; type=application/octet-stream",
      authorization: "Bearer t",
      "content-type": "application/dicom",
      range: "bytes=0-9",
      "if-none-match": '"x"',
      cookie: "session=secret",
      origin: "http://127.0.0.1:8042",
      referer: "http://127.0.0.1:8042/viewer?StudyInstanceUIDs=1.2.3",
      "x-forwarded-for": "6.6.6.6",
      forwarded: "for=6.6.6.6",
      "sec-fetch-site": "same-origin",
      "accept-encoding": "gzip",
    }),
  );
  assert.deepEqual(
    [...up.keys()].sort(),
    ["accept", "authorization", "content-type", "if-none-match", "range"],
  );
  const down = proxyResponseHeaders(
    new Headers([
      ["content-type", "application/dicom+json"],
      ["etag", '"abc"'],
      ["set-cookie", "pacs=1"],
      ["www-authenticate", 'Basic realm="pacs"'],
      ["access-control-allow-origin", "*"],
      ["access-control-allow-credentials", "true"],
      ["content-encoding", "gzip"],
      ["content-length", "10"],
      ["x-upstream", "yes"],
    ]),
  );
  assert.deepEqual([...down.keys()].sort(), ["content-type", "etag", "x-upstream"]);
});

Deno.test("frame lists are de-duplicated in order and capped", () => {
  assert.deepEqual(parseFrameList("3,1,3,1,2"), { ok: true, frames: [3, 1, 2] });
  assert.equal(parseFrameList(Array(3000).fill("1").join(",")).ok, false);
  assert.equal(parseFrameList(Array(3000).fill("1").join(","), 4000).ok, true);
  for (const bad of ["", "0", "-1", "1.5", "1e3", "1,,2", "99999999999"]) {
    assert.equal(parseFrameList(bad).ok, false, bad);
  }
});

Deno.test("the STOW gate admits max holders, queues up to its queue and refuses beyond", async () => {
  const gate = new ConcurrencyGate(1, 1);
  const first = await gate.enter()!;
  const second = gate.enter();
  assert.ok(second, "one may wait");
  assert.equal(gate.enter(), null, "the queue is full");
  assert.equal(gate.waiting, 1);
  first();
  const release = await second;
  assert.equal(gate.inside, 1);
  release();
  release();
  assert.equal(gate.inside, 0, "releasing twice frees one slot");
});

Deno.test("values put into headers must be UIDs; model training files are not served", () => {
  assert.equal(headerUid("1.2.840.10008.1.2.1"), "1.2.840.10008.1.2.1");
  for (
    const bad of ["1.2.840.10008.1.2.1..", "1.2\r\nset-cookie: a=b", "1.2; boundary=x", "", "1".repeat(65)]
  ) {
    assert.throws(() => headerUid(bad), TypeError, JSON.stringify(bad));
  }
  assert.ok(modelPathServed("retina-vessels/model.onnx"));
  for (
    const p of ["training/README.md", "Training/x.py", "%74raining/train.py", "//training/x", "a/.git/config"]
  ) {
    assert.ok(!modelPathServed(p), p);
  }
});
