/**
 * Issue #17 §4, Ophthalmic Tomography: the synthetic OCT phantom (src/dicom/oct_phantom.ts) is
 * deterministic and anatomically ordered, is an OPT instance dciodvfy accepts, reads as a volume with
 * its B-scans as slices, and the pipeline's SEG and Parametric Map of it reference the OPT instance
 * frame by frame, pass dciodvfy, and survive a round trip through Orthanc.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parseDicom, seq } from "../../src/dicom/dataset.ts";
import {
  OCT_SCANNER_PROFILES,
  OctLabel,
  octPhantom,
  octPhantomTruthSeg,
  OPHTHALMIC_TOMOGRAPHY_IMAGE_STORAGE,
  scannerProfileOf,
} from "../../src/dicom/oct_phantom.ts";
import { readSeries } from "../../src/dicom/read.ts";
import { readParametricMap, readSegmentation } from "../../src/dicom/segread.ts";
import { DicomWebClient } from "../../src/dicom/web.ts";
import { readSeriesFromDicomWeb } from "../../src/dicom/web_series.ts";
import { runScript } from "../helpers/cli.ts";
import { orthancMissing, startOrthanc } from "../helpers/orthanc.ts";
import { artifacts, conformanceTest, dciodvfy, pydicomSummary } from "./tools.ts";

/** A small phantom keeps the suite fast; the defaults (25 × 256²) are checked by the determinism test. */
const SMALL = { frames: 9, columns: 128, rows: 128 } as const;

/**
 * What dicom3tools 2022 reports on every OPT instance that follows PS3.3: the OPT Image module
 * (C.8.17.7) requires ConcatenationFrameOffsetNumber 0, InConcatenationNumber 1 and
 * InConcatenationTotalNumber 1 (Type 1, enumerated, to rule concatenations out), while dciodvfy's
 * Multi-frame Functional Groups check refuses them without a ConcatenationUID and refuses a total of
 * 1 — although C.7.6.16 lets an IOD enumerate 1 "to prevent the use of Concatenations (e.g., see
 * Section C.8.17.7)". Leaving them out gives three Type 1 errors instead. Nothing else may fail.
 */
const OPT_CONCATENATION_CONTRADICTION = [
  /^Error - Attribute present when condition unsatisfied .* Element=<ConcatenationFrameOffsetNumber> Module=<MultiFrameFunctionalGroupsCommon>$/,
  /^Error - Attribute present when condition unsatisfied .* Element=<InConcatenationNumber> Module=<MultiFrameFunctionalGroupsCommon>$/,
  /^Error - Cannot be less than or equal to one since then not a Concatenation - attribute <InConcatenationTotalNumber>$/,
];

function unexplainedOptErrors(errors: string[]): string[] {
  return errors.filter((e) => !OPT_CONCATENATION_CONTRADICTION.some((re) => re.test(e)));
}

type Item = Record<string, unknown>;
const items = (ds: Item | undefined, key: string): Item[] => seq(ds, key);

Deno.test("the OCT phantom is byte-identical for the same options and differs between seeds", () => {
  const a = octPhantom();
  const b = octPhantom();
  assert.deepEqual(a.geometry.dims, [256, 256, 25]);
  assert.equal(a.bytes.length, b.bytes.length);
  assert.ok(a.bytes.every((v, i) => v === b.bytes[i]), "same options, same bytes");
  const c = octPhantom({ seed: 2 });
  assert.notEqual(c.sopInstanceUID, a.sopInstanceUID);
  assert.ok(c.pixels.some((v, i) => v !== a.pixels[i]), "another seed, other speckle");
  assert.ok(c.labels.some((v, i) => v !== a.labels[i]), "another seed, other fluid");
});

