/**
 * Paths the tests need, resolved from this file so they work from any working directory. The ones the
 * benchmark needs too (artifacts, ../shared/data, the LA case) are in src/harness/paths.ts.
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { sharedData } from "../../src/harness/paths.ts";

/** The project root (the folder holding deno.json). */
export const PROJECT_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

export function existsSync(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
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
