/** A one-line progress bar on stderr for long CLI work; silent when stderr is not a terminal. */
import type { Progress } from "../core/types.ts";

export class ProgressBar {
  #last = 0;
  #started = performance.now();
  readonly #tty: boolean;
  constructor(private readonly label: string, private readonly out = Deno.stderr) {
    this.#tty = Deno.stderr.isTerminal();
  }

  update = (p: Progress): void => {
    const now = performance.now();
    if (now - this.#last < 100 && p.done < p.total) return;
    this.#last = now;
    const frac = p.total > 0 ? Math.min(1, p.done / p.total) : 0;
    const width = 24;
    const filled = Math.round(frac * width);
    const elapsed = (now - this.#started) / 1000;
    const eta = frac > 0.02 && frac < 1 ? ` ETA ${Math.round(elapsed / frac - elapsed)}s` : "";
    const line = `${this.label} [${"#".repeat(filled)}${
      ".".repeat(width - filled)
    }] ${p.phase} ${p.done}/${p.total}${eta}`;
    const text = this.#tty ? `\r${line.padEnd(90)}` : "";
    if (text) this.out.writeSync(new TextEncoder().encode(text));
  };

  done(message: string): void {
    const text = (this.#tty ? "\r" + " ".repeat(90) + "\r" : "") + message + "\n";
    this.out.writeSync(new TextEncoder().encode(text));
  }
}
