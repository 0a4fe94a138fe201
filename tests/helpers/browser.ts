/**
 * Whether the tests can use Chromium. The browser itself is launched by the viewer harness
 * (src/harness/browser.ts); here only the tests' rule for a missing Chromium applies.
 */
import { requireTool } from "./tools.ts";

/** Why Chromium cannot run here, or null; under CI a missing Chromium throws (tests/helpers/tools.ts). */
export function chromiumMissing(): string | null {
  const r = requireTool("chromium");
  return r.ignore ? r.reason : null;
}
