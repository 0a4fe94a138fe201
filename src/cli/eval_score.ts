/**
 * What `deno task eval` computes from each case and pools over the cases: the case's metrics, the
 * reliability bins of the first label's probability, the threshold sweep, uncertainty on right vs
 * wrong pixels and where two references agree vs disagree; then the pooled figures the JSON reports.
 * No I/O: the caller segments and reads the references.
 */
import type { ModelManifest, SegmentationResult } from "../core/types.ts";
import { type Interval, meanInterval, ratioInterval, ThresholdSweep } from "../segmentation/bootstrap.ts";
import { type EvaluationResult, nanMean } from "../segmentation/mod.ts";
import type { Histogram, ReliabilityBins } from "./report.ts";
import { meanOf, normalTwoSidedP, push, running, signTestP, varOf } from "./eval_stats.ts";

export const METRICS = [
  "dice",
  "iou",
  "precision",
  "recall",
  "specificity",
  "accuracy",
  "auc",
  "hd95_mm",
  "assd_mm",
] as const;

export interface EvalCase {
  case: string;
  input: string;
  reference: string;
  metrics: Record<string, number>;
  perLabel: Record<string, Record<string, number>>;
  uncertainty?: { disagree: number; agree: number; ratio: number };
}

/** Bins of the reliability diagram (probability of the first label, 0.1 wide). */
const RELIABILITY_BINS = 10;
/** Bins of the uncertainty histograms, from 0 to the measure's maximum. */
const UNCERTAINTY_BINS = 30;

/** One label's (or the mean's) metrics under the names METRICS lists. */
function metricsOf(m: EvaluationResult["mean"]): Record<string, number> {
  return {
    dice: m.dice,
    iou: m.iou,
    precision: m.precision,
    recall: m.recall,
    specificity: m.specificity,
    accuracy: m.accuracy,
    auc: m.auc ?? NaN,
    hd95_mm: m.hd95Mm,
    assd_mm: m.assdMm,
  };
}

/** The case's record: mean metrics over labels and each label's own. */
export function caseRecord(
  pair: { key: string; input: string; reference: string },
  ev: EvaluationResult,
  manifest: ModelManifest,
): EvalCase {
  const perLabel: Record<string, Record<string, number>> = {};
  ev.perLabel.forEach((m, i) => (perLabel[manifest.labels[i].name] = metricsOf(m)));
  return {
    case: pair.key,
    input: pair.input,
    reference: pair.reference,
    metrics: metricsOf(ev.mean),
    perLabel,
  };
}

/** Each label's probability in [0, 1] by label value (the result keeps them quantised to 1/255). */
export function labelProbabilities(
  result: SegmentationResult,
  manifest: ModelManifest,
): Record<number, Float32Array> {
  const n = result.labelmap.data.length;
  const probabilities: Record<number, Float32Array> = {};
  if (result.probabilities) {
    manifest.labels.forEach((l, li) => {
      const p = new Float32Array(n);
      const q = result.probabilities!.data;
      for (let i = 0; i < n; i++) p[i] = q[li * n + i] / 255;
      probabilities[l.value] = p;
    });
  }
  return probabilities;
}

