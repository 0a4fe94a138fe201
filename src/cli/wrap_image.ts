/**
 * `deno task wrap-image <image> <out.dcm> [--modality OP] [--op R|L]`: a photograph (PNG, JPEG, TIFF,
 * GIF) as an RGB Secondary Capture, or with `--op <eye>` as an Ophthalmic Photography 8 Bit Image of
 * that eye (src/dicom/wrap_image.ts).
 */
import { InputError } from "../core/errors.ts";
import { wrapImage } from "../dicom/wrap_image.ts";

const USAGE = "usage: deno task wrap-image <image> <out.dcm> [--modality OP] [--op R|L]";

if (import.meta.main) {
  const [input, output, ...rest] = Deno.args;
  if (!input || !output) {
    console.error(USAGE);
    Deno.exit(2);
  }
  const flag = (name: string) => {
    const i = rest.indexOf(name);
    return i >= 0 ? rest[i + 1] : undefined;
  };
  const eye = flag("--op");
  if (rest.includes("--op") && eye !== "R" && eye !== "L") {
    console.error(`--op: expected the eye, R or L, found ${JSON.stringify(eye ?? null)}\n${USAGE}`);
    Deno.exit(2);
  }
  try {
    const wrapped = wrapImage(await Deno.readFile(input), {
      modality: flag("--modality"),
      ...(eye ? { sopClass: "op" as const, laterality: eye as "R" | "L" } : {}),
    });
    await Deno.writeFile(output, wrapped.bytes);
    console.log(
      `${output}: ${wrapped.width}×${wrapped.height} RGB ${
        eye ? `Ophthalmic Photography (${eye} eye)` : "Secondary Capture"
      }, series ${wrapped.seriesUID}`,
    );
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    console.error(`${input}: ${e.message}`);
    Deno.exit(1);
  }
}
