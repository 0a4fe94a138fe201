/**
 * The EdgeSeg side panel: what this browser can run, which model packages fit the active series, the
 * run's settings (uncertainty choices and passes from the run contract), Run / Cancel / progress, and
 * the result with its heatmap, export and comparison. Each part it shows is a component in panel/;
 * this file holds the state that ties them together. Plain `createElement` calls against the host
 * React keep the bundle free of a JSX toolchain and of React type packages.
 */
import { h, useEffect, useRef, useState } from "./host_react.ts";
import type { UncertaintyMethod } from "../../src/core/types.ts";
import { type ActiveRun, type Device, type RunOutcome, type RunProgress, startRun } from "./run.ts";
import { type Capabilities, detectCapabilities } from "./capabilities.ts";
import { fetchModelIndex, type ModelIndexEntry } from "./models.ts";
import { fitOnDisplaySet } from "./fit.ts";
import { clampPasses } from "../../src/core/contract.ts";
import type { DisplaySet, ServicesManager } from "./host.ts";
import type { ExtensionManagerWithSources } from "./export.ts";
import { styles } from "./panel/styles.ts";
import { CapabilityLine } from "./panel/capability_line.ts";
import { ModelList } from "./panel/model_list.ts";
import { ProgressView, Select } from "./panel/controls.ts";
import { ResultView } from "./panel/result_view.ts";
import { HeatmapControls } from "./panel/heatmap_controls.ts";
import { CompareView } from "./panel/compare_view.ts";
import { ExportBar } from "./panel/export_bar.ts";
import { chosenVariant, MAIN_MODEL, VariantPicker } from "./panel/variant_picker.ts";

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
export function EdgeSegPanel(
  props: { servicesManager: ServicesManager; extensionManager?: ExtensionManagerWithSources },
): unknown {
  const [caps, setCaps] = useState<Capabilities | null>(null);
  const [models, setModels] = useState<ModelIndexEntry[] | null>(null);
  const [modelError, setModelError] = useState<string | null>(null);
  const [selected, setSelected] = useState<string | null>(null);
  const [active, setActive] = useState<DisplaySet | undefined>(undefined);
  const [uncertainty, setUncertainty] = useState<UncertaintyMethod>("none");
  // null: the manifest's default number of passes (until the user types another)
  const [passes, setPasses] = useState<number | null>(null);
  const [device, setDevice] = useState<Device>("auto");
  // the main model unless the user picks one of the selected package's variants
  const [variantId, setVariantId] = useState<string>(MAIN_MODEL);
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
  const fit = model ? fitOnDisplaySet(model, active) : {};
  const running = progress !== null;
  const canRun = !!model && !!active && !fit.refusal && !running;
  const choices = model?.uncertainty ?? [];
  const choice = choices.find((c) => c.method === uncertainty) ?? choices[0];
  const method: UncertaintyMethod = choice?.method ?? "none";
  const passBounds = choice?.passes;
  const passCount = passBounds ? clampPasses(passes ?? passBounds.default, passBounds) : undefined;
  const variant = chosenVariant(model, variantId);

  const run = () => {
    if (!model || !active || running) return;
    setOutcome(null);
    setRunError(null);
    const r = startRun(
      props.servicesManager,
      active,
      { model, uncertainty: method, passes: passCount, device, variant: variant?.id },
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
      ? h(ModelList, {
        models,
        selected,
        onSelect: (id: string) => {
          setSelected(id);
          setPasses(null);
          setVariantId(MAIN_MODEL);
        },
        active,
      })
      : h("div", { style: styles.meta }, "Loading model packages…"),
    h("div", { style: styles.section }, "Run"),
    h(VariantPicker, { model, value: variantId, disabled: running, onChange: setVariantId }),
    h(
      "div",
      { style: styles.row },
      h(Select, {
        id: "edgeseg-uncertainty",
        value: method,
        disabled: running,
        options: choices.map((c) => [c.method, c.label]),
        onChange: (v: string) => setUncertainty(v as UncertaintyMethod),
      }),
      passBounds
        ? h("input", {
          id: "edgeseg-passes",
          type: "number",
          min: passBounds.min,
          max: passBounds.max,
          value: passCount,
          disabled: running,
          title:
            `MC dropout passes (${passBounds.min}–${passBounds.max}; the model's default is ${passBounds.default})`,
          style: { ...styles.select, width: "48px" },
          onChange: (ev: { target: { value: string } }) =>
            setPasses(clampPasses(Number(ev.target.value), passBounds)),
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
