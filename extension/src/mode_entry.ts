/**
 * The hashed module behind `plugins/edgeseg/mode.js`; guards the mode like extension_entry.ts guards the
 * extension. If the mode module cannot load, a hidden placeholder mode is registered so the viewer
 * still starts.
 */
import { placeholderMode } from "./fallbacks.ts";

let loaded: unknown;
try {
  const { edgesegMode } = await import("./mode.ts");
  // modeFactory runs during app start as well; a throw there would also stop the viewer.
  loaded = {
    ...edgesegMode,
    modeFactory: async (args: Parameters<typeof edgesegMode.modeFactory>[0]) => {
      try {
        return await edgesegMode.modeFactory(args);
      } catch (err) {
        console.error("EdgeSeg mode failed to start; the viewer continues without it.", err);
        return placeholderMode().modeFactory();
      }
    },
  };
} catch (err) {
  console.error("EdgeSeg mode failed to load; the viewer continues without it.", err);
  loaded = placeholderMode();
}

// OHIF takes the module's default export.
export default loaded;
