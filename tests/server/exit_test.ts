/**
 * A server that has been closed lets its process end: no timer of a finished STOW or proxied request
 * keeps the event loop alive (an armed 10-minute AbortSignal.timeout per STOW once held the bench's and
 * the CLI's processes for ten minutes after their work was done).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { PROJECT_ROOT } from "../helpers/paths.ts";

const child = (root: string) => `
import { startServer } from "${pathToFileURL(join(root, "src/server/mod.ts")).href}";
import { phantomSeries } from "${pathToFileURL(join(root, "src/dicom/phantom.ts")).href}";
import { stowBody, STOW_TYPE } from "${pathToFileURL(join(root, "tests/server/helpers.ts")).href}";
const dataDir = await Deno.makeTempDir();
const store = await startServer({ port: 0, seed: false, dataDir, log: () => {} });
const proxy = await startServer({ port: 0, seed: false, dataDir: await Deno.makeTempDir(),
  pacsUrl: new URL("dicom-web", store.url).href, log: () => {} });
const ph = phantomSeries({ slices: 2, size: 16 });
for (const base of [store.url, proxy.url]) {
  const res = await fetch(new URL("dicom-web/studies", base), { method: "POST",
    headers: { "content-type": STOW_TYPE(), accept: "application/dicom+json" }, body: stowBody(ph.files) });
  await res.body?.cancel();
  const list = await fetch(new URL("dicom-web/studies", base));
  console.log(base === store.url ? "store" : "proxy", res.status, list.status, (await list.json()).length);
}
await proxy.close();
await store.close();
console.log("closed");
`;

Deno.test("after STOW and a proxied request, a closed server's process exits on its own", async () => {
  const dir = await Deno.makeTempDir({ prefix: "edgeseg-exit-" });
  const script = join(dir, "child.ts");
  await Deno.writeTextFile(script, child(PROJECT_ROOT));
  const proc = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", join(PROJECT_ROOT, "deno.json"), script],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // The process must end by itself; 60 s is far beyond its work and far below the 600 s the old timer held.
  const deadline = setTimeout(() => proc.kill("SIGKILL"), 60_000);
  const out = await proc.output();
  clearTimeout(deadline);
  const stdout = new TextDecoder().decode(out.stdout);
  assert.equal(out.signal, null, `the process had to be killed: it did not exit\n${stdout}`);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.match(stdout, /^store 200 200 1$/m);
  assert.match(stdout, /^proxy 200 200 1$/m);
  assert.match(stdout, /^closed$/m);
  await Deno.remove(dir, { recursive: true });
});
