/** `/models/index.json`: the model packages a server offers, as the run contract's `ModelSummary`. */
import { join } from "node:path";
import { type ModelSummary, summarizeManifest } from "../core/contract.ts";
import { validateManifest } from "../core/manifest.ts";

/**
 * Lists `models/<id>/manifest.json` as the run contract's `ModelSummary` (src/core/contract.ts),
 * each built from a manifest `validateManifest` accepted; `training/`, folders without a manifest and
 * manifests that fail validation are left out (the last with a log line naming the field). A package's
 * `eval.json` (deno task card-eval), when present, gives its variants their validated figures.
 */
export async function modelIndex(
  modelsDir: string,
  log: (l: string) => void = () => {},
): Promise<{ models: ModelSummary[] }> {
  const models: ModelSummary[] = [];
  let entries: Deno.DirEntry[] = [];
  try {
    entries = await Array.fromAsync(Deno.readDir(modelsDir));
  } catch {
    return { models };
  }
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    if (!e.isDirectory || e.name === "training" || e.name.startsWith(".")) continue;
    let text: string;
    try {
      text = await Deno.readTextFile(join(modelsDir, e.name, "manifest.json"));
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) {
        log(`models: skipping ${e.name}: ${(err as Error).message}`);
      }
      continue;
    }
    try {
      // Package URLs are relative to the index itself, so the index works under any prefix (reverse
      // proxy, a copy in the host's static files); the extension resolves them against its URL.
      models.push(
        summarizeManifest(
          validateManifest(JSON.parse(text)),
          e.name,
          await evalJsonOf(modelsDir, e.name, log),
        ),
      );
    } catch (err) {
      log(`models: skipping ${e.name}: ${(err as Error).message}`);
    }
  }
  return { models };
}

/** The package's eval.json, or undefined when it has none or it is not JSON (then logged; the index goes on). */
async function evalJsonOf(modelsDir: string, folder: string, log: (l: string) => void): Promise<unknown> {
  try {
    return JSON.parse(await Deno.readTextFile(join(modelsDir, folder, "eval.json")));
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) {
      log(`models: ${folder}/eval.json ignored: ${(err as Error).message}`);
    }
    return undefined;
  }
}
