/**
 * The EdgeSeg side panel: what this browser can run, which model packages the server offers, and
 * (later) Run / Cancel / progress. Plain `createElement` calls against the host React keep the bundle
 * free of a JSX toolchain and of React type packages.
 */
import { h, useEffect, useRef, useState } from "./host_react.ts";
import type { UncertaintyMethod } from "../../src/core/types.ts";
import {
  type ActiveRun,
  type Device,
  missingGeometry,
  type RunOutcome,
  type RunProgress,
  segmentSize,
  startRun,
} from "./run.ts";
import { type Capabilities, detectCapabilities } from "./capabilities.ts";
import { fetchModelIndex, type ModelIndexEntry } from "./models.ts";
import type { DisplaySet, ServicesManager } from "./host.ts";
import { HEATMAP_OPACITY, type HeatmapLayer } from "./run.ts";
import { measureText, setHeatmapDisplay, setHeatmapOpacity } from "./heatmap.ts";
import { colorBarTicks, sampleColormap } from "../../src/overlays/mod.ts";
import {
  compareLabelmaps,
  loadReference,
  referenceCandidates,
  type SegmentComparison,
  showCompareOverlay,
} from "./compare.ts";
import {
  downloadObject,
  type EncodedObject,
  encodeResult,
  type ExtensionManagerWithSources,
  storeObjects,
} from "./export.ts";

