/**
 * SEG writer conformance: every object written is checked by dciodvfy (0 errors; LABELMAP excepted,
 * the 2022 dicom3tools does not know …66.7), by pydicom (pixels per frame, frame positions) and by
 * our reader (voxel-exact round trip, same SegmentDescription).
 */
import assert from "node:assert/strict";
import { ConformanceError } from "../../src/core/errors.ts";
import type { Geometry, Labelmap, SegmentDescription } from "../../src/core/types.ts";
import { srgbToDicomLab } from "../../src/dicom/color.ts";
import { nums, parseDicom, seq, str } from "../../src/dicom/dataset.ts";
import { readSeries, type SeriesRead } from "../../src/dicom/read.ts";
import { readSegmentation } from "../../src/dicom/segread.ts";
import {
  type SegmentationWriteOptions,
  segSeriesDescription,
  writeSegmentation,
} from "../../src/dicom/seg.ts";
import { syntheticSeries } from "./synthetic.ts";
import {
  artifacts,
  conformanceTest,
  dcentvfy,
  dciodvfy,
  haveData,
  listDicom,
  provenance,
  pydicomSummary,
  SCT,
  segment,
} from "./tools.ts";

const tissue = segment(1, "Soft tissue", SCT("85756007", "Tissue"), [200, 80, 60]);
const bone = segment(2, "Bone", SCT("272673000", "Bone structure"), [241, 214, 145]);

function sourceOf(r: SeriesRead) {
  return { instances: r.instances, geometry: r.volume.geometry, refs: r.volume.source!.instances };
}

/** Writes, saves to artifacts, and checks with dciodvfy, pydicom and our reader. */
async function writeAndCheck(
  name: string,
  r: SeriesRead,
  labelmap: Labelmap,
  options: SegmentationWriteOptions = {},
  segments?: SegmentDescription[],
) {
  const bytes = writeSegmentation({ source: sourceOf(r), labelmap, segments, provenance, options });
  const path = `${artifacts}${name}.dcm`;
  Deno.writeFileSync(path, bytes);
  const type = options.type ?? "BINARY";
  if (type !== "LABELMAP") {
    const v = dciodvfy(path);
    assert.deepEqual(v.errors, [], `dciodvfy errors for ${name}`);
  }
  const back = await readSegmentation(bytes, {
    geometry: r.volume.geometry,
    refs: r.volume.source!.instances,
  });
  // frames sit exactly at their source slice's position (no mirrored or shifted frames)
  const ipp = new Map(r.instances.map((ds) => [str(ds, "SOPInstanceUID"), nums(ds, "ImagePositionPatient")]));
  const { dataset } = parseDicom(bytes);
  for (const f of seq(dataset, "PerFrameFunctionalGroupsSequence")) {
    const src = seq(seq(f, "DerivationImageSequence")[0], "SourceImageSequence")[0];
    const pos = nums(seq(f, "PlanePositionSequence")[0], "ImagePositionPatient")!;
    const want = ipp.get(str(src, "ReferencedSOPInstanceUID"));
    if (want) {
      for (let a = 0; a < 3; a++) {
        assert.ok(Math.abs(pos[a] - want[a]) < 1e-3, `frame position ${pos} vs source ${want}`);
      }
    }
  }
  return { bytes, path, back };
}

function countsOf(data: ArrayLike<number>): Record<number, number> {
  const c: Record<number, number> = {};
  for (let i = 0; i < data.length; i++) if (data[i]) c[data[i]] = (c[data[i]] ?? 0) + 1;
  return c;
}

const synth = syntheticSeries();
const synthRead = await readSeries(synth.files);
const synthLabelmap: Labelmap = {
  geometry: synthRead.volume.geometry,
  data: synth.truth,
  segments: [tissue, bone],
};
const golden = {
  uids: { series: "2.25.77", instance: "2.25.78", dimensionOrganization: "2.25.79" },
  now: new Date("2026-01-02T03:04:05Z"),
};

