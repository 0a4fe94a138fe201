/**
 * The hashed module behind `plugins/edgeseg/extension.js`. OHIF 3.12/3.13 import every plugin URL inside
 * one Promise.all, so a plugin that fails to import blanks the whole viewer. This guard imports the real
 * extension inside try/catch and, on failure, registers a stub whose panel says what went wrong.
 */
import { messageOf, stubExtension } from "./fallbacks.ts";

let loaded: unknown;
try {
  loaded = (await import("./extension.ts")).edgesegExtension;
} catch (err) {
  console.error("EdgeSeg extension failed to load; the viewer continues without it.", err);
  loaded = stubExtension(`EdgeSeg failed to load: ${messageOf(err)}`);
}

// OHIF takes the module's default export.
export default loaded;
