/** Fuzz target "dicom": mutated Part-10 files → the series reader and the SEG/PM readers. */
import { join } from "node:path";
import { parseDicom, SopClass, str } from "../../dicom/dataset.ts";
import { phantomSeries } from "../../dicom/phantom.ts";
import { readSeries } from "../../dicom/read.ts";
import { readParametricMap, readSegmentation } from "../../dicom/segread.ts";
import { dicomLength, dicomLengthFields, genericMutation, Rng, truncate } from "../mutators.ts";
import { DATA_ROOT, existsSync, type FuzzTarget, guarded } from "./common.ts";

/** Real files of every kind the readers handle, small enough to mutate thousands of times. */
export const DICOM_SEED_FILES = [
  "dicom/seg-examples/dcmqi/23x38x3/seg.dcm",
  "dicom/seg-examples/dcmqi/23x38x3/image/IMG0001.dcm",
  "dicom/seg-examples/dcmqi/24x38x3/multiframe/mf.dcm",
  "dicom/seg-examples/dcmqi/24x38x3/sparse-labelmap-ppv5.dcm",
  "dicom/seg-examples/dcmqi/liver-ct-3slice/liver.dcm",
  "dicom/seg-examples/pydicom-data/liver_rle.dcm",
  "dicom/seg-examples/pydicom-data/liver_deflate.dcm",
  "dicom/seg-examples/pydicom-data/liver_nonbyte_aligned_j2k.dcm",
  "dicom/seg-examples/highdicom/ct/seg_image_ct_binary_fractional.dcm",
  "dicom/pmap-examples/parametric_map_float.dcm",
  "dicom/ct-abdomen/raw/1-001.dcm",
  "dicom/mr/enhanced/siemens_xa10_6_1.dcm",
  "dicom/mr/adc-series/000000.dcm",
];

interface Seeds {
  files: Uint8Array[];
  names: string[];
  lengthFields: ReturnType<typeof dicomLengthFields>[];
}

async function dicomSeeds(maxBytes = 800_000): Promise<Seeds> {
  const files: Uint8Array[] = [], names: string[] = [];
  for (const rel of DICOM_SEED_FILES) {
    const p = join(DATA_ROOT, rel);
    if (!existsSync(p)) continue;
    const b = await Deno.readFile(p);
    if (b.length > maxBytes) continue;
    files.push(b);
    names.push(rel);
  }
  if (!files.length) {
    const ph = phantomSeries({ slices: 3, size: 32 });
    for (let i = 0; i < ph.files.length; i++) {
      files.push(ph.files[i]);
      names.push(`phantom slice ${i}`);
    }
  }
  return { files, names, lengthFields: files.map((f) => dicomLengthFields(f)) };
}

function mutateDicom(s: Seeds, rng: Rng, index: number): Uint8Array {
  const k = index % s.files.length;
  const b = s.files[k];
  const m = rng.int(10);
  if (m < 4) {
    let out = dicomLength(b, rng, s.lengthFields[k]);
    if (rng.chance(0.3)) out = dicomLength(out, rng, s.lengthFields[k]);
    return out;
  }
  if (m < 5) return truncate(b, rng);
  return genericMutation(b, rng);
}

export function dicomTarget(): FuzzTarget {
  let seeds: Seeds;
  return {
    name: "dicom",
    description: "mutated DICOM files → parseDicom, then readSegmentation / readParametricMap / readSeries",
    async setup() {
      seeds = await dicomSeeds();
      return `${seeds.files.length} seed files: ${seeds.names.join(", ")}`;
    },
    input: (rng, index) => mutateDicom(seeds, rng, index),
    run: (input) =>
      guarded(async () => {
        const bytes = input as Uint8Array;
        const parsed = parseDicom(bytes);
        const sop = str(parsed.dataset, "SOPClassUID");
        if (sop === SopClass.Segmentation || sop === SopClass.LabelmapSegmentation) {
          await readSegmentation(bytes);
        } else if (sop === SopClass.ParametricMap) await readParametricMap(bytes);
        else await readSeries([bytes]);
      }),
    teardown: () => Promise.resolve(),
  };
}
