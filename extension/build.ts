/**
 * Bundles the EdgeSeg OHIF extension and mode into build/plugins/edgeseg/ and writes plugins.json,
 * which the edge server turns into app-config `extensions` / `modes`.
 *
 *   deno task build
 *
 * Output file names carry content hashes: the browser's module map caches plugin URLs for the life of
 * the page, and the server serves them as immutable. Beside them, the stable entry URLs an OHIF admin
 * writes into a hospital's app-config: `extension.js` and `mode.js` (and versioned aliases
 * `<version>/extension.js`, `<version>/mode.js`), one-line modules that re-export the hashed entries
 * and are served no-cache, so they revalidate and a new build reaches the next page load. The hashed
 * entries are tiny guard modules
 * (extension_entry.ts, mode_entry.ts) that import the real code as a split chunk, so a plugin failure
 * never blanks the viewer. React is never bundled: `react` and `react/jsx-runtime` resolve to shims
 * that return the host viewer's instance (see src/host_react.ts).
 */
import * as esbuild from "esbuild";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

export const PROJECT_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
export const PLUGIN_DIR = join(PROJECT_ROOT, "build", "plugins", "edgeseg");
/** URL prefix under which the edge server serves build/plugins/. */
export const PLUGIN_URL_PREFIX = "/plugins/edgeseg/";

export interface PluginList {
  extensions: string[];
  modes: string[];
}

/** EdgeSeg's version, from package.json (the one place it is written). */
export const EDGESEG_VERSION: string = JSON.parse(
  Deno.readTextFileSync(join(PROJECT_ROOT, "package.json")),
).version;

/** The stable entry files, relative to build/plugins/edgeseg/. */
export const STABLE_ENTRIES = {
  extension: "extension.js",
  mode: "mode.js",
  versionedExtension: `${EDGESEG_VERSION}/extension.js`,
  versionedMode: `${EDGESEG_VERSION}/mode.js`,
} as const;

/** The host-side loader (extension/src/loader.ts), written to build/plugins/edgeseg/loader.js. */
export const LOADER_FILE = "loader.js";

export interface BuildResult extends PluginList {
  /** URL of the inference Worker bundle (segment() + src/inference), injected into the extension. */
  worker: string;
  /** The stable entry URLs for a hospital's app-config (see STABLE_ENTRIES). */
  stable: { extension: string; mode: string };
  /** Every file written, relative to build/plugins/edgeseg/. */
  files: string[];
  /** Total bytes of the JavaScript written. */
  bytes: number;
  elapsedMs: number;
}

const SRC = join(PROJECT_ROOT, "extension", "src");

/** Maps React imports to the host shims and refuses anything that would bundle a second React DOM. */
const hostReactPlugin: esbuild.Plugin = {
  name: "edgeseg-host-react",
  setup(build) {
    build.onResolve({ filter: /^react$/ }, () => ({ path: join(SRC, "shims", "react.ts") }));
    build.onResolve(
      { filter: /^react\/jsx(-dev)?-runtime$/ },
      () => ({ path: join(SRC, "shims", "jsx_runtime.ts") }),
    );
    build.onResolve({ filter: /^react-dom(\/.*)?$/ }, (args) => ({
      errors: [{
        text:
          `"${args.path}" imported from ${
            relative(PROJECT_ROOT, args.importer)
          }: EdgeSeg must use the host viewer's ` +
          "React DOM, not bundle one; render through the host's React instead",
      }],
    }));
  },
};

