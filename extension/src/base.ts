/**
 * Where this EdgeSeg build is served from. Every asset the extension and its Worker fetch (model
 * index and packages, the Worker script, onnxruntime-web's runtime files) resolves against this base,
 * never against the page's origin: in a hospital's own OHIF the page comes from one origin and EdgeSeg
 * from another (the edge server with `--plugin-only`), or from a sub-path of the host's static files
 * (`deno task export-plugin`), or from behind a reverse proxy under a prefix.
 *
 * The layout below the base is fixed (see extension/build.ts and src/cli/export_plugin.ts):
 *   <base>plugins/edgeseg/…   entry modules, hashed chunks, the Worker bundle
 *   <base>models/index.json   the model index; packages under <base>models/<id>/
 *   <base>edgeseg/ort/…       onnxruntime-web's bundles and WASM
 * so the base is the part of a module's own URL before `plugins/edgeseg/`.
 */

/** The path segment every EdgeSeg module URL contains. */
export const PLUGIN_PATH = "plugins/edgeseg/";

/**
 * The base URL (ending in "/") of the build that `moduleUrl` belongs to. A URL outside a build (a
 * module run from source in tests) falls back to the root of `fallbackOrigin`, the page's origin.
 */
export function baseFromModuleUrl(moduleUrl: string, fallbackOrigin?: string): string {
  let url: URL;
  try {
    url = new URL(moduleUrl);
  } catch {
    return fallbackOrigin ? new URL("/", fallbackOrigin).href : "/";
  }
  const at = url.pathname.lastIndexOf("/" + PLUGIN_PATH);
  if (at < 0 || (url.protocol !== "http:" && url.protocol !== "https:")) {
    return fallbackOrigin ? new URL("/", fallbackOrigin).href : "/";
  }
  return new URL(url.pathname.slice(0, at + 1), url.origin).href;
}

const pageHref = (globalThis as { location?: { href?: string } }).location?.href;

/** The base of the build this module was loaded from. */
export const EDGESEG_BASE: string = baseFromModuleUrl(import.meta.url, pageHref);

/** An asset's absolute URL, e.g. `assetUrl("models/index.json")`. */
export function assetUrl(relative: string, base = EDGESEG_BASE): string {
  return new URL(relative, base).href;
}

/** True when `url` is served from the page's own origin (a Worker can then be started from it directly). */
export function isSameOrigin(url: string, page = pageHref): boolean {
  if (!page) return true;
  try {
    return new URL(url).origin === new URL(page).origin;
  } catch {
    return false;
  }
}
