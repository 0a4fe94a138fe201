/**
 * `deno task phantom-oct --out <file.dcm> [--labels <truth.dcm | truth.nii.gz>] [--seed N] [--frames 25]
 * [--columns 256] [--rows 256] [--eye R|L] [--manufacturer NAME]`: writes the synthetic retinal OCT
 * volume with fluid (src/dicom/oct_phantom.ts) as an Ophthalmic Tomography Image instance, and its
 * ground truth (0 background, 1 IRF, 2 SRF, 3 PED) as a DICOM SEG referencing the B-scans, or as NIfTI
 * on the same grid. Both are what `deno task eval --reference` reads.
 */
import { InputError } from "../core/errors.ts";
import { octPhantom, octPhantomTruthSeg } from "../dicom/oct_phantom.ts";
import { writeNifti } from "../io/nifti.ts";
import { flag, numberFlag, parseArgs, requireFlag } from "./args.ts";
import { writeFileAtomic } from "./output.ts";

const USAGE = `usage: deno task phantom-oct --out <file.dcm> [--labels <truth.dcm | truth.nii.gz>] [--seed N]
  [--frames 25] [--columns 256] [--rows 256] [--eye R|L] [--manufacturer NAME]
  --manufacturer picks the scanner profile: "Heidelberg Engineering", "Carl Zeiss Meditec", "Topcon",
  anything else the generic one (default "EdgeSeg")`;

export async function main(argv: string[]): Promise<number> {
  try {
    const args = parseArgs(argv);
    const out = requireFlag(args, "out", USAGE);
    const eye = flag(args, "eye") ?? "R";
    if (eye !== "R" && eye !== "L") {
      throw new InputError("ARG_BAD_VALUE", `--eye: expected R or L, found ${JSON.stringify(eye)}`);
    }
    const phantom = octPhantom({
      seed: numberFlag(args, "seed", 1),
      frames: numberFlag(args, "frames", 25),
      columns: numberFlag(args, "columns", 256),
      rows: numberFlag(args, "rows", 256),
      laterality: eye,
      manufacturer: flag(args, "manufacturer"),
    });
    await writeFileAtomic(out, phantom.bytes);
    const [cols, rows, frames] = phantom.geometry.dims;
    const counts = [0, 0, 0, 0];
    for (const l of phantom.labels) counts[l]++;
    console.log(
      `${out}: Ophthalmic Tomography, ${frames} B-scans of ${cols}×${rows}, ${phantom.laterality} eye, ` +
        `${phantom.profile.manufacturer} profile (${phantom.profile.modelName}); fluid voxels IRF ${
          counts[1]
        }, SRF ${counts[2]}, PED ${counts[3]}`,
    );
    const labels = flag(args, "labels");
    if (labels !== undefined) {
      const bytes = /\.nii(\.gz)?$/i.test(labels)
        ? await writeNifti(phantom.geometry, phantom.labels, labels.toLowerCase().endsWith(".gz"))
        : await octPhantomTruthSeg(phantom);
      await writeFileAtomic(labels, bytes);
      console.log(`${labels}: ground truth (0 background, 1 IRF, 2 SRF, 3 PED)`);
    }
    return 0;
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    console.error(`${e.message}\n${USAGE}`);
    return 2;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
