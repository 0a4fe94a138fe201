/// <reference lib="dom" />
/**
 * Debian Chromium driven by playwright-core (never a downloaded browser), launched with the project's
 * one list of flags (src/cli/chromium.ts). `webgpu: true` adds `--enable-unsafe-webgpu`, which is
 * necessary and sufficient for a (SwiftShader) WebGPU adapter.
 */
import { chromium } from "playwright-core";
import type { BrowserContext, Page } from "playwright-core";
import { join } from "node:path";
import { CHROMIUM, chromiumArgs, chromiumMissing } from "../cli/chromium.ts";
import { artifactsDir } from "./paths.ts";

export interface Browser {
  context: BrowserContext;
  page: Page;
  /** Console errors and page errors seen so far (for failure messages). */
  errors: string[];
  close(): Promise<void>;
}

/** Launches Chromium with a fresh profile; `close()` also removes the profile. */
export async function launchBrowser(
  options: { webgpu?: boolean; width?: number; height?: number } = {},
): Promise<Browser> {
  const missing = chromiumMissing();
  if (missing) throw new Error(missing);
  const userDataDir = await Deno.makeTempDir({ prefix: "edgeseg-chromium-" });
  const width = options.width ?? 1400;
  const height = options.height ?? 900;
  const args = chromiumArgs(userDataDir, {
    webgpu: options.webgpu,
    extra: [`--window-size=${width},${height}`, "about:blank"],
  });
  // ignoreDefaultArgs: true so playwright adds none of its own flags; we pass the pipe flag ourselves.
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    ignoreDefaultArgs: true,
    args,
    viewport: { width, height },
    timeout: 60000,
  });
  const page = context.pages()[0] ?? await context.newPage();
  const errors: string[] = [];
  page.on("console", (msg) => {
    if (msg.type() === "error") errors.push(msg.text());
  });
  page.on("pageerror", (err) => errors.push(String(err)));
  return {
    context,
    page,
    errors,
    async close() {
      await context.close().catch(() => {});
      await Deno.remove(userDataDir, { recursive: true }).catch(() => {});
    },
  };
}

/**
 * Waits until a canvas matching `selector` has more than `minFraction` of sampled pixels that differ
 * from its top-left (background) pixel. The predicate is synchronous on purpose: waitForFunction
 * treats a returned Promise as truthy at once. Returns the measured fraction.
 */
export async function waitForCanvasContent(
  page: Page,
  selector = "canvas.cornerstone-canvas",
  options: { minFraction?: number; timeoutMs?: number } = {},
): Promise<number> {
  const minFraction = options.minFraction ?? 0.05;
  const handle = await page.waitForFunction(
    ({ selector, minFraction }) => {
      for (const canvas of Array.from(document.querySelectorAll(selector)) as HTMLCanvasElement[]) {
        if (canvas.width < 16 || canvas.height < 16) continue;
        // Cornerstone draws with WebGL into an offscreen canvas and copies into this 2D canvas.
        const ctx = canvas.getContext("2d", { willReadFrequently: true });
        if (!ctx) continue;
        const { data } = ctx.getImageData(0, 0, canvas.width, canvas.height);
        const bg = [data[0], data[1], data[2]];
        let differ = 0, total = 0;
        const stride = 4 * 7; // every 7th pixel is plenty and keeps the poll cheap
        for (let i = 0; i < data.length; i += stride) {
          total++;
          if (
            Math.abs(data[i] - bg[0]) + Math.abs(data[i + 1] - bg[1]) + Math.abs(data[i + 2] - bg[2]) > 24
          ) differ++;
        }
        const fraction = differ / Math.max(1, total);
        if (fraction > minFraction) return fraction;
      }
      return 0;
    },
    { selector, minFraction },
    { timeout: options.timeoutMs ?? 60000, polling: 250 },
  );
  return Number(await handle.jsonValue());
}

/** Saves a full-page screenshot to artifacts/e2e/<name>.png and returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  const dir = artifactsDir("e2e");
  await Deno.mkdir(dir, { recursive: true });
  const path = join(dir, `${name}.png`);
  await page.screenshot({ path, fullPage: false });
  return path;
}
