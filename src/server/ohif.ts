/**
 * Obtains the prebuilt OHIF viewer once and caches it under `.cache/ohif/<version>/dist`.
 *
 * The npm tarball of `@ohif/app` *is* the built viewer (`package/dist/`). We fetch it with `npm pack`
 * (npm already knows the registry and any proxy settings, so no host name lives in this code), verify
 * it against a pinned sha512 integrity before extracting anything, drop source maps and the
 * microscopy viewer (58 MB we never load), and move the result into place with one rename so a
 * crash half-way never leaves a half-extracted viewer that later looks complete.
 *
 * Runnable as main: `deno task fetch-ohif`.
 */
import { dirname, join, resolve } from "node:path";
import { IntegrityError } from "../core/errors.ts";

/** The OHIF version `deno task start` serves, and the one EdgeSeg is built and tested against. */
export const OHIF_VERSION = "3.13.2";
/**
 * Pinned tarball integrities (`npm view @ohif/app@<version> dist.integrity`) of every OHIF version the
 * tests run EdgeSeg in: the served one and the newest 3.12.x (the oldest supported line).
 */
export const OHIF_INTEGRITIES: Record<string, string> = {
  "3.13.2": "sha512-WZdxmpmG7rqFgW9ZJLcbgr3XCtLi1KDNPoMaeY5PPe6j4G4fjEjjkycZM6C6Zk2F87BKxFfpq+jd5xXZB9E8EA==",
  "3.12.10":
    "sha512-0kuF66Mq9c9dMD++bUsTjMrJpXJwaZhz9B4uS244DawAjSkTwIYFU93pxPuRUQixaRi7QAHlF3Fe1qudBlZrmA==",
};
/** The newest 3.12.x, tested as the oldest supported OHIF line. */
export const OHIF_OLDEST_TESTED = "3.12.10";

/** Project root: two levels above this file (src/server/). */
export const PROJECT_ROOT: string = resolve(dirname(new URL(import.meta.url).pathname), "..", "..");

export interface EnsureOhifOptions {
  /** cache root; default `<project>/.cache/ohif` */
  cacheDir?: string;
  /** which pinned version (a key of OHIF_INTEGRITIES); default OHIF_VERSION */
  version?: string;
  log?: (line: string) => void;
}

/** The dist folder path for the pinned version (may not exist yet). */
export function ohifDistPath(
  cacheDir = join(PROJECT_ROOT, ".cache", "ohif"),
  version = OHIF_VERSION,
): string {
  return join(cacheDir, version, "dist");
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

async function run(cmd: string, args: string[], cwd: string): Promise<string> {
  const out = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed (exit ${out.code}): ${dec.decode(out.stderr).trim()}`);
  }
  return dec.decode(out.stdout);
}

/** Base64 sha512 of a file, in npm's `sha512-…` integrity form. */
export async function sha512Integrity(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-512", bytes));
  let bin = "";
  for (const b of digest) bin += String.fromCharCode(b);
  return "sha512-" + btoa(bin);
}

async function removeUnwanted(dir: string): Promise<void> {
  for await (const entry of Deno.readDir(dir)) {
    const p = join(dir, entry.name);
    if (entry.isDirectory) {
      if (entry.name === "dicom-microscopy-viewer") await Deno.remove(p, { recursive: true });
      else await removeUnwanted(p);
    } else if (entry.name.endsWith(".map")) {
      await Deno.remove(p);
    }
  }
}

/**
 * Returns the cached OHIF dist folder, fetching, verifying and extracting it first if missing.
 * Throws `IntegrityError` when the tarball does not match the pinned integrity (nothing is extracted).
 */
export async function ensureOhif(opts: EnsureOhifOptions = {}): Promise<string> {
  const cacheDir = opts.cacheDir ?? join(PROJECT_ROOT, ".cache", "ohif");
  const version = opts.version ?? OHIF_VERSION;
  const integrity = OHIF_INTEGRITIES[version];
  if (!integrity) {
    throw new IntegrityError(
      "OHIF_VERSION",
      `no pinned integrity for @ohif/app@${version}: expected one of ${
        Object.keys(OHIF_INTEGRITIES).join(", ")
      }`,
    );
  }
  const dist = ohifDistPath(cacheDir, version);
  if (await exists(join(dist, "index.html"))) return dist;
  const log = opts.log ?? (() => {});
  const versionDir = join(cacheDir, version);
  await Deno.mkdir(versionDir, { recursive: true });
  const tmp = await Deno.makeTempDir({ dir: versionDir, prefix: ".fetch-" });
  try {
    log(`fetching @ohif/app@${version} with npm pack …`);
    await run("npm", ["pack", `@ohif/app@${version}`, "--silent"], tmp);
    const tgz = (await Array.fromAsync(Deno.readDir(tmp))).find((e) => e.name.endsWith(".tgz"));
    if (!tgz) throw new Error(`npm pack produced no .tgz in ${tmp}`);
    const tgzPath = join(tmp, tgz.name);
    const actual = await sha512Integrity(await Deno.readFile(tgzPath));
    if (actual !== integrity) {
      throw new IntegrityError(
        "OHIF_INTEGRITY",
        `@ohif/app@${version} tarball integrity mismatch: expected ${integrity}, found ${actual}`,
      );
    }
    log("integrity verified; extracting package/dist …");
    const extract = join(tmp, "x");
    await Deno.mkdir(extract);
    await run("tar", ["-xzf", tgzPath, "-C", extract, "package/dist"], tmp);
    const extracted = join(extract, "package", "dist");
    await removeUnwanted(extracted);
    if (!(await exists(join(extracted, "index.html")))) {
      throw new Error(`the @ohif/app tarball has no package/dist/index.html`);
    }
    // A concurrent ensureOhif may have won the race; its result is as good as ours.
    if (await exists(join(dist, "index.html"))) return dist;
    await Deno.rename(extracted, dist);
    log(`OHIF ${version} cached at ${dist}`);
    return dist;
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}