Deno.test("the phantom's fluid lies in anatomical order along every A-scan and is darker than the retina", () => {
  const p = octPhantom(SMALL);
  const [cols, rows, frames] = p.geometry.dims;
  const counts = [0, 0, 0, 0];
  let orderViolations = 0;
  for (let k = 0; k < frames; k++) {
    for (let i = 0; i < cols; i++) {
      // down an A-scan: IRF (inside the retina) above SRF (under the photoreceptors) above PED (under the RPE)
      let deepest = 0;
      for (let j = 0; j < rows; j++) {
        const l = p.labels[k * cols * rows + j * cols + i];
        counts[l]++;
        if (l === 0) continue;
        if (l < deepest) orderViolations++;
        deepest = Math.max(deepest, l);
      }
    }
  }
  assert.equal(orderViolations, 0);
  for (const l of [OctLabel.irf, OctLabel.srf, OctLabel.ped]) {
    assert.ok(counts[l] > 50, `label ${l}: ${counts[l]}`);
  }
  assert.ok(counts[0] > 0.95 * p.labels.length, "fluid is a small part of the scan");
  // fluid is dark; the bright bands (RNFL, RPE) are the brightest thing in the scan
  let fluidSum = 0, fluidN = 0;
  for (let n = 0; n < p.labels.length; n++) {
    if (p.labels[n]) fluidSum += p.pixels[n], fluidN++;
  }
  const sorted = Float64Array.from(p.pixels).sort();
  const p99 = sorted[Math.floor(0.99 * sorted.length)];
  assert.ok(fluidSum / fluidN < 0.25 * p99, `fluid mean ${fluidSum / fluidN} vs 99th percentile ${p99}`);
  // no fluid in the vitreous: the top quarter of every B-scan is background
  for (let k = 0; k < frames; k++) {
    for (let n = 0; n < (rows / 4) * cols; n++) assert.equal(p.labels[k * cols * rows + n], 0);
  }
});

Deno.test("the scanner profile follows Manufacturer: Cirrus-like speckle is stronger than Spectralis-like", () => {
  assert.equal(scannerProfileOf("Heidelberg Engineering GmbH").looks, OCT_SCANNER_PROFILES[0].looks);
  assert.equal(scannerProfileOf("Acme").modelName, "EdgeSeg OCT phantom");
  const spread = (manufacturer: string) => {
    const p = octPhantom({ ...SMALL, manufacturer });
    assert.equal(parseDicom(p.bytes).dataset.Manufacturer, manufacturer);
    // relative spread of the grey levels in the vitreous (top eighth of each B-scan): speckle alone
    const [cols, rows, frames] = p.geometry.dims;
    const v: number[] = [];
    for (let k = 0; k < frames; k++) {
      for (let n = 0; n < (rows / 8) * cols; n++) v.push(p.pixels[k * cols * rows + n] - p.profile.floor);
    }
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    return Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length) / mean;
  };
  assert.ok(spread("Carl Zeiss Meditec") > 1.5 * spread("Heidelberg Engineering"));
});

conformanceTest(
  "the phantom is an Ophthalmic Tomography instance: dciodvfy finds nothing but its known concatenation contradiction",
  async () => {
    const p = octPhantom(SMALL);
    const path = `${artifacts}oct-phantom.dcm`;
    await Deno.writeFile(path, p.bytes);
    const { errors, warnings } = dciodvfy(path);
    assert.deepEqual(unexplainedOptErrors(errors), []);
    assert.deepEqual(warnings, []);
    const ds = parseDicom(p.bytes).dataset;
    assert.equal(ds.SOPClassUID, OPHTHALMIC_TOMOGRAPHY_IMAGE_STORAGE);
    assert.equal(ds.Modality, "OPT");
    assert.equal(ds.ImageLaterality, "R");
    assert.equal(Number(ds.NumberOfFrames), SMALL.frames);
    assert.equal(items(ds, "PerFrameFunctionalGroupsSequence").length, SMALL.frames);
    const shared = items(ds, "SharedFunctionalGroupsSequence")[0];
    assert.equal(items(shared, "FrameAnatomySequence")[0].FrameLaterality, "R");
  },
);

Deno.test("readSeries reads the OPT instance as a volume: B-scans as slices, spacing from the functional groups", async () => {
  const p = octPhantom({ ...SMALL, laterality: "L" });
  const { volume } = await readSeries([p.bytes]);
  assert.deepEqual(volume.geometry.dims, [128, 128, 9]);
  // 6 mm across a B-scan (128 A-scans), 2 mm deep (128 samples), 9 B-scans over 6 mm
  assert.deepEqual(volume.geometry.spacing.map((s) => Number(s.toFixed(6))), [0.046875, 0.015625, 0.75]);
  assert.deepEqual(volume.geometry, p.geometry);
  assert.equal(volume.modality, "OPT");
  assert.equal(volume.channels, 1);
  assert.deepEqual(Array.from(volume.data), Array.from(p.pixels));
  assert.deepEqual(
    volume.source!.instances.map((r) => [r.sopClassUID, r.sopInstanceUID, r.frame]),
    Array.from({ length: 9 }, (_, k) => [OPHTHALMIC_TOMOGRAPHY_IMAGE_STORAGE, p.sopInstanceUID, k + 1]),
  );
});

