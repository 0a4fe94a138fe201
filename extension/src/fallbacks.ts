/**
 * What OHIF gets when EdgeSeg cannot load: a stub extension whose panel says why, and a hidden
 * placeholder mode. OHIF 3.12/3.13 import every plugin URL inside one Promise.all, so a plugin that
 * throws (or an edge server that is down) would otherwise blank the whole viewer. Used by the guard
 * entries (extension_entry.ts, mode_entry.ts) and by the host-side loader (loader.ts). Nothing here may
 * depend on the host's React: the failure may be the React lookup itself. React 18 accepts any element
 * whose `$$typeof` is `Symbol.for("react.element")`.
 */

import { EXTENSION_ID, PANEL_NAME } from "./host.ts";

/** The mode's id (mode.ts re-exports it; kept here so the loader does not pull in the mode). */
export const MODE_ID = "edgeseg";

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A plain `<div id="edgeseg-panel" data-error>` element. */
export function errorElement(message: string): unknown {
  return {
    $$typeof: Symbol.for("react.element"),
    type: "div",
    key: null,
    ref: null,
    props: {
      id: "edgeseg-panel",
      "data-error": "true",
      style: { padding: "8px", color: "#f87171", fontSize: "13px", overflowWrap: "anywhere" },
      children: message,
    },
    _owner: null,
  };
}

/** An extension with the EdgeSeg panel slot, showing `message`, and a no-op run command. */
export function stubExtension(message: string) {
  return {
    id: EXTENSION_ID,
    getPanelModule: () => [{
      name: PANEL_NAME,
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

/** A hidden mode, so the study list and the host's other modes still work. */
export function placeholderMode() {
  return {
    id: MODE_ID,
    modeFactory: () => ({
      id: MODE_ID,
      routeName: "edgeseg",
      displayName: "EdgeSeg (failed to load)",
      hide: true,
      routes: [],
      extensions: {},
    }),
  };
}
