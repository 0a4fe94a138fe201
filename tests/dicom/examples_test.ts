/**
 * Our reader against third-party SEGs and Parametric Maps with known contents
 * (../shared/data/dicom/seg-examples/INDEX.md, pmap-examples/INDEX.md): dcmqi, highdicom and
 * pydicom-data files, incl. non-byte-aligned frames, RLE, JPEG 2000 and deflated frames.
 */
import assert from "node:assert/strict";
import { readSeries } from "../../src/dicom/read.ts";
import { readParametricMap, readSegmentation } from "../../src/dicom/segread.ts";
import { dataRoot, haveData, listDicom } from "./tools.ts";

interface Known {
  file: string;
  /** staged source series to map onto (folder or file), when present */
  source?: string;
  type: string;
  counts: Record<number, number>;
  labels?: string[];
  /** non-zero voxels per source slice after mapping */
  perSlice?: number[];
  fractionalSum?: number;
}

const liver = { 1: 107098 };
const liverSlices = [36233, 35645, 35220];
const KNOWN: Known[] = [
  {
    file: "dcmqi/23x38x3/seg.dcm",
    source: "dcmqi/23x38x3/image",
    type: "BINARY",
    counts: { 1: 322 },
    labels: ["Liver"],
    perSlice: [4, 314, 4],
  },
  {
    file: "dcmqi/24x38x3/seg.dcm",
    source: "dcmqi/24x38x3/image",
    type: "BINARY",
    counts: { 1: 315 },
    perSlice: [0, 315, 0],
  },
  {
    file: "dcmqi/24x38x3/sparse-labelmap-noppv.dcm",
    source: "dcmqi/24x38x3/image",
    type: "LABELMAP",
    counts: { 1: 630 },
    labels: ["Liver"],
  },
  {
    file: "dcmqi/24x38x3/sparse-labelmap-ppv5.dcm",
    source: "dcmqi/24x38x3/image",
    type: "LABELMAP",
    counts: { 1: 630 },
  },
  {
    file: "dcmqi/liver-ct-3slice/liver.dcm",
    source: "dcmqi/liver-ct-3slice/ct-3slice",
    type: "BINARY",
    counts: liver,
    perSlice: liverSlices,
  },
  {
    file: "dcmqi/liver-ct-3slice/partial_overlaps.dcm",
    source: "dcmqi/liver-ct-3slice/ct-3slice",
    type: "BINARY",
    counts: { 1: 9602, 2: 11888, 3: 10743, 4: 6693, 5: 4713 },
    labels: ["GREEN", "ORANGE", "PURPLE", "LIGHT_BLUE", "DARK_BLUE"],
  },
  { file: "dcmqi/qin-headneck/seg.dcm", type: "BINARY", counts: { 1: 795 }, labels: ["Neoplasm, Primary"] },
  { file: "highdicom/cr/seg_image_cr_binary.dcm", type: "BINARY", counts: { 1: 151 } },
  // the pydicom CT2 source slices are not a regular grid (steps 68 and 202 mm): these map onto the
  // grid the SEG's own positions span
  {
    file: "highdicom/ct/seg_image_ct_binary.dcm",
    type: "BINARY",
    counts: { 1: 638 },
    labels: ["first segment"],
  },
  {
    file: "highdicom/ct/seg_image_ct_binary_fractional.dcm",
    type: "FRACTIONAL",
    counts: { 1: 638 },
    fractionalSum: 162690,
  },
  {
    file: "highdicom/ct/seg_image_ct_true_fractional.dcm",
    type: "FRACTIONAL",
    counts: { 1: 661 },
    fractionalSum: 83136,
  },
  { file: "highdicom/ct/seg_image_ct_binary_overlap.dcm", type: "BINARY", counts: { 1: 64, 2: 16 } },
  {
    file: "highdicom/ct/seg_image_ct_binary_single_frame.dcm",
    source: "highdicom/ct/source-ct_image",
    type: "BINARY",
    counts: { 1: 1832 },
  },
  {
    file: "highdicom/sm/seg_image_sm_control.dcm",
    type: "BINARY",
    counts: Object.fromEntries(
      [14, 0, 23, 22, 30, 31, 28, 23, 32, 29, 25, 28, 27, 28, 20, 31, 31, 27, 44, 30].map((
        c,
        i,
      ) => [i + 1, c]),
    ),
  },
  {
    file: "highdicom/sm/seg_image_sm_control_labelmap.dcm",
    type: "LABELMAP",
    counts: Object.fromEntries(
      [14, 0, 23, 22, 30, 31, 28, 23, 32, 29, 25, 28, 27, 28, 20, 31, 31, 27, 44, 30].map((
        c,
        i,
      ) => [i + 1, c]),
    ),
  },
  {
    file: "pydicom-data/liver_rle.dcm",
    source: "dcmqi/liver-ct-3slice/ct-3slice",
    type: "BINARY",
    counts: liver,
    perSlice: liverSlices,
  },
  {
    file: "pydicom-data/liver_j2k.dcm",
    source: "dcmqi/liver-ct-3slice/ct-3slice",
    type: "BINARY",
    counts: liver,
    perSlice: liverSlices,
  },
  {
    file: "pydicom-data/liver_deflate.dcm",
    source: "dcmqi/liver-ct-3slice/ct-3slice",
    type: "BINARY",
    counts: liver,
    perSlice: liverSlices,
  },
  { file: "pydicom-data/liver_nonbyte_aligned.dcm", type: "BINARY", counts: liver },
  { file: "pydicom-data/liver_nonbyte_aligned_rle.dcm", type: "BINARY", counts: liver },
  { file: "pydicom-data/liver_nonbyte_aligned_j2k.dcm", type: "BINARY", counts: liver },
  { file: "pydicom-data/liver_nonbyte_aligned_deflate.dcm", type: "BINARY", counts: liver },
];

