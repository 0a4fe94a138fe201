/**
 * `deno task wrap-volume <volume.nii[.gz]> <out folder> [--body-part HEART] [--modality MR]
 * [--patient-id ID] [--description TEXT]`: a research NIfTI volume as a single-frame DICOM series
 * (src/dicom/wrap_volume.ts), ready for `deno task import`.
 */
import { join } from "node:path";
import { InputError } from "../core/errors.ts";
import { wrapNifti } from "../dicom/wrap_volume.ts";

if (import.meta.main) {
  const [input, outDir, ...rest] = Deno.args;
  const opt = (name: string) => {
    const i = rest.indexOf(`--${name}`);
    return i >= 0 ? rest[i + 1] : undefined;
  };
  if (!input || !outDir) {
    console.error(
      "usage: deno task wrap-volume <volume.nii[.gz]> <out folder> [--body-part HEART] " +
        "[--modality MR] [--patient-id ID] [--description TEXT]",
    );
    Deno.exit(2);
  }
  try {
    const wrapped = await wrapNifti(await Deno.readFile(input), input, {
      bodyPart: opt("body-part"),
      modality: opt("modality"),
      ...(opt("patient-id") ? { patientId: opt("patient-id"), patientName: opt("patient-id") } : {}),
      ...(opt("description") ? { seriesDescription: opt("description") } : {}),
    });
    await Deno.mkdir(outDir, { recursive: true });
    for (let k = 0; k < wrapped.files.length; k++) {
      await Deno.writeFile(join(outDir, `${String(k + 1).padStart(4, "0")}.dcm`), wrapped.files[k]);
    }
    console.log(
      `${outDir}: ${wrapped.files.length} MR instances, series ${wrapped.seriesUID}, rescale ${wrapped.rescale.kind} ` +
        `(slope ${wrapped.rescale.slope}, intercept ${wrapped.rescale.intercept}, max error ${
          wrapped.maxError.toExponential(2)
        })`,
    );
  } catch (e) {
    console.error(e instanceof InputError ? `error: ${e.message}` : e);
    Deno.exit(2);
  }
}
