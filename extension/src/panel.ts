/**
 * The EdgeSeg side panel: what this browser can run, which model packages the server offers, and
 * (later) Run / Cancel / progress. Plain `createElement` calls against the host React keep the bundle
 * free of a JSX toolchain and of React type packages.
 */
import { h, useEffect, useState } from "./host_react.ts";
import { type Capabilities, detectCapabilities } from "./capabilities.ts";
import { fetchModelIndex, type ModelIndexEntry } from "./models.ts";
import type { DisplaySet, ServicesManager } from "./host.ts";

/** OHIF's dark palette (primary-dark, primary-light, secondary-light) kept as inline styles. */
const colors = {
  text: "#e5e7eb",
  muted: "#9ca3af",
  accent: "#5acce6",
  border: "#3a3f99",
  row: "#0d1245",
  bad: "#f87171",
};
const styles = {
  root: { padding: "8px 10px", color: colors.text, fontSize: "13px", lineHeight: "1.4", overflowY: "auto" },
  title: { color: colors.accent, fontSize: "15px", fontWeight: 600, margin: "0 0 6px 0" },
  section: {
    margin: "10px 0 4px 0",
    color: colors.muted,
    fontSize: "11px",
    textTransform: "uppercase",
    letterSpacing: "0.05em",
  },
  cap: { margin: "2px 0" },
  list: { listStyle: "none", padding: 0, margin: 0 },
  item: {
    padding: "5px 7px",
    margin: "3px 0",
    background: colors.row,
    border: `1px solid ${colors.border}`,
    borderRadius: "4px",
    cursor: "pointer",
  },
  itemSelected: { borderColor: colors.accent },
  meta: { color: colors.muted, fontSize: "11px" },
  warn: { color: colors.bad, fontSize: "11px" },
} as const;

/** Capability line with machine-readable data attributes (read by the e2e tests). */
function CapabilityLine(props: { caps: Capabilities | null }): unknown {
  const { caps } = props;
  if (!caps) {
    return h(
      "div",
      { id: "edgeseg-capabilities", "data-state": "probing" },
      "Probing WebGPU and WASM threads…",
    );
  }
  const gpuText = caps.webgpu
    ? `WebGPU adapter: found (${caps.adapter ?? "unnamed"})`
    : "WebGPU: not available — WASM only";
  const threadText = caps.threads
    ? `WASM threads: on (${caps.threadCount})`
    : "WASM threads: off (page not cross-origin isolated)";
  return h(
    "div",
    {
      id: "edgeseg-capabilities",
      "data-state": "ready",
      "data-webgpu": caps.webgpu ? "yes" : "no",
      "data-threads": caps.threads ? "on" : "off",
      title: caps.webgpuReason ? `WebGPU: ${caps.webgpuReason}` : undefined,
    },
    h("div", { style: styles.cap }, gpuText),
    h("div", { style: styles.cap }, threadText),
  );
}

/** Why a model does not fit the active series, or undefined when it does (modality only, for now). */
export function modelMismatch(
  model: ModelIndexEntry,
  displaySet: DisplaySet | undefined,
): string | undefined {
  if (!displaySet?.Modality || model.modalities.length === 0) return undefined;
  return model.modalities.includes(displaySet.Modality)
    ? undefined
    : `needs ${model.modalities.join("/")}, series is ${displaySet.Modality}`;
}

