/**
 * External tools the tests use, and what a test does when one is missing: outside CI it is
 * skipped (registered with `Deno.test({ ignore })`, so the runner counts it as skipped, never as
 * passed) with a printed reason; in CI (`CI=true`), where `.ci/run` installs every one of them, a
 * missing tool is an error, so a broken install cannot turn into a green run.
 *
 *   testWith(["dciodvfy", "pydicom"], "the SEG is conformant", () => { ... });
 *   Deno.test({ name, ...requireTool("orthanc"), fn });
 */
import { existsSync } from "node:fs";
import { chromiumMissing } from "../../src/cli/chromium.ts";
import { findDicomWebPlugin, ORTHANC_BINARY } from "./orthanc.ts";

export type ToolName = "dciodvfy" | "pydicom" | "orthanc" | "chromium" | "dcmtk" | "nginx" | "python-onnx";

/** The Debian interpreter with pydicom and numpy (the first python3 on PATH may lack them). */
export const PYTHON = "/usr/bin/python3";

function runs(cmd: string, args: string[]): boolean {
  try {
    return new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).outputSync().code !== 127;
  } catch {
    return false;
  }
}

const DETECT: Record<ToolName, () => string | null> = {
  dciodvfy: () => runs("dciodvfy", ["-"]) ? null : `dciodvfy is not installed (Debian package "dicom3tools")`,
  pydicom: () =>
    existsSync(PYTHON) &&
      new Deno.Command(PYTHON, { args: ["-c", "import pydicom, numpy"], stdout: "null", stderr: "null" })
        .outputSync().success
      ? null
      : `pydicom and numpy are not importable by ${PYTHON} (Debian packages "python3-pydicom python3-numpy")`,
  orthanc: () => {
    if (!existsSync(ORTHANC_BINARY)) {
      return `Orthanc is not installed (${ORTHANC_BINARY}; Debian package "orthanc")`;
    }
    return findDicomWebPlugin()
      ? null
      : `the Orthanc DICOMweb plugin is not installed (libOrthancDicomWeb*; Debian package "orthanc-dicomweb")`;
  },
  chromium: chromiumMissing,
  dcmtk: () =>
    runs("dcmdump", ["--version"]) ? null : `dcmtk is not installed (dcmdump; Debian package "dcmtk")`,
  "python-onnx": () =>
    existsSync(PYTHON) &&
      new Deno.Command(PYTHON, { args: ["-c", "import onnx, numpy"], stdout: "null", stderr: "null" })
        .outputSync().success
      ? null
      : `the onnx package is not importable by ${PYTHON} (Debian packages "python3-onnx python3-numpy")`,
  nginx: () =>
    existsSync("/usr/sbin/nginx")
      ? null
      : `nginx is not installed (/usr/sbin/nginx; Debian package "nginx-light")`,
};

const known = new Map<ToolName, string | null>();
const reported = new Set<ToolName>();

/** True when `CI` is set to a true value (GitHub Actions, GitLab and most CI systems set CI=true). */
export function inCI(): boolean {
  const v = (Deno.env.get("CI") ?? "").toLowerCase();
  return v === "true" || v === "1" || v === "yes";
}

/** Why a tool is unavailable here, or null when it is available (cached; no CI rule applied). */
export function toolMissing(name: ToolName): string | null {
  if (!known.has(name)) known.set(name, DETECT[name]());
  return known.get(name)!;
}

/**
 * `{ ignore, reason }` for `Deno.test`: ignore when the tool is missing (printing "skipped: <reason>"
 * once). Under CI a missing tool throws instead: `.ci/run` installs it, so its absence is a failure.
 */
export function requireTool(name: ToolName): { ignore: boolean; reason: string } {
  const reason = toolMissing(name);
  if (reason === null) return { ignore: false, reason: "" };
  if (inCI()) {
    throw new Error(
      `CI=true and ${reason}: .ci/run installs it, so tests that need it fail instead of skipping`,
    );
  }
  if (!reported.has(name)) {
    reported.add(name);
    console.log(`skipped: ${reason}; the tests that need it are counted as skipped`);
  }
  return { ignore: true, reason };
}

/** The first missing tool's reason among `names`, or null; CI rules as in `requireTool`. */
export function missingAmong(names: ToolName[]): string | null {
  for (const n of names) {
    const r = requireTool(n);
    if (r.ignore) return r.reason;
  }
  return null;
}

/** Registers a test that needs `tools`: it runs when all are present and is skipped otherwise. */
export function testWith(tools: ToolName[], name: string, fn: () => void | Promise<void>): void {
  Deno.test({ name, ignore: missingAmong(tools) !== null, fn });
}
