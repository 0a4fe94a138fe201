/**
 * Issue #14: the stable entry URLs an OHIF admin writes into app-config, their versioned aliases,
 * and the host-side loader, as the build writes them.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  buildExtension,
  EDGESEG_VERSION,
  LOADER_FILE,
  PLUGIN_DIR,
  STABLE_ENTRIES,
} from "../../extension/build.ts";

Deno.test("the build writes stable entries and versioned aliases that re-export this build's hashed entries", async () => {
  const built = await buildExtension();
  assert.equal(built.stable.extension, "/plugins/edgeseg/extension.js");
  assert.equal(built.stable.mode, "/plugins/edgeseg/mode.js");
  const version = JSON.parse(await Deno.readTextFile(new URL("../../package.json", import.meta.url))).version;
  assert.equal(EDGESEG_VERSION, version, "one version, from package.json");
  const cases: [string, string, string][] = [
    [STABLE_ENTRIES.extension, built.extensions[0], "./"],
    [STABLE_ENTRIES.mode, built.modes[0], "./"],
    [STABLE_ENTRIES.versionedExtension, built.extensions[0], "../"],
    [STABLE_ENTRIES.versionedMode, built.modes[0], "../"],
  ];
  for (const [file, hashedUrl, prefix] of cases) {
    assert.ok(built.files.includes(file), `${file} is listed as written`);
    const text = await Deno.readTextFile(join(PLUGIN_DIR, file));
    const hashed = hashedUrl.slice("/plugins/edgeseg/".length);
    assert.match(hashed, /-[A-Z0-9]{8}\.js$/);
    assert.ok(text.includes(`export { default } from "${prefix}${hashed}";`), `${file}: ${text}`);
  }
  assert.ok(STABLE_ENTRIES.versionedMode.startsWith(`${version}/`));
  // The Worker's file name (not an absolute URL) is compiled in: the extension resolves it against
  // its own base, wherever it is served.
  const chunks = await Array.fromAsync(Deno.readDir(join(PLUGIN_DIR, "chunks")));
  const workerFile = built.worker.slice("/plugins/edgeseg/".length);
  let found = false;
  for (const c of chunks) {
    const text = await Deno.readTextFile(join(PLUGIN_DIR, "chunks", c.name)).catch(() => "");
    if (text.includes(JSON.stringify(workerFile))) found = true;
    assert.ok(!text.includes(`"/plugins/edgeseg/${workerFile}"`), "no root-relative worker URL");
  }
  assert.ok(found, "the worker file name is in the extension's code");
});

Deno.test("the loader is one self-contained module without imports of its own", async () => {
  await buildExtension();
  const text = await Deno.readTextFile(join(PLUGIN_DIR, LOADER_FILE));
  assert.doesNotMatch(
    text,
    /^\s*import\s.*from\s/m,
    "no static imports: it must work alone in the host's files",
  );
  assert.match(text, /EdgeSeg could not be loaded from /);
});
