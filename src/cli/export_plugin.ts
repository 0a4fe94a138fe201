/**
 * `deno task export-plugin --out <dir> [--base-url <url>] [--models id,id]`: writes a self-contained
 * EdgeSeg folder that a PACS admin copies into the hospital OHIF's own static hosting, so no EdgeSeg
 * server runs at all:
 *
 *   <dir>/plugins/edgeseg/…      stable entries (extension.js, mode.js, <version>/…), hashed chunks, Worker
 *   <dir>/edgeseg-loader.js      the host-side loader (keeps OHIF up if the folder is ever missing)
 *   <dir>/models/index.json      the model index (package URLs relative to it)
 *   <dir>/models/<id>/…          each package, every file checked against its manifest's sha256 first
 *   <dir>/edgeseg/ort/…          onnxruntime-web's bundles and WASM (only the files a browser loads)
 *   <dir>/SHA256SUMS             sha256 of every file written, for the admin's own checks
 *   <dir>/app-config.snippet.js  the lines for app-config.js, with --base-url (default "/edgeseg/")
 *
 * Everything inside resolves relative to where the folder is served (extension/src/base.ts), so it
 * works at any sub-path. The folder is written beside <dir> and renamed into place: an interrupted
 * export leaves nothing half-written, and an existing non-empty <dir> is refused.
 */
import { basename, dirname, join, relative, resolve } from "node:path";
import { InputError } from "../core/errors.ts";
import { validateManifest } from "../core/manifest.ts";
import { ORT_RUNTIME_FILES } from "../inference/browser.ts";
import { sha256Hex, verifyBytes } from "../inference/package.ts";
import { modelIndex } from "../server/model_index.ts";
import { PROJECT_ROOT } from "../server/mod.ts";
import { flag, parseArgs } from "./args.ts";

const USAGE = "usage: deno task export-plugin --out DIR [--base-url URL] [--models ID,ID]";

interface BuildModule {
  buildExtension(): Promise<{ files: string[] }>;
  LOADER_FILE: string;
}

export interface ExportOptions {
  out: string;
  /** where the folder will be served, for the app-config snippet (default "/edgeseg/") */
  baseUrl?: string;
  /** package ids to include (default: every package under models/) */
  models?: string[];
  modelsDir?: string;
  log?: (line: string) => void;
}

export interface ExportResult {
  out: string;
  files: number;
  bytes: number;
  models: string[];
  snippet: string;
}

async function isNonEmptyDir(path: string): Promise<boolean> {
  try {
    for await (const _ of Deno.readDir(path)) return true;
    return false;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    if (e instanceof Deno.errors.NotADirectory) return true;
    throw e;
  }
}

/** The base URL normalised to end in "/"; absolute http(s) URLs and root-relative paths are accepted. */
export function normaliseBaseUrl(value: string): string {
  const v = value.trim();
  if (!/^(https?:\/\/[^/]+)?\//.test(v) && !/^https?:\/\/[^/]+$/.test(v)) {
    throw new InputError(
      "BAD_BASE_URL",
      `--base-url expects an absolute http(s) URL or a path starting with "/", found ${
        JSON.stringify(value)
      }`,
    );
  }
  return v.endsWith("/") ? v : v + "/";
}

/** The app-config lines for a folder served at `base`. */
export function exportedSnippet(base: string): string {
  const loader = `${base}edgeseg-loader.js`;
  return [
    "// EdgeSeg: add to window.config in the OHIF app-config.js.",
    "// The loader keeps the viewer working if the EdgeSeg folder is ever missing (docs/deploy.md).",
    `extensions: [${JSON.stringify(`${loader}?extension=${base}plugins/edgeseg/extension.js`)}],`,
    `modes: [${JSON.stringify(`${loader}?mode=${base}plugins/edgeseg/mode.js`)}],`,
    "// or, without the loader:",
    `// extensions: [${JSON.stringify(`${base}plugins/edgeseg/extension.js`)}],`,
    `// modes: [${JSON.stringify(`${base}plugins/edgeseg/mode.js`)}],`,
    "",
  ].join("\n");
}

