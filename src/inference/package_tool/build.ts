/**
 * `deno task package`: an ONNX export → a verified EdgeSeg model package.
 *
 * 1. reads the graph (pure TS), inlines external data (`.onnx.data`) within a size limit (read.ts);
 * 2. drafts manifest.json from the graph (inputs, outputs, dynamic axes → window, an MC-dropout mask
 *    input) merged with an optional draft (draft.ts); validates it and checks it against the graph;
 * 3. applies exact rewrites for patterns the WebGPU EPs cannot run (rewrite.ts,
 *    src/inference/onnx_rewrite.py), keeping each only when a probe window gives the same output
 *    (≤ 1e-4) as before;
 * 4. op audit (audit.ts): creates a session and runs the probe on onnxruntime-node (reference),
 *    onnxruntime-web WASM in Deno and — when Chromium exists — WebGPU in headless Chromium (both EPs);
 * 5. writes the package folder atomically (temp folder + rename), `providers` recording what ran.
 *
 * Further files the draft names — ensemble members (`uncertainty.ensemble.members`) and variants
 * (`variants[].file`) — are read from the export's folder and go through steps 2–4 too (each checked
 * against the manifest, rewritten, audited); `providers` is then what every file ran on.
 */
import { dirname, join, resolve } from "node:path";
import { checkManifestAgainstOnnx, validateManifest } from "../../core/manifest.ts";
import { readOnnxSignature } from "../onnx_signature.ts";
import { sha256Hex } from "../package.ts";
import { audit, fmtAudit, probeFeeds } from "./audit.ts";
import { draftManifest } from "./draft.ts";
import { readModel } from "./read.ts";
import { applyKeptRewrites } from "./rewrite.ts";
import {
  type AuditResult,
  type BrowserAuditor,
  PackageError,
  type PackageReport,
  type RewriteResult,
} from "./types.ts";

export interface PackageOptions {
  id: string;
  out: string;
  draft?: Record<string, unknown>;
  maxBytes?: number;
  rewrite?: boolean;
  /** the WebGPU auditor, or why there is none */
  browser: BrowserAuditor | string | null;
  log?: (line: string) => void;
}

export async function buildPackage(modelPath: string, opts: PackageOptions): Promise<PackageReport> {
  const log = opts.log ?? (() => {});
  const file = `${opts.id}.onnx`;
  const { bytes: original, externalData } = await readModel(modelPath, opts.maxBytes);
  if (externalData) {
    log(`external data: ${externalData.tensors} tensors from ${externalData.files.join(", ")} inlined`);
  }
  const sig = readOnnxSignature(original);
  const drafted = draftManifest(sig, opts.id, file, opts.draft);
  const companions = await readCompanions(drafted, file, dirname(modelPath), opts.maxBytes);
  drafted.files = { [file]: { sha256: "0".repeat(64), bytes: original.length } };
  for (const c of companions) {
    (drafted.files as Record<string, unknown>)[c.file] = { sha256: "0".repeat(64), bytes: c.bytes.length };
  }
  const manifest = validateManifest(drafted);
  checkManifestAgainstOnnx(manifest, sig, file);
  for (const c of companions) checkManifestAgainstOnnx(manifest, readOnnxSignature(c.bytes), c.file);
  const feeds = probeFeeds(manifest);

  const before = await audit(original, feeds, opts.browser);
  for (const r of before.results) log(`before rewrites: ${fmtAudit(r)}`);
  if (!before.reference) {
    const r = before.results[0];
    throw new PackageError(
      "MODEL_DOES_NOT_RUN",
      "model",
      `neither onnxruntime-node nor WASM runs the probe window: ${r.error}`,
    );
  }

  const { model, rewrites } = opts.rewrite !== false
    ? await applyKeptRewrites(original, feeds, log)
    : { model: original, rewrites: [] };
  const after = model === original ? before : await audit(model, feeds, opts.browser);
  if (after !== before) { for (const r of after.results) log(`after rewrites: ${fmtAudit(r)}`); }
  let providers = browserProviders(after.results);

  const written: CompanionReport[] = [];
  for (const c of companions) {
    const { model: cm, rewrites: cr } = opts.rewrite !== false
      ? await applyKeptRewrites(c.bytes, feeds, log)
      : { model: c.bytes, rewrites: [] };
    const ca = await audit(cm, feeds, opts.browser);
    for (const r of ca.results) log(`${c.file}: ${fmtAudit(r)}`);
    if (!ca.reference) {
      throw new PackageError(
        "MODEL_DOES_NOT_RUN",
        c.field,
        `${c.file}: neither onnxruntime-node nor WASM runs the probe window: ${ca.results[0].error}`,
      );
    }
    const cp = browserProviders(ca.results);
    providers = providers && cp ? providers.filter((p) => cp.includes(p)) : undefined;
    if (providers && providers.length === 0) {
      throw new PackageError("MODEL_DOES_NOT_RUN", "providers", "no browser provider runs every file");
    }
    written.push({
      file: c.file,
      sha256: await sha256Hex(cm),
      bytes: cm.length,
      rewrites: cr,
      audit: ca.results,
      model: cm,
    });
  }

  // final manifest: real sha256/bytes, providers; validated and checked against the final graph
  const sha256 = await sha256Hex(model);
  const files: Record<string, { sha256: string; bytes: number }> = {
    [file]: { sha256, bytes: model.length },
  };
  for (const c of written) files[c.file] = { sha256: c.sha256, bytes: c.bytes };
  const finalJson = { ...drafted, files } as Record<string, unknown>;
  if (providers) finalJson.providers = providers;
  else delete finalJson.providers;
  const finalManifest = validateManifest(finalJson);
  checkManifestAgainstOnnx(finalManifest, readOnnxSignature(model), file);
  for (const c of written) checkManifestAgainstOnnx(finalManifest, readOnnxSignature(c.model), c.file);

  const report: PackageReport = {
    id: opts.id,
    out: resolve(opts.out),
    file,
    sha256,
    bytes: model.length,
    ...(externalData ? { externalData } : {}),
    ...(model !== original ? { auditBefore: before.results } : {}),
    rewrites,
    audit: after.results,
    ...(providers ? { providers } : {}),
    ...(written.length ? { companions: written.map(({ model: _, ...r }) => r) } : {}),
    manifest: finalManifest,
  };
  await writePackageFolder(report, model, finalJson, written);
  return report;
}