conformanceTest(
  "a BINARY SEG of the synthetic phantom is byte-stable, dciodvfy-clean and reads back voxel-exact",
  async () => {
    const { bytes, path, back } = await writeAndCheck("golden-binary", synthRead, synthLabelmap, golden);
    const again = writeSegmentation({
      source: sourceOf(synthRead),
      labelmap: synthLabelmap,
      provenance,
      options: golden,
    });
    assert.deepEqual(again, bytes, "same input, same UIDs and time → same bytes");
    assert.deepEqual(back.labelmap!.data, synth.truth);
    assert.deepEqual(back.segments, [tissue, bone]);
    const py = pydicomSummary(path);
    assert.equal(py.type, "BINARY");
    const k = synth.truth.length / (24 * 20);
    // pydicom's frames, per (segment, slice), equal the labelmap's
    py.segment.forEach((s, f) => {
      const kk = synthRead.instances.findIndex((d) => str(d, "SOPInstanceUID") === py.ref[f]);
      let n = 0;
      for (let i = 0; i < 24 * 20; i++) if (synth.truth[kk * 480 + i] === s) n++;
      assert.equal(py.nonzero[f], n, `frame ${f}`);
    });
    assert.ok(py.shape[0] <= 2 * k);
    // Decoded by pydicom, the frames hold every voxel of every segment: the golden bytes below are
    // only pinned once these semantic checks (and dciodvfy in writeAndCheck) pass.
    const perSegment: Record<number, number> = {};
    py.segment.forEach((s, f) => (perSegment[s] = (perSegment[s] ?? 0) + py.nonzero[f]));
    assert.deepEqual(perSegment, countsOf(synth.truth));
    const digest = Array.from(
      new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>)),
    )
      .map((b) => b.toString(16).padStart(2, "0")).join("");
    const goldenFile = new URL("./golden/binary-seg.sha256", import.meta.url);
    const pinned = Deno.readTextFileSync(goldenFile).trim();
    assert.equal(
      digest,
      pinned,
      "golden BINARY SEG bytes changed: inspect artifacts/dicom/golden-binary.dcm",
    );
  },
);

Deno.test("segments carry AUTOMATIC/SEMIAUTOMATIC, the AI algorithm identification, SCT codes and CIELab colour", () => {
  const edited = { ...bone, algorithmType: "SEMIAUTOMATIC" as const };
  const bytes = writeSegmentation({
    source: sourceOf(synthRead),
    labelmap: synthLabelmap,
    segments: [tissue, edited],
    provenance,
  });
  const { dataset, meta } = parseDicom(bytes);
  const segs = seq(dataset, "SegmentSequence");
  assert.equal(segs[0].SegmentAlgorithmType, "AUTOMATIC");
  assert.equal(segs[1].SegmentAlgorithmType, "SEMIAUTOMATIC");
  const algo = seq(segs[0], "SegmentationAlgorithmIdentificationSequence")[0];
  assert.equal(seq(algo, "AlgorithmFamilyCodeSequence")[0].CodeValue, "123110");
  assert.equal(algo.AlgorithmName, "EdgeSeg test model");
  assert.equal(JSON.parse(String(algo.AlgorithmParameters)).provenance.modelSha256, provenance.modelSha256);
  assert.equal(seq(segs[0], "SegmentedPropertyTypeCodeSequence")[0].CodingSchemeDesignator, "SCT");
  assert.deepEqual(segs[0].RecommendedDisplayCIELabValue, srgbToDicomLab(tissue.color));
  const contrib = seq(dataset, "ContributingEquipmentSequence")[0];
  assert.equal(contrib.ManufacturerModelName, "EdgeSeg test model");
  assert.equal(seq(contrib, "PurposeOfReferenceCodeSequence")[0].CodeValue, "109102");
  assert.equal(dataset.SegmentsOverlap, "NO");
  assert.equal(
    seq(seq(dataset, "ReferencedSeriesSequence")[0], "ReferencedInstanceSequence").length,
    synth.files.length,
  );
  assert.ok(meta.FileMetaInformationVersion !== undefined);
});

