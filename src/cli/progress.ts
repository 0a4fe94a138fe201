/**
 * Progress on stderr for long CLI work: a one-line bar on a terminal; on anything else (a log file, a
 * CI job) plain lines, one per phase and then at most one every 10 % of it, so logs stay readable.
 */
import type { Progress } from "../core/types.ts";

export class ProgressBar {
  #last = 0;
  #started = performance.now();
  #plainPhase = "";
  #plainStep = -1;
  readonly #tty: boolean;
  constructor(
    private readonly label: string,
    private readonly out: { writeSync(b: Uint8Array): number; isTerminal(): boolean } = Deno.stderr,
  ) {
    this.#tty = out.isTerminal();
  }

  update = (p: Progress): void => {
    const now = performance.now();
    // The terminal bar redraws at most every 100 ms; plain lines are thinned by phase and tenth below.
    if (this.#tty && now - this.#last < 100 && p.done < p.total) return;
    this.#last = now;
    const frac = p.total > 0 ? Math.min(1, p.done / p.total) : 0;
    const width = 24;
    const filled = Math.round(frac * width);
    const elapsed = (now - this.#started) / 1000;
    const eta = frac > 0.02 && frac < 1 ? ` ETA ${Math.round(elapsed / frac - elapsed)}s` : "";
    const line = `${this.label} [${"#".repeat(filled)}${
      ".".repeat(width - filled)
    }] ${p.phase} ${p.done}/${p.total}${eta}`;
    if (this.#tty) {
      this.out.writeSync(new TextEncoder().encode(`\r${line.padEnd(90)}`));
      return;
    }
    const step = Math.floor(frac * 10);
    if (p.phase === this.#plainPhase && step === this.#plainStep) return;
    this.#plainPhase = p.phase;
    this.#plainStep = step;
    this.out.writeSync(new TextEncoder().encode(`${this.label}: ${p.phase} ${p.done}/${p.total}${eta}\n`));
  };

  done(message: string): void {
    const text = (this.#tty ? "\r" + " ".repeat(90) + "\r" : "") + message + "\n";
    this.out.writeSync(new TextEncoder().encode(text));
  }
}
