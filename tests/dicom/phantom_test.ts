/**
 * The server's seeded sample study (src/dicom/phantom.ts) through the DICOM track: read to exact HU
 * in slice-position order, then a BINARY SEG and an uncertainty Parametric Map for it that pass
 * dciodvfy and read back exactly.
 */
import assert from "node:assert/strict";
import { phantomSeries } from "../../src/dicom/phantom.ts";
import { writeParametricMap } from "../../src/dicom/pmap.ts";
import { readSeries } from "../../src/dicom/read.ts";
import { writeSegmentation } from "../../src/dicom/seg.ts";
import { readParametricMap, readSegmentation } from "../../src/dicom/segread.ts";
import { artifacts, conformanceTest, dciodvfy, provenance, SCT, segment } from "./tools.ts";

conformanceTest(
  "the seeded phantom reads to its HU (slices re-ordered along the normal) and gets a valid SEG and PM",
  async () => {
    const p = phantomSeries({ slices: 12, size: 64 });
    const { volume, instances } = await readSeries(p.files);
    const P = p.rows * p.columns;
    // map our k to the phantom's slice index through the SOP Instance UID
    const order = volume.source!.instances.map((r) => p.sopInstanceUIDs.indexOf(r.sopInstanceUID));
    assert.ok(order.every((i) => i >= 0));
    for (let k = 0; k < order.length; k++) {
      assert.deepEqual(
        volume.data.subarray(k * P, (k + 1) * P),
        p.hu.subarray(order[k] * P, (order[k] + 1) * P),
        `slice ${k}`,
      );
    }
    const labels = new Uint8Array(volume.data.length);
    for (let i = 0; i < labels.length; i++) {
      labels[i] = volume.data[i] > 300 ? 2 : volume.data[i] > 20 ? 1 : 0;
    }
    const segs = [
      segment(1, "Soft tissue"),
      segment(2, "Bone", SCT("272673000", "Bone structure"), [241, 214, 145]),
    ];
    const source = { instances, geometry: volume.geometry, refs: volume.source!.instances };
    const seg = writeSegmentation({
      source,
      labelmap: { geometry: volume.geometry, data: labels, segments: segs },
      provenance,
    });
    const unc = new Float32Array(labels.length).map((_, i) => labels[i] ? 0.2 : 0.01);
    const pm = writeParametricMap({
      source,
      map: { geometry: volume.geometry, data: unc, measure: "variance", passes: 8, method: "mc" },
      provenance,
    });
    Deno.writeFileSync(`${artifacts}phantom-seg.dcm`, seg);
    Deno.writeFileSync(`${artifacts}phantom-pmap.dcm`, pm);
    assert.deepEqual(dciodvfy(`${artifacts}phantom-seg.dcm`).errors, []);
    assert.deepEqual(dciodvfy(`${artifacts}phantom-pmap.dcm`).errors, []);
    const target = { geometry: volume.geometry, refs: volume.source!.instances };
    assert.deepEqual((await readSegmentation(seg, target)).labelmap!.data, labels);
    assert.deepEqual((await readParametricMap(pm, target)).data, unc);
  },
);
