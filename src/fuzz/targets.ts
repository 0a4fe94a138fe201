/**
 * Fuzz targets. A target loads its seed inputs once (`setup`), then for each index builds one mutated
 * input from the seeded PRNG and runs it through the code under test. `run` resolves with "ok" or a
 * `Rejection` (a typed error's code, or an HTTP 4xx) and throws anything else: that is a failure.
 */
import { dicomTarget } from "./targets/dicom.ts";
import { manifestTarget } from "./targets/manifest.ts";
import { niftiTarget } from "./targets/nifti.ts";
import { multipartTarget } from "./targets/multipart.ts";
import { stowTarget } from "./targets/stow.ts";
import { qidoTarget } from "./targets/qido.ts";
import type { FuzzTarget } from "./targets/common.ts";

export { classify, DATA_ROOT, PROJECT_ROOT } from "./targets/common.ts";
export type { FuzzTarget, Rejection, RunResult } from "./targets/common.ts";
export { KNOWN_STORED_INCOMPLETE } from "./targets/stow.ts";
export { dicomTarget, manifestTarget, multipartTarget, niftiTarget, qidoTarget, stowTarget };

/** Every target by name, in report order. */
export const TARGETS: Record<string, () => FuzzTarget> = {
  dicom: dicomTarget,
  manifest: manifestTarget,
  nifti: niftiTarget,
  multipart: multipartTarget,
  stow: stowTarget,
  qido: qidoTarget,
};
