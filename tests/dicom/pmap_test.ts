/** Parametric Map writer: dciodvfy-clean, pydicom reads the floats, our reader returns them exactly. */
import assert from "node:assert/strict";
import { ConformanceError } from "../../src/core/errors.ts";
import { parseDicom, seq } from "../../src/dicom/dataset.ts";
import { writeParametricMap } from "../../src/dicom/pmap.ts";
import { readSeries } from "../../src/dicom/read.ts";
import { readParametricMap } from "../../src/dicom/segread.ts";
import { syntheticSeries } from "./synthetic.ts";
import { artifacts, dciodvfy, hasDciodvfy, hasPydicom, provenance, pydicomSummary } from "./tools.ts";

const s = syntheticSeries({ orientation: [1, 0, 0, 0, -1, 0], seed: 21 });
const r = await readSeries([...s.files].reverse());
const source = { instances: r.instances, geometry: r.volume.geometry, refs: r.volume.source!.instances };
const map = new Float32Array(s.truth.length);
for (let i = 0; i < map.length; i++) map[i] = s.truth[i] ? 0.05 + (i % 13) / 40 : (i % 7) * 1e-3;
const golden = {
  uids: { series: "2.25.87", instance: "2.25.88", dimensionOrganization: "2.25.89" },
  now: new Date("2026-01-02T03:04:05Z"),
};

Deno.test("a Parametric Map of the uncertainty is dciodvfy-clean, one float frame per source slice, read back exactly", async () => {
  const bytes = writeParametricMap({
    source,
    map: { geometry: r.volume.geometry, data: map, measure: "entropy", method: "mc", passes: 20 },
    provenance,
    options: golden,
  });
  const path = `${artifacts}golden-pmap.dcm`;
  Deno.writeFileSync(path, bytes);
  assert.deepEqual(
    writeParametricMap({
      source,
      map: { geometry: r.volume.geometry, data: map, measure: "entropy", method: "mc", passes: 20 },
      provenance,
      options: golden,
    }),
    bytes,
  );
  const digest = Array.from(
    new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>)),
  )
    .map((b) => b.toString(16).padStart(2, "0")).join("");
  const pinned = Deno.readTextFileSync(new URL("./golden/pmap.sha256", import.meta.url)).trim();
  assert.equal(
    digest,
    pinned,
    "golden Parametric Map bytes changed: inspect artifacts/dicom/golden-pmap.dcm",
  );
  if (hasDciodvfy) assert.deepEqual(dciodvfy(path).errors, []);
  const back = await readParametricMap(bytes, {
    geometry: r.volume.geometry,
    refs: r.volume.source!.instances,
  });
  assert.deepEqual(back.data, map);
  assert.equal(back.mapping.unit, "1");
  assert.match(back.mapping.explanation!, /entropy.*20 mc passes/i);
  assert.equal(back.quantity, "Predictive entropy");
  const { dataset } = parseDicom(bytes);
  assert.equal(dataset.ContentQualification, "RESEARCH");
  assert.equal(dataset.RecognizableVisualFeatures, "NO");
  assert.equal(dataset.NumberOfFrames, s.files.length);
  const voi = seq(seq(dataset, "SharedFunctionalGroupsSequence")[0], "FrameVOILUTSequence")[0];
  assert.equal(voi.VOILUTFunction, "LINEAR_EXACT");
  if (hasPydicom) {
    const py = pydicomSummary(path);
    assert.equal(py.shape[0], s.files.length);
    assert.ok(Math.abs(py.sum - map.reduce((a, b) => a + b, 0)) < 1e-2);
    // frame k references slice k and sits at its position
    py.ref.forEach((uid, k) => assert.equal(uid, r.volume.source!.instances[k].sopInstanceUID));
  }
});

Deno.test("the Parametric Map writer refuses NaN values and a map on another grid", () => {
  const bad = map.slice();
  bad[3] = NaN;
  assert.throws(
    () => writeParametricMap({ source, map: { geometry: r.volume.geometry, data: bad } }),
    (e: unknown) => e instanceof ConformanceError && e.code === "NON_FINITE",
  );
  assert.throws(
    () =>
      writeParametricMap({
        source,
        map: { geometry: { ...r.volume.geometry, dims: [1, 1, 1] }, data: new Float32Array(1) },
      }),
    (e: unknown) => e instanceof ConformanceError && e.code === "GEOMETRY_MISMATCH",
  );
});
