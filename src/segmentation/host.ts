/**
 * What the pipeline asks of its host, and no more: a clock and a cancellation signal. The pure core
 * is type-checked without DOM or Deno libraries (tests/pure.deno.json), so both are reached through
 * narrow structural types.
 */
import { CancelledError } from "../core/errors.ts";
import type { AbortSignalLike } from "../core/types.ts";

/** performance.now() where the host has it (browsers, Deno), else Date.now(); the core has no DOM types. */
export function now(): number {
  const perf = (globalThis as { performance?: { now(): number } }).performance;
  return perf ? perf.now() : Date.now();
}

/** Throws CancelledError, carrying the signal's reason, once `signal` is aborted. */
export function checkAborted(signal?: AbortSignalLike): void {
  if (signal?.aborted) {
    const r = signal.reason;
    throw new CancelledError(
      r instanceof Error
        ? `cancelled: ${r.message}`
        : r !== undefined
        ? `cancelled: ${String(r)}`
        : "cancelled",
    );
  }
}
