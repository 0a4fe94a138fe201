/** Compare with reference: pick a SEG of the series, Dice/precision/recall, TP/FP/FN overlay. */
import { h, useEffect, useState } from "../host_react.ts";
import type { RunOutcome } from "../run.ts";
import type { ServicesManager } from "../host.ts";
import {
  compareLabelmaps,
  loadReference,
  referenceCandidates,
  type SegmentComparison,
  showCompareOverlay,
} from "../compare.ts";
import { styles } from "./styles.ts";
import { Select } from "./controls.ts";

/**
 * "Compare with reference": offered when the study holds a SEG for the same series. Shows Dice,
 * precision and recall per segment and adds a TP/FP/FN overlay (green/red/blue) to the viewer.
 */
export function CompareView(props: { outcome: RunOutcome; servicesManager: ServicesManager }): unknown {
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
  const candidates = ds.SeriesInstanceUID
    ? referenceCandidates(servicesManager, ds.SeriesInstanceUID, outcome.storedSeries)
    : [];
  void tick;
  if (candidates.length === 0) {
    return h(
      "div",
      { id: "edgeseg-compare", "data-candidates": "0", style: styles.meta },
      "Compare with reference: no SEG for this series in the study (other than this run's own).",
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
