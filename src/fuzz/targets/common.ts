/** What every fuzz target shares: the result types, the typed-refusal classifier, paths. */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { EdgeSegError } from "../../core/errors.ts";
import { MultipartError } from "../../server/multipart.ts";
import { Rng } from "../mutators.ts";

export const PROJECT_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
export const DATA_ROOT = join(PROJECT_ROOT, "..", "shared", "data");

/** A typed refusal: the input was rejected the way the contract says it should be. */
export interface Rejection {
  rejected: string;
}
export type RunResult = "ok" | Rejection;

export interface FuzzTarget {
  readonly name: string;
  readonly description: string;
  /** loads seeds, starts servers; returns a note on where the seeds came from */
  setup(): Promise<string>;
  /** builds input `index` deterministically from `rng` */
  input(rng: Rng, index: number): unknown;
  run(input: unknown): Promise<RunResult>;
  teardown(): Promise<void>;
}

/** Maps a thrown value to a rejection when it is one of the typed errors; rethrows anything else. */
export function classify(e: unknown): Rejection {
  if (e instanceof EdgeSegError) return { rejected: e.code };
  if (e instanceof MultipartError && e.status >= 400 && e.status < 500) {
    return { rejected: `HTTP_${e.status}_${e.code}` };
  }
  throw e;
}

export async function guarded(fn: () => Promise<unknown>): Promise<RunResult> {
  try {
    await fn();
    return "ok";
  } catch (e) {
    return classify(e);
  }
}

export function existsSync(p: string): boolean {
  try {
    Deno.statSync(p);
    return true;
  } catch {
    return false;
  }
}