function sourceFiles(rel: string): Uint8Array[] {
  return rel.endsWith(".dcm")
    ? [Deno.readFileSync(dataRoot + "seg-examples/" + rel)]
    : listDicom("seg-examples/" + rel);
}

for (const k of KNOWN) {
  Deno.test({
    name: `reads ${k.file} (${k.type}) to its known contents${k.source ? " on its source grid" : ""}`,
    ignore: !haveData(`seg-examples/${k.file}`),
    fn: async () => {
      const bytes = Deno.readFileSync(`${dataRoot}seg-examples/${k.file}`);
      const src = k.source ? await readSeries(sourceFiles(k.source)) : undefined;
      const seg = await readSegmentation(
        bytes,
        src ? { geometry: src.volume.geometry, refs: src.volume.source!.instances } : undefined,
      );
      assert.equal(seg.type, k.type);
      for (const [n, c] of Object.entries(k.counts)) {
        assert.equal(seg.counts[Number(n)] ?? 0, c, `segment ${n}`);
      }
      if (k.labels) assert.deepEqual(seg.segments.map((s) => s.label), k.labels);
      if (src) {
        assert.ok(seg.labelmap, "mapped onto the source grid");
        const P = src.volume.geometry.dims[0] * src.volume.geometry.dims[1];
        if (k.perSlice) {
          const per = k.perSlice.map((_, z) => {
            let n = 0;
            for (let i = 0; i < P; i++) if (seg.labelmap!.data[z * P + i]) n++;
            return n;
          });
          assert.deepEqual(per, k.perSlice);
        }
        if (seg.overlapVoxels === 0 && k.type !== "FRACTIONAL") {
          let total = 0;
          for (const v of seg.labelmap!.data) if (v) total++;
          assert.equal(total, Object.values(k.counts).reduce((a, b) => a + b, 0));
        }
      }
      if (k.fractionalSum !== undefined) {
        assert.equal(seg.fractional!.data.reduce((s, v) => s + v, 0), k.fractionalSum);
      }
    },
  });
}

for (
  const [file, max] of [["parametric_map_float.dcm", 0.9415791630744934], [
    "parametric_map_double_float.dcm",
    0.9415791875855773,
  ]] as const
) {
  Deno.test({
    name: `reads pmap-examples/${file} to its known range and mean, on its source slice`,
    ignore: !haveData(`pmap-examples/${file}`),
    fn: async () => {
      const src = await readSeries([
        Deno.readFileSync(`${dataRoot}seg-examples/highdicom/ct/source-ct_image/ct_image.dcm`),
      ]);
      const pm = await readParametricMap(Deno.readFileSync(`${dataRoot}pmap-examples/${file}`), {
        geometry: src.volume.geometry,
        refs: src.volume.source!.instances,
      });
      let lo = Infinity, hi = -Infinity, sum = 0;
      for (const v of pm.data!) (lo = Math.min(lo, v)), (hi = Math.max(hi, v)), (sum += v);
      assert.equal(lo, 0);
      assert.ok(Math.abs(hi - max) < 1e-6);
      assert.ok(Math.abs(sum / pm.data!.length - 0.58698) < 1e-4);
    },
  });
}
