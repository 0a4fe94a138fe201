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

export const EXTENSION_VERSION = "0.1.0";

/** Opens (or focuses) the EdgeSeg panel. Later it will also run the selected model. */
function runCommand(servicesManager: ServicesManager): void {
  servicesManager.services.panelService?.activatePanel(PANEL_ID, true);
}

export const edgesegExtension = {
  id: EXTENSION_ID,
  version: EXTENSION_VERSION,

  getPanelModule({ servicesManager, extensionManager }: ExtensionApi) {
    // OHIF renders `component` with the panel's layout props; the services come from the closure.
    const component = (props: Record<string, unknown>) =>
      h(EdgeSegPanel, { ...props, servicesManager, extensionManager });
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
