/**
 * The URL listed in app-config `modes`; guards the mode like extension_entry.ts guards the extension.
 * If the mode module cannot load, a hidden placeholder mode is registered so the viewer still starts.
 */

function placeholderMode(err: unknown) {
  console.error("EdgeSeg mode failed to load; the viewer continues without it.", err);
  return {
    id: "edgeseg",
    modeFactory: () => ({
      id: "edgeseg",
      routeName: "edgeseg",
      displayName: "EdgeSeg (failed to load)",
      hide: true,
      routes: [],
      extensions: {},
    }),
  };
}

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
        return placeholderMode(err).modeFactory();
      }
    },
  };
} catch (err) {
  loaded = placeholderMode(err);
}

// OHIF takes the module's default export.
export default loaded;