interface CompanionReport {
  file: string;
  sha256: string;
  bytes: number;
  rewrites: RewriteResult[];
  audit: AuditResult[];
  model: Uint8Array;
}

/**
 * The further ONNX files the draft names (ensemble members, variants), read from `dir`: plain
 * `.onnx` names other than the main file, each once.
 */
async function readCompanions(
  drafted: Record<string, unknown>,
  main: string,
  dir: string,
  maxBytes: number | undefined,
): Promise<{ file: string; field: string; bytes: Uint8Array }[]> {
  const named: { file: unknown; field: string }[] = [];
  const unc = drafted.uncertainty as { ensemble?: { members?: unknown } } | undefined;
  const members = unc?.ensemble?.members;
  if (Array.isArray(members)) {
    members.forEach((f, i) => named.push({ file: f, field: `uncertainty.ensemble.members[${i}]` }));
  }
  const variants = drafted.variants;
  if (Array.isArray(variants)) {
    variants.forEach((v, i) =>
      named.push({ file: (v as { file?: unknown } | null)?.file, field: `variants[${i}].file` })
    );
  }
  const out: { file: string; field: string; bytes: Uint8Array }[] = [];
  for (const { file, field } of named) {
    if (typeof file !== "string" || !/^[^/\\]+\.onnx$/.test(file) || file === main) {
      throw new PackageError(
        "DRAFT_INVALID",
        field,
        `expected a plain .onnx file name beside the export other than ${main}, found ${
          JSON.stringify(file)
        }`,
      );
    }
    if (out.some((c) => c.file === file)) continue;
    const stat = await Deno.stat(join(dir, file)).catch(() => null);
    if (!stat?.isFile) {
      throw new PackageError("COMPANION_MISSING", field, `${file} is not in ${dir} (beside the export)`);
    }
    out.push({ file, field, bytes: (await readModel(join(dir, file), maxBytes)).bytes });
  }
  return out;
}

/**
 * The browser providers the manifest records: those whose probe ran within 1e-3 of the reference, or
 * undefined when WebGPU was not audited (then WASM must at least run). Throws when none ran.
 */
function browserProviders(results: AuditResult[]): ("webgpu" | "wasm")[] | undefined {
  const byName = new Map(results.map((r) => [r.provider, r]));
  const webgpu = byName.get("webgpu")!;
  const wasm = byName.get("wasm")!;
  if (webgpu.skipped) {
    if (!wasm.ok) {
      throw new PackageError("MODEL_DOES_NOT_RUN", "providers", `WASM cannot run the model: ${wasm.error}`);
    }
    return undefined;
  }
  const providers: ("webgpu" | "wasm")[] = [];
  const okWithin = (r: AuditResult, tol: number) =>
    r.ok && (r.maxAbsDiff === undefined || r.maxAbsDiff <= tol);
  if (okWithin(webgpu, 1e-3)) providers.push("webgpu");
  if (okWithin(wasm, 1e-3)) providers.push("wasm");
  if (!providers.length) {
    throw new PackageError("MODEL_DOES_NOT_RUN", "providers", "the probe window ran on no browser provider");
  }
  return providers;
}

/** Atomic write: a temp folder beside the destination, renamed into place. */
async function writePackageFolder(
  report: PackageReport,
  model: Uint8Array,
  manifestJson: Record<string, unknown>,
  companions: { file: string; model: Uint8Array }[] = [],
): Promise<void> {
  const out = report.out;
  await Deno.mkdir(dirname(out), { recursive: true });
  const tmp = await Deno.makeTempDir({ dir: dirname(out), prefix: `.${report.id}.tmp-` });
  try {
    await Deno.writeFile(join(tmp, report.file), model);
    for (const c of companions) await Deno.writeFile(join(tmp, c.file), c.model);
    await Deno.writeTextFile(join(tmp, "manifest.json"), JSON.stringify(manifestJson, null, 2) + "\n");
    await Deno.writeTextFile(
      join(tmp, "package-report.json"),
      JSON.stringify({ ...report, manifest: undefined, out: undefined }, null, 2) + "\n",
    );
    await Deno.remove(out, { recursive: true }).catch(() => {});
    await Deno.rename(tmp, out);
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
}
