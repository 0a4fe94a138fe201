/**
 * The EdgeSeg loader: the one small file a PACS admin copies into the hospital OHIF's own static files
 * (as `edgeseg-loader.js`), so that the viewer still opens when the edge server that serves EdgeSeg is
 * down. OHIF 3.12/3.13 import all runtime plugins in one Promise.all: a plugin URL that cannot be
 * fetched blanks the whole viewer, and no code of ours on the unreachable server can catch that.
 *
 * app-config.js lists the loader with the real entry URL in its query:
 *   extensions: ["/edgeseg-loader.js?extension=https://edge.example:8043/plugins/edgeseg/extension.js"],
 *   modes:      ["/edgeseg-loader.js?mode=https://edge.example:8043/plugins/edgeseg/mode.js"],
 * Each query string is its own module instance. On failure the console gets one line saying that
 * EdgeSeg could not be loaded and from where, and OHIF gets a stub extension / hidden mode.
 */
import { messageOf, placeholderMode, stubExtension } from "./fallbacks.ts";

function target(): { kind: "extension" | "mode"; url: string } {
  const params = new URL(import.meta.url).searchParams;
  for (const kind of ["extension", "mode"] as const) {
    const value = params.get(kind);
    if (value) return { kind, url: new URL(value, import.meta.url).href };
  }
  throw new Error(
    `expected ?extension=<url of plugins/edgeseg/extension.js> or ?mode=<url of plugins/edgeseg/mode.js> ` +
      `in the loader's URL, found "${new URL(import.meta.url).search}"`,
  );
}

let loaded: unknown;
let kind: "extension" | "mode" = new URL(import.meta.url).searchParams.has("mode") ? "mode" : "extension";
let from = "(no URL given)";
try {
  const t = target();
  kind = t.kind;
  from = t.url;
  loaded = (await import(/* @vite-ignore */ t.url)).default;
  if (!loaded) throw new Error(`${t.url} has no default export`);
} catch (err) {
  console.error(
    `EdgeSeg could not be loaded from ${from}: ${messageOf(err)}; the viewer continues without it.`,
  );
  loaded = kind === "mode" ? placeholderMode() : stubExtension(`EdgeSeg could not be loaded from ${from}.`);
}

// OHIF takes the module's default export.
export default loaded;