Deno.test("a SEG of a variant's run names the variant in its series description, contributing equipment and parameters", () => {
  const int8 = { ...provenance, variant: "int8", precision: "int8", modelSha256: "cd".repeat(32) };
  const { dataset } = parseDicom(writeSegmentation({
    source: sourceOf(synthRead),
    labelmap: synthLabelmap,
    segments: [tissue, bone],
    provenance: int8,
  }));
  assert.equal(dataset.SeriesDescription, "EdgeSeg EdgeSeg test model, variant int8 (INT8)");
  const contrib = seq(dataset, "ContributingEquipmentSequence")[0];
  // the whole digest, in ASCII: an abbreviation's "…" read back as Latin-1 from a nested item
  assert.equal(
    String(contrib.ContributionDescription),
    `Segmentation by model test-model variant int8 (INT8) sha256 ${"cd".repeat(32)}`,
  );
  const algo = seq(seq(dataset, "SegmentSequence")[0], "SegmentationAlgorithmIdentificationSequence")[0];
  const recorded = JSON.parse(String(algo.AlgorithmParameters)).provenance;
  assert.deepEqual([recorded.variant, recorded.precision], ["int8", "int8"]);
  // the main model's SEG is unchanged: no variant words
  const main = parseDicom(writeSegmentation({
    source: sourceOf(synthRead),
    labelmap: synthLabelmap,
    segments: [tissue, bone],
    provenance: { ...provenance, precision: "fp32" },
  })).dataset;
  assert.equal(main.SeriesDescription, "EdgeSeg EdgeSeg test model");
  assert.doesNotMatch(
    String(seq(main, "ContributingEquipmentSequence")[0].ContributionDescription),
    /variant/,
  );
});

Deno.test("a long model name gives way to the variant in the 64-character series description", () => {
  const name = "Retinal vessels, MAE-pretrained ViT (fundus photograph)";
  const d = segSeriesDescription({ modelName: name, variant: "int8", precision: "int8" });
  assert.ok(d.length <= 64, `${d.length} characters`);
  assert.match(d, /^EdgeSeg Retinal vessels, MAE-pretrained .*…, variant int8 \(INT8\)$/);
  assert.equal(segSeriesDescription({ modelName: name }), `EdgeSeg ${name}`);
});

Deno.test("sRGB to DICOM CIELab follows D65 CIELab (white, red)", () => {
  assert.deepEqual(srgbToDicomLab([255, 255, 255]), [65535, 32896, 32896]);
  const [l, a, b] = srgbToDicomLab([255, 0, 0]);
  assert.ok(
    Math.abs(l * 100 / 65535 - 53.24) < 0.05 && Math.abs(a * 255 / 65535 - 128 - 80.09) < 0.1 &&
      Math.abs(b * 255 / 65535 - 128 - 67.2) < 0.1,
  );
});

conformanceTest("LABELMAP SEG (…66.7) reads back voxel-exact with pydicom and our reader", async () => {
  const { path, back } = await writeAndCheck("golden-labelmap", synthRead, synthLabelmap, {
    ...golden,
    type: "LABELMAP",
  });
  assert.deepEqual(back.labelmap!.data, synth.truth);
  assert.deepEqual(back.segments, [tissue, bone]);
  const py = pydicomSummary(path);
  assert.equal(py.sop, "1.2.840.10008.5.1.4.1.1.66.7");
  assert.equal(py.bits, 8);
  const c = countsOf(synth.truth);
  assert.equal(py.values!["1"], c[1]);
  assert.equal(py.values!["2"], c[2]);
});

conformanceTest("FRACTIONAL SEG stores 8-bit probabilities and reads them back exactly", async () => {
  const n = synth.truth.length;
  const prob = new Uint8Array(2 * n);
  for (let i = 0; i < n; i++) {
    prob[i] = synth.truth[i] === 1 ? 250 : (i % 5) * 10;
    prob[n + i] = synth.truth[i] === 2 ? 255 : 0;
  }
  const { path, back } = await writeAndCheck("golden-fractional", synthRead, synthLabelmap, {
    type: "FRACTIONAL",
    fractional: { data: prob, channels: 2 },
  });
  assert.deepEqual(back.fractional!.data, prob);
  assert.equal(back.fractional!.maxValue, 255);
  assert.equal(pydicomSummary(path).sum, prob.reduce((s, v) => s + v, 0));
});

