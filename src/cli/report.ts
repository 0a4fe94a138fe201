/**
 * A self-contained HTML evaluation report: metric table, TP/FP/FN overlay thumbnails, a reliability
 * diagram and uncertainty histograms, drawn as inline SVG (no scripts, no external resources), so
 * it opens anywhere and can be archived with the results.
 */

export interface ReportCase {
  key: string;
  metrics: Record<string, number>;
  /** PNG bytes of the compare overlay (TP green, FP red, FN blue) */
  overlayPng?: Uint8Array;
}

export interface ReliabilityBins {
  /** mean predicted probability per bin */
  confidence: number[];
  /** observed frequency of the positive class per bin */
  frequency: number[];
  counts: number[];
}

export interface Histogram {
  title: string;
  /** bin edges, length bins + 1 */
  edges: number[];
  series: { name: string; color: string; counts: number[] }[];
}

export interface EvalReportInput {
  title: string;
  model: { id: string; name: string; version: string; sha256: string };
  generatedAt: string;
  metricNames: string[];
  cases: ReportCase[];
  mean: Record<string, number>;
  reliability?: ReliabilityBins;
  histograms?: Histogram[];
  notes?: string[];
}

const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);

function fmt(v: number | undefined): string {
  if (v === undefined || Number.isNaN(v)) return "–";
  if (!Number.isFinite(v)) return v > 0 ? "∞" : "−∞";
  return Math.abs(v) >= 100 ? v.toFixed(1) : v.toFixed(4);
}

function base64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

/** Reliability diagram: observed frequency against mean confidence per bin, with the diagonal. */
export function reliabilitySvg(bins: ReliabilityBins, size = 280): string {
  const pad = 44, inner = size - 2 * pad;
  const x = (v: number) => pad + v * inner, y = (v: number) => size - pad - v * inner;
  const n = bins.confidence.length;
  const bars = bins.frequency.map((f, i) => {
    if (!bins.counts[i]) return "";
    const x0 = x(i / n), w = inner / n - 1;
    return `<rect x="${x0.toFixed(1)}" y="${y(f).toFixed(1)}" width="${w.toFixed(1)}" height="${
      (f * inner).toFixed(1)
    }" fill="#4e79a7" opacity="0.8"><title>bin ${i + 1}: confidence ${fmt(bins.confidence[i])}, frequency ${
      fmt(f)
    }, n=${bins.counts[i]}</title></rect>`;
  }).join("");
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((t) =>
    `<text x="${x(t)}" y="${size - pad + 14}" font-size="10" text-anchor="middle">${t}</text><text x="${
      pad - 4
    }" y="${y(t) + 3}" font-size="10" text-anchor="end">${t}</text>`
  ).join("");
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}" role="img" aria-label="reliability diagram">
<rect x="${pad}" y="${pad}" width="${inner}" height="${inner}" fill="none" stroke="#999"/>${bars}
<line x1="${x(0)}" y1="${y(0)}" x2="${x(1)}" y2="${y(1)}" stroke="#e15759" stroke-dasharray="4 3"/>${ticks}
<text x="${size / 2}" y="${size - 4}" font-size="11" text-anchor="middle">predicted probability</text>
<text x="9" y="${size / 2}" font-size="11" text-anchor="middle" transform="rotate(-90 9 ${
    size / 2
  })">observed frequency</text></svg>`;
}

