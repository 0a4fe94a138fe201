/**
 * Debian Chromium as the benchmark and the tests launch it (playwright-core, never a downloaded
 * browser): its path and the one list of command-line flags verified headless on a GPU-less machine.
 * `--enable-unsafe-webgpu` is necessary and sufficient for a (SwiftShader) WebGPU adapter.
 */
import { existsSync } from "node:fs";

/** Where the Debian package "chromium" installs the browser. */
export const CHROMIUM = "/usr/bin/chromium";

/** Flags every launch gets; playwright adds none of its own (ignoreDefaultArgs: true). */
export const CHROMIUM_FLAGS: readonly string[] = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--no-default-browser-check",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-dev-shm-usage",
  "--mute-audio",
  "--remote-debugging-pipe",
];

/**
 * The command line of one launch: the shared flags, the profile folder, WebGPU when asked, then
 * `extra` (e.g. "--no-startup-window" for a browser without a persistent context).
 */
export function chromiumArgs(
  userDataDir: string,
  options: { webgpu?: boolean; extra?: string[] } = {},
): string[] {
  const args = [...CHROMIUM_FLAGS, `--user-data-dir=${userDataDir}`];
  if (options.webgpu) args.push("--enable-unsafe-webgpu");
  return [...args, ...options.extra ?? []];
}

/** Why Chromium cannot run here, or null. */
export function chromiumMissing(): string | null {
  return existsSync(CHROMIUM) ? null : `Chromium is not installed (${CHROMIUM}; Debian package "chromium")`;
}
