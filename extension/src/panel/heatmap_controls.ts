/** The uncertainty heatmap's controls: visibility, opacity, τ, colour bar. */
import { h, useState } from "../host_react.ts";
import type { ServicesManager } from "../host.ts";
import { HEATMAP_OPACITY, type HeatmapLayer } from "../run.ts";
import { measureText, setHeatmapDisplay, setHeatmapOpacity } from "../heatmap.ts";
import { colorBarTicks, sampleColormap } from "../../../src/overlays/mod.ts";
import { colors, styles } from "./styles.ts";

/**
 * Controls for the uncertainty layer: a colour-bar legend naming the measure with its range, a
 * show/hide toggle, opacity, and "show only above τ".
 */
export function HeatmapControls(props: { layer: HeatmapLayer; servicesManager: ServicesManager }): unknown {
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
