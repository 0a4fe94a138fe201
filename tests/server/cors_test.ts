/**
 * Issue #14: `--allow-origin` shares only the plugin, the models and the runtime files with the listed
 * origins; `--plugin-only` serves nothing else. The DICOMweb store, the proxy, app-config.js and the
 * viewer never carry CORS headers.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parseAllowedOrigins } from "../../src/server/cors.ts";
import { smallPhantom, stowBody, type TestServer, withServer } from "./helpers.ts";

const HOSPITAL = "https://ohif.hospital.example";
const STRANGER = "https://evil.example";

async function fixture(): Promise<{ dist: string; plugins: string; models: string }> {
  const root = await Deno.makeTempDir({ prefix: "edgeseg-cors-" });
  const dist = join(root, "dist"), plugins = join(root, "plugins"), models = join(root, "models");
  await Deno.mkdir(dist, { recursive: true });
  await Deno.writeTextFile(join(dist, "index.html"), "<!doctype html><title>viewer</title>");
  await Deno.mkdir(join(plugins, "edgeseg", "0.1.0"), { recursive: true });
  await Deno.writeTextFile(join(plugins, "edgeseg", "edgeseg-extension-ABCD1234.js"), "export default {};");
  await Deno.writeTextFile(
    join(plugins, "edgeseg", "extension.js"),
    'export { default } from "./edgeseg-extension-ABCD1234.js";\n',
  );
  await Deno.writeTextFile(
    join(plugins, "edgeseg", "plugins.json"),
    JSON.stringify({ extensions: ["/plugins/edgeseg/edgeseg-extension-ABCD1234.js"], modes: [] }),
  );
  await Deno.mkdir(join(models, "tiny"), { recursive: true });
  await Deno.writeTextFile(
    join(models, "tiny", "manifest.json"),
    JSON.stringify({ id: "tiny", name: "Tiny", version: "1.0.0", constraints: { modalities: ["CT"] } }),
  );
  await Deno.writeFile(join(models, "tiny", "model.onnx"), new Uint8Array(100));
  return { dist, plugins, models };
}

async function withCorsServer(
  extra: Record<string, unknown>,
  fn: (s: TestServer) => Promise<void>,
): Promise<void> {
  const f = await fixture();
  await withServer({
    ohifDist: f.dist,
    pluginsDir: f.plugins,
    modelsDir: f.models,
    allowOrigins: parseAllowedOrigins([HOSPITAL]),
    ...extra,
  }, fn);
}

const ASSETS = [
  "/plugins/edgeseg/extension.js",
  "/plugins/edgeseg/edgeseg-extension-ABCD1234.js",
  "/models/index.json",
  "/models/tiny/manifest.json",
  "/models/tiny/model.onnx",
  "/edgeseg/ort/ort.wasm.min.mjs",
];

async function fetchText(s: TestServer, path: string, init: RequestInit = {}) {
  const res = await fetch(s.at(path), init);
  await res.body?.cancel();
  return res;
}

Deno.test("a preflight from a listed origin is granted for reading the shared assets", async () => {
  await withCorsServer({}, async (s) => {
    for (const path of ASSETS) {
      const res = await fetchText(s, path, {
        method: "OPTIONS",
        headers: {
          origin: HOSPITAL,
          "access-control-request-method": "GET",
          "access-control-request-headers": "range, x-custom",
        },
      });
      assert.equal(res.status, 204, path);
      assert.equal(res.headers.get("access-control-allow-origin"), HOSPITAL, path);
      assert.equal(res.headers.get("access-control-allow-methods"), "GET, HEAD");
      assert.equal(
        res.headers.get("access-control-allow-headers"),
        "range",
        "only known headers are granted",
      );
      assert.equal(res.headers.get("access-control-allow-credentials"), null);
      assert.equal(res.headers.get("cross-origin-resource-policy"), "cross-origin");
    }
  });
});

Deno.test("a GET from a listed origin carries CORS and CORP cross-origin; other origins get neither", async () => {
  await withCorsServer({}, async (s) => {
    for (const path of ASSETS) {
      const ok = await fetchText(s, path, { headers: { origin: HOSPITAL } });
      assert.equal(ok.status, 200, path);
      assert.equal(ok.headers.get("access-control-allow-origin"), HOSPITAL, path);
      assert.equal(ok.headers.get("cross-origin-resource-policy"), "cross-origin", path);
      assert.match(ok.headers.get("access-control-expose-headers") ?? "", /Content-Length/);
      assert.match(ok.headers.get("vary") ?? "", /Origin/);

      const other = await fetchText(s, path, { headers: { origin: STRANGER } });
      assert.equal(other.status, 200, path);
      assert.equal(other.headers.get("access-control-allow-origin"), null, path);
      assert.equal(other.headers.get("cross-origin-resource-policy"), "same-origin", path);
    }
    const refused = await fetchText(s, "/models/index.json", {
      method: "OPTIONS",
      headers: { origin: STRANGER, "access-control-request-method": "GET" },
    });
    assert.equal(refused.status, 403);
    assert.equal(refused.headers.get("access-control-allow-origin"), null);
    const write = await fetchText(s, "/models/index.json", {
      method: "OPTIONS",
      headers: { origin: HOSPITAL, "access-control-request-method": "PUT" },
    });
    assert.equal(write.status, 403, "only reading is granted");
  });
});

Deno.test("nothing is cross-origin by default", async () => {
  await withCorsServer({ allowOrigins: undefined }, async (s) => {
    const res = await fetchText(s, "/plugins/edgeseg/extension.js", { headers: { origin: HOSPITAL } });
    assert.equal(res.headers.get("access-control-allow-origin"), null);
    assert.equal(res.headers.get("cross-origin-resource-policy"), "same-origin");
    const pre = await fetchText(s, "/plugins/edgeseg/extension.js", {
      method: "OPTIONS",
      headers: { origin: HOSPITAL, "access-control-request-method": "GET" },
    });
    assert.equal(pre.status, 403);
  });
});

Deno.test("the store, app-config.js and the viewer never get CORS, even for a listed origin", async () => {
  await withCorsServer({}, async (s) => {
    for (const path of ["/dicom-web/studies", "/app-config.js", "/", "/viewer"]) {
      const res = await fetchText(s, path, { headers: { origin: HOSPITAL } });
      assert.equal(res.headers.get("access-control-allow-origin"), null, path);
      assert.equal(res.headers.get("cross-origin-resource-policy"), "same-origin", path);
      const pre = await fetchText(s, path, {
        method: "OPTIONS",
        headers: { origin: HOSPITAL, "access-control-request-method": "POST" },
      });
      assert.equal(pre.headers.get("access-control-allow-origin"), null, `preflight ${path}`);
      assert.notEqual(pre.status, 204, `preflight ${path}`);
    }
    const stow = await fetchText(s, "/dicom-web/studies", {
      method: "POST",
      headers: {
        origin: HOSPITAL,
        "content-type": 'multipart/related; type="application/dicom"; boundary=B',
      },
      body: stowBody(smallPhantom().files.slice(0, 1), "B"),
    });
    assert.equal(stow.headers.get("access-control-allow-origin"), null, "STOW");
  });
});

Deno.test("the proxy routes never get CORS", async () => {
  const pacs = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () =>
    new Response("[]", {
      headers: { "content-type": "application/dicom+json", "access-control-allow-origin": "*" },
    }));
  try {
    await withCorsServer({ pacsUrl: `http://127.0.0.1:${pacs.addr.port}/dicom-web` }, async (s) => {
      const res = await fetchText(s, "/dicom-web/studies", { headers: { origin: HOSPITAL } });
      assert.equal(res.status, 200);
      assert.notEqual(res.headers.get("access-control-allow-origin"), HOSPITAL);
    });
  } finally {
    await pacs.shutdown();
  }
});

Deno.test("--plugin-only serves the plugin, models and runtime files and nothing else", async () => {
  await withCorsServer({ pluginOnly: true, ohifDist: undefined }, async (s) => {
    assert.equal(s.store, undefined, "no DICOM store is opened");
    for (const path of ASSETS) assert.equal((await fetchText(s, path)).status, 200, path);
    for (const path of ["/", "/app-config.js", "/dicom-web/studies", "/viewer", "/index.html"]) {
      const res = await fetch(s.at(path));
      const body = await res.json();
      assert.equal(res.status, 404, path);
      assert.equal(body.error, "PLUGIN_ONLY", path);
    }
    const stow = await fetchText(s, "/dicom-web/studies", {
      method: "POST",
      headers: { "content-type": 'multipart/related; type="application/dicom"; boundary=B' },
      body: stowBody(smallPhantom().files.slice(0, 1), "B"),
    });
    assert.equal(stow.status, 404, "no STOW");
  });
});

Deno.test("the stable entry revalidates while hashed files are immutable", async () => {
  await withCorsServer({}, async (s) => {
    const stable = await fetchText(s, "/plugins/edgeseg/extension.js");
    assert.equal(stable.headers.get("cache-control"), "no-cache");
    const hashed = await fetchText(s, "/plugins/edgeseg/edgeseg-extension-ABCD1234.js");
    assert.match(hashed.headers.get("cache-control") ?? "", /immutable/);
  });
});

Deno.test("--allow-origin takes exact http(s) origins only", () => {
  assert.deepEqual([...parseAllowedOrigins(["https://ohif.example/", "http://10.0.0.5:3000"])], [
    "https://ohif.example",
    "http://10.0.0.5:3000",
  ]);
  for (
    const bad of [
      "*",
      "null",
      "ohif.example",
      "ftp://x.example",
      "https://x.example/viewer",
      "https://u:p@x.example",
    ]
  ) {
    assert.throws(() => parseAllowedOrigins([bad]), /--allow-origin expects/, bad);
  }
});
