/**
 * The EdgeSeg mode: OHIF's basic viewer (toolbar, tool groups, hanging protocol, SOP class handlers
 * incl. DICOM SEG) with the EdgeSeg panel first on the right, then the basic mode's segmentation panel
 * so labelmaps are visible. Built from the host's own `@ohif/mode-basic` chunk rather than bundled.
 */
import { ViewerError } from "../../src/core/errors.ts";
import {
  type ExtensionApi,
  PANEL_ID,
  RUN_COMMAND,
  type ServicesManager,
  TOOLBAR_BUTTON_ID,
  type ToolbarButton,
} from "./host.ts";

import { MODE_ID } from "./fallbacks.ts";

export { MODE_ID };

/** CT and MR volumes; OP/XC/OT/SM for photographs (colour fundus images are OP or XC). */
export const MODE_MODALITIES = ["CT", "MR", "OP", "XC", "OT", "SM"];

const SEGMENTATION_PANEL = "@ohif/extension-cornerstone.panelModule.panelSegmentation";

interface RouteLike {
  path: string;
  layoutInstance: { id: string; props: Record<string, unknown> };
  [key: string]: unknown;
}

interface ModeLike {
  id: string;
  routes: RouteLike[];
  onModeEnter?: (this: ModeLike, api: ExtensionApi & Record<string, unknown>) => void;
  [key: string]: unknown;
}

interface BasicModeModule {
  modeInstance: ModeLike;
}

type LoadModules = (names: string[]) => Promise<unknown[]>;

export const toolbarButton: ToolbarButton = {
  id: TOOLBAR_BUTTON_ID,
  uiType: "ohif.toolButton",
  props: {
    icon: "icon-tool-click-segment",
    label: "EdgeSeg: run model",
    tooltip: "EdgeSeg: open the panel and run the selected model",
    commands: RUN_COMMAND,
    evaluate: "evaluate.action",
  },
};

function addToolbarButton(servicesManager: ServicesManager): void {
  const toolbar = servicesManager.services.toolbarService;
  if (!toolbar) return;
  toolbar.register([toolbarButton]);
  // updateSection appends ids not already in the section, so the basic toolbar stays intact.
  toolbar.updateSection("primary", [TOOLBAR_BUTTON_ID]);
}

/** Panels on the right: ours first, then the basic mode's segmentation panel (labelmaps). */
export function rightPanelsFor(basePanels: unknown): string[] {
  const base = Array.isArray(basePanels) ? basePanels.filter((p): p is string => typeof p === "string") : [];
  const seg = base.find((p) => p.endsWith(".panelSegmentation")) ?? SEGMENTATION_PANEL;
  return [PANEL_ID, seg];
}

/** Derives the EdgeSeg mode from the host's basic mode instance. */
export function deriveMode(base: ModeLike): ModeLike {
  const route = base.routes[0];
  const layoutInstance = {
    ...route.layoutInstance,
    props: {
      ...route.layoutInstance.props,
      rightPanels: rightPanelsFor(route.layoutInstance.props.rightPanels),
      rightPanelClosed: false,
    },
  };
  const baseEnter = base.onModeEnter;
  return {
    ...base,
    id: MODE_ID,
    routeName: MODE_ID,
    displayName: "EdgeSeg",
    hide: false,
    modeModalities: MODE_MODALITIES,
    routes: [{ ...route, path: MODE_ID, layoutInstance }],
    // Built-in extension ids only: ours is registered globally through app-config `extensions`;
    // a bare custom key here would be passed to import() and fail.
    extensions: { ...(base.extensions as Record<string, string>) },
    onModeEnter(this: ModeLike, api: ExtensionApi & Record<string, unknown>) {
      baseEnter?.call(this, api);
      addToolbarButton(api.servicesManager);
    },
  };
}

export const edgesegMode = {
  id: MODE_ID,
  async modeFactory({ loadModules }: { loadModules: LoadModules }): Promise<ModeLike> {
    const [basic] = await loadModules(["@ohif/mode-basic"]);
    const instance = (basic as Partial<BasicModeModule> | undefined)?.modeInstance;
    if (!instance || !Array.isArray(instance.routes) || !instance.routes[0]?.layoutInstance) {
      throw new ViewerError(
        "HOST_MODE",
        "EdgeSeg: @ohif/mode-basic has an unexpected shape (expected modeInstance.routes[0].layoutInstance)",
      );
    }
    return deriveMode(instance);
  },
};
