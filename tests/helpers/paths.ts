/** Paths the tests need, resolved from this file so they work from any working directory. */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The project root (the folder holding deno.json). */
export const PROJECT_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** Where tests write artifacts (git-ignored). */
export function artifactsDir(...parts: string[]): string {
  return join(PROJECT_ROOT, "artifacts", ...parts);
}

export function existsSync(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** `../shared/data` beside the project, or null when it is absent (tests then skip). */
export function sharedData(...parts: string[]): string | null {
  const path = join(PROJECT_ROOT, "..", "shared", "data", ...parts);
  return existsSync(path) ? path : null;
}

/** The real CT series used by the e2e tests, or null. */
export function ctAbdomenDir(): string | null {
  return sharedData("dicom", "ct-abdomen", "raw");
}

/** The cached OHIF 3.13.2 prebuilt viewer (fetched by src/server/ohif.ts), or null when not cached yet. */
export function ohifDistDir(): string | null {
  const path = join(PROJECT_ROOT, ".cache", "ohif", "3.13.2", "dist");
  return existsSync(join(path, "index.html")) ? path : null;
}

/** Lists the regular files under a folder, recursively, sorted. */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) out.push(...await listFiles(path));
    else if (entry.isFile) out.push(path);
  }
  return out.sort();
}

/**
 * The LA LGE-MRI validation case the tests wrap: the smallest of la-mri-3d's 3 validation cases (the
 * last 3 ids sorted; models/la-mri-3d/validation.json), so never a training case.
 */
export const LA_CASE = "57SGAJMLCTCH92QUA0EE";

/** `<case>_image.nii.gz` and `<case>_label.nii.gz` of an LA case in ../shared/data/la-mri, or null. */
export function laMriCase(caseId = LA_CASE): { image: string; label: string } | null {
  const image = sharedData("la-mri", `${caseId}_image.nii.gz`);
  const label = sharedData("la-mri", `${caseId}_label.nii.gz`);
  return image && label ? { image, label } : null;
}
