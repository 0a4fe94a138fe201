/** Issue #16 §2: `deno task import` into a data dir a server is running on shows up without a restart. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { importFolder, runningServer } from "../../src/cli/import.ts";
import { SERVER_MARKER } from "../../src/server/mod.ts";
import { otherPhantom, smallPhantom, withServer } from "./helpers.ts";

async function folderOf(files: Uint8Array[]): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "edgeseg-import-src-" });
  for (const [i, f] of files.entries()) await Deno.writeFile(join(dir, `${i}.dcm`), f);
  await Deno.writeTextFile(join(dir, "notes.txt"), "not DICOM");
  return dir;
}

Deno.test("import goes through the running server's STOW, so its study list shows the study at once", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "edgeseg-import-data-" });
  const first = await folderOf(smallPhantom().files);
  const second = await folderOf(otherPhantom().files);
  try {
    await withServer({ dataDir }, async (s) => {
      assert.equal(await runningServer(dataDir), s.url, "the server names itself in the data dir");
      const summary = await importFolder(first, dataDir);
      assert.equal(summary.imported, 4);
      assert.equal(summary.skippedNonDicom, 1);
      assert.deepEqual([summary.studies, summary.series], [1, 1]);
      const studies = await (await fetch(s.at("/dicom-web/studies"))).json();
      assert.equal(studies.length, 1, "the running server lists the imported study without a restart");
    });
    // The server is gone: its marker with it; a direct import still works.
    await assert.rejects(Deno.stat(join(dataDir, SERVER_MARKER)), Deno.errors.NotFound);
    assert.equal(await runningServer(dataDir), undefined);
    const direct = await importFolder(second, dataDir);
    assert.equal(direct.imported, 4);
    await withServer({ dataDir }, async (s) => {
      const studies = await (await fetch(s.at("/dicom-web/studies"))).json();
      assert.equal(studies.length, 2, "both imports are in the store");
    });
  } finally {
    for (const d of [dataDir, first, second]) await Deno.remove(d, { recursive: true }).catch(() => {});
  }
});

Deno.test("a marker left by a server that was killed is ignored", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "edgeseg-import-stale-" });
  try {
    await Deno.writeTextFile(join(dataDir, SERVER_MARKER), JSON.stringify({ url: "http://127.0.0.1:9/" }));
    assert.equal(await runningServer(dataDir), undefined);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
