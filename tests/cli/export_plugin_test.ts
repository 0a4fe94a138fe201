/** Issue #14: `deno task export-plugin` writes a self-contained, checksummed folder, atomically. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { exportedSnippet, exportPlugin, normaliseBaseUrl } from "../../src/cli/export_plugin.ts";
import { sha256Hex } from "../../src/inference/package.ts";
import { ORT_RUNTIME_FILES } from "../../src/inference/browser.ts";
import { PROJECT_ROOT } from "../helpers/paths.ts";

const TEST_MODELS = join(PROJECT_ROOT, "tests", "fixtures", "models");

Deno.test("export-plugin writes the plugin, loader, models, runtime files and SHA256SUMS that match them", async () => {
  const parent = await Deno.makeTempDir({ prefix: "edgeseg-export-" });
  try {
    const out = join(parent, "edgeseg");
    const r = await exportPlugin({ out, baseUrl: "https://pacs.example/edgeseg", modelsDir: TEST_MODELS });
    assert.deepEqual(r.models, ["tiny-2d", "tiny-2d-rgb", "tiny-3d", "tiny-oct", "tiny-sigmoid"]);
    for (
      const f of [
        "plugins/edgeseg/extension.js",
        "plugins/edgeseg/mode.js",
        "edgeseg-loader.js",
        "models/index.json",
      ]
    ) {
      assert.ok((await Deno.stat(join(out, f))).isFile, f);
    }
    for (const f of ORT_RUNTIME_FILES) {
      assert.ok((await Deno.stat(join(out, "edgeseg", "ort", f))).size > 0, f);
    }
    const index = JSON.parse(await Deno.readTextFile(join(out, "models", "index.json")));
    assert.equal(index.models[0].url, "tiny-2d/", "package URLs relative to the index");
    const sums = (await Deno.readTextFile(join(out, "SHA256SUMS"))).trim().split("\n");
    assert.equal(sums.length + 1, r.files);
    for (const line of sums) {
      const [sum, file] = line.split("  ");
      assert.equal(await sha256Hex(await Deno.readFile(join(out, file))), sum, file);
    }
    assert.ok(sums.some((l) => /^[0-9a-f]{64} {2}models\/tiny-2d\/[^/]+\.onnx$/.test(l)));
    assert.ok(!sums.some((l) => l.endsWith(".map")), "no source maps");
    assert.match(
      r.snippet,
      /"https:\/\/pacs\.example\/edgeseg\/edgeseg-loader\.js\?extension=https:\/\/pacs\.example\/edgeseg\/plugins\/edgeseg\/extension\.js"/,
    );
    assert.equal(await Deno.readTextFile(join(out, "app-config.snippet.js")), r.snippet);
    // Nothing else is left beside the folder (the temp folder was renamed into place).
    assert.deepEqual((await Array.fromAsync(Deno.readDir(parent))).map((e) => e.name), ["edgeseg"]);
    await assert.rejects(exportPlugin({ out, modelsDir: TEST_MODELS }), /exists and is not empty/);
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});

Deno.test("a package whose file does not match its manifest's sha256 is refused and nothing is written", async () => {
  const parent = await Deno.makeTempDir({ prefix: "edgeseg-export-bad-" });
  try {
    const models = join(parent, "models");
    await Deno.mkdir(join(models, "tiny-2d"), { recursive: true });
    for await (const e of Deno.readDir(join(TEST_MODELS, "tiny-2d"))) {
      if (e.isFile) {
        await Deno.copyFile(join(TEST_MODELS, "tiny-2d", e.name), join(models, "tiny-2d", e.name));
      }
    }
    const onnx = (await Array.fromAsync(Deno.readDir(join(models, "tiny-2d")))).find((e) =>
      e.name.endsWith(".onnx")
    )!;
    const bytes = await Deno.readFile(join(models, "tiny-2d", onnx.name));
    bytes[bytes.length - 1] ^= 0xff;
    await Deno.writeFile(join(models, "tiny-2d", onnx.name), bytes);
    const out = join(parent, "out");
    await assert.rejects(exportPlugin({ out, modelsDir: models }), /sha256/);
    await assert.rejects(Deno.stat(out), Deno.errors.NotFound);
    const left = (await Array.fromAsync(Deno.readDir(parent))).map((e) => e.name);
    assert.deepEqual(left, ["models"], "no temp folder left behind");
    await assert.rejects(exportPlugin({ out, modelsDir: models, models: ["nope"] }), /--models names nope/);
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});

Deno.test("--base-url is an absolute http(s) URL or a root path, normalised to end in /", () => {
  assert.equal(normaliseBaseUrl("/edgeseg"), "/edgeseg/");
  assert.equal(normaliseBaseUrl("https://pacs.example"), "https://pacs.example/");
  assert.throws(() => normaliseBaseUrl("edgeseg/"), /--base-url expects/);
  assert.throws(() => normaliseBaseUrl("ftp://x/"), /--base-url expects/);
  assert.match(
    exportedSnippet("/edgeseg/"),
    /^modes: \["\/edgeseg\/edgeseg-loader\.js\?mode=\/edgeseg\/plugins\/edgeseg\/mode\.js"\],$/m,
  );
});
