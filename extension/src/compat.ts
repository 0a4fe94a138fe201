/**
 * Which OHIF builds EdgeSeg runs in, checked at run time. OHIF exposes no version number outside its
 * About dialog, so the check looks at what EdgeSeg actually depends on: the host's chunk runtime (to
 * borrow its React, see host_react.ts), React 18 (OHIF 3.14 moves to React 19, whose hooks EdgeSeg's
 * build does not target) and Cornerstone3D 4.x (OHIF 3.12) or 5.x (OHIF 3.13). Tested on OHIF 3.12.10
 * and 3.13.2 (tests/e2e/deploy_test.ts).
 */
import { getReact, hostChunkArray } from "./host_react.ts";

/** Stated in README and docs/deploy.md. */
export const SUPPORTED_OHIF = ">=3.12.0 <3.14.0";
const SUPPORTED_REACT_MAJOR = 18;
const SUPPORTED_CORNERSTONE_MAJORS = [4, 5];

export interface HostCompatibility {
  ok: boolean;
  /** Each reason a part of the host does not fit, in words a PACS admin can act on. */
  problems: string[];
  react?: string;
  cornerstone?: string;
}

interface HostFacts {
  chunkRuntime?: string;
  react?: string;
  cornerstone?: string;
}

function major(version: string | undefined): number | undefined {
  const m = /^(\d+)\./.exec(version ?? "");
  return m ? Number(m[1]) : undefined;
}

/** Pure decision over the facts gathered from the page (tested without a browser). */
export function judgeHost(facts: HostFacts): HostCompatibility {
  const problems: string[] = [];
  if (!facts.chunkRuntime) {
    problems.push("the viewer has no rspack/webpack chunk runtime (not a prebuilt OHIF 3.12–3.13 build)");
  }
  if (facts.react === undefined) {
    if (facts.chunkRuntime) problems.push("the viewer's React could not be found");
  } else if (major(facts.react) !== SUPPORTED_REACT_MAJOR) {
    problems.push(`the viewer runs React ${facts.react}; EdgeSeg needs React ${SUPPORTED_REACT_MAJOR}`);
  }
  if (facts.cornerstone === undefined) {
    problems.push("window.cornerstone is missing (the cornerstone extension has not loaded)");
  } else if (!SUPPORTED_CORNERSTONE_MAJORS.includes(major(facts.cornerstone) ?? -1)) {
    problems.push(
      `the viewer runs Cornerstone3D ${facts.cornerstone}; EdgeSeg supports ${
        SUPPORTED_CORNERSTONE_MAJORS.map((m) => `${m}.x`).join(" and ")
      }`,
    );
  }
  return { ok: problems.length === 0, problems, react: facts.react, cornerstone: facts.cornerstone };
}

/** Looks at the running host. Never throws. */
export function checkHost(): HostCompatibility {
  const facts: HostFacts = { chunkRuntime: hostChunkArray()?.name };
  try {
    if (facts.chunkRuntime) facts.react = String(getReact().version);
  } catch {
    facts.react = undefined;
  }
  const cs = (globalThis as { cornerstone?: { version?: unknown } }).cornerstone;
  if (cs) facts.cornerstone = typeof cs.version === "string" ? cs.version : "unknown";
  return judgeHost(facts);
}

/** The one console line an admin looks for. */
export function compatibilityMessage(c: HostCompatibility): string {
  return `EdgeSeg supports OHIF ${SUPPORTED_OHIF}; this viewer does not fit: ${c.problems.join("; ")}.`;
}
