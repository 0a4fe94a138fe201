/** The model picker: each package with its fit on the active series (refusal or warning). */
import { h } from "../host_react.ts";
import type { ModelIndexEntry } from "../models.ts";
import { fitOnDisplaySet } from "../fit.ts";
import type { DisplaySet } from "../host.ts";
import { styles } from "./styles.ts";

/** "runs on WASM only" when the package's audit found WebGPU failing; null when both or unaudited. */
export function providerNote(providers: ("webgpu" | "wasm")[] | undefined): string | null {
  if (!providers) return null;
  if (providers.length === 1) return `runs on ${providers[0] === "wasm" ? "WASM" : "WebGPU"} only`;
  return null;
}

export function ModelList(
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
      const fit = fitOnDisplaySet(m, props.active);
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
        providerNote(m.providers)
          ? h(
            "div",
            { style: styles.meta, "data-providers": m.providers!.join(",") },
            providerNote(m.providers),
          )
          : null,
        fit.refusal ? h("div", { style: styles.warn, "data-mismatch": fit.refusal }, fit.refusal) : null,
        fit.warning ? h("div", { style: styles.caution, "data-warning": fit.warning }, fit.warning) : null,
      );
    }),
  );
}
