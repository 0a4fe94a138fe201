/**
 * Turns an ONNX export into a verified EdgeSeg model package (see src/inference/package_tool/build.ts).
 *
 *   deno task package <model.onnx> --id <id> [--manifest draft.json] --out models/<id>
 *                     [--no-webgpu] [--no-rewrite] [--max-bytes N] [--json]
 *
 * Prints the op audit per provider (ok / the node and op that failed / max abs diff vs onnxruntime-node),
 * the rewrites with their numeric check, and where the package was written. Exit 0 when written,
 * 1 on a typed error (the field is named), 2 on bad usage.
 */
import { EdgeSegError, ManifestError } from "../core/errors.ts";
import { startBrowserAuditor } from "../inference/browser_audit.ts";
import { chromiumMissing } from "./chromium.ts";
import { fmtAudit } from "../inference/package_tool/audit.ts";
import { buildPackage } from "../inference/package_tool/build.ts";
import { DEFAULT_MAX_MODEL_BYTES } from "../inference/package_tool/read.ts";
import { type BrowserAuditor, PackageError } from "../inference/package_tool/types.ts";

const USAGE = "usage: deno task package <model.onnx> --id <id> [--manifest draft.json] --out models/<id> " +
  "[--no-webgpu] [--no-rewrite] [--max-bytes N] [--json]";

async function main(args: string[]): Promise<number> {
  const value = (f: string) => {
    const i = args.indexOf(f);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const valued = new Set(["--id", "--manifest", "--out", "--max-bytes"]);
  const positional = args.filter((a, i) => !a.startsWith("--") && !valued.has(args[i - 1]));
  const id = value("--id"), out = value("--out") ?? (id ? `models/${id}` : undefined);
  if (args.includes("--help") || positional.length !== 1 || !id || !out) {
    console.log(USAGE);
    return args.includes("--help") ? 0 : 2;
  }
  let draft: Record<string, unknown> | undefined;
  const draftPath = value("--manifest");
  if (draftPath) {
    try {
      draft = JSON.parse(await Deno.readTextFile(draftPath));
    } catch (e) {
      throw new PackageError(
        "DRAFT_INVALID",
        "--manifest",
        `${draftPath}: ${e instanceof Error ? e.message : e}`,
      );
    }
  }
  const maxBytes = value("--max-bytes") ? Number(value("--max-bytes")) : DEFAULT_MAX_MODEL_BYTES;
  let browser: BrowserAuditor | string | null = null;
  if (!args.includes("--no-webgpu")) {
    const missing = chromiumMissing();
    browser = missing ?? await startBrowserAuditor();
    if (missing) console.log(`WebGPU audit skipped: ${missing}`);
  }
  try {
    const report = await buildPackage(positional[0], {
      id,
      out,
      draft,
      maxBytes,
      rewrite: !args.includes("--no-rewrite"),
      browser,
      log: args.includes("--json") ? undefined : (l) => console.log(l),
    });
    if (args.includes("--json")) {
      console.log(JSON.stringify({ ...report, manifest: undefined }, null, 2));
      return 0;
    }
    console.log(`op audit (${report.file}):`);
    for (const r of report.audit) console.log(`  ${fmtAudit(r)}`);
    console.log(
      `providers: ${report.providers?.join(", ") ?? "not recorded (WebGPU not audited)"}; ` +
        `sha256 ${report.sha256.slice(0, 16)}…, ${report.bytes} bytes`,
    );
    console.log(`package written to ${report.out}`);
    return 0;
  } finally {
    if (browser && typeof browser !== "string") await browser.close();
  }
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    if (e instanceof ManifestError) {
      console.error(
        `${e.name} ${e.code}: ${e.message} (expected ${e.expected ?? "?"}, found ${e.actual ?? "?"})`,
      );
    } else if (e instanceof EdgeSegError) console.error(`${e.name} ${e.code}: ${e.message}`);
    else console.error(e instanceof Error ? e.stack ?? e.message : String(e));
    Deno.exit(1);
  }
}
