import assert from "node:assert/strict";
import { join } from "node:path";
import { importFolder } from "../../src/cli/import.ts";
import { PHANTOM_UID_ROOT } from "../../src/dicom/phantom.ts";
import { DicomStore } from "../../src/server/store.ts";
import { countStored, getJson, otherPhantom, smallPhantom, stow, val, withServer } from "./helpers.ts";

Deno.test("the store survives a restart: studies stored before are served after", async () => {
  const ph = smallPhantom();
  const dataDir = await Deno.makeTempDir({ prefix: "edgeseg-restart-" });
  await withServer({ dataDir }, async (s) => {
    assert.equal((await stow(s, ph.files)).status, 200);
  });
  await withServer({ dataDir }, async (s) => {
    const studies = (await getJson(s, "/dicom-web/studies")).json;
    assert.equal(studies.length, 1);
    assert.equal(val(studies[0], "0020000D"), ph.studyInstanceUID);
    assert.equal(val(studies[0], "00201208"), ph.files.length);
    assert.ok(!s.logs.some((l) => l.includes("rebuilt")), "a valid index is reused, not rebuilt");
  });
  await Deno.remove(dataDir, { recursive: true });
});

Deno.test("a missing or corrupt index is rebuilt from the stored files", async () => {
  const ph = smallPhantom();
  const dataDir = await Deno.makeTempDir({ prefix: "edgeseg-rebuild-" });
  const store = await DicomStore.open(dataDir);
  await store.storeFiles(ph.files);
  await Deno.remove(join(dataDir, "index.json"));
  const logs: string[] = [];
  const again = await DicomStore.open(dataDir, { log: (l) => logs.push(l) });
  assert.equal(again.size, ph.files.length);
  assert.ok(logs.some((l) => l.includes("rebuilt")));
  await Deno.writeTextFile(join(dataDir, "index.json"), "{ not json");
  const third = await DicomStore.open(dataDir);
  assert.equal(third.size, ph.files.length);
  assert.deepEqual(third.get(ph.sopInstanceUIDs[1])!.instanceNumber, 2);
  await Deno.remove(dataDir, { recursive: true });
});

Deno.test("the index is reconciled with the files: new files are added, deleted files dropped, temp files ignored", async () => {
  const a = smallPhantom();
  const b = otherPhantom();
  const dataDir = await Deno.makeTempDir({ prefix: "edgeseg-reconcile-" });
  const store = await DicomStore.open(dataDir);
  await store.storeFiles(a.files);
  // a file that reached its place but not the index (crash between rename and index write)
  const rec =
    (await (await DicomStore.open(await Deno.makeTempDir())).validate({ bytes: b.files[0] })).record;
  await Deno.mkdir(join(dataDir, "instances", rec.studyInstanceUID, rec.seriesInstanceUID), {
    recursive: true,
  });
  await Deno.writeFile(join(dataDir, rec.path), b.files[0]);
  await Deno.remove(join(dataDir, store.get(a.sopInstanceUIDs[0])!.path));
  // a half-written upload left in tmp/ must never be served
  await Deno.writeFile(join(dataDir, "tmp", "stow-partial"), b.files[1].subarray(0, 200));
  const again = await DicomStore.open(dataDir);
  assert.equal(again.size, a.files.length - 1 + 1);
  assert.ok(again.get(b.sopInstanceUIDs[0]));
  assert.equal(again.get(a.sopInstanceUIDs[0]), undefined);
  assert.equal(again.get(b.sopInstanceUIDs[1]), undefined);
  assert.deepEqual([...Deno.readDirSync(join(dataDir, "tmp"))], []);
  await Deno.remove(dataDir, { recursive: true });
});

