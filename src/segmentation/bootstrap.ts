/**
 * Confidence intervals for what a model card states, by the percentile bootstrap over cases (cases,
 * not pixels, are the independent units): the mean of a per-case metric, and a ratio of two per-case
 * means (e.g. uncertainty on wrong pixels over uncertainty on right ones). Seeded, so a card's numbers
 * are reproduced exactly by the script that wrote them. Pure.
 */
import { mulberry32 } from "../core/random.ts";

export interface Interval {
  estimate: number;
  low: number;
  high: number;
  /** confidence level, e.g. 0.95 */
  level: number;
  resamples: number;
}

export interface BootstrapOptions {
  resamples?: number;
  level?: number;
  seed?: number;
}

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos), hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/**
 * The bootstrap interval of `statistic` over cases: each resample draws as many case indices as there
 * are cases, with replacement. NaN statistics of a resample (e.g. a ratio with an empty denominator)
 * are left out. One case gives a zero-width interval at the estimate.
 */
export function bootstrap(
  cases: number,
  statistic: (indices: Int32Array) => number,
  options: BootstrapOptions = {},
): Interval {
  const resamples = options.resamples ?? 2000;
  const level = options.level ?? 0.95;
  const all = Int32Array.from({ length: cases }, (_, i) => i);
  const estimate = statistic(all);
  const rand = mulberry32(options.seed ?? 1);
  const values: number[] = [];
  const idx = new Int32Array(cases);
  for (let r = 0; r < resamples && cases > 0; r++) {
    for (let i = 0; i < cases; i++) idx[i] = Math.floor(rand() * cases);
    const v = statistic(idx);
    if (Number.isFinite(v)) values.push(v);
  }
  const sorted = Float64Array.from(values).sort();
  const a = (1 - level) / 2;
  return { estimate, low: percentile(sorted, a), high: percentile(sorted, 1 - a), level, resamples };
}

/** The interval of the mean of per-case values (NaN values are left out of each mean). */
export function meanInterval(values: number[], options: BootstrapOptions = {}): Interval {
  const finite = values.filter((v) => Number.isFinite(v));
  return bootstrap(finite.length, (idx) => {
    let s = 0;
    for (const i of idx) s += finite[i];
    return idx.length ? s / idx.length : NaN;
  }, options);
}

/** The interval of mean(numerators) / mean(denominators) over the same cases. */
export function ratioInterval(
  numerators: number[],
  denominators: number[],
  options: BootstrapOptions = {},
): Interval {
  return bootstrap(numerators.length, (idx) => {
    let n = 0, d = 0;
    for (const i of idx) {
      n += numerators[i];
      d += denominators[i];
    }
    return d > 0 ? n / d : NaN;
  }, options);
}

/** F1 (= Dice), precision and recall of a probability map at each threshold, pooled over pixels. */
export interface ThresholdPoint {
  threshold: number;
  f1: number;
  precision: number;
  recall: number;
}

/** Accumulates TP/FP/FN at fixed thresholds over many cases (one pass over each case's pixels). */
export class ThresholdSweep {
  readonly thresholds: number[];
  readonly #tp: Float64Array;
  readonly #fp: Float64Array;
  readonly #fn: Float64Array;

  constructor(thresholds = Array.from({ length: 19 }, (_, i) => Math.round((i + 1) * 5) / 100)) {
    this.thresholds = thresholds;
    this.#tp = new Float64Array(thresholds.length);
    this.#fp = new Float64Array(thresholds.length);
    this.#fn = new Float64Array(thresholds.length);
  }

  /** Adds one case: `probability` of the label per pixel, `positive` the reference, `fov` the mask. */
  add(probability: ArrayLike<number>, positive: (i: number) => boolean, fov?: ArrayLike<number>): void {
    const t = this.thresholds;
    for (let i = 0; i < probability.length; i++) {
      if (fov && !fov[i]) continue;
      const p = probability[i], y = positive(i);
      for (let k = 0; k < t.length; k++) {
        if (p >= t[k]) {
          if (y) this.#tp[k]++;
          else this.#fp[k]++;
        } else if (y) this.#fn[k]++;
      }
    }
  }

  points(): ThresholdPoint[] {
    return this.thresholds.map((threshold, k) => {
      const tp = this.#tp[k], fp = this.#fp[k], fn = this.#fn[k];
      return {
        threshold,
        f1: tp + fp + fn > 0 ? (2 * tp) / (2 * tp + fp + fn) : NaN,
        precision: tp + fp > 0 ? tp / (tp + fp) : NaN,
        recall: tp + fn > 0 ? tp / (tp + fn) : NaN,
      };
    });
  }

  /** The threshold with the highest F1 (the lowest such threshold on ties). */
  best(): ThresholdPoint | undefined {
    let best: ThresholdPoint | undefined;
    for (const p of this.points()) if (Number.isFinite(p.f1) && (!best || p.f1 > best.f1)) best = p;
    return best;
  }
}