conformanceTest(
  "segment numbers with gaps keep their label values through a round trip and stay dciodvfy-clean",
  async () => {
    const segs = [
      segment(3, "Liver"),
      segment(7, "Spleen", SCT("78961009", "Spleen"), [157, 108, 162]),
      segment(12, "Kidney", SCT("64033007", "Kidney"), [185, 102, 83]),
    ];
    const data = new Uint8Array(synth.truth.length);
    for (let i = 0; i < data.length; i++) {
      data[i] = synth.truth[i] === 1 ? (i % 2 ? 3 : 12) : synth.truth[i] === 2 ? 7 : 0;
    }
    for (const type of ["BINARY", "LABELMAP"] as const) {
      const { back } = await writeAndCheck(`gaps-${type}`, synthRead, {
        geometry: synthRead.volume.geometry,
        data,
        segments: segs,
      }, { type });
      assert.deepEqual(back.labelmap!.data, data);
      assert.deepEqual(back.segments.map((s) => s.number), [3, 7, 12]);
    }
  },
);

conformanceTest("300 segments are written as a 16-bit LABELMAP and read back exactly", async () => {
  const s = syntheticSeries({ cols: 30, rows: 20, slices: 4, seed: 3 });
  const r = await readSeries(s.files);
  const segs = Array.from(
    { length: 300 },
    (_, i) => segment(i + 1, `Structure ${i + 1}`, SCT("85756007", "Tissue"), [i % 256, (i * 7) % 256, 100]),
  );
  const data = new Uint16Array(30 * 20 * 4);
  for (let i = 0; i < data.length; i++) data[i] = i % 301;
  const { path, back } = await writeAndCheck("labelmap-300", r, {
    geometry: r.volume.geometry,
    data,
    segments: segs,
  }, { type: "LABELMAP" });
  assert.deepEqual(back.labelmap!.data, data);
  assert.equal(back.segments.length, 300);
  const py = pydicomSummary(path);
  assert.equal(py.bits, 16);
  assert.equal(Object.keys(py.values!).length, 301);
});

conformanceTest(
  "a series with reversed slice order (normal pointing feet-ward, files shuffled) gives frames at the source positions",
  async () => {
    const s = syntheticSeries({ orientation: [1, 0, 0, 0, -1, 0], seed: 4 });
    const r = await readSeries([...s.files].reverse());
    const { back } = await writeAndCheck("reversed", r, {
      geometry: r.volume.geometry,
      data: s.truth,
      segments: [tissue, bone],
    });
    assert.deepEqual(back.labelmap!.data, s.truth);
  },
);

Deno.test("writer refuses bad input before allocating: SRT codes, undescribed labels, wrong grid, missing probabilities", () => {
  const src = sourceOf(synthRead);
  const srt = { ...tissue, type: { value: "T-D0050", scheme: "SRT", meaning: "Tissue" } };
  assert.throws(
    () => writeSegmentation({ source: src, labelmap: { ...synthLabelmap, segments: [srt, bone] } }),
    (e: unknown) => e instanceof ConformanceError && e.code === "DEPRECATED_SCHEME",
  );
  assert.throws(
    () => writeSegmentation({ source: src, labelmap: { ...synthLabelmap, segments: [tissue] } }),
    (e: unknown) =>
      e instanceof ConformanceError && e.code === "UNDESCRIBED_LABEL" && /found 2/.test(e.message),
  );
  const g: Geometry = { ...synthRead.volume.geometry, spacing: [1, 1, 1] };
  assert.throws(
    () => writeSegmentation({ source: src, labelmap: { ...synthLabelmap, geometry: g } }),
    (e: unknown) => e instanceof ConformanceError && e.code === "GEOMETRY_MISMATCH",
  );
  assert.throws(
    () => writeSegmentation({ source: src, labelmap: synthLabelmap, options: { type: "FRACTIONAL" } }),
    (e: unknown) => e instanceof ConformanceError && e.code === "BAD_FRACTIONAL",
  );
});