function ModelList(
  props: {
    models: ModelIndexEntry[];
    selected: string | null;
    onSelect: (id: string) => void;
    active?: DisplaySet;
  },
): unknown {
  if (props.models.length === 0) {
    return h(
      "div",
      { id: "edgeseg-models", "data-count": "0", style: styles.meta },
      "No model packages found under models/.",
    );
  }
  return h(
    "ul",
    { id: "edgeseg-models", "data-count": String(props.models.length), style: styles.list },
    ...props.models.map((m) => {
      const mismatch = modelMismatch(m, props.active);
      const isSelected = m.id === props.selected;
      return h(
        "li",
        {
          key: m.id,
          "data-model-id": m.id,
          "data-selected": isSelected ? "true" : "false",
          style: isSelected ? { ...styles.item, ...styles.itemSelected } : styles.item,
          onClick: () => props.onSelect(m.id),
        },
        h("div", null, h("strong", null, m.name), " ", h("span", { style: styles.meta }, `v${m.version}`)),
        h(
          "div",
          { style: styles.meta },
          `${m.modalities.join(", ") || "any modality"}${
            m.spatialMode ? ` · ${m.spatialMode}` : ""
          } · ${m.id}`,
        ),
        mismatch ? h("div", { style: styles.warn, "data-mismatch": mismatch }, mismatch) : null,
      );
    }),
  );
}

function activeDisplaySet(servicesManager: ServicesManager): DisplaySet | undefined {
  const { viewportGridService, displaySetService } = servicesManager.services;
  try {
    const state = viewportGridService?.getState();
    const vp = state?.viewports.get(viewportGridService?.getActiveViewportId() ?? "");
    const uid = vp?.displaySetInstanceUIDs?.[0];
    return uid ? displaySetService?.getDisplaySetByUID(uid) : displaySetService?.getActiveDisplaySets()[0];
  } catch {
    // The grid may not be populated yet while the study loads; the next event re-reads it.
    return undefined;
  }
}

/** The panel component registered as `edgeseg.panelModule.panel`. */
export function EdgeSegPanel(props: { servicesManager: ServicesManager }): unknown {
  const [caps, setCaps] = useState<Capabilities | null>(null);
  const [models, setModels] = useState<ModelIndexEntry[] | null>(null);
  const [modelError, setModelError] = useState<string | null>(null);
  const [selected, setSelected] = useState<string | null>(null);
  const [active, setActive] = useState<DisplaySet | undefined>(undefined);

  useEffect(() => {
    let live = true;
    detectCapabilities().then((c) => live && setCaps(c));
    fetchModelIndex().then(
      (idx) => {
        if (!live) return;
        setModels(idx.models);
        setSelected((s) => s ?? idx.models[0]?.id ?? null);
      },
      (err: unknown) => live && setModelError(err instanceof Error ? err.message : String(err)),
    );
    return () => {
      live = false;
    };
  }, []);

  useEffect(() => {
    const { viewportGridService, displaySetService } = props.servicesManager.services;
    const update = () => setActive(activeDisplaySet(props.servicesManager));
    update();
    const subs = [
      viewportGridService?.subscribe(viewportGridService.EVENTS.ACTIVE_VIEWPORT_ID_CHANGED, update),
      viewportGridService?.subscribe(viewportGridService.EVENTS.GRID_STATE_CHANGED, update),
      displaySetService?.subscribe(displaySetService.EVENTS.DISPLAY_SETS_ADDED, update),
    ];
    return () => subs.forEach((s) => s?.unsubscribe());
  }, [props.servicesManager]);

  const seriesLine = active
    ? `${active.Modality ?? "?"} · ${active.SeriesDescription || "unnamed series"}${
      active.numImageFrames ? ` · ${active.numImageFrames} images` : ""
    }`
    : "No series in the active viewport";

  return h(
    "div",
    { id: "edgeseg-panel", style: styles.root, "data-models": models ? String(models.length) : "loading" },
    h("div", { style: styles.title }, "EdgeSeg"),
    h(CapabilityLine, { caps }),
    h("div", { style: styles.section }, "Active series"),
    h("div", { id: "edgeseg-series", "data-modality": active?.Modality ?? "" }, seriesLine),
    h("div", { style: styles.section }, "Models"),
    modelError
      ? h("div", { id: "edgeseg-models", "data-error": "true", style: styles.warn }, modelError)
      : models
      ? h(ModelList, { models, selected, onSelect: setSelected, active })
      : h("div", { style: styles.meta }, "Loading model packages…"),
    h(
      "div",
      { id: "edgeseg-status", style: { ...styles.meta, marginTop: "10px" } },
      "Research use only — not for diagnosis.",
    ),
  );
}
