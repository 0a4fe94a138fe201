import assert from "node:assert/strict";
import { join } from "node:path";
import { type TestServer, withServer } from "./helpers.ts";
import { modelIndex } from "../../src/server/model_index.ts";

/** A fake OHIF dist: index.html, a content-hashed chunk, a sub-folder, and a symlink pointing outside. */
async function fakeDist(): Promise<{ dist: string; plugins: string; models: string; outside: string }> {
  const root = await Deno.makeTempDir({ prefix: "edgeseg-http-" });
  const dist = join(root, "dist"),
    plugins = join(root, "plugins"),
    models = join(root, "models"),
    outside = join(root, "secret.txt");
  await Deno.mkdir(join(dist, "assets"), { recursive: true });
  await Deno.writeTextFile(join(dist, "index.html"), "<!doctype html><title>viewer</title>");
  await Deno.writeTextFile(join(dist, "app-config.js"), "window.config = { original: true };");
  await Deno.writeTextFile(join(dist, "1234.bundle.0123456789abcdef.js"), "export const chunk = 1;");
  await Deno.writeFile(
    join(dist, "0ddf166f7a343eda.wasm"),
    new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]),
  );
  await Deno.writeTextFile(join(dist, "assets", "logo.svg"), "<svg xmlns='http://www.w3.org/2000/svg'/>");
  await Deno.writeTextFile(outside, "TOP SECRET");
  await Deno.symlink(outside, join(dist, "escape.txt"));
  await Deno.mkdir(join(plugins, "edgeseg"), { recursive: true });
  await Deno.writeTextFile(join(plugins, "edgeseg", "edgeseg-extension-ABCD1234.js"), "export default {};");
  await Deno.writeTextFile(
    join(plugins, "edgeseg", "plugins.json"),
    JSON.stringify({
      extensions: ["/plugins/edgeseg/edgeseg-extension-ABCD1234.js"],
      modes: ["/plugins/edgeseg/edgeseg-mode-ABCD1234.js"],
    }),
  );
  // A valid manifest (the tiny-2d fixture's, renamed), the same under training/, and a broken one.
  const valid = JSON.parse(
    await Deno.readTextFile(new URL("../fixtures/models/tiny-2d/manifest.json", import.meta.url)),
  );
  for (const id of ["tiny", "training", "broken"]) {
    await Deno.mkdir(join(models, id), { recursive: true });
    const manifest = id === "broken" ? { id, name: "Broken", version: "1.0.0" } : {
      ...valid,
      id,
      name: `Model ${id}`,
      constraints: { ...valid.constraints, modalities: ["CT"] },
      labels: [{ ...valid.labels[0], value: 1, name: "liver", color: [200, 100, 50] }],
    };
    await Deno.writeTextFile(join(models, id, "manifest.json"), JSON.stringify(manifest));
  }
  await Deno.writeFile(join(models, "tiny", "model.onnx"), new Uint8Array(1000).map((_, i) => i & 255));
  return { dist, plugins, models, outside };
}

async function withFakeViewer(
  fn: (s: TestServer) => Promise<void>,
  extra: Record<string, unknown> = {},
): Promise<void> {
  const f = await fakeDist();
  await withServer({ ohifDist: f.dist, pluginsDir: f.plugins, modelsDir: f.models, ...extra }, fn);
}

async function get(s: TestServer, path: string, headers: Record<string, string> = {}) {
  const res = await fetch(s.at(path), { headers });
  const body = new Uint8Array(await res.arrayBuffer());
  return { res, body, text: new TextDecoder().decode(body) };
}

Deno.test("every response carries COOP, COEP, CORP, nosniff, no-referrer and a CSP", async () => {
  await withFakeViewer(async (s) => {
    for (
      const path of [
        "/",
        "/app-config.js",
        "/dicom-web/studies",
        "/nope.js",
        "/dicom-web/studies/1.2/metadata",
        "/models/index.json",
      ]
    ) {
      const { res } = await get(s, path);
      assert.equal(res.headers.get("cross-origin-opener-policy"), "same-origin", path);
      assert.equal(res.headers.get("cross-origin-embedder-policy"), "require-corp", path);
      assert.equal(res.headers.get("cross-origin-resource-policy"), "same-origin", path);
      assert.equal(res.headers.get("x-content-type-options"), "nosniff", path);
      assert.equal(res.headers.get("referrer-policy"), "no-referrer", path);
      const csp = res.headers.get("content-security-policy") ?? "";
      assert.match(csp, /default-src 'self'/, path);
      assert.match(csp, /'wasm-unsafe-eval'/, path);
      assert.match(csp, /frame-ancestors 'none'/, path);
    }
  });
});

