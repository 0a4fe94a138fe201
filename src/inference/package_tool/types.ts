/** What the steps of `deno task package` share: its typed error and the records of its report. */
import { EdgeSegError } from "../../core/errors.ts";
import type { ModelManifest } from "../../core/types.ts";

export class PackageError extends EdgeSegError {
  constructor(code: string, readonly field: string, message: string) {
    super(code, `${field}: ${message}`);
  }
}

export type AuditProvider = "native" | "wasm" | "webgpu" | "webgpu-jsep";

export interface AuditResult {
  provider: AuditProvider;
  ok: boolean;
  /** why it was not run (no Chromium, …) */
  skipped?: string;
  /** the node and op ORT named when it failed */
  node?: string;
  op?: string;
  error?: string;
  /** vs the native reference (or vs WASM when native did not run) */
  maxAbsDiff?: number;
  ms?: number;
}

export interface RewriteResult {
  rewrite: string;
  node: string;
  op: string;
  as?: string[];
  kept: boolean;
  maxAbsDiff?: number;
  reason?: string;
}

export interface PackageReport {
  id: string;
  out: string;
  file: string;
  sha256: string;
  bytes: number;
  externalData?: { files: string[]; tensors: number; bytes: number };
  /** ensemble members and variants the draft named, packaged beside the main file */
  companions?: {
    file: string;
    sha256: string;
    bytes: number;
    rewrites: RewriteResult[];
    audit: AuditResult[];
  }[];
  auditBefore?: AuditResult[];
  rewrites: RewriteResult[];
  audit: AuditResult[];
  providers?: ("webgpu" | "wasm")[];
  manifest: ModelManifest;
}

/** The probe window's inputs by name: float32 data and its dims. */
export type ProbeFeeds = Record<string, { data: Float32Array; dims: number[] }>;

/** What a browser audit needs: a function that runs the probe on one EP, or why it cannot. */
export interface BrowserAuditor {
  run(
    model: Uint8Array,
    feeds: ProbeFeeds,
    ep: "webgpu" | "webgpu-jsep",
  ): Promise<{ result: AuditResult; output?: Float32Array }>;
  close(): Promise<void>;
}