export async function exportPlugin(opts: ExportOptions): Promise<ExportResult> {
  const log = opts.log ?? (() => {});
  const out = resolve(opts.out);
  const base = normaliseBaseUrl(opts.baseUrl ?? "/edgeseg/");
  if (await isNonEmptyDir(out)) {
    throw new InputError(
      "OUT_EXISTS",
      `--out ${out} exists and is not empty: expected a new or empty folder`,
    );
  }
  const modelsDir = resolve(opts.modelsDir ?? join(PROJECT_ROOT, "models"));

  // A fresh build, so the folder holds exactly this build's files and no stale hashed ones.
  const build = await import(
    new URL(`file://${join(PROJECT_ROOT, "extension", "build.ts")}`).href
  ) as BuildModule;
  const built = await build.buildExtension();
  const pluginDir = join(PROJECT_ROOT, "build", "plugins", "edgeseg");

  await Deno.mkdir(dirname(out), { recursive: true });
  const tmp = await Deno.makeTempDir({ dir: dirname(out), prefix: `.${basename(out)}.export-` });
  const sums: string[] = [];
  let bytes = 0;
  const copy = async (from: string, to: string, data?: Uint8Array) => {
    const content = data ?? await Deno.readFile(from);
    const dest = join(tmp, to);
    await Deno.mkdir(dirname(dest), { recursive: true });
    await Deno.writeFile(dest, content);
    sums.push(`${await sha256Hex(content)}  ${to}`);
    bytes += content.length;
  };
  try {
    for (const file of built.files) {
      if (file.endsWith(".map")) continue; // source maps are for development, not a hospital's hosting
      await copy(join(pluginDir, file), join("plugins", "edgeseg", file));
    }
    await copy(join(pluginDir, build.LOADER_FILE), "edgeseg-loader.js");

    const index = await modelIndex(modelsDir, log);
    const wanted = opts.models && opts.models.length ? new Set(opts.models) : undefined;
    if (wanted) {
      const missing = [...wanted].filter((id) => !index.models.some((m) => m.id === id));
      if (missing.length) {
        throw new InputError(
          "UNKNOWN_MODEL",
          `--models names ${missing.join(", ")}, not found under ${modelsDir} (expected one of ${
            index.models.map((m) => m.id).join(", ")
          })`,
        );
      }
    }
    const models = index.models.filter((m) => !wanted || wanted.has(m.id));
    for (const m of models) {
      const folder = decodeURIComponent(m.url.replace(/\/$/, ""));
      const dir = join(modelsDir, folder);
      const manifestBytes = await Deno.readFile(join(dir, "manifest.json"));
      const manifest = validateManifest(JSON.parse(new TextDecoder().decode(manifestBytes)));
      await copy("", join("models", folder, "manifest.json"), manifestBytes);
      for (const [name, entry] of Object.entries(manifest.files ?? {})) {
        const data = await Deno.readFile(join(dir, name));
        await verifyBytes(name, data, entry, `models/${folder}`);
        await copy("", join("models", folder, name), data);
      }
      for (const extra of ["MODEL_CARD.md", "HISTORY.md", "validation.json", "eval.json"]) {
        try {
          await copy(join(dir, extra), join("models", folder, extra));
        } catch (e) {
          if (!(e instanceof Deno.errors.NotFound)) throw e;
        }
      }
      log(`model ${m.id} ${m.version}: ${Object.keys(manifest.files ?? {}).length} files verified`);
    }
    await copy(
      "",
      join("models", "index.json"),
      new TextEncoder().encode(JSON.stringify({ models }, null, 2) + "\n"),
    );

    const ortDir = join(PROJECT_ROOT, "node_modules", "onnxruntime-web", "dist");
    for (const file of ORT_RUNTIME_FILES) await copy(join(ortDir, file), join("edgeseg", "ort", file));

    const snippet = exportedSnippet(base);
    await copy("", "app-config.snippet.js", new TextEncoder().encode(snippet));
    sums.sort((a, b) => a.slice(66).localeCompare(b.slice(66)));
    await Deno.writeTextFile(join(tmp, "SHA256SUMS"), sums.join("\n") + "\n");

    // Into place in one step; an empty folder that was there is replaced.
    await Deno.remove(out).catch(() => {});
    await Deno.rename(tmp, out);
    return { out, files: sums.length + 1, bytes, models: models.map((m) => m.id), snippet };
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
}

export async function main(argv: string[]): Promise<void> {
  const args = parseArgs(argv, ["help"]);
  if (args.flags.has("help")) {
    console.log(USAGE);
    return;
  }
  const out = flag(args, "out");
  if (!out) throw new InputError("ARG_REQUIRED", "--out is required");
  const models = flag(args, "models")?.split(",").map((s) => s.trim()).filter(Boolean);
  const r = await exportPlugin({
    out,
    baseUrl: flag(args, "base-url"),
    models,
    log: (l) => console.error(l),
  });
  console.log(
    `exported ${r.files} files (${(r.bytes / 1048576).toFixed(1)} MiB; models: ${r.models.join(", ")}) to ${
      relative(Deno.cwd(), r.out) || "."
    }\n\n${r.snippet}`,
  );
}

if (import.meta.main) {
  try {
    await main(Deno.args);
  } catch (e) {
    console.error(e instanceof InputError ? `error: ${e.message}\n${USAGE}` : e);
    Deno.exit(2);
  }
}