/** Checks that every per-frame item of a derived object names the OPT instance and the B-scan at its position. */
function assertFrameReferences(bytes: Uint8Array, opt: ReturnType<typeof octPhantom>): number[] {
  const ds = parseDicom(bytes).dataset;
  assert.equal(ds.FrameOfReferenceUID, opt.frameOfReferenceUID);
  assert.equal(ds.StudyInstanceUID, opt.studyUID);
  const series = items(ds, "ReferencedSeriesSequence");
  assert.equal(series[0].SeriesInstanceUID, opt.seriesUID);
  const frames: number[] = [];
  for (const pf of items(ds, "PerFrameFunctionalGroupsSequence")) {
    const src = items(items(pf, "DerivationImageSequence")[0], "SourceImageSequence")[0];
    assert.equal(src.ReferencedSOPClassUID, OPHTHALMIC_TOMOGRAPHY_IMAGE_STORAGE);
    assert.equal(src.ReferencedSOPInstanceUID, opt.sopInstanceUID);
    const frame = Number(src.ReferencedFrameNumber);
    const z = Number((items(pf, "PlanePositionSequence")[0].ImagePositionPatient as string[])[2]);
    // the frame's plane is the referenced B-scan's plane
    const expectedZ = opt.geometry.origin[2] + (frame - 1) * opt.geometry.spacing[2];
    assert.ok(Math.abs(z - expectedZ) < 1e-4, `frame ${frame}: z ${z}, B-scan at ${expectedZ}`);
    frames.push(frame);
  }
  return frames;
}

/** Runs `deno task segment` with the OPT test model on a phantom written to a temp folder. */
async function segmentPhantom(dir: string, opt: ReturnType<typeof octPhantom>) {
  const input = join(dir, "oct.dcm");
  await Deno.writeFile(input, opt.bytes);
  const r = await runScript("src/cli/segment.ts", [
    "--model",
    "tests/fixtures/models/tiny-oct",
    "--input",
    input,
    "--out",
    join(dir, "out"),
    "--device",
    "cpu",
    "--uncertainty",
    "mc:4",
  ]); // deno-fmt-ignore
  assert.equal(r.code, 0, r.stderr);
  return {
    seg: await Deno.readFile(join(dir, "out", "oct_seg.dcm")),
    pm: await Deno.readFile(join(dir, "out", "oct_uncertainty_pm.dcm")),
    segPath: join(dir, "out", "oct_seg.dcm"),
    pmPath: join(dir, "out", "oct_uncertainty_pm.dcm"),
  };
}

