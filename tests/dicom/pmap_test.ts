/** Parametric Map writer: dciodvfy-clean, pydicom reads the floats, our reader returns them exactly. */
import assert from "node:assert/strict";
import { ConformanceError } from "../../src/core/errors.ts";
import { parseDicom, seq } from "../../src/dicom/dataset.ts";
import { slicePosition } from "../../src/dicom/common.ts";
import { frameOrder, writeParametricMap } from "../../src/dicom/pmap.ts";
import { readSeries } from "../../src/dicom/read.ts";
import { readParametricMap } from "../../src/dicom/segread.ts";
import { syntheticSeries } from "./synthetic.ts";
import { artifacts, conformanceTest, dciodvfy, provenance, pydicomSummary } from "./tools.ts";

const s = syntheticSeries({ orientation: [1, 0, 0, 0, -1, 0], seed: 21 });
const r = await readSeries([...s.files].reverse());
const source = { instances: r.instances, geometry: r.volume.geometry, refs: r.volume.source!.instances };
const map = new Float32Array(s.truth.length);
for (let i = 0; i < map.length; i++) map[i] = s.truth[i] ? 0.05 + (i % 13) / 40 : (i % 7) * 1e-3;
const golden = {
  uids: { series: "2.25.87", instance: "2.25.88", dimensionOrganization: "2.25.89" },
  now: new Date("2026-01-02T03:04:05Z"),
};

conformanceTest(
  "a Parametric Map of the uncertainty is dciodvfy-clean, one float frame per source slice, read back exactly",
  async () => {
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
    assert.deepEqual(dciodvfy(path).errors, []);
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
    const py = pydicomSummary(path);
    assert.equal(py.shape[0], s.files.length);
    assert.ok(Math.abs(py.sum - map.reduce((a, b) => a + b, 0)) < 1e-2);
    // frame k references slice k and sits at its position
    py.ref.forEach((uid, k) => assert.equal(uid, r.volume.source!.instances[k].sopInstanceUID));
    // Decoded by pydicom, each frame holds as many non-zero values as the map's slice: the golden
    // bytes below are only pinned once these semantic checks (and dciodvfy above) pass.
    const P = r.volume.geometry.dims[0] * r.volume.geometry.dims[1];
    py.nonzero.forEach((n, k) => {
      let want = 0;
      for (let i = k * P; i < (k + 1) * P; i++) if (map[i] !== 0) want++;
      assert.equal(n, want, `frame ${k} non-zero values`);
    });
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
  },
);

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

conformanceTest(
  "Parametric Map frames ascend along the image normal even when the grid's k axis points against it",
  async () => {
    // The same series on a grid whose k axis is reversed: slice k of this grid is slice K-1-k above.
    const g = r.volume.geometry;
    const [cols, rows, K] = g.dims;
    const P = cols * rows;
    const last = slicePosition(g, K - 1);
    const d = g.direction;
    const reversed = {
      ...g,
      origin: last,
      direction: [d[0], d[1], -d[2], d[3], d[4], -d[5], d[6], d[7], -d[8]] as typeof d,
    };
    const refs = [...r.volume.source!.instances].reverse();
    const flipped = new Float32Array(map.length);
    for (let k = 0; k < K; k++) flipped.set(map.subarray((K - 1 - k) * P, (K - k) * P), k * P);
    assert.deepEqual(frameOrder(g), Array.from({ length: K }, (_, k) => k), "ascending grid: k order");
    assert.deepEqual(frameOrder(reversed), Array.from({ length: K }, (_, k) => K - 1 - k), "reversed grid");

    const bytes = writeParametricMap({
      source: { instances: [...r.instances].reverse(), geometry: reversed, refs },
      map: { geometry: reversed, data: flipped, measure: "entropy" },
      options: golden,
    });
    // Frame f is the ascending grid's slice f: its position, its source reference and its values.
    const { dataset } = parseDicom(bytes);
    const perFrame = seq(dataset, "PerFrameFunctionalGroupsSequence");
    const normal = [d[2], d[5], d[8]];
    let previous = -Infinity;
    perFrame.forEach((frame, f) => {
      const ipp = (seq(frame, "PlanePositionSequence")[0].ImagePositionPatient as string[]).map(Number);
      const along = ipp[0] * normal[0] + ipp[1] * normal[1] + ipp[2] * normal[2];
      assert.ok(along > previous, `frame ${f} lies above frame ${f - 1} along the normal`);
      previous = along;
      const src = seq(seq(frame, "DerivationImageSequence")[0], "SourceImageSequence")[0];
      assert.equal(src.ReferencedSOPInstanceUID, source.refs[f].sopInstanceUID, `frame ${f} source`);
    });
    const frames = (await readParametricMap(bytes)).frames;
    frames.forEach((frame, f) =>
      assert.deepEqual(frame, map.subarray(f * P, (f + 1) * P), `frame ${f} values`)
    );
    const back = await readParametricMap(bytes, { geometry: reversed, refs });
    assert.deepEqual(back.data, flipped, "read back on the reversed grid, every slice in place");
    const path = `${artifacts}pmap-reversed-grid.dcm`;
    Deno.writeFileSync(path, bytes);
    assert.deepEqual(dciodvfy(path).errors, []);
  },
);