/** What eval pools over the cases of one run. */
export class EvalTally {
  readonly cases: EvalCase[] = [];
  readonly #labelValues: number[];
  readonly #relCount = new Float64Array(RELIABILITY_BINS);
  readonly #relConf = new Float64Array(RELIABILITY_BINS);
  readonly #relPos = new Float64Array(RELIABILITY_BINS);
  #uMax = 0;
  readonly #uHist = {
    correct: new Float64Array(UNCERTAINTY_BINS),
    wrong: new Float64Array(UNCERTAINTY_BINS),
    agree: new Float64Array(UNCERTAINTY_BINS),
    disagree: new Float64Array(UNCERTAINTY_BINS),
  };
  readonly #agreeAll = running();
  readonly #disagreeAll = running();
  /** the threshold sweep, for single-label models */
  readonly #sweep?: ThresholdSweep;
  /** mean uncertainty on wrong and on right pixels, per case */
  readonly #uWrongPerCase: number[] = [];
  readonly #uRightPerCase: number[] = [];
  #casesMoreUncertain = 0;
  #casesCompared = 0;

  constructor(readonly manifest: ModelManifest) {
    this.#labelValues = manifest.labels.map((l) => l.value);
    this.#sweep = this.#labelValues.length === 1 ? new ThresholdSweep() : undefined;
  }

  /** Reliability of the first label's probability, pooled over cases. */
  addReliability(p0: Float32Array | undefined, ref: Uint16Array, fov?: Uint8Array): void {
    const label = this.#labelValues[0];
    if (p0 && this.#sweep) this.#sweep.add(p0, (i) => ref[i] === label, fov);
    if (!p0) return;
    for (let i = 0; i < p0.length; i++) {
      if (fov && !fov[i]) continue;
      const b = Math.min(RELIABILITY_BINS - 1, Math.floor(p0[i] * RELIABILITY_BINS));
      this.#relCount[b]++;
      this.#relConf[b] += p0[i];
      this.#relPos[b] += ref[i] === label ? 1 : 0;
    }
  }

  /**
   * Uncertainty where the prediction is right vs wrong and, given a second reference, where the two
   * references disagree vs agree; returns the case's agree/disagree means when both occur.
   */
  addUncertainty(
    result: SegmentationResult,
    ref: Uint16Array,
    fov?: Uint8Array,
    ref2?: Uint16Array,
  ): EvalCase["uncertainty"] {
    const u = result.uncertainty!.data;
    const measure = result.uncertainty!.measure;
    this.#uMax = Math.max(
      this.#uMax,
      measure === "variance"
        ? 0.25
        : measure === "sd"
        ? 0.5
        : Math.log(Math.max(2, this.#labelValues.length + 1)),
    );
    const hist = this.#uHist;
    const agree = running(), disagree = running();
    let sumWrong = 0, nWrong = 0, sumRight = 0, nRight = 0;
    for (let i = 0; i < result.labelmap.data.length; i++) {
      if (fov && !fov[i]) continue;
      const b = Math.min(UNCERTAINTY_BINS - 1, Math.floor((u[i] / this.#uMax) * UNCERTAINTY_BINS));
      const right = result.labelmap.data[i] === ref[i];
      (right ? hist.correct : hist.wrong)[b]++;
      if (right) {
        sumRight += u[i];
        nRight++;
      } else {
        sumWrong += u[i];
        nWrong++;
      }
      if (ref2) {
        if ((ref[i] > 0) === (ref2[i] > 0)) {
          push(agree, u[i]);
          push(this.#agreeAll, u[i]);
          hist.agree[b]++;
        } else {
          push(disagree, u[i]);
          push(this.#disagreeAll, u[i]);
          hist.disagree[b]++;
        }
      }
    }
    if (nWrong && nRight) {
      this.#uWrongPerCase.push(sumWrong / nWrong);
      this.#uRightPerCase.push(sumRight / nRight);
    }
    if (!(ref2 && agree.n && disagree.n)) return undefined;
    this.#casesCompared++;
    if (meanOf(disagree) > meanOf(agree)) this.#casesMoreUncertain++;
    return { disagree: meanOf(disagree), agree: meanOf(agree), ratio: meanOf(disagree) / meanOf(agree) };
  }

  /** Each metric's mean over cases. */
  mean(): Record<string, number> {
    const mean: Record<string, number> = {};
    for (const m of METRICS) mean[m] = nanMean(this.cases.map((c) => c.metrics[m]));
    return mean;
  }

  /** What a model card states, each with its 95 % interval by bootstrap over cases (seeded). */
  meanInterval(): Record<string, Interval> | undefined {
    if (!this.cases.length) return undefined;
    return Object.fromEntries(METRICS.map((m) => [m, meanInterval(this.cases.map((c) => c.metrics[m]))]));
  }

  /** Expected calibration error and the reliability bins of the first label, when probabilities were pooled. */
  calibration(uncertainty: string | undefined): Record<string, unknown> | undefined {
    const count = this.#relCount, conf = this.#relConf, pos = this.#relPos;
    const pooled = count.reduce((a, b) => a + b, 0);
    if (!(pooled > 0)) return undefined;
    let ece = 0;
    for (let b = 0; b < RELIABILITY_BINS; b++) {
      if (count[b] > 0) ece += (count[b] / pooled) * Math.abs(pos[b] / count[b] - conf[b] / count[b]);
    }
    return {
      label: this.manifest.labels[0].name,
      ece,
      uncertainty,
      bins: Array.from(count, (n, b) => ({
        lo: b / RELIABILITY_BINS,
        hi: (b + 1) / RELIABILITY_BINS,
        count: n,
        meanProbability: n ? conf[b] / n : null,
        fractionPositive: n ? pos[b] / n : null,
      })),
    };
  }

  uncertaintyWrongVsRight(): Record<string, unknown> | undefined {
    if (!this.#uWrongPerCase.length) return undefined;
    return {
      meanWrong: nanMean(this.#uWrongPerCase),
      meanRight: nanMean(this.#uRightPerCase),
      ratio: ratioInterval(this.#uWrongPerCase, this.#uRightPerCase),
      cases: this.#uWrongPerCase.length,
      note:
        "mean uncertainty on wrongly and rightly labelled pixels per case; the ratio's interval bootstraps cases",
    };
  }

  thresholdSweep(): Record<string, unknown> | undefined {
    if (!this.#sweep) return undefined;
    return {
      label: this.manifest.labels[0].name,
      points: this.#sweep.points(),
      best: this.#sweep.best() ?? null,
      note:
        "F1 (= Dice) pooled over the pixels of these cases at each threshold; choose thresholds on a validation split",
    };
  }

  /** Uncertainty where two references disagree vs agree: pixel-level Welch z and a per-case sign test. */
  interRater(): Record<string, unknown> | undefined {
    if (!this.#casesCompared) return undefined;
    const agreeAll = this.#agreeAll, disagreeAll = this.#disagreeAll;
    const ma = meanOf(agreeAll), md = meanOf(disagreeAll);
    const se = Math.sqrt(varOf(agreeAll) / agreeAll.n + varOf(disagreeAll) / disagreeAll.n);
    const z = (md - ma) / se;
    return {
      meanUncertaintyDisagree: md,
      meanUncertaintyAgree: ma,
      ratio: md / ma,
      pixelsDisagree: disagreeAll.n,
      pixelsAgree: agreeAll.n,
      welchZ: z,
      welchP: normalTwoSidedP(z),
      casesMoreUncertainWhereDisagree: this.#casesMoreUncertain,
      casesCompared: this.#casesCompared,
      signTestP: signTestP(this.#casesMoreUncertain, this.#casesCompared),
      note: "pixel-level Welch z treats pixels as independent (optimistic); the per-case sign test does not",
    };
  }

  /** The HTML report's reliability diagram, when probabilities were pooled. */
  reliabilityBins(): ReliabilityBins | undefined {
    const count = this.#relCount;
    if (!count.some((c) => c > 0)) return undefined;
    return {
      counts: [...count],
      confidence: [...this.#relConf].map((s, i) => s / (count[i] || 1)),
      frequency: [...this.#relPos].map((s, i) => s / (count[i] || 1)),
    };
  }

  /** The HTML report's uncertainty histograms: correct vs wrong, and agree vs disagree when compared. */
  histograms(): Histogram[] {
    if (!(this.#uMax > 0)) return [];
    const edges = Array.from({ length: UNCERTAINTY_BINS + 1 }, (_, i) => (i / UNCERTAINTY_BINS) * this.#uMax);
    const series = (name: "correct" | "wrong" | "agree" | "disagree", color: string) => ({
      name,
      color,
      counts: [...this.#uHist[name]],
    });
    const out: Histogram[] = [{
      title: "Uncertainty: correct vs wrong pixels",
      edges,
      series: [series("correct", "#59a14f"), series("wrong", "#e15759")],
    }];
    if (this.#casesCompared) {
      out.push({
        title: "Uncertainty: references agree vs disagree",
        edges,
        series: [series("agree", "#4e79a7"), series("disagree", "#f28e2b")],
      });
    }
    return out;
  }
}