Deno.test("our app-config.js replaces the dist's: plugins, embedded store, tour off, no-cache", async () => {
  await withFakeViewer(async (s) => {
    const { res, text } = await get(s, "/app-config.js");
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("cache-control"), "no-cache");
    assert.match(res.headers.get("content-type")!, /text\/javascript/);
    assert.ok(!text.includes("original"));
    const config = JSON.parse(text.slice(text.indexOf("{"), text.lastIndexOf("}") + 1));
    assert.deepEqual(config.extensions, ["/plugins/edgeseg/edgeseg-extension-ABCD1234.js"]);
    assert.deepEqual(config.modes, ["/plugins/edgeseg/edgeseg-mode-ABCD1234.js"]);
    assert.equal(config.showStudyList, true);
    assert.deepEqual(config.tours, []);
    // OHIF 3.13.2 reads its tours from the 'ohif.tours' customization; mode-basic sets it per mode.
    assert.deepEqual(config.customizationService.global["ohif.tours"], { $set: [] });
    assert.deepEqual(config.customizationService.mode["*"]["ohif.tours"], { $set: [] });
    assert.equal(config.investigationalUseDialog.option, "never");
    assert.equal(config.defaultDataSourceName, config.dataSources[0].sourceName);
    assert.equal(config.dataSources[0].configuration.qidoRoot, "/dicom-web");
    assert.equal(config.dataSources[0].configuration.wadoRoot, "/dicom-web");
    assert.equal(config.dataSources[0].configuration.friendlyName, "EdgeSeg local store");
  });
});

Deno.test("without plugins.json the config has no plugins and a warning is logged", async () => {
  const f = await fakeDist();
  await Deno.remove(join(f.plugins, "edgeseg", "plugins.json"));
  await withServer({ ohifDist: f.dist, pluginsDir: f.plugins }, async (s) => {
    const { text } = await get(s, "/app-config.js");
    assert.match(text, /"extensions": \[\]/);
    assert.ok(s.logs.some((l) => l.startsWith("warning:") && l.includes("plugins.json")));
  });
});

Deno.test("unknown client routes fall back to index.html; unknown files are 404; no directory listing", async () => {
  await withFakeViewer(async (s) => {
    for (const p of ["/", "/viewer", "/edgeseg/viewer?StudyInstanceUIDs=1.2.3", "/assets", "/assets/"]) {
      const r = await get(s, p);
      assert.equal(r.res.status, 200, p);
      assert.match(r.text, /<title>viewer<\/title>/, p);
    }
    const missing = await get(s, "/missing.js");
    assert.equal(missing.res.status, 404);
    assert.equal(JSON.parse(missing.text).error, "NOT_FOUND");
    for (const p of ["/plugins/", "/plugins/edgeseg", "/plugins/edgeseg/", "/models/tiny/"]) {
      const r = await get(s, p);
      assert.equal(r.res.status, 404, p);
      assert.ok(!r.text.includes("edgeseg-extension") && !r.text.includes("model.onnx"), p);
    }
  });
});