Deno.test("concurrent STOWs all land and the index lists every instance", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "edgeseg-concurrent-" });
  const studies = Array.from(
    { length: 8 },
    (_, i) => smallPhantom({ uidRoot: `2.25.424242${i}`, slices: 2 }),
  );
  await withServer({ dataDir }, async (s) => {
    const results = await Promise.all(studies.map((st) => stow(s, st.files)));
    assert.deepEqual(results.map((r) => r.status), studies.map(() => 200));
  });
  const reopened = await DicomStore.open(dataDir);
  assert.equal(reopened.size, 16);
  const index = JSON.parse(await Deno.readTextFile(join(dataDir, "index.json")));
  assert.equal(index.instances.length, 16);
  await Deno.remove(dataDir, { recursive: true });
});

Deno.test("an empty store is seeded with the phantom study on first start, and not again", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "edgeseg-seed-" });
  await withServer({ dataDir, seed: true }, async (s) => {
    const studies = (await getJson(s, "/dicom-web/studies")).json;
    assert.equal(studies.length, 1);
    assert.equal(val(studies[0], "0020000D"), `${PHANTOM_UID_ROOT}.1`);
    assert.equal(val(studies[0], "00201208"), 64);
    assert.ok(s.logs.some((l) => l.startsWith("seeded the sample study")));
  });
  await withServer({ dataDir, seed: true }, async (s) => {
    assert.ok(!s.logs.some((l) => l.startsWith("seeded")));
    assert.equal(await countStored(dataDir), 64);
  });
  await Deno.remove(dataDir, { recursive: true });
});

Deno.test("import loads a folder recursively and skips non-DICOM files with a count", async () => {
  const ph = smallPhantom();
  const src = await Deno.makeTempDir({ prefix: "edgeseg-import-src-" });
  const dataDir = await Deno.makeTempDir({ prefix: "edgeseg-import-data-" });
  await Deno.mkdir(join(src, "a", "b"), { recursive: true });
  ph.files.forEach((f, k) => Deno.writeFileSync(join(src, k % 2 ? "a" : join("a", "b"), `slice${k}.dcm`), f));
  await Deno.writeTextFile(join(src, "README.txt"), "not dicom");
  await Deno.writeFile(join(src, "a", "DICOMDIR-like.bin"), new Uint8Array(50));
  // a DICOM header with a broken body is reported, not imported
  await Deno.writeFile(join(src, "a", "broken.dcm"), ph.files[0].subarray(0, 140));
  const summary = await importFolder(src, dataDir);
  assert.equal(summary.files, ph.files.length + 3);
  assert.equal(summary.imported, ph.files.length);
  assert.equal(summary.skippedNonDicom, 2);
  assert.equal(summary.failed.length, 1);
  assert.match(summary.failed[0].path, /broken\.dcm/);
  assert.equal(summary.studies, 1);
  assert.equal(summary.series, 1);
  const store = await DicomStore.open(dataDir);
  assert.equal(store.size, ph.files.length);
  assert.deepEqual(await store.readInstance(store.get(ph.sopInstanceUIDs[3])!), ph.files[3]);
  await Deno.remove(src, { recursive: true });
  await Deno.remove(dataDir, { recursive: true });
});

Deno.test("the phantom is deterministic and has consistent CT geometry", () => {
  const a = smallPhantom();
  const b = smallPhantom();
  assert.deepEqual(a.files, b.files);
  assert.equal(new Set(a.sopInstanceUIDs).size, a.files.length);
  for (const uid of [a.studyInstanceUID, a.seriesInstanceUID, a.frameOfReferenceUID, ...a.sopInstanceUIDs]) {
    assert.ok(uid.length <= 64 && /^[0-9.]+$/.test(uid), uid);
  }
  // air outside the body, soft tissue / bone inside
  const n = a.rows * a.columns;
  assert.equal(a.hu[0], -1000);
  const centre = a.hu[n * 2 + (a.rows / 2) * a.columns + a.columns / 2];
  assert.ok(centre > -200 && centre < 300, `centre HU ${centre}`);
  assert.ok(Math.max(...a.hu) >= 600, "the spine is bone-dense");
});
