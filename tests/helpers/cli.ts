/** Runs a project script as the CLI user does (`deno run -A <script> …`), for the CLI tests. */
import { join } from "node:path";
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
