/**
 * Bundles the EdgeSeg OHIF extension and mode into build/plugins/edgeseg/ and writes plugins.json,
 * which the edge server turns into app-config `extensions` / `modes`.
 *
 *   deno task build
 *
 * Output file names carry content hashes: the browser's module map caches plugin URLs for the life of
 * the page, and the server serves them as immutable. The listed URLs are tiny guard modules
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

export interface BuildResult extends PluginList {
  /** URL of the inference Worker bundle (segment() + src/inference), injected into the extension. */
  worker: string;
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
  const worker = PLUGIN_URL_PREFIX + relative(PLUGIN_DIR, join(PROJECT_ROOT, workerOut[0]));

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
    define: { __EDGESEG_WORKER_URL__: JSON.stringify(worker) },
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
  // Atomic replace: a server reading plugins.json never sees a half-written file.
  const tmp = join(PLUGIN_DIR, `.plugins.json.${Deno.pid}.tmp`);
  await Deno.writeTextFile(tmp, JSON.stringify(list, null, 2) + "\n");
  await Deno.rename(tmp, join(PLUGIN_DIR, "plugins.json"));
  files.push("plugins.json");
  await pruneStale(new Set(files), STALE_AFTER_MS);
  return { ...list, worker, files: files.sort(), bytes, elapsedMs: performance.now() - started };
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
