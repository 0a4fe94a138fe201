/** Runs a project script as the CLI user does (`deno run -A <script> …`), for the CLI tests. */
import { join } from "node:path";
import type { Geometry, Mat3, Vec3 } from "../../src/core/types.ts";
import { writeNifti } from "../../src/io/mod.ts";
import { PROJECT_ROOT } from "./paths.ts";

/** What a finished script left: its exit code and its decoded output. */
export interface ScriptRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `script` (a path from the project root) with `args` in the project root, without colours. */
export async function runScript(script: string, args: string[]): Promise<ScriptRun> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(PROJECT_ROOT, script), ...args],
    cwd: PROJECT_ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/**
 * Writes a 24 × 20 × `slices` CT-like NIfTI to `path` that the tiny test models mark on its right half
 * (300 HU there, −200 elsewhere), and returns its geometry.
 */
export async function writeHalfBrightNifti(
  path: string,
  slices: number,
  spacing: Vec3,
  origin: Vec3 = [0, 0, 0],
): Promise<Geometry> {
  const geometry: Geometry = {
    dims: [24, 20, slices],
    spacing,
    origin,
    direction: [1, 0, 0, 0, 1, 0, 0, 0, 1] as Mat3,
  };
  const data = new Float32Array(24 * 20 * slices).map((_, i) => ((i % 24) > 12 ? 300 : -200));
  await Deno.writeFile(path, await writeNifti(geometry, data));
  return geometry;
}