/** Overlaid histograms (normalised to each series' total) as step lines. */
export function histogramSvg(h: Histogram, width = 360, height = 220): string {
  const pad = 36, iw = width - 2 * pad, ih = height - 2 * pad;
  const bins = h.edges.length - 1;
  const norm = h.series.map((s) => {
    const total = s.counts.reduce((a, b) => a + b, 0) || 1;
    return s.counts.map((c) => c / total);
  });
  const peak = Math.max(1e-9, ...norm.flat());
  const lo = h.edges[0], hi = h.edges[bins];
  const x = (v: number) => pad + ((v - lo) / (hi - lo || 1)) * iw,
    y = (v: number) => height - pad - (v / peak) * ih;
  const paths = h.series.map((s, si) => {
    let d = `M${x(h.edges[0]).toFixed(1)},${y(0).toFixed(1)}`;
    for (let b = 0; b < bins; b++) {
      d += `L${x(h.edges[b]).toFixed(1)},${y(norm[si][b]).toFixed(1)}L${x(h.edges[b + 1]).toFixed(1)},${
        y(norm[si][b]).toFixed(1)
      }`;
    }
    d += `L${x(h.edges[bins]).toFixed(1)},${y(0).toFixed(1)}`;
    return `<path d="${d}" fill="${s.color}" fill-opacity="0.25" stroke="${s.color}"/>`;
  }).join("");
  const legend = h.series.map((s, i) =>
    `<rect x="${width - pad - 110}" y="${
      pad + 4 + 14 * i
    }" width="10" height="10" fill="${s.color}"/><text x="${width - pad - 96}" y="${
      pad + 13 + 14 * i
    }" font-size="10">${escapeHtml(s.name)}</text>`
  ).join("");
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" role="img" aria-label="${
    escapeHtml(h.title)
  }">
<rect x="${pad}" y="${pad}" width="${iw}" height="${ih}" fill="none" stroke="#999"/>${paths}${legend}
<text x="${pad}" y="${height - pad + 14}" font-size="10">${fmt(lo)}</text><text x="${width - pad}" y="${
    height - pad + 14
  }" font-size="10" text-anchor="end">${fmt(hi)}</text>
<text x="${width / 2}" y="16" font-size="12" text-anchor="middle">${escapeHtml(h.title)}</text></svg>`;
}

export function renderEvalReport(r: EvalReportInput): string {
  const head = r.metricNames.map((m) => `<th>${escapeHtml(m)}</th>`).join("");
  const rows = r.cases.map((c) =>
    `<tr><td>${escapeHtml(c.key)}</td>${
      r.metricNames.map((m) => `<td>${fmt(c.metrics[m])}</td>`).join("")
    }</tr>`
  ).join("\n");
  const mean = `<tr class="mean"><td>mean</td>${
    r.metricNames.map((m) => `<td>${fmt(r.mean[m])}</td>`).join("")
  }</tr>`;
  const thumbs = r.cases.filter((c) => c.overlayPng).map((c) =>
    `<figure><img alt="overlay ${escapeHtml(c.key)}" src="data:image/png;base64,${
      base64(c.overlayPng!)
    }"><figcaption>${escapeHtml(c.key)} · Dice ${fmt(c.metrics.dice)}</figcaption></figure>`
  ).join("\n");
  const plots = [
    r.reliability
      ? `<figure>${reliabilitySvg(r.reliability)}<figcaption>Reliability diagram</figcaption></figure>`
      : "",
    ...(r.histograms ?? []).map((h) => `<figure>${histogramSvg(h)}</figure>`),
  ].join("\n");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(r.title)}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;background:#fff}
table{border-collapse:collapse;margin:12px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}tr.mean{font-weight:bold;background:#f3f3f3}
figure{display:inline-block;margin:6px;vertical-align:top}figure img{max-width:280px;image-rendering:pixelated;border:1px solid #ccc}
figcaption{font-size:12px;color:#555}.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}
</style></head><body>
<h1>${escapeHtml(r.title)}</h1>
<p>Model <b>${escapeHtml(r.model.name)}</b> (${escapeHtml(r.model.id)} ${
    escapeHtml(r.model.version)
  }, sha256 ${escapeHtml(r.model.sha256.slice(0, 16))}…) · generated ${
    escapeHtml(r.generatedAt)
  } · research use only, not for diagnosis.</p>
${(r.notes ?? []).map((n) => `<p>${escapeHtml(n)}</p>`).join("\n")}
<h2>Metrics</h2>
<table><thead><tr><th>case</th>${head}</tr></thead><tbody>
${rows}
${mean}
</tbody></table>
<h2>Calibration and uncertainty</h2>
${plots || "<p>No probability output to plot.</p>"}
<h2>Overlays</h2>
<p class="legend"><span style="background:#00c000"></span>true positive<span style="background:#e00000"></span>false positive<span style="background:#0050ff"></span>false negative</p>
${thumbs || "<p>No overlays.</p>"}
</body></html>
`;
}
