/**
 * Triage: a generalisation of the OCT urgency score (UCUS) to any model with a `triage` block in its
 * manifest. docs/triage.md states the formula with a worked example:
 *
 *   V      = Σ volumeMl over the triage labels
 *   S_vol  = min(1, V / referenceVolumeMl)
 *   M      = volume-weighted mean of the location weights (default 1), volume inside the
 *            central zone (`centre`, e.g. the fovea) counting `centre.weight` times
 *   B      = volume-weighted mean boundary uncertainty, normalised to [0, 1]
 *   U      = volume-weighted mean uncertainty inside the segments, normalised to [0, 1]
 *   score  = (S_vol · M + boundaryWeight · B) · (1 − uncertaintyDiscount · U)
 *   band   = Urgent if score ≥ thresholds.urgent, Review if ≥ thresholds.review, else Monitor
 */
import type { SegmentStatistics, TriageResult, TriageSpec, TriageTerms } from "../core/types.ts";

export type { TriageTerms };

export interface TriageOutcome extends TriageResult {
  terms: TriageTerms;
}

const fmt = (x: number, d = 2) => x.toFixed(d);
/** mL with two decimals, or two significant digits below 0.01 mL (OCT fluid is a few mm³). */
const fmtMl = (x: number) => (x === 0 || x >= 0.01 ? x.toFixed(2) : x.toPrecision(2));

/**
 * Score and band for one case. `uncertaintyMax` normalises the statistics' uncertainty values to
 * [0, 1] (e.g. ln 2 for binary entropy); without uncertainty statistics both uncertainty terms are 0.
 * With `spec.centre`, each statistic's `centralVolumeMl` (segmentStatistics computes it when given the
 * zone) is the part of its volume that counts `centre.weight` times; a statistic without it has none.
 */
export function triage(stats: SegmentStatistics[], spec: TriageSpec, uncertaintyMax = 1): TriageOutcome {
  if (!(spec.referenceVolumeMl > 0)) {
    throw new RangeError(`triage.referenceVolumeMl must be > 0, found ${spec.referenceVolumeMl}`);
  }
  const chosen = stats.filter((s) => spec.labels.includes(s.number));
  const total = chosen.reduce((a, s) => a + s.volumeMl, 0);
  const norm = uncertaintyMax > 0 ? 1 / uncertaintyMax : 1;
  if (spec.centre && !(spec.centre.weight >= 0 && spec.centre.radiusMm > 0)) {
    throw new RangeError(
      `triage.centre needs radiusMm > 0 and weight >= 0, found ${spec.centre.radiusMm} and ${spec.centre.weight}`,
    );
  }
  const centreWeight = spec.centre?.weight ?? 1;
  let weightSum = 0, boundarySum = 0, insideSum = 0, central = 0;
  let hasUncertainty = false;
  for (const s of chosen) {
    const w = spec.locationWeights?.[String(s.number)] ?? 1;
    const c = spec.centre ? Math.min(s.volumeMl, s.centralVolumeMl ?? 0) : 0;
    central += c;
    weightSum += w * (s.volumeMl + (centreWeight - 1) * c);
    if (s.meanBoundaryUncertainty !== undefined || s.meanUncertainty !== undefined) hasUncertainty = true;
    boundarySum += Math.min(1, (s.meanBoundaryUncertainty ?? 0) * norm) * s.volumeMl;
    insideSum += Math.min(1, (s.meanUncertainty ?? 0) * norm) * s.volumeMl;
  }
  const volumeScore = Math.min(1, total / spec.referenceVolumeMl);
  const locationMultiplier = total > 0 ? weightSum / total : 1;
  const boundaryUncertainty = total > 0 ? boundarySum / total : 0;
  const overallUncertainty = total > 0 ? insideSum / total : 0;
  const discount = 1 - Math.min(1, Math.max(0, spec.uncertaintyDiscount)) * overallUncertainty;
  const score = (volumeScore * locationMultiplier + spec.boundaryWeight * boundaryUncertainty) * discount;
  const band = score >= spec.thresholds.urgent
    ? "Urgent"
    : score >= spec.thresholds.review
    ? "Review"
    : "Monitor";

  const names = chosen.map((s) => s.label).join(", ") || "triage labels";
  const reasons: string[] = [];
  if (total === 0) reasons.push(`no ${names} found`);
  else {
    reasons.push(
      `${names}: ${fmtMl(total)} mL of ${fmtMl(spec.referenceVolumeMl)} mL reference → volume score ${
        fmt(volumeScore)
      }`,
    );
    if (spec.centre) {
      reasons.push(
        `${fmtMl(central)} mL within ${spec.centre.radiusMm} mm of the centre × ${spec.centre.weight}`,
      );
    }
    if (locationMultiplier !== 1) reasons.push(`location multiplier ${fmt(locationMultiplier)}`);
    if (hasUncertainty) {
      reasons.push(
        `boundary uncertainty ${fmt(boundaryUncertainty)} × weight ${fmt(spec.boundaryWeight)} → +${
          fmt(spec.boundaryWeight * boundaryUncertainty)
        }`,
      );
      reasons.push(`uncertainty inside ${fmt(overallUncertainty)} → score × ${fmt(discount)}`);
    } else reasons.push("no uncertainty estimate: boundary and discount terms are 0");
  }
  const threshold = band === "Urgent"
    ? `≥ urgent ${spec.thresholds.urgent}`
    : band === "Review"
    ? `≥ review ${spec.thresholds.review}, < urgent ${spec.thresholds.urgent}`
    : `< review ${spec.thresholds.review}`;
  reasons.push(`score ${fmt(score, 3)} ${threshold} → ${band}`);
  return {
    band,
    score,
    reasons,
    terms: {
      totalVolumeMl: total,
      volumeScore,
      locationMultiplier,
      centralVolumeMl: central,
      boundaryUncertainty,
      overallUncertainty,
      discount,
    },
  };
}
