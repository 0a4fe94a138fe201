/**
 * The EdgeSeg OHIF extension (id `edgeseg`): a panel module and a commands module.
 * Loaded at run time by the unmodified OHIF 3.13.2 through `extension_entry.ts`.
 */
import { h } from "./host_react.ts";
import { EdgeSegPanel } from "./panel.ts";
import {
  EXTENSION_ID,
  type ExtensionApi,
  PANEL_ID,
  PANEL_NAME,
  RUN_COMMAND,
  type ServicesManager,
} from "./host.ts";

import { checkHost, compatibilityMessage, type HostCompatibility } from "./compat.ts";
import { errorElement } from "./fallbacks.ts";
import { EDGESEG_VERSION } from "../../src/core/version.ts";

/** EdgeSeg's version (package.json). */
export const EXTENSION_VERSION = EDGESEG_VERSION;

let compatibility: HostCompatibility | undefined;
/** Checked once, when OHIF registers the extension (Cornerstone is loaded by then). */
function hostCompatibility(): HostCompatibility {
  if (!compatibility) {
    compatibility = checkHost();
    if (!compatibility.ok) console.error(compatibilityMessage(compatibility));
  }
  return compatibility;
}

/** Opens (or focuses) the EdgeSeg panel. Later it will also run the selected model. */
function runCommand(servicesManager: ServicesManager): void {
  servicesManager.services.panelService?.activatePanel(PANEL_ID, true);
}

export const edgesegExtension = {
  id: EXTENSION_ID,
  version: EXTENSION_VERSION,

  preRegistration() {
    hostCompatibility();
  },

  getPanelModule({ servicesManager, extensionManager }: ExtensionApi) {
    // OHIF renders `component` with the panel's layout props; the services come from the closure.
    // In a viewer EdgeSeg does not support, the panel says so instead of crashing the layout.
    const component = (props: Record<string, unknown>) => {
      const compat = hostCompatibility();
      if (!compat.ok) return errorElement(compatibilityMessage(compat));
      return h(EdgeSegPanel, { ...props, servicesManager, extensionManager });
    };
    return [{
      name: PANEL_NAME,
      iconName: "icon-tool-click-segment",
      iconLabel: "EdgeSeg",
      label: "EdgeSeg",
      component,
    }];
  },

  getCommandsModule({ servicesManager }: ExtensionApi) {
    return {
      definitions: {
        [RUN_COMMAND]: { commandFn: () => runCommand(servicesManager), options: {} },
      },
      defaultContext: "EDGESEG",
    };
  },
};
