/** Small controls: a select, and the run's progress bar with phase, window and ETA. */
import { h } from "../host_react.ts";
import type { RunProgress } from "../run.ts";
import { styles } from "./styles.ts";

export function Select(
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

export function formatEta(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return "";
  return seconds < 60
    ? ` · about ${Math.ceil(seconds)} s left`
    : ` · about ${Math.ceil(seconds / 60)} min left`;
}

export function ProgressView(props: { progress: RunProgress }): unknown {
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
