/** Public surface of src/fuzz: the fuzz runner, its targets and mutators, and the loopback load check. */
export { runFuzz, runOne } from "./runner.ts";
export type { FuzzFailure, FuzzOptions, FuzzReport, TargetReport } from "./runner.ts";
export { classify, TARGETS } from "./targets.ts";
export type { FuzzTarget, RunResult } from "./targets.ts";
export * from "./mutators.ts";
