/** A run's result: segment sizes, triage band, provenance (provider, threads, fallbacks). */
import { h } from "../host_react.ts";
import { type RunOutcome, segmentSize } from "../run.ts";
import { colors, styles } from "./styles.ts";
import { variantLabel } from "../../../src/core/contract.ts";

export function ResultView(props: { outcome: RunOutcome }): unknown {
  const { result, segmentationId, displayError, elapsedMs, spacingKnown } = props.outcome;
  const p = result.provenance;
  const colorOf = (n: number) =>
    result.labelmap.segments.find((s) => s.number === n)?.color ?? [128, 128, 128];
  const sizeOf = (s: RunOutcome["result"]["statistics"][number]) =>
    segmentSize(s, result.labelmap.geometry, spacingKnown);
  // Provider names only on the line; the full reasons are one hover away.
  const fellBackFrom = p.fallbackReasons.map((r) => r.split(":")[0]).join(", ");
  const fallback = fellBackFrom ? ` (fell back from ${fellBackFrom})` : "";
  // the model file that ran: a variant is named (id, precision) so the line says which file decided
  const variant = variantLabel(p);
  return h(
    "div",
    {
      id: "edgeseg-result",
      "data-segmentation-id": segmentationId ?? "",
      "data-segments": String(result.statistics.length),
      "data-findings": result.statistics.some((s) => s.voxels > 0) ? "yes" : "none",
    },
    result.statistics.some((s) => s.voxels > 0) ? null : h(
      "div",
      { id: "edgeseg-no-findings", style: { margin: "4px 0", fontWeight: 600 } },
      "No findings: the model found none of its segments in this series. The (empty) SEG can still be " +
        "downloaded or stored as the record of the run.",
    ),
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
        "data-variant": p.variant ?? "main",
        "data-precision": p.precision,
        title: p.fallbackReasons.length ? p.fallbackReasons.join("\n") : undefined,
        style: styles.meta,
      },
      `${p.modelName} ${p.modelVersion}${
        variant ? ` · ${variant}` : ""
      } · ${p.provider.toUpperCase()}${fallback} · ${(elapsedMs / 1000).toFixed(1)} s`,
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
    p.provider === "wasm" && p.threads !== undefined
      ? h(
        "div",
        { id: "edgeseg-threads", "data-threads": String(p.threads), style: styles.meta },
        p.threadsNote ?? `WASM threads: ${p.threads}`,
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