Deno.test("an empty segmentation (no findings) is a valid SEG with one empty frame, for every type", async () => {
  const empty: Labelmap = { ...synthLabelmap, data: new Uint8Array(synth.truth.length) };
  for (const type of ["BINARY", "LABELMAP"] as const) {
    // writeAndCheck runs dciodvfy (BINARY), pydicom and our reader on it
    const { bytes, back } = await writeAndCheck(`empty-${type.toLowerCase()}`, synthRead, empty, { type });
    assert.equal(back.labelmap!.data.length, empty.data.length);
    assert.ok(back.labelmap!.data.every((v) => v === 0), `${type}: no pixel is labelled`);
    assert.deepEqual(back.segments.map((s) => s.number), [1, 2], `${type}: both segments are described`);
    assert.equal(seq(parseDicom(bytes).dataset, "PerFrameFunctionalGroupsSequence").length, 1, "one frame");
  }
});

for (const size of ["23x38x3", "24x38x3"]) {
  conformanceTest({
    name: `odd frame size ${size}: our BINARY SEG of dcmqi's liver mask matches dcmqi's SEG pixel for pixel`,
    ignore: !haveData(`seg-examples/dcmqi/${size}`),
    fn: async () => {
      const r = await readSeries(listDicom(`seg-examples/dcmqi/${size}/image`));
      const theirs = await readSegmentation(
        Deno.readFileSync(`${dataRoot()}seg-examples/dcmqi/${size}/seg.dcm`),
        {
          geometry: r.volume.geometry,
          refs: r.volume.source!.instances,
        },
      );
      const liver = { ...segment(1, "Liver", SCT("10200004", "Liver"), [221, 130, 101]) };
      const { path, back } = await writeAndCheck(`dcmqi-${size}`, r, {
        ...theirs.labelmap!,
        segments: [liver],
      }, { omitEmptyFrames: false });
      assert.deepEqual(back.labelmap!.data, theirs.labelmap!.data);
      const ours = pydicomSummary(path);
      const ref = pydicomSummary(`${dataRoot()}seg-examples/dcmqi/${size}/seg.dcm`);
      assert.deepEqual(ours.nonzero, ref.nonzero);
      assert.deepEqual(ours.nonzero, size === "23x38x3" ? [4, 314, 4] : [0, 315, 0]);
    },
  });
}

function dataRoot() {
  return new URL("../../../shared/data/dicom/", import.meta.url).pathname;
}

conformanceTest({
  name: "the gantry-tilted Philips phantom gets a SEG whose frames sit on the tilted source slices",
  ignore: !haveData("ct-head-phantom/philips-ingenuity-tilt-18.5-phantom"),
  fn: async () => {
    const r = await readSeries(listDicom("ct-head-phantom/philips-ingenuity-tilt-18.5-phantom"));
    const data = new Uint8Array(r.volume.data.length);
    for (let i = 0; i < data.length; i++) data[i] = r.volume.data[i] > 300 ? 1 : 0;
    const { back } = await writeAndCheck("tilt-philips", r, {
      geometry: r.volume.geometry,
      data,
      segments: [segment(1, "Dense", SCT("85756007", "Tissue"))],
    });
    assert.deepEqual(back.labelmap!.data, data);
  },
});

