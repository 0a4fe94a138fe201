/**
 * The URL listed in app-config `extensions`. OHIF 3.13.2 imports every plugin URL inside one
 * Promise.all, so a plugin that fails to import blanks the whole viewer. This guard imports the real
 * extension inside try/catch and, on failure, registers a stub whose panel says what went wrong.
 * The stub builds its element by hand because the failure may be the host-React lookup itself; React 18
 * accepts any element whose `$$typeof` is `Symbol.for("react.element")`.
 */

function errorElement(message: string): unknown {
  return {
    $$typeof: Symbol.for("react.element"),
    type: "div",
    key: null,
    ref: null,
    props: {
      id: "edgeseg-panel",
      "data-error": "true",
      style: { padding: "8px", color: "#f87171", fontSize: "13px", overflowWrap: "anywhere" },
      children: `EdgeSeg failed to load: ${message}`,
    },
    _owner: null,
  };
}

function stubExtension(err: unknown) {
  const message = err instanceof Error ? err.message : String(err);
  console.error("EdgeSeg extension failed to load; the viewer continues without it.", err);
  return {
    id: "edgeseg",
    getPanelModule: () => [{
      name: "panel",
      iconName: "icon-tool-click-segment",
      iconLabel: "EdgeSeg",
      label: "EdgeSeg",
      component: () => errorElement(message),
    }],
    getCommandsModule: () => ({
      definitions: { edgesegRun: { commandFn: () => undefined, options: {} } },
      defaultContext: "EDGESEG",
    }),
  };
}

let loaded: unknown;
try {
  loaded = (await import("./extension.ts")).edgesegExtension;
} catch (err) {
  loaded = stubExtension(err);
}

// OHIF takes the module's default export.
export default loaded;
