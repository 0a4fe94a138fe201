/** The small statistics `deno task eval` reports: running means and variances, Welch and sign tests. */

/** Two-sided p-value of a standard normal z (Abramowitz–Stegun 7.1.26 erfc, |error| < 1.5e-7). */
export function normalTwoSidedP(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const erfc = t *
    (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))) *
    Math.exp(-x * x);
  return Math.min(1, erfc);
}

/** Exact two-sided sign test: probability of a split at least as uneven as `positive` of `n`. */
export function signTestP(positive: number, n: number): number {
  if (n === 0) return 1;
  const k = Math.min(positive, n - positive);
  let p = 0, c = 1; // C(n, 0)
  for (let i = 0; i <= k; i++) {
    p += c;
    c = (c * (n - i)) / (i + 1);
  }
  return Math.min(1, (2 * p) / 2 ** n);
}

export interface Running {
  n: number;
  sum: number;
  sumSq: number;
}
export const running = (): Running => ({ n: 0, sum: 0, sumSq: 0 });
export const push = (r: Running, v: number) => {
  r.n++;
  r.sum += v;
  r.sumSq += v * v;
};
export const meanOf = (r: Running) => (r.n ? r.sum / r.n : NaN);
export const varOf = (r: Running) => (r.n > 1 ? (r.sumSq - (r.sum * r.sum) / r.n) / (r.n - 1) : NaN);
