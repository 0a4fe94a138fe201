/**
 * `deno task wrap-image <image> <out.dcm> [--modality OP]`: a photograph (PNG, JPEG, TIFF, GIF) as an
 * RGB Secondary Capture (src/dicom/wrap_image.ts).
 */
import { wrapImage } from "../dicom/wrap_image.ts";

if (import.meta.main) {
  const [input, output, ...rest] = Deno.args;
  if (!input || !output) {
    console.error("usage: deno task wrap-image <image> <out.dcm> [--modality OP]");
    Deno.exit(2);
  }
  const m = rest.indexOf("--modality");
  const wrapped = wrapImage(await Deno.readFile(input), { modality: m >= 0 ? rest[m + 1] : undefined });
  await Deno.writeFile(output, wrapped.bytes);
  console.log(
    `${output}: ${wrapped.width}×${wrapped.height} RGB Secondary Capture, series ${wrapped.seriesUID}`,
  );
}
