/**
 * The slice of OHIF's service and manager APIs the extension touches, typed narrowly so the rest of
 * the code needs no `any`. Everything here exists in OHIF 3.13.2 (read from its bundle).
 */

export interface PubSubSubscription {
  unsubscribe(): void;
}

export interface PanelService {
  activatePanel(panelId: string, forceActive?: boolean): void;
}

export interface ToolbarButton {
  id: string;
  uiType: string;
  props: Record<string, unknown>;
}

export interface ToolbarService {
  register(buttons: ToolbarButton[], replace?: boolean): void;
  updateSection(key: string, buttonIds: string[]): void;
}

export interface UINotificationService {
  show(
    args: {
      title: string;
      message: string;
      type?: "info" | "success" | "warning" | "error";
      duration?: number;
    },
  ): void;
}

export interface DisplaySet {
  displaySetInstanceUID: string;
  Modality?: string;
  SeriesInstanceUID?: string;
  StudyInstanceUID?: string;
  SeriesDescription?: string;
  numImageFrames?: number;
  imageIds?: string[];
}

export interface DisplaySetService {
  getActiveDisplaySets(): DisplaySet[];
  getDisplaySetByUID(uid: string): DisplaySet | undefined;
  subscribe(event: string, cb: () => void): PubSubSubscription;
  EVENTS: Record<string, string>;
}

export interface ViewportGridService {
  getActiveViewportId(): string;
  getState(): { viewports: Map<string, { displaySetInstanceUIDs?: string[] }> };
  subscribe(event: string, cb: () => void): PubSubSubscription;
  EVENTS: Record<string, string>;
}

export interface UserAuthenticationService {
  /** `{ Authorization: "Bearer …" }` when the user is signed in, else undefined or {} */
  getAuthorizationHeader(): Record<string, string> | undefined;
}

/** `servicesManager.services`; every member may be missing in a host that differs from 3.13.2. */
export interface Services {
  userAuthenticationService?: UserAuthenticationService;
  panelService?: PanelService;
  toolbarService?: ToolbarService;
  uiNotificationService?: UINotificationService;
  displaySetService?: DisplaySetService;
  viewportGridService?: ViewportGridService;
  [name: string]: unknown;
}

export interface ServicesManager {
  services: Services;
}

export interface CommandsManager {
  runCommand(name: string, options?: Record<string, unknown>, context?: string): unknown;
}

export interface ExtensionManager {
  registeredExtensionIds: string[];
}

export interface ExtensionApi {
  servicesManager: ServicesManager;
  commandsManager: CommandsManager;
  extensionManager: ExtensionManager;
}

/** The extension id and the fully qualified id of its panel (`<extension>.<module type>.<name>`). */
export const EXTENSION_ID = "edgeseg";
export const PANEL_NAME = "panel";
export const PANEL_ID = `${EXTENSION_ID}.panelModule.${PANEL_NAME}`;
export const RUN_COMMAND = "edgesegRun";
export const TOOLBAR_BUTTON_ID = "EdgeSegRun";

/**
 * Cornerstone3D as loaded by the host (`@ohif/extension-cornerstone` sets `window.cornerstone` when
 * it is imported). Read lazily: our module may evaluate before the host sets it.
 */
export function hostCornerstone(): Record<string, unknown> | undefined {
  const cs = (globalThis as unknown as { cornerstone?: Record<string, unknown> }).cornerstone;
  return cs && typeof cs === "object" ? cs : undefined;
}
