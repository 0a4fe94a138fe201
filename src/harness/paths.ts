/**
 * Paths the viewer harness, the benchmark and the tests share: where artifacts go, the data set
 * folder beside the project (`../shared/data`) and the LA MRI validation case.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { PROJECT_ROOT } from "../server/ohif.ts";

/** Where screenshots and other run artifacts are written (git-ignored). */
export function artifactsDir(...parts: string[]): string {
  return join(PROJECT_ROOT, "artifacts", ...parts);
}

/** `../shared/data/<parts>` beside the project, or null when it is absent (its users then skip). */
export function sharedData(...parts: string[]): string | null {
  const path = join(PROJECT_ROOT, "..", "shared", "data", ...parts);
  return existsSync(path) ? path : null;
}

/**
 * The LA LGE-MRI validation case the tests and the benchmark wrap: the smallest of la-mri-3d's 3
 * validation cases (the last 3 ids sorted; models/la-mri-3d/validation.json), so never a training case.
 */
export const LA_CASE = "57SGAJMLCTCH92QUA0EE";

/** `<case>_image.nii.gz` and `<case>_label.nii.gz` of an LA case in ../shared/data/la-mri, or null. */
export function laMriCase(caseId = LA_CASE): { image: string; label: string } | null {
  const image = sharedData("la-mri", `${caseId}_image.nii.gz`);
  const label = sharedData("la-mri", `${caseId}_label.nii.gz`);
  return image && label ? { image, label } : null;
}
