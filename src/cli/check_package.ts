/**
 * Checks a model package the way EdgeSeg will load it, and optionally fills in `manifest.files`.
 *
 *   deno task check-package <package folder | id> [--write-files] [--variant id] [--no-run]
 *
 * 1. validates manifest.json (every field; errors name the field, what was expected and what was found);
 * 2. with --write-files, first computes sha256 and size of every *.onnx file in the folder and writes
 *    them into manifest.files (the only edit it makes);
 * 3. verifies every listed file's size and sha256 and checks the manifest against each ONNX graph;
 * 4. unless --no-run, runs one window of zeros (and one MC-dropout pass, if declared) on
 *    onnxruntime-web WASM and checks the output shape.
 * Exit status 0 when the package is usable, 1 otherwise (the error is printed).
 */
import { join, relative } from "node:path";
import { EdgeSegError } from "../core/errors.ts";
import { loadModel, resolveModelLocation } from "../inference/deno.ts";
import { sha256Hex } from "../inference/package.ts";
import { windowShapeOf } from "../inference/runtime.ts";

async function writeFiles(dir: string): Promise<string[]> {
  const path = join(dir, "manifest.json");
  const manifest = JSON.parse(await Deno.readTextFile(path));
  const files: Record<string, { sha256: string; bytes: number }> = {};
  for await (const e of Deno.readDir(dir)) {
    if (!e.isFile || !e.name.endsWith(".onnx")) continue;
    const bytes = await Deno.readFile(join(dir, e.name));
    files[e.name] = { sha256: await sha256Hex(bytes), bytes: bytes.length };
  }
  manifest.files = Object.fromEntries(Object.entries(files).sort(([a], [b]) => a.localeCompare(b)));
  await Deno.writeTextFile(path, JSON.stringify(manifest, null, 2) + "\n");
  return Object.keys(files);
}

async function main(): Promise<number> {
  const variantIdx = Deno.args.indexOf("--variant");
  const variant = variantIdx >= 0 ? Deno.args[variantIdx + 1] : undefined;
  // the value after --variant is not the package
  const args = Deno.args.filter((a, i) => !a.startsWith("--") && !(variantIdx >= 0 && i === variantIdx + 1));
  const flag = (f: string) => Deno.args.includes(f);
  if (args.length !== 1 || flag("--help")) {
    console.log(
      "usage: deno task check-package <package folder | id> [--write-files] [--variant id] [--no-run]",
    );
    return args.length === 1 ? 0 : 2;
  }
  const dir = await resolveModelLocation(args[0]);
  if (flag("--write-files")) console.log(`manifest.files ← ${(await writeFiles(dir)).join(", ")}`);
  const { pkg, runtime } = await loadModel(dir, { variant, numThreads: 1 });
  try {
    const m = pkg.manifest;
    console.log(
      `ok  manifest ${m.id} ${m.version}: ${m.spatial.mode}, window ${m.spatial.window.join("×")}, ` +
        `${m.labels.length} label(s), activation ${m.activation}`,
    );
    for (const f of [pkg.main, ...pkg.members]) {
      console.log(
        `ok  ${f.file}: ${f.bytes.length} bytes, sha256 ${
          f.sha256.slice(0, 16)
        }…, opset ${f.signature.opset}, ` +
          `inputs ${
            f.signature.inputs.map((v) => `${v.name}[${(v.shape ?? []).map((d) => d ?? "?").join(",")}]`)
              .join(" ")
          }`,
      );
    }
    if (!flag("--no-run")) {
      const shape = windowShapeOf(m, 1);
      const x = new Float32Array(shape.reduce((a, b) => a * b, 1));
      for (const [i, predict] of runtime.members.entries()) {
        const y = await predict(x, shape);
        const finite = y.every(Number.isFinite);
        if (!finite) {
          throw new EdgeSegError(
            "NON_FINITE",
            `member ${i} produced NaN or infinite values on a zero window`,
          );
        }
        console.log(
          `ok  member ${i} ran one ${
            shape.join("×")
          } window on ${runtime.provider}: ${y.length} finite outputs`,
        );
      }
      const mc = m.uncertainty?.mcDropout;
      if (mc) {
        const mask = new Float32Array(mc.shape.reduce((a, b) => a * b, 1)).map((
          _,
          i,
        ) => (i % 2 ? 0 : 1 / (1 - mc.rate)));
        const y = await runtime.members[0](x, shape, undefined, {
          [mc.input]: { data: mask, shape: mc.shape },
        });
        console.log(
          `ok  MC-dropout mask "${mc.input}" [${mc.shape.join(",")}] accepted (${y.length} outputs)`,
        );
      }
    }
    console.log(`package ${relative(Deno.cwd(), dir) || "."} is usable`);
    return 0;
  } finally {
    await runtime.release();
  }
}

if (import.meta.main) {
  try {
    Deno.exit(await main());
  } catch (e) {
    if (e instanceof EdgeSegError) console.error(`${e.name} ${e.code}: ${e.message}`);
    else console.error(e instanceof Error ? e.message : String(e));
    Deno.exit(1);
  }
}