conformanceTest({
  name: "the real JPEG-LS abdominal CT gets a 5-segment BINARY SEG that validates and reads back voxel-exact",
  ignore: !haveData("ct-abdomen/raw"),
  fn: async () => {
    const r = await readSeries(listDicom("ct-abdomen/raw"));
    const hu = r.volume.data;
    const data = new Uint8Array(hu.length);
    // five HU bands as stand-in organs: lung, fat, water, soft tissue, bone
    for (let i = 0; i < hu.length; i++) {
      const v = hu[i];
      data[i] = v < -900 ? 0 : v < -500 ? 1 : v < -30 ? 2 : v < 20 ? 3 : v < 200 ? 4 : 5;
    }
    const segs = [
      segment(1, "Lung", SCT("39607008", "Lung"), [197, 165, 145]),
      segment(2, "Fat", SCT("248300009", "Fat"), [230, 220, 70]),
      segment(3, "Water", SCT("85756007", "Tissue"), [100, 150, 250]),
      segment(4, "Soft tissue", SCT("85756007", "Tissue"), [200, 80, 60]),
      segment(5, "Bone", SCT("272673000", "Bone structure"), [241, 214, 145]),
    ];
    const t0 = performance.now();
    const bytes = writeSegmentation({
      source: sourceOf(r),
      labelmap: { geometry: r.volume.geometry, data, segments: segs },
      provenance,
    });
    console.log(
      `ct-abdomen BINARY SEG 512×512×134, 5 segments: ${
        (performance.now() - t0).toFixed(0)
      } ms, ${bytes.length} bytes`,
    );
    const path = `${artifacts}ct-abdomen-binary.dcm`;
    Deno.writeFileSync(path, bytes);
    assert.deepEqual(dciodvfy(path).errors, []);
    // patient and study attributes agree with the source series
    assert.deepEqual(dcentvfy([`${dataRoot()}ct-abdomen/raw/1-001.dcm`, path]), []);
    const back = await readSegmentation(bytes, {
      geometry: r.volume.geometry,
      refs: r.volume.source!.instances,
    });
    assert.deepEqual(back.labelmap!.data, data);
    const py = pydicomSummary(path);
    const c = countsOf(data);
    const perSeg: Record<number, number> = {};
    py.segment.forEach((s, f) => (perSeg[s] = (perSeg[s] ?? 0) + py.nonzero[f]));
    assert.deepEqual(perSeg, c);
  },
});

Deno.test("FRACTIONAL channels follow the caller's segment order even when it is not ascending", async () => {
  const n = synth.truth.length;
  const prob = new Uint8Array(2 * n);
  for (let i = 0; i < n; i++) {
    prob[i] = synth.truth[i] === 2 ? 255 : 0; // channel 0 = bone (segment 2)
    prob[n + i] = synth.truth[i] === 1 ? 200 : 0; // channel 1 = tissue (segment 1)
  }
  const bytes = writeSegmentation({
    source: sourceOf(synthRead),
    labelmap: synthLabelmap,
    segments: [bone, tissue],
    options: { type: "FRACTIONAL", fractional: { data: prob, channels: 2 } },
  });
  const back = await readSegmentation(bytes, {
    geometry: synthRead.volume.geometry,
    refs: synthRead.volume.source!.instances,
  });
  assert.deepEqual(back.segments.map((s) => s.number), [1, 2]);
  // read back in ascending order: channel 0 is now tissue
  assert.deepEqual(back.fractional!.data.subarray(0, n), prob.subarray(n));
  assert.deepEqual(back.fractional!.data.subarray(n), prob.subarray(0, n));
});

conformanceTest({
  name: "a SEG of a multi-frame source references frames (ReferencedFrameNumber) and the instance once",
  ignore: !haveData("seg-examples/dcmqi/23x38x3/multiframe"),
  fn: async () => {
    const r = await readSeries(listDicom("seg-examples/dcmqi/23x38x3/multiframe"));
    const data = new Uint8Array(r.volume.data.length);
    for (let i = 0; i < data.length; i++) data[i] = r.volume.data[i] > 0 ? 1 : 0;
    const { bytes, back } = await writeAndCheck("multiframe-source", r, {
      geometry: r.volume.geometry,
      data,
      segments: [segment(1, "Positive")],
    }, { omitEmptyFrames: false });
    assert.deepEqual(back.labelmap!.data, data);
    const { dataset } = parseDicom(bytes);
    const frames = seq(dataset, "PerFrameFunctionalGroupsSequence").map((f) =>
      seq(seq(f, "DerivationImageSequence")[0], "SourceImageSequence")[0].ReferencedFrameNumber
    );
    assert.deepEqual(frames.map(Number), [1, 2, 3]);
    assert.equal(seq(seq(dataset, "ReferencedSeriesSequence")[0], "ReferencedInstanceSequence").length, 1);
  },
});
