import assert from "node:assert/strict";
import { join } from "node:path";
import { buildExtension, PLUGIN_DIR, PLUGIN_URL_PREFIX } from "../../extension/build.ts";

Deno.test("the build writes one hashed extension guard and one hashed mode guard and lists them in plugins.json", async () => {
  const result = await buildExtension();
  assert.equal(result.extensions.length, 1);
  assert.equal(result.modes.length, 1);
  assert.match(result.extensions[0], /^\/plugins\/edgeseg\/edgeseg-extension-[A-Z0-9]{8}\.js$/);
  assert.match(result.modes[0], /^\/plugins\/edgeseg\/edgeseg-mode-[A-Z0-9]{8}\.js$/);
  const listed = JSON.parse(await Deno.readTextFile(join(PLUGIN_DIR, "plugins.json")));
  assert.deepEqual(listed, { extensions: result.extensions, modes: result.modes });
  for (const url of [...result.extensions, ...result.modes]) {
    const stat = await Deno.stat(join(PLUGIN_DIR, url.slice(PLUGIN_URL_PREFIX.length)));
    assert.ok(stat.isFile && stat.size > 0, `${url} exists`);
  }
});

Deno.test("the bundle contains no copy of React and reaches the host's React through rspackChunk", async () => {
  await buildExtension();
  let all = "";
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      const p = join(dir, e.name);
      if (e.isDirectory) await walk(p);
      else if (e.name.endsWith(".js")) all += await Deno.readTextFile(p);
    }
  };
  await walk(PLUGIN_DIR);
  // Markers of React's own production build (its dispatcher and error decoder), never in our code.
  assert.ok(!all.includes("ReactCurrentDispatcher"), "no bundled React (found ReactCurrentDispatcher)");
  assert.ok(!all.includes("Minified React error"), "no bundled React (found its error decoder)");
  assert.ok(all.includes("rspackChunk"), "the host-React lookup is in the bundle");
});

Deno.test("the guard entries import the real code dynamically so a failure cannot blank the viewer", async () => {
  const result = await buildExtension({ minify: false });
  for (const url of [...result.extensions, ...result.modes]) {
    const text = await Deno.readTextFile(join(PLUGIN_DIR, url.slice(PLUGIN_URL_PREFIX.length)));
    assert.match(text, /await import\("\.\/chunks\//, `${url} imports its chunk dynamically`);
    assert.match(text, /catch/, `${url} catches the import failure`);
    assert.ok(text.length < 4000, `${url} stays a tiny guard (${text.length} bytes)`);
  }
});