Deno.test("path traversal is rejected: encoded .., %2e%2e, absolute paths, symlinks out of the root", async () => {
  await withFakeViewer(async (s) => {
    const url = new URL(s.url);
    // Raw requests: fetch() would normalise the path before sending it.
    const raw = async (path: string) => {
      const conn = await Deno.connect({ hostname: url.hostname, port: Number(url.port) });
      await conn.write(
        new TextEncoder().encode(`GET ${path} HTTP/1.1\r\nHost: ${url.host}\r\nConnection: close\r\n\r\n`),
      );
      const text = new TextDecoder().decode(await new Response(conn.readable).arrayBuffer());
      return { status: Number(text.split(" ")[1]), text };
    };
    // Every attempt is refused as such (400), before routing: none is folded into the root and
    // answered 200 with some other file, nor reported 404 as if it had been looked up.
    for (
      const p of [
        "/..%2f..%2fetc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/.%2e/.%2E/etc/passwd",
        "/plugins/..%2f..%2f..%2fetc/passwd",
        "/models/%2e%2e/%2e%2e/etc/passwd",
        "/plugins/%2Fetc%2Fpasswd",
        "/../../etc/passwd",
        "/plugins/../../../../etc/passwd",
        "/plugins/./../package.json",
        "//etc/passwd",
        "/plugins//etc/passwd",
        "/edgeseg/ort/..%2f..%2fpackage.json",
        "/edgeseg/ort/%5c..%5cpackage.json",
        "/dicom-web/studies/..",
        "/dicom-web/%2e%2e/%2e%2e/etc/passwd",
      ]
    ) {
      const r = await raw(p);
      assert.equal(r.status, 400, `${p}: ${r.status}`);
      assert.equal(JSON.parse(r.text.slice(r.text.indexOf("\r\n\r\n") + 4)).error, "BAD_PATH", p);
      assert.ok(!r.text.includes("root:x:0:0"), `${p} leaked /etc/passwd`);
      assert.ok(!r.text.includes('"name": "onnxruntime-web"'), `${p} leaked a package file`);
      assert.ok(!r.text.includes("<title>viewer</title>"), `${p} was folded into a viewer route`);
    }
    const sym = await get(s, "/escape.txt");
    assert.equal(sym.res.status, 400);
    assert.ok(!sym.text.includes("TOP SECRET"));
  });
});

Deno.test("content types, strong caching for hashed files, ETag and 304", async () => {
  await withFakeViewer(async (s) => {
    const chunk = await get(s, "/1234.bundle.0123456789abcdef.js");
    assert.match(chunk.res.headers.get("content-type")!, /^text\/javascript/);
    assert.equal(chunk.res.headers.get("cache-control"), "public, max-age=31536000, immutable");
    const wasm = await get(s, "/0ddf166f7a343eda.wasm");
    assert.equal(wasm.res.headers.get("content-type"), "application/wasm");
    assert.match(wasm.res.headers.get("cache-control")!, /immutable/);
    const plugin = await get(s, "/plugins/edgeseg/edgeseg-extension-ABCD1234.js");
    assert.match(plugin.res.headers.get("content-type")!, /^text\/javascript/);
    assert.match(plugin.res.headers.get("cache-control")!, /immutable/);
    const index = await get(s, "/");
    assert.equal(index.res.headers.get("cache-control"), "no-cache");
    const onnx = await get(s, "/models/tiny/model.onnx");
    assert.equal(onnx.res.headers.get("content-type"), "application/octet-stream");
    assert.equal(onnx.body.length, 1000);
    const manifest = await get(s, "/models/tiny/manifest.json");
    assert.match(manifest.res.headers.get("content-type")!, /^application\/json/);
    const svg = await get(s, "/assets/logo.svg");
    assert.equal(svg.res.headers.get("content-type"), "image/svg+xml");
    const etag = onnx.res.headers.get("etag")!;
    assert.ok(etag);
    const again = await get(s, "/models/tiny/model.onnx", { "if-none-match": etag });
    assert.equal(again.res.status, 304);
    assert.equal(again.body.length, 0);
  });
});