/** OHIF's dark palette (primary-dark, primary-light, secondary-light) kept as inline styles. */
const colors = {
  text: "#e5e7eb",
  muted: "#9ca3af",
  accent: "#5acce6",
  border: "#3a3f99",
  row: "#0d1245",
  bad: "#f87171",
  caution: "#fbbf24",
};
const styles = {
  root: {
    padding: "8px 10px",
    color: colors.text,
    fontSize: "13px",
    lineHeight: "1.4",
    overflowY: "auto",
    overflowX: "hidden",
    boxSizing: "border-box",
  },
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
  caution: { color: colors.caution, fontSize: "11px" },
  row: { display: "flex", flexWrap: "wrap", gap: "6px", alignItems: "center", margin: "4px 0" },
  select: {
    background: colors.row,
    color: colors.text,
    border: `1px solid ${colors.border}`,
    borderRadius: "3px",
    padding: "2px 4px",
    fontSize: "12px",
    minWidth: 0,
    maxWidth: "100%",
  },
  button: {
    background: colors.accent,
    color: "#000",
    border: "none",
    borderRadius: "4px",
    padding: "4px 14px",
    fontWeight: 600,
    cursor: "pointer",
  },
  buttonSecondary: { background: "transparent", color: colors.accent, border: `1px solid ${colors.accent}` },
  buttonDisabled: { opacity: 0.4, cursor: "not-allowed" },
  barOuter: {
    height: "6px",
    background: colors.row,
    borderRadius: "3px",
    overflow: "hidden",
    margin: "4px 0",
  },
  barInner: { height: "100%", background: colors.accent },
  table: { width: "100%", borderCollapse: "collapse", fontSize: "12px" },
  cell: { padding: "2px 4px", borderBottom: `1px solid ${colors.border}` },
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

/**
 * How a model fits the active series. A refusal means the model cannot take the series (modality,
 * colour vs greyscale, a 3D model on a single image, too few slices, missing patient geometry) and Run
 * is refused; a warning means it can run but the result deserves a second look (the series' body
 * part is not one the model was made for), and Run stays available.
 */
export interface ModelFit {
  refusal?: string;
  warning?: string;
}

type PanelDisplaySet = DisplaySet & { instances?: Record<string, unknown>[] };

/** Why the model cannot take the series, or undefined when it can. */
function modelRefusal(model: ModelIndexEntry, displaySet: PanelDisplaySet): string | undefined {
  const modality = displaySet.Modality;
  if (modality && model.modalities.length > 0 && !model.modalities.includes(modality)) {
    return `needs ${model.modalities.join("/")}, series is ${modality}`;
  }
  const first = displaySet.instances?.[0];
  const samples = typeof first?.SamplesPerPixel === "number" ? first.SamplesPerPixel : undefined;
  if (model.channels === 3 && samples === 1) return "needs colour images, series is greyscale";
  const images = displaySet.numImageFrames ?? displaySet.imageIds?.length;
  if (model.spatialMode === "patch3d" && images !== undefined && images < 2) {
    return `3D model, series has ${images} image${images === 1 ? "" : "s"}`;
  }
  const minSlices = typeof model.minSlices === "number" ? model.minSlices : undefined;
  if (minSlices !== undefined && images !== undefined && images < minSlices) {
    return `needs at least ${minSlices} slices, series has ${images}`;
  }
  const missing = missingGeometry(displaySet.instances ?? []);
  if (missing.length > 0) return `series lacks ${missing.join(" and ")}`;
  return undefined;
}

/**
 * A body part the model was not made for, only when both the manifest and the series state one.
 * Only a warning: BodyPartExamined is often absent or wrong in real data (an abdominal CT tagged
 * CHEST), so it cannot decide on its own whether a model may run.
 */
function bodyPartWarning(model: ModelIndexEntry, displaySet: PanelDisplaySet): string | undefined {
  const bodyParts = Array.isArray(model.bodyParts)
    ? model.bodyParts.filter((b): b is string => typeof b === "string")
    : [];
  const first = displaySet.instances?.[0];
  const bodyPart = typeof first?.BodyPartExamined === "string"
    ? first.BodyPartExamined.trim().toUpperCase()
    : "";
  if (bodyParts.length === 0 || !bodyPart || bodyParts.some((b) => b.toUpperCase() === bodyPart)) {
    return undefined;
  }
  return `made for ${bodyParts.join("/")}, series is tagged ${bodyPart}`;
}

/** Refusal and warning of `model` on the active series; neither when no series is open. */
export function modelFit(model: ModelIndexEntry, displaySet: PanelDisplaySet | undefined): ModelFit {
  if (!displaySet) return {};
  const refusal = modelRefusal(model, displaySet);
  if (refusal) return { refusal };
  const warning = bodyPartWarning(model, displaySet);
  return warning ? { warning } : {};
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
      const fit = modelFit(m, props.active);
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
        fit.refusal ? h("div", { style: styles.warn, "data-mismatch": fit.refusal }, fit.refusal) : null,
        fit.warning ? h("div", { style: styles.caution, "data-warning": fit.warning }, fit.warning) : null,
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

/** Uncertainty methods the model package supports (from its manifest's `uncertainty` block). */
export function uncertaintyChoices(model: ModelIndexEntry | undefined): UncertaintyMethod[] {
  const u = model?.uncertainty;
  const has = (k: string) => typeof u === "object" && u !== null && (u as Record<string, unknown>)[k] != null;
  const out: UncertaintyMethod[] = ["none"];
  if (has("tta")) out.push("tta");
  if (has("mcDropout")) out.push("mc");
  if (has("ensemble")) out.push("ensemble");
  if (has("mcDropout") && has("tta")) out.push("mc+tta");
  return out;
}

const UNCERTAINTY_TEXT: Record<UncertaintyMethod, string> = {
  none: "Uncertainty off",
  tta: "Test-time augmentation",
  mc: "MC dropout",
  ensemble: "Ensemble",
  "mc+tta": "MC dropout + TTA",
  "mc+ensemble": "MC dropout + ensemble",
};

function Select(
  props: {
    id: string;
    value: string;
    options: [string, string][];
    onChange: (v: string) => void;
    disabled?: boolean;
  },
): unknown {
  return h(
    "select",
    {
      id: props.id,
      value: props.value,
      disabled: props.disabled,
      style: styles.select,
      onChange: (ev: { target: { value: string } }) => props.onChange(ev.target.value),
    },
    ...props.options.map(([value, text]) => h("option", { key: value, value }, text)),
  );
}

function formatEta(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return "";
  return seconds < 60
    ? ` · about ${Math.ceil(seconds)} s left`
    : ` · about ${Math.ceil(seconds / 60)} min left`;
}

function ProgressView(props: { progress: RunProgress }): unknown {
  const { progress } = props;
  const pct = progress.fraction === null ? null : Math.round(progress.fraction * 100);
  return h(
    "div",
    {
      id: "edgeseg-progress",
      "data-phase": progress.phase,
      "data-fraction": pct === null ? "" : String(pct),
    },
    h(
      "div",
      { style: styles.meta },
      `${progress.text}${pct === null ? "" : ` · ${pct} %`}${formatEta(progress.etaSeconds)}`,
    ),
    h(
      "div",
      { style: styles.barOuter },
      h("div", { style: { ...styles.barInner, width: `${pct ?? 100}%`, opacity: pct === null ? 0.35 : 1 } }),
    ),
  );
}

function ResultView(props: { outcome: RunOutcome }): unknown {
  const { result, segmentationId, displayError, elapsedMs, spacingKnown } = props.outcome;
  const p = result.provenance;
  const colorOf = (n: number) =>
    result.labelmap.segments.find((s) => s.number === n)?.color ?? [128, 128, 128];
  const sizeOf = (s: RunOutcome["result"]["statistics"][number]) =>
    segmentSize(s, result.labelmap.geometry, spacingKnown);
  // Provider names only on the line; the full reasons are one hover away.
  const fellBackFrom = p.fallbackReasons.map((r) => r.split(":")[0]).join(", ");
  const fallback = fellBackFrom ? ` (fell back from ${fellBackFrom})` : "";
  return h(
    "div",
    {
      id: "edgeseg-result",
      "data-segmentation-id": segmentationId ?? "",
      "data-segments": String(result.statistics.length),
    },
    h(
      "table",
      { style: styles.table },
      h(
        "tbody",
        null,
        ...result.statistics.map((s) =>
          h(
            "tr",
            {
              key: s.number,
              "data-segment": String(s.number),
              "data-voxels": String(s.voxels),
              "data-size-unit": sizeOf(s).unit,
            },
            h(
              "td",
              { style: styles.cell },
              h("span", {
                style: {
                  display: "inline-block",
                  width: "10px",
                  height: "10px",
                  marginRight: "5px",
                  background: `rgb(${colorOf(s.number).join(",")})`,
                },
              }),
              s.label,
            ),
            h(
              "td",
              {
                style: { ...styles.cell, textAlign: "right" },
                title: spacingKnown ? undefined : "The series has no pixel spacing: sizes are in pixels",
              },
              sizeOf(s).text,
            ),
            h(
              "td",
              { style: { ...styles.cell, textAlign: "right", color: colors.muted } },
              `μ ${s.meanIntensity.toFixed(0)}`,
            ),
          )
        ),
      ),
    ),
    spacingKnown ? null : h(
      "div",
      { id: "edgeseg-size-note", style: styles.meta },
      "The series states no pixel spacing: sizes are pixel counts, not mm² or mL.",
    ),
    result.triage
      ? h(
        "div",
        { id: "edgeseg-triage", "data-band": result.triage.band, style: { margin: "6px 0" } },
        h("strong", null, `Triage: ${result.triage.band}`),
        h(
          "span",
          { style: styles.meta },
          ` (score ${result.triage.score.toFixed(2)}) ${result.triage.reasons.join("; ")}`,
        ),
      )
      : null,
    h(
      "div",
      {
        id: "edgeseg-provenance",
        "data-provider": p.provider,
        title: p.fallbackReasons.length ? p.fallbackReasons.join("\n") : undefined,
        style: styles.meta,
      },
      `${p.modelName} ${p.modelVersion} · ${p.provider.toUpperCase()}${fallback} · ${
        (elapsedMs / 1000).toFixed(1)
      } s`,
    ),
    p.roi
      ? h(
        "div",
        {
          id: "edgeseg-roi",
          "data-windows-run": String(p.roi.windowsRun),
          "data-windows-planned": String(p.roi.windowsPlanned),
          style: styles.meta,
        },
        p.roi.summary,
      )
      : null,
    p.fallbackReasons.length
      ? h(
        "div",
        { id: "edgeseg-fallback", style: styles.meta },
        `Ran on ${p.provider.toUpperCase()} because ${p.fallbackReasons.join("; ")}`,
      )
      : null,
    displayError ? h("div", { style: styles.warn }, `Not shown in the viewer: ${displayError}`) : null,
  );
}

/**
 * Controls for the uncertainty layer: a colour-bar legend naming the measure with its range, a
 * show/hide toggle, opacity, and "show only above τ".
 */
function HeatmapControls(props: { layer: HeatmapLayer; servicesManager: ServicesManager }): unknown {
  const { layer, servicesManager } = props;
  const [lo, hi] = layer.range;
  const [visible, setVisible] = useState<boolean>(true);
  const [opacity, setOpacity] = useState<number>(HEATMAP_OPACITY);
  const [tau, setTau] = useState<number>(lo);
  const [error, setError] = useState<string | null>(layer.error ?? null);
  const segId = layer.segmentationId;
  const apply = (next: { visible?: boolean; opacity?: number; tau?: number }) => {
    if (!segId) return;
    try {
      if (next.opacity !== undefined) setHeatmapOpacity(servicesManager, segId, next.opacity);
      if (next.visible !== undefined || next.tau !== undefined) {
        setHeatmapDisplay(servicesManager, segId, layer, next.tau ?? tau, next.visible ?? visible);
      }
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  };
  const stops = Array.from({ length: 11 }, (_, i) => {
    const [r, g, b] = sampleColormap(layer.colormap, i / 10);
    return `rgb(${r},${g},${b}) ${i * 10}%`;
  }).join(", ");
  const ticks = colorBarTicks([lo, hi], 4);
  const step = hi > lo ? (hi - lo) / 100 : 1;
  const name = measureText(layer.measure);
  return h(
    "div",
    {
      id: "edgeseg-heatmap",
      "data-segmentation-id": segId ?? "",
      "data-visible": visible ? "true" : "false",
      "data-opacity": String(opacity),
      "data-tau": String(tau),
      style: { margin: "6px 0" },
    },
    h("div", { style: styles.section }, "Uncertainty layer"),
    h(
      "label",
      { style: { ...styles.row, cursor: "pointer" } },
      h("input", {
        id: "edgeseg-heatmap-toggle",
        type: "checkbox",
        checked: visible,
        disabled: !segId,
        onChange: () => {
          setVisible(!visible);
          apply({ visible: !visible });
        },
      }),
      `Show ${name.toLowerCase()} heatmap`,
    ),
    h(
      "div",
      { id: "edgeseg-heatmap-legend", "data-measure": layer.measure, "data-range": `${lo},${hi}` },
      h("div", { style: styles.meta }, `${name} (${lo.toPrecision(3)} – ${hi.toPrecision(3)})`),
      h("div", {
        style: {
          height: "10px",
          margin: "3px 0 0 0",
          borderRadius: "2px",
          background: `linear-gradient(to right, ${stops})`,
        },
      }),
      h(
        "div",
        { style: { position: "relative", height: "14px", fontSize: "10px", color: colors.muted } },
        ...ticks.map((t) =>
          h("span", {
            key: t.label,
            style: {
              position: "absolute",
              left: `${(t.position * 100).toFixed(1)}%`,
              transform: t.position > 0.9
                ? "translateX(-100%)"
                : t.position > 0.1
                ? "translateX(-50%)"
                : "none",
            },
          }, t.label)
        ),
      ),
    ),
    h(
      "div",
      { style: styles.row },
      h("span", { style: { ...styles.meta, width: "64px" } }, `Opacity ${Math.round(opacity * 100)} %`),
      h("input", {
        id: "edgeseg-heatmap-opacity",
        type: "range",
        min: 0,
        max: 100,
        value: Math.round(opacity * 100),
        disabled: !segId || !visible,
        style: { flex: 1, minWidth: 0 },
        onChange: (ev: { target: { value: string } }) => {
          const a = Number(ev.target.value) / 100;
          setOpacity(a);
          apply({ opacity: a });
        },
      }),
    ),
    h(
      "div",
      { style: styles.row },
      h("span", { style: { ...styles.meta, width: "64px" } }, `Above τ ${tau.toPrecision(2)}`),
      h("input", {
        id: "edgeseg-heatmap-tau",
        type: "range",
        min: lo,
        max: hi,
        step,
        value: tau,
        disabled: !segId || !visible,
        title: "Show only voxels whose uncertainty is above τ",
        style: { flex: 1, minWidth: 0 },
        onChange: (ev: { target: { value: string } }) => {
          const t = Number(ev.target.value);
          setTau(t);
          apply({ tau: t });
        },
      }),
    ),
    error ? h("div", { style: styles.warn }, `Uncertainty layer: ${error}`) : null,
  );
}

/**
 * "Compare with reference": offered when the study holds a SEG for the same series. Shows Dice,
 * precision and recall per segment and adds a TP/FP/FN overlay (green/red/blue) to the viewer.
 */
function CompareView(props: { outcome: RunOutcome; servicesManager: ServicesManager }): unknown {
  const { outcome, servicesManager } = props;
  const ds = outcome.exportSource.displaySet;
  const [tick, setTick] = useState<number>(0);
  const [chosen, setChosen] = useState<string>("");
  const [state, setState] = useState<
    { state: "idle" | "working" | "done" | "error"; text?: string; rows?: SegmentComparison[] }
  >({ state: "idle" });
  useEffect(() => {
    const dss = servicesManager.services.displaySetService;
    const sub = dss?.subscribe(dss.EVENTS.DISPLAY_SETS_ADDED, () => setTick((t) => t + 1));
    return () => sub?.unsubscribe();
  }, [servicesManager]);
  const candidates = ds.SeriesInstanceUID ? referenceCandidates(servicesManager, ds.SeriesInstanceUID) : [];
  void tick;
  if (candidates.length === 0) {
    return h(
      "div",
      { id: "edgeseg-compare", "data-candidates": "0", style: styles.meta },
      "Compare with reference: no SEG for this series in the study.",
    );
  }
  const selected = candidates.find((c) => c.displaySetInstanceUID === chosen) ??
    candidates[candidates.length - 1];
  const compare = () => {
    setState({ state: "working", text: "Loading the reference…" });
    const lm = outcome.result.labelmap;
    loadReference(servicesManager, selected, outcome.sliceImageIds, lm.geometry.dims)
      .then(async (ref) => {
        const cmp = compareLabelmaps(lm.data, ref, lm.segments);
        await showCompareOverlay(
          servicesManager,
          ds,
          outcome.sliceImageIds,
          lm.geometry,
          cmp.overlay,
          `Compare: ${selected.SeriesDescription ?? "reference"}`,
        );
        setState({ state: "done", rows: cmp.perSegment });
      })
      .catch((err: unknown) =>
        setState({
          state: "error",
          text: `Compare failed: ${err instanceof Error ? err.message : String(err)}`,
        })
      );
  };
  const pct = (v: number) => (Number.isFinite(v) ? v.toFixed(3) : "–");
  const swatch = (rgb: string) =>
    h("span", {
      style: { display: "inline-block", width: "9px", height: "9px", background: rgb, margin: "0 3px" },
    });
  return h(
    "div",
    { id: "edgeseg-compare", "data-candidates": String(candidates.length), "data-state": state.state },
    h("div", { style: styles.section }, "Compare with reference"),
    h(
      "div",
      { style: styles.row },
      h(Select, {
        id: "edgeseg-compare-ref",
        value: selected.displaySetInstanceUID,
        disabled: state.state === "working",
        options: candidates.map((c) => [
          c.displaySetInstanceUID,
          `SEG: ${c.SeriesDescription || "unnamed"}${
            c.SeriesNumber !== undefined ? ` (#${c.SeriesNumber})` : ""
          }`,
        ]),
        onChange: setChosen,
      }),
      h("button", {
        id: "edgeseg-compare-run",
        type: "button",
        disabled: state.state === "working",
        style: { ...styles.button, ...styles.buttonSecondary },
        onClick: compare,
      }, "Compare"),
    ),
    state.text ? h("div", { style: state.state === "error" ? styles.warn : styles.meta }, state.text) : null,
    state.rows
      ? h(
        "table",
        { style: styles.table },
        h(
          "thead",
          null,
          h(
            "tr",
            null,
            ...["Segment", "Dice", "Precision", "Recall"].map((t) =>
              h("th", { key: t, style: { ...styles.cell, textAlign: t === "Segment" ? "left" : "right" } }, t)
            ),
          ),
        ),
        h(
          "tbody",
          null,
          ...state.rows.map((r) =>
            h(
              "tr",
              { key: r.label, "data-label": String(r.label), "data-dice": String(r.dice) },
              h("td", { style: styles.cell }, r.name),
              h("td", { style: { ...styles.cell, textAlign: "right" } }, pct(r.dice)),
              h("td", { style: { ...styles.cell, textAlign: "right" } }, pct(r.precision)),
              h("td", { style: { ...styles.cell, textAlign: "right" } }, pct(r.recall)),
            )
          ),
        ),
      )
      : null,
    state.rows
      ? h(
        "div",
        { style: styles.meta },
        "Overlay:",
        swatch("rgb(0,200,0)"),
        "agree (TP)",
        swatch("rgb(230,0,0)"),
        "model only (FP)",
        swatch("rgb(0,90,255)"),
        "reference only (FN)",
      )
      : null,
  );
}

type ExportState = { state: "idle" | "working" | "stored" | "error"; text: string };

/** Download SEG / Parametric Map, Store to PACS. The objects are written once per result and reused. */
function ExportBar(
  props: {
    outcome: RunOutcome;
    servicesManager: ServicesManager;
    extensionManager?: ExtensionManagerWithSources;
  },
): unknown {
  const [status, setStatus] = useState<ExportState>({ state: "idle", text: "" });
  // Written afresh on every export: the user may have edited the labelmap since the last one.
  const objects = (): Promise<EncodedObject[]> => encodeResult(props.outcome.exportSource);
  const notify = (type: "success" | "error", message: string) =>
    props.servicesManager.services.uiNotificationService?.show({ title: "EdgeSeg", message, type });
  const fail = (err: unknown) => {
    const text = err instanceof Error ? err.message : String(err);
    setStatus({ state: "error", text });
    notify("error", text);
  };
  const download = (kind: "SEG" | "PM") => {
    setStatus({ state: "working", text: "Writing…" });
    objects().then((objs) => {
      const obj = objs.find((o) => o.kind === kind);
      if (!obj) throw new Error(`no ${kind} for this result`);
      downloadObject(obj);
      setStatus({ state: "idle", text: `${obj.fileName} (${(obj.bytes.byteLength / 1024).toFixed(0)} KiB)` });
    }).catch(fail);
  };
  const store = () => {
    const studyUID = props.outcome.exportSource.displaySet.StudyInstanceUID ?? "";
    if (!props.extensionManager) return fail(new Error("no data source to store to"));
    setStatus({ state: "working", text: "Storing to the PACS…" });
    objects()
      .then(async (objs) => {
        const auth = props.servicesManager.services.userAuthenticationService;
        const outcome = await storeObjects(props.extensionManager!, studyUID, objs, {
          authorizationHeader: auth ? () => auth.getAuthorizationHeader() : undefined,
        });
        const text = `Stored ${objs.map((o) => o.kind).join(" and ")} to the PACS${
          outcome.refetchError
            ? ` (not yet in the study list: ${outcome.refetchError}; reload the study)`
            : ""
        }`;
        setStatus({ state: "stored", text });
        notify("success", text);
      })
      .catch((err) =>
        fail(
          new Error(
            `Store to PACS failed: ${
              err instanceof Error ? err.message : err
            }. The result stays here; retry or download it.`,
          ),
        )
      );
  };
  const busy = status.state === "working";
  const btn = (id: string, text: string, onClick: () => void) =>
    h("button", {
      id,
      type: "button",
      disabled: busy,
      style: busy
        ? { ...styles.button, ...styles.buttonSecondary, ...styles.buttonDisabled }
        : { ...styles.button, ...styles.buttonSecondary },
      onClick,
    }, text);
  return h(
    "div",
    { id: "edgeseg-export" },
    h(
      "div",
      { style: styles.row },
      btn("edgeseg-download-seg", "Download SEG", () => download("SEG")),
      props.outcome.result.uncertainty
        ? btn("edgeseg-download-pm", "Download uncertainty (PM)", () => download("PM"))
        : null,
      btn("edgeseg-store", "Store to PACS", store),
    ),
    status.text
      ? h(
        "div",
        {
          id: "edgeseg-export-status",
          "data-state": status.state,
          style: status.state === "error" ? styles.warn : styles.meta,
        },
        status.text,
      )
      : null,
  );
}

/** The panel component registered as `edgeseg.panelModule.panel`. */
export function EdgeSegPanel(
  props: { servicesManager: ServicesManager; extensionManager?: ExtensionManagerWithSources },
): unknown {
  const [caps, setCaps] = useState<Capabilities | null>(null);
  const [models, setModels] = useState<ModelIndexEntry[] | null>(null);
  const [modelError, setModelError] = useState<string | null>(null);
  const [selected, setSelected] = useState<string | null>(null);
  const [active, setActive] = useState<DisplaySet | undefined>(undefined);
  const [uncertainty, setUncertainty] = useState<UncertaintyMethod>("none");
  const [passes, setPasses] = useState<number>(8);
  const [device, setDevice] = useState<Device>("auto");
  const [progress, setProgress] = useState<RunProgress | null>(null);
  const [outcome, setOutcome] = useState<RunOutcome | null>(null);
  const [runError, setRunError] = useState<string | null>(null);
  const runRef = useRef<ActiveRun | null>(null);

  // Leaving the study (or the mode) unmounts the panel: a run still going is cancelled with it.
  useEffect(() => () => runRef.current?.cancel(), []);

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

  const model = models?.find((m) => m.id === selected);
  const fit = model ? modelFit(model, active) : {};
  const running = progress !== null;
  const canRun = !!model && !!active && !fit.refusal && !running;
  const choices = uncertaintyChoices(model);
  const method = choices.includes(uncertainty) ? uncertainty : "none";

  const run = () => {
    if (!model || !active || running) return;
    setOutcome(null);
    setRunError(null);
    const r = startRun(
      props.servicesManager,
      active,
      { model, uncertainty: method, passes: method.startsWith("mc") ? passes : undefined, device },
      setProgress,
    );
    runRef.current = r;
    r.outcome.then(
      (o) => setOutcome(o),
      (err: unknown) => {
        const code = (err as { code?: unknown })?.code;
        setRunError(code === "CANCELLED" ? "Cancelled." : err instanceof Error ? err.message : String(err));
      },
    ).finally(() => {
      runRef.current = null;
      setProgress(null);
    });
  };

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
    h("div", { style: styles.section }, "Run"),
    h(
      "div",
      { style: styles.row },
      h(Select, {
        id: "edgeseg-uncertainty",
        value: method,
        disabled: running,
        options: choices.map((c) => [c, UNCERTAINTY_TEXT[c]]),
        onChange: (v: string) => setUncertainty(v as UncertaintyMethod),
      }),
      method.startsWith("mc")
        ? h("input", {
          id: "edgeseg-passes",
          type: "number",
          min: 2,
          max: 50,
          value: passes,
          disabled: running,
          title: "MC dropout passes",
          style: { ...styles.select, width: "48px" },
          onChange: (ev: { target: { value: string } }) =>
            setPasses(Math.max(2, Math.min(50, Number(ev.target.value) || 2))),
        })
        : null,
      h(Select, {
        id: "edgeseg-device",
        value: device,
        disabled: running,
        options: [["auto", "Device: auto"], ["webgpu", "WebGPU"], ["wasm", "WASM"]],
        onChange: (v: string) => setDevice(v as Device),
      }),
    ),
    h(
      "div",
      { style: styles.row },
      h("button", {
        id: "edgeseg-run",
        type: "button",
        disabled: !canRun,
        title: fit.refusal ?? fit.warning ?? (active ? undefined : "Open a series first"),
        style: canRun ? styles.button : { ...styles.button, ...styles.buttonDisabled },
        onClick: run,
      }, "Run"),
      running
        ? h("button", {
          id: "edgeseg-cancel",
          type: "button",
          style: { ...styles.button, ...styles.buttonSecondary },
          onClick: () => runRef.current?.cancel(),
        }, "Cancel")
        : null,
    ),
    model && fit.refusal
      ? h(
        "div",
        { id: "edgeseg-run-blocked", "data-reason": fit.refusal, style: styles.warn },
        `${model.name} cannot run on this series: ${fit.refusal}. Choose a model that fits.`,
      )
      : null,
    model && fit.warning
      ? h(
        "div",
        { id: "edgeseg-run-warning", "data-reason": fit.warning, style: styles.caution },
        `Check the result: ${model.name} is ${fit.warning}. BodyPartExamined is often missing or ` +
          "wrong, so Run stays available.",
      )
      : null,
    progress ? h(ProgressView, { progress }) : null,
    runError ? h("div", { id: "edgeseg-error", style: styles.warn }, runError) : null,
    outcome ? h(ResultView, { outcome }) : null,
    outcome?.heatmap
      ? h(HeatmapControls, {
        key: outcome.heatmap.segmentationId ?? "none",
        layer: outcome.heatmap,
        servicesManager: props.servicesManager,
      })
      : null,
    outcome
      ? h(ExportBar, {
        outcome,
        servicesManager: props.servicesManager,
        extensionManager: props.extensionManager,
      })
      : null,
    outcome ? h(CompareView, { outcome, servicesManager: props.servicesManager }) : null,
    h(
      "div",
      { id: "edgeseg-status", style: { ...styles.meta, marginTop: "10px" } },
      "Research use only — not for diagnosis.",
    ),
  );
}