conformanceTest(
  "segment on the OPT phantom writes a SEG and a Parametric Map that reference its frames and pass dciodvfy",
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "edgeseg-opt-" });
    try {
      const opt = octPhantom(SMALL);
      const out = await segmentPhantom(dir, opt);
      assert.deepEqual(dciodvfy(out.segPath).errors, []);
      assert.deepEqual(dciodvfy(out.pmPath).errors, []);
      // the PM carries the eye as its series Laterality (no "empty Laterality" warning)
      assert.ok(!dciodvfy(out.pmPath).warnings.some((w) => /Laterality/.test(w)));
      assert.equal(parseDicom(out.pm).dataset.Laterality, "R");
      const segFrames = assertFrameReferences(out.seg, opt);
      assert.ok(segFrames.length > 0 && segFrames.every((f) => f >= 1 && f <= SMALL.frames));
      // the PM has one frame per B-scan, in B-scan order
      assert.deepEqual(
        assertFrameReferences(out.pm, opt),
        Array.from({ length: SMALL.frames }, (_, k) => k + 1),
      );
      // pydicom agrees on the frames and their sources
      const summary = pydicomSummary(out.pmPath);
      assert.deepEqual(summary.shape, [SMALL.frames, SMALL.rows, SMALL.columns]);
      assert.ok(summary.ref.every((uid) => uid === opt.sopInstanceUID));
      // and EdgeSeg's reader maps the SEG back onto the OPT volume by those references
      const { volume } = await readSeries([opt.bytes]);
      const back = await readSegmentation(out.seg, {
        geometry: volume.geometry,
        refs: volume.source!.instances,
      });
      assert.equal(back.labelmap!.segments[0].label, "Bright layer");
      const pm = await readParametricMap(out.pm, {
        geometry: volume.geometry,
        refs: volume.source!.instances,
      });
      assert.equal(pm.frames.length, SMALL.frames);
      assert.ok(pm.data!.every((v) => Number.isFinite(v)), "every B-scan has its frame");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

conformanceTest(
  "the phantom's ground truth SEG passes dciodvfy and reads back onto the OPT frames voxel for voxel",
  async () => {
    const opt = octPhantom(SMALL);
    const truth = await octPhantomTruthSeg(opt);
    const path = `${artifacts}oct-phantom-truth-seg.dcm`;
    await Deno.writeFile(path, truth);
    assert.deepEqual(dciodvfy(path).errors, []);
    assertFrameReferences(truth, opt);
    const { volume } = await readSeries([opt.bytes]);
    const back = await readSegmentation(truth, { geometry: volume.geometry, refs: volume.source!.instances });
    assert.deepEqual(back.segments.map((s) => s.label), ["IRF", "SRF", "PED"]);
    assert.deepEqual(Array.from(back.labelmap!.data), Array.from(opt.labels));
    assert.ok((await octPhantomTruthSeg(opt)).every((v, i) => v === truth[i]), "deterministic");
  },
);

Deno.test("retina-vessels refuses an OPT series with a typed reason naming the modality", async () => {
  const dir = await Deno.makeTempDir({ prefix: "edgeseg-opt-rv-" });
  try {
    const input = join(dir, "oct.dcm");
    await Deno.writeFile(input, octPhantom(SMALL).bytes);
    const r = await runScript("src/cli/segment.ts", [
      "--model",
      "retina-vessels",
      "--input",
      input,
      "--out",
      join(dir, "out"),
      "--device",
      "cpu",
    ]); // deno-fmt-ignore
    assert.equal(r.code, 1);
    assert.match(r.stdout + r.stderr, /retina-vessels needs OP\/XC\/OT, series is OPT/);
    assert.match(r.stdout + r.stderr, /\(MODALITY\)/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const missing = orthancMissing();
if (missing) console.log(`skip: ${missing}`);

Deno.test({
  name:
    "the OPT phantom, its SEG and its Parametric Map store to Orthanc and read back with their frame references",
  ignore: missing !== null,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "edgeseg-opt-pacs-" });
    const pacs = await startOrthanc();
    try {
      const opt = octPhantom(SMALL);
      const out = await segmentPhantom(dir, opt);
      const client = new DicomWebClient({ baseUrl: pacs.dicomWebUrl });
      const stored = await client.store([opt.bytes, out.seg, out.pm]);
      assert.equal(stored.stored.length, 3);
      const series = await client.searchForSeries(opt.studyUID);
      assert.deepEqual(series.map((s) => s["00080060"]?.Value?.[0]).sort(), ["OPT", "OPT", "SEG"]);
      // the OPT comes back as the same volume, and Orthanc serves its B-scans as frames
      const { volume } = await readSeriesFromDicomWeb(client, opt.studyUID, opt.seriesUID);
      assert.deepEqual(volume.geometry, opt.geometry);
      assert.deepEqual(Array.from(volume.data), Array.from(opt.pixels));
      const P = SMALL.columns * SMALL.rows;
      const [frame5] = await client.retrieveFrames(opt.studyUID, opt.seriesUID, opt.sopInstanceUID, [5]);
      assert.deepEqual(Array.from(frame5.subarray(0, P)), Array.from(opt.pixels.subarray(4 * P, 5 * P)));
      // the SEG read back from the PACS maps onto the PACS' OPT by its frame references
      const segDs = parseDicom(out.seg).dataset;
      const segBack = await client.retrieveInstance(
        opt.studyUID,
        String(segDs.SeriesInstanceUID),
        String(segDs.SOPInstanceUID),
      );
      assert.deepEqual(assertFrameReferences(segBack, opt), assertFrameReferences(out.seg, opt));
      const { volume: local } = await readSeries([opt.bytes]);
      const fromPacs = await readSegmentation(segBack, {
        geometry: volume.geometry,
        refs: volume.source!.instances,
      });
      const fromFile = await readSegmentation(out.seg, {
        geometry: local.geometry,
        refs: local.source!.instances,
      });
      assert.deepEqual(fromPacs.labelmap!.data, fromFile.labelmap!.data);
      assert.ok(fromPacs.labelmap!.data.some((v) => v > 0));
      // the PM too
      const pmDs = parseDicom(out.pm).dataset;
      const pmBack = await client.retrieveInstance(
        opt.studyUID,
        String(pmDs.SeriesInstanceUID),
        String(pmDs.SOPInstanceUID),
      );
      assert.deepEqual(
        assertFrameReferences(pmBack, opt),
        Array.from({ length: SMALL.frames }, (_, k) => k + 1),
      );
      assert.deepEqual((await readParametricMap(pmBack)).frames, (await readParametricMap(out.pm)).frames);
    } finally {
      await pacs.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