Deno.test("HTTP Range requests answer 206 with the slice and 416 when unsatisfiable", async () => {
  await withFakeViewer(async (s) => {
    const r = await get(s, "/models/tiny/model.onnx", { range: "bytes=10-19" });
    assert.equal(r.res.status, 206);
    assert.equal(r.res.headers.get("content-range"), "bytes 10-19/1000");
    assert.deepEqual([...r.body], [10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);
    const tail = await get(s, "/models/tiny/model.onnx", { range: "bytes=-3" });
    assert.equal(tail.res.status, 206);
    assert.deepEqual([...tail.body], [997 & 255, 998 & 255, 999 & 255]);
    const open = await get(s, "/models/tiny/model.onnx", { range: "bytes=990-" });
    assert.equal(open.body.length, 10);
    const bad = await get(s, "/models/tiny/model.onnx", { range: "bytes=5000-6000" });
    assert.equal(bad.res.status, 416);
    assert.equal(bad.res.headers.get("content-range"), "bytes */1000");
  });
});

Deno.test("/models/index.json lists every valid package manifest except training/", async () => {
  await withFakeViewer(async (s) => {
    const { res, text } = await get(s, "/models/index.json");
    assert.equal(res.status, 200);
    const index = JSON.parse(text);
    assert.equal(index.models.length, 1);
    const m = index.models[0];
    assert.equal(m.id, "tiny");
    assert.equal(m.version, "1.0.0");
    assert.deepEqual(m.modalities, ["CT"]);
    assert.equal(m.spatialMode, "slice2d");
    assert.deepEqual(m.labels, [{ value: 1, name: "liver", color: [200, 100, 50] }]);
    assert.equal(m.manifest, "tiny/manifest.json");
    assert.deepEqual(m.uncertainty.map((c: { method: string }) => c.method)[0], "none");
    assert.ok(
      s.logs.some((l) => /^models: skipping broken: /.test(l)),
      "the invalid manifest is left out with a log line",
    );
  });
});

Deno.test("the model index gives a variant the figure its package's eval.json measured for that file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "edgeseg-index-variants-" });
  try {
    const fixture = new URL("../fixtures/models/tiny-2d/manifest.json", import.meta.url);
    const manifest = JSON.parse(await Deno.readTextFile(fixture));
    const sha256 = manifest.files["tiny-2d-int8.onnx"].sha256;
    const headline = [{ name: "Dice, mean", eval: 0.5, main: 0.52, difference: -0.02 }];
    for (
      const [folder, evalJson] of [
        ["scored", JSON.stringify({ variants: [{ id: "int8", sha256, headline }] })],
        ["broken", "{ not json"],
      ]
    ) {
      await Deno.mkdir(join(dir, folder));
      await Deno.writeTextFile(join(dir, folder, "manifest.json"), JSON.stringify(manifest));
      await Deno.writeTextFile(join(dir, folder, "eval.json"), evalJson);
    }
    const logs: string[] = [];
    const { models } = await modelIndex(dir, (l) => logs.push(l));
    const [broken, scored] = models;
    assert.deepEqual(scored.variants?.[0].validated, {
      metric: "Dice, mean",
      value: 0.5,
      main: 0.52,
      difference: 0.5 - 0.52,
    });
    assert.equal(
      broken.variants?.[0].id,
      "int8",
      "a broken eval.json costs the package nothing but the figure",
    );
    assert.equal(broken.variants?.[0].validated, undefined);
    assert.ok(logs.some((l) => /^models: broken\/eval\.json ignored: /.test(l)), logs.join("\n"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("/edgeseg/ort/ serves onnxruntime-web's runtime files as JavaScript and WASM only", async () => {
  await withFakeViewer(async (s) => {
    const wasm = await get(s, "/edgeseg/ort/ort-wasm-simd-threaded.wasm", { range: "bytes=0-3" });
    assert.equal(wasm.res.status, 206);
    assert.equal(wasm.res.headers.get("content-type"), "application/wasm");
    assert.deepEqual([...wasm.body], [0, 0x61, 0x73, 0x6d]);
    const mjs = await get(s, "/edgeseg/ort/ort.wasm.min.mjs", { range: "bytes=0-0" });
    assert.match(mjs.res.headers.get("content-type")!, /^text\/javascript/);
    const map = await get(s, "/edgeseg/ort/ort.min.js.map");
    assert.equal(map.res.status, 404);
  });
});

Deno.test("one log line per request with method, path, status and time", async () => {
  await withFakeViewer(async (s) => {
    await get(s, "/missing.js");
    await get(s, "/dicom-web/studies?PatientName=x");
    const lines = s.logs.filter((l) => /^(GET|POST) /.test(l));
    assert.equal(lines.length, 2);
    assert.match(lines[0], /^GET \/missing\.js 404 \d+(\.\d+)?ms$/);
    assert.match(lines[1], /^GET \/dicom-web\/studies 200 \d+(\.\d+)?ms$/);
  });
});

Deno.test("non-GET methods outside /dicom-web are 405", async () => {
  await withFakeViewer(async (s) => {
    const res = await fetch(s.at("/app-config.js"), { method: "POST", body: "x" });
    assert.equal(res.status, 405);
    assert.equal((await res.json()).error, "METHOD_NOT_ALLOWED");
  });
});
