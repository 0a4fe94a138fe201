/**
 * Which file of the model runs: the package's main model ("Full precision (fp32)") or one of the
 * variants its manifest declares (e.g. a static INT8 file that runs faster on WASM). Every word and
 * figure comes from the package: the variant's precision and description, and the headline its own
 * `eval.json` measured for that very file. A model without variants shows no control.
 */
import { h } from "../host_react.ts";
import type { VariantSummary } from "../../../src/core/contract.ts";
import type { ModelIndexEntry } from "../models.ts";
import { Select } from "./controls.ts";
import { styles } from "./styles.ts";

/** The select's value for the package's main model (as `--variant main` on the CLI). */
export const MAIN_MODEL = "main";

/** An option's text stays short enough for the panel; the full description is in the note below. */
const OPTION_DESCRIPTION_CHARS = 40;

/** "+0.0010" / "−0.0015" (a real minus sign), four decimals as the model cards write Dice. */
export function signedFigure(x: number): string {
  const s = Math.abs(x).toFixed(4);
  return x < 0 && Number(s) !== 0 ? `\u2212${s}` : `+${s}`;
}

/**
 * The first clause of a variant's description ("static INT8 (QDQ): int8 per-channel …" → "static INT8
 * (QDQ)"), cut at a word to fit an option; undefined without a description.
 */
export function shortDescription(description: string | undefined): string | undefined {
  const first = description?.split(/[:;]/)[0].trim();
  if (!first) return undefined;
  if (first.length <= OPTION_DESCRIPTION_CHARS) return first;
  const cut = first.slice(0, OPTION_DESCRIPTION_CHARS);
  const space = cut.lastIndexOf(" ");
  return `${(space > 10 ? cut.slice(0, space) : cut).replace(/[\s,(]+$/, "")}…`;
}

/** One variant's option text: its precision, a short description and its validated difference. */
export function variantOptionText(v: VariantSummary): string {
  const parts = [shortDescription(v.description)];
  // "infection Dice, mean over slices" → "infection Dice"; the note gives the full metric
  if (v.validated) parts.push(`${v.validated.metric.split(",")[0]} ${signedFigure(v.validated.difference)}`);
  const words = parts.filter((p): p is string => !!p).join(", ");
  return `${v.precision.toUpperCase()}${words ? ` — ${words}` : ""}`;
}

/** The select's options: the main model first, then each variant; none when the package has no variants. */
export function variantOptions(model: Pick<ModelIndexEntry, "variants"> | undefined): [string, string][] {
  const variants = model?.variants ?? [];
  if (variants.length === 0) return [];
  return [
    [MAIN_MODEL, "Full precision (fp32)"],
    ...variants.map((v): [string, string] => [v.id, variantOptionText(v)]),
  ];
}

/** The variant the user chose, if the selected model has it; otherwise the main model runs (undefined). */
export function chosenVariant(
  model: Pick<ModelIndexEntry, "variants"> | undefined,
  id: string,
): VariantSummary | undefined {
  return id === MAIN_MODEL ? undefined : model?.variants?.find((v) => v.id === id);
}

/** What the chosen variant is, in full: its description, the figure its package measured, its input. */
export function variantNote(v: VariantSummary): string {
  const out: string[] = [];
  if (v.description) out.push(`${v.description.replace(/\.$/, "")}.`);
  if (v.validated) {
    const { metric, value, main, difference } = v.validated;
    out.push(
      `Validated by the package on its own split: ${metric} ${value.toFixed(4)} (full precision ${
        main.toFixed(4)
      }, ${signedFigure(difference)}).`,
    );
  } else out.push("The package states no validation figure for this file.");
  if (v.when) {
    out.push(`Made for ${Object.entries(v.when).map(([k, val]) => `${k} ${val}`).join(", ")}.`);
  }
  return out.join(" ");
}

/** The model-file select and, when a variant is chosen, the note saying what it is. */
export function VariantPicker(
  props: {
    model: ModelIndexEntry | undefined;
    value: string;
    disabled: boolean;
    onChange: (id: string) => void;
  },
): unknown {
  const options = variantOptions(props.model);
  if (options.length === 0) return null;
  const chosen = chosenVariant(props.model, props.value);
  return h(
    "div",
    { id: "edgeseg-variant-picker", "data-variant": chosen?.id ?? MAIN_MODEL },
    h(
      "div",
      { style: styles.row, title: "Which model file runs: the full-precision model or a variant of it" },
      h("label", { htmlFor: "edgeseg-variant", style: styles.meta }, "Model file"),
      h(Select, {
        id: "edgeseg-variant",
        value: chosen?.id ?? MAIN_MODEL,
        disabled: props.disabled,
        options,
        onChange: props.onChange,
      }),
    ),
    chosen ? h("div", { id: "edgeseg-variant-note", style: styles.meta }, variantNote(chosen)) : null,
  );
}
