import assert from "node:assert/strict";
import { assetUrl, baseFromModuleUrl, isSameOrigin } from "../../extension/src/base.ts";
import { workerBootstrap } from "../../extension/src/worker_client.ts";

Deno.test("the base is the part of a module's URL before plugins/edgeseg/, for entries, aliases and chunks", () => {
  assert.equal(
    baseFromModuleUrl("https://edge.example:8043/plugins/edgeseg/extension.js"),
    "https://edge.example:8043/",
  );
  assert.equal(
    baseFromModuleUrl("https://edge.example/plugins/edgeseg/0.1.0/mode.js"),
    "https://edge.example/",
  );
  assert.equal(
    baseFromModuleUrl("https://pacs.example/edgeseg/plugins/edgeseg/chunks/chunk-ABCDEFGH.js?v=1#x"),
    "https://pacs.example/edgeseg/",
  );
  // The last occurrence counts: a deployment folder may itself be called plugins/edgeseg.
  assert.equal(
    baseFromModuleUrl("https://h.example/plugins/edgeseg/x/plugins/edgeseg/extension.js"),
    "https://h.example/plugins/edgeseg/x/",
  );
});

Deno.test("a module outside a build falls back to the page's origin root", () => {
  assert.equal(
    baseFromModuleUrl("file:///src/extension/src/base.ts", "https://ohif.example/viewer?x"),
    "https://ohif.example/",
  );
  assert.equal(baseFromModuleUrl("not a url", "https://ohif.example/a/b"), "https://ohif.example/");
  assert.equal(baseFromModuleUrl("file:///x.ts"), "/");
});

Deno.test("assets resolve under the base, including a sub-path behind a reverse proxy", () => {
  const base = "https://pacs.example/edgeseg/";
  assert.equal(assetUrl("models/index.json", base), "https://pacs.example/edgeseg/models/index.json");
  assert.equal(
    assetUrl("edgeseg/ort/ort.wasm.min.mjs", base),
    "https://pacs.example/edgeseg/edgeseg/ort/ort.wasm.min.mjs",
  );
});

Deno.test("a Worker script on another origin is started through a same-origin blob that imports it", async () => {
  assert.equal(isSameOrigin("https://a.example/x.js", "https://a.example/viewer"), true);
  assert.equal(isSameOrigin("https://b.example:8043/x.js", "https://a.example/viewer"), false);
  const same = workerBootstrap("https://a.example/plugins/edgeseg/w.js", true);
  assert.equal(same.url, "https://a.example/plugins/edgeseg/w.js");
  assert.equal(same.revoke, undefined);
  const cross = workerBootstrap("https://b.example:8043/plugins/edgeseg/w.js", false);
  assert.match(cross.url, /^blob:/);
  const text = await (await fetch(cross.url)).text();
  assert.equal(text.trim(), 'import "https://b.example:8043/plugins/edgeseg/w.js";');
  cross.revoke?.();
});