/** Writes through a temp file and a rename: a server reading the file never sees half of it. */
async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.${Deno.pid}.tmp`;
  await Deno.writeTextFile(tmp, text);
  await Deno.rename(tmp, path);
}

/** Hashed outputs of earlier builds are deleted once they are older than this. */
const STALE_AFTER_MS = 15 * 60 * 1000;

async function pruneStale(keep: Set<string>, olderThanMs: number, dir = PLUGIN_DIR): Promise<void> {
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    const rel = relative(PLUGIN_DIR, path);
    if (entry.isDirectory) {
      await pruneStale(keep, olderThanMs, path);
      continue;
    }
    if (keep.has(rel)) continue;
    const stat = await Deno.stat(path).catch(() => null);
    if (stat?.mtime && Date.now() - stat.mtime.getTime() > olderThanMs) {
      await Deno.remove(path).catch(() => {});
    }
  }
}

/** Bundles the extension and writes plugins.json. Returns the URLs to list in app-config. */
export async function buildExtension(options: { minify?: boolean } = {}): Promise<BuildResult> {
  const started = performance.now();
  // The folder is not emptied first: a running server (or a test beside this build) may still be
  // serving the previous hashed files. Names are content hashes, so old and new never collide;
  // stale files are pruned afterwards once they are old enough that no page can still want them.
  await Deno.mkdir(PLUGIN_DIR, { recursive: true });
  const minify = options.minify ?? true;

  // The Worker first: its hashed URL is compiled into the extension, which starts it on the first Run.
  const workerBuild = await esbuild.build({
    absWorkingDir: PROJECT_ROOT,
    entryPoints: { "edgeseg-worker": join(SRC, "worker.ts") },
    outdir: PLUGIN_DIR,
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    entryNames: "[name]-[hash]",
    minify,
    sourcemap: "linked",
    metafile: true,
    legalComments: "linked",
    plugins: [hostReactPlugin],
    logLevel: "silent",
  });
  const workerOut = Object.entries(workerBuild.metafile.outputs).find(([, m]) =>
    m.entryPoint?.endsWith("worker.ts")
  );
  if (!workerOut) throw new Error("extension build: the worker bundle was not written");
  const workerFile = relative(PLUGIN_DIR, join(PROJECT_ROOT, workerOut[0]));
  const worker = PLUGIN_URL_PREFIX + workerFile;

  const result = await esbuild.build({
    absWorkingDir: PROJECT_ROOT,
    entryPoints: {
      "edgeseg-extension": join(SRC, "extension_entry.ts"),
      "edgeseg-mode": join(SRC, "mode_entry.ts"),
    },
    outdir: PLUGIN_DIR,
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    entryNames: "[name]-[hash]",
    chunkNames: "chunks/[name]-[hash]",
    minify,
    sourcemap: "linked",
    metafile: true,
    legalComments: "linked",
    plugins: [hostReactPlugin],
    define: { __EDGESEG_WORKER_FILE__: JSON.stringify(workerFile) },
    logLevel: "silent",
  });
  // The loader sits with the host's static files, not ours: one self-contained file, no chunks.
  await esbuild.build({
    absWorkingDir: PROJECT_ROOT,
    entryPoints: [join(SRC, "loader.ts")],
    outfile: join(PLUGIN_DIR, LOADER_FILE),
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    minify: false,
    logLevel: "silent",
  });
  await esbuild.stop();

  const extensions: string[] = [];
  const modes: string[] = [];
  const files: string[] = [];
  let bytes = 0;
  const outputs = { ...workerBuild.metafile.outputs, ...result.metafile.outputs };
  for (const [outPath, meta] of Object.entries(outputs)) {
    const rel = relative(PLUGIN_DIR, join(PROJECT_ROOT, outPath));
    files.push(rel);
    if (!rel.endsWith(".js")) continue;
    bytes += meta.bytes;
    const url = PLUGIN_URL_PREFIX + rel;
    if (meta.entryPoint?.endsWith("extension_entry.ts")) extensions.push(url);
    if (meta.entryPoint?.endsWith("mode_entry.ts")) modes.push(url);
  }
  if (extensions.length !== 1 || modes.length !== 1) {
    throw new Error(
      `extension build: expected one extension and one mode entry, found ${extensions.length} and ${modes.length}`,
    );
  }
  const list: PluginList = { extensions, modes };
  const entryFile = (url: string) => url.slice(PLUGIN_URL_PREFIX.length);
  const stableFiles: [string, string][] = [
    [STABLE_ENTRIES.extension, entryFile(extensions[0])],
    [STABLE_ENTRIES.mode, entryFile(modes[0])],
    [STABLE_ENTRIES.versionedExtension, entryFile(extensions[0])],
    [STABLE_ENTRIES.versionedMode, entryFile(modes[0])],
  ];
  for (const [stable, target] of stableFiles) {
    const path = join(PLUGIN_DIR, stable);
    await Deno.mkdir(dirname(path), { recursive: true });
    const spec = relative(dirname(path), join(PLUGIN_DIR, target));
    await writeAtomic(
      path,
      `// EdgeSeg ${EDGESEG_VERSION}: the stable entry for OHIF's app-config; it re-exports this build's hashed entry.\n` +
        `export { default } from ${JSON.stringify(spec.startsWith(".") ? spec : `./${spec}`)};\n`,
    );
    files.push(stable);
  }
  files.push(LOADER_FILE);
  // Atomic replace: a server reading plugins.json never sees a half-written file.
  await writeAtomic(join(PLUGIN_DIR, "plugins.json"), JSON.stringify(list, null, 2) + "\n");
  files.push("plugins.json");
  await pruneStale(new Set(files), STALE_AFTER_MS);
  return {
    ...list,
    worker,
    stable: {
      extension: PLUGIN_URL_PREFIX + STABLE_ENTRIES.extension,
      mode: PLUGIN_URL_PREFIX + STABLE_ENTRIES.mode,
    },
    files: files.sort(),
    bytes,
    elapsedMs: performance.now() - started,
  };
}

if (import.meta.main) {
  const r = await buildExtension();
  console.log(
    `built ${r.files.length} files (${(r.bytes / 1024).toFixed(1)} KiB JS) in ${
      r.elapsedMs.toFixed(0)
    } ms into ` +
      `${relative(PROJECT_ROOT, PLUGIN_DIR)}/\n  extension: ${r.extensions[0]}\n  mode:      ${
        r.modes[0]
      }\n  worker:    ${r.worker}`,
  );
}
