/**
 * The bench's statistics, pure (no Deno, no I/O) so the unit tests can pin them: every figure is a
 * set of runs, each with the 1-minute load average read just before it; a figure reports min, median
 * and max and is "busy" when any of its runs started with a load average above the core count, so a
 * figure measured on a loaded machine is never shown as the result without that mark. Two or more
 * things compared run interleaved (A B A B …), so a change in load hits them alike.
 */

/** One timed run and the 1-minute load average just before it. */
export interface Sample {
  value: number;
  /** 1-minute load average before the run (null where the OS does not say) */
  load1: number | null;
}

/** What the bench publishes for one measured quantity. */
export interface Figure {
  /** e.g. "ms", "s", "MiB", "×" */
  unit: string;
  runs: number;
  min: number | null;
  median: number | null;
  max: number | null;
  /** every run's value and load average, in run order */
  samples: Sample[];
  /** the highest load average before any run */
  maxLoad1: number | null;
  /** true when a load average exceeded the core count: the figure was measured on a busy machine */
  busy: boolean;
  /** e.g. "stopped after 1 run: a run took 412 s (limit 240 s)" */
  note?: string;
}

export function median(xs: number[]): number {
  if (!xs.length) throw new Error("median of no values");
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** A load average above the number of cores means runs queued for a CPU: the figure is busy. */
export function isBusy(load1: number | null, cores: number): boolean {
  return load1 !== null && load1 > cores;
}

/** Summarises samples into a figure (min/median/max over the values; busy if any run was busy). */
export function figure(samples: Sample[], cores: number, unit: string, note?: string): Figure {
  const values = samples.map((s) => s.value);
  const loads = samples.map((s) => s.load1).filter((l): l is number => l !== null);
  return {
    unit,
    runs: samples.length,
    min: values.length ? Math.min(...values) : null,
    median: values.length ? median(values) : null,
    max: values.length ? Math.max(...values) : null,
    samples,
    maxLoad1: loads.length ? Math.max(...loads) : null,
    busy: samples.some((s) => isBusy(s.load1, cores)),
    ...(note ? { note } : {}),
  };
}

/** A figure with no runs and the reason why (a skipped or failed measurement). */
export function noFigure(unit: string, note: string): Figure {
  return {
    unit,
    runs: 0,
    min: null,
    median: null,
    max: null,
    samples: [],
    maxLoad1: null,
    busy: false,
    note,
  };
}

/**
 * The order in which `variants` are run `runs` times each, interleaved: round r runs every variant
 * once, in the given order (A B A B … for two). Returned as [round, variant index] pairs.
 */
export function interleaveOrder(variants: number, runs: number): [number, number][] {
  const out: [number, number][] = [];
  for (let r = 0; r < runs; r++) for (let v = 0; v < variants; v++) out.push([r, v]);
  return out;
}

/** Rounds for display: 1 decimal under 100, none above. */
export function fmt(x: number | null | undefined, digits?: number): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return "–";
  return x.toFixed(digits ?? (Math.abs(x) < 100 ? 1 : 0));
}

/**
 * A figure as one markdown cell: "median (min–max, n runs)" and, when busy, a "busy" mark with the
 * highest load average; a figure without runs reads "–" and its note.
 */
export function cell(f: Figure | null | undefined, digits?: number): string {
  if (!f || f.median === null) return f?.note ? `– (${f.note})` : "–";
  const spread = f.runs > 1 ? ` (${fmt(f.min, digits)}–${fmt(f.max, digits)}, n=${f.runs})` : " (n=1)";
  const busy = f.busy ? ` **busy** (load ${fmt(f.maxLoad1, 2)})` : "";
  return `${fmt(f.median, digits)}${spread}${busy}`;
}

/** Ratio of two figures' medians; busy when either is. */
export function ratio(
  a: Figure | null | undefined,
  b: Figure | null | undefined,
): { value: number | null; busy: boolean } {
  if (!a || !b || a.median === null || b.median === null || b.median === 0) {
    return { value: null, busy: false };
  }
  return { value: a.median / b.median, busy: a.busy || b.busy };
}
