/**
 * The host viewer's own React (OHIF 3.12 and 3.13 bundle React 18.3.1 and do not expose it).
 *
 * A second bundled React crashes on hooks ("Cannot read properties of null (reading 'useState')")
 * because the host renderer only installs its dispatcher into its own copy. So we borrow the host's
 * copy from the rspack (3.13) or webpack (3.12) chunk runtime: pushing a fake chunk with a runtime callback hands us the host's
 * `__webpack_require__`, and React is the one cached module whose factory source exports both
 * `useState` and `createElement`. The lookup is lazy (first render), costs ~4 ms and has no side
 * effects because the module is already evaluated. This depends on the pinned OHIF build; the e2e
 * tests pin it.
 */
import { ViewerError } from "../../src/core/errors.ts";

/** The part of React's API the extension uses. */
export interface HostReact {
  createElement(type: unknown, props?: Record<string, unknown> | null, ...children: unknown[]): unknown;
  useState<T>(initial: T | (() => T)): [T, (next: T | ((prev: T) => T)) => void];
  useEffect(effect: () => void | (() => void), deps?: unknown[]): void;
  useRef<T>(initial: T): { current: T };
  useMemo<T>(factory: () => T, deps: unknown[]): T;
  useCallback<T extends (...args: never[]) => unknown>(fn: T, deps: unknown[]): T;
  Fragment: unknown;
  version: string;
}

type ModuleFactory = (...args: unknown[]) => unknown;
interface RspackRequire {
  (id: string): unknown;
  m: Record<string, ModuleFactory>;
}

let cachedRequire: RspackRequire | undefined;
const cachedModules = new Map<string, unknown>();

interface ChunkArray {
  push(chunk: unknown): unknown;
}

/** The host's chunk array: `rspackChunk` in OHIF 3.13 (rspack), `webpackChunk` in 3.12 (webpack 5). */
export function hostChunkArray(): { name: string; chunks: ChunkArray } | undefined {
  const g = globalThis as unknown as Record<string, ChunkArray | undefined>;
  for (const name of ["rspackChunk", "webpackChunk"]) {
    const chunks = g[name];
    if (chunks && typeof chunks.push === "function") return { name, chunks };
  }
  return undefined;
}

function hostRequire(): RspackRequire {
  if (cachedRequire) return cachedRequire;
  const host = hostChunkArray();
  if (!host) {
    throw new ViewerError(
      "HOST_RUNTIME",
      "EdgeSeg: the host viewer's chunk runtime (globalThis.rspackChunk or webpackChunk) was not found; " +
        "expected a prebuilt OHIF 3.12 or 3.13 viewer",
    );
  }
  let captured: RspackRequire | undefined;
  host.chunks.push([[`edgeseg-probe-${Date.now()}`], {}, (req: RspackRequire) => {
    captured = req;
  }]);
  if (!captured || typeof captured.m !== "object") {
    throw new ViewerError(
      "HOST_RUNTIME",
      `EdgeSeg: the host's ${host.name} runtime did not hand out its require function; expected OHIF 3.12 or 3.13`,
    );
  }
  cachedRequire = captured;
  return captured;
}

/** Finds and requires the host module whose factory source contains every marker. */
function findHostModule(key: string, markers: string[]): unknown {
  const hit = cachedModules.get(key);
  if (hit) return hit;
  const req = hostRequire();
  for (const id of Object.keys(req.m)) {
    const src = Function.prototype.toString.call(req.m[id]);
    // React's CJS build is ~10 kB minified; the size bound skips the large bundles quickly.
    if (src.length < 20000 && markers.every((m) => src.includes(m))) {
      const mod = req(id);
      cachedModules.set(key, mod);
      return mod;
    }
  }
  throw new ViewerError(
    "HOST_MODULE",
    `EdgeSeg: the host's ${key} module was not found in the viewer bundle (markers ${markers.join(", ")})`,
  );
}

/** The host's React module. Throws a descriptive error when the host is not the expected OHIF build. */
export function getReact(): HostReact {
  return findHostModule("react", ["exports.useState=", "exports.createElement="]) as HostReact;
}

/** The host's `react/jsx-runtime` (used only by the `react/jsx-runtime` alias for bundled dependencies). */
export function getJsxRuntime(): Record<string, unknown> {
  return findHostModule("react/jsx-runtime", ["exports.jsx=", "exports.jsxs="]) as Record<string, unknown>;
}

/** `React.createElement`, resolved lazily. Typed loosely on purpose: elements are opaque to our code. */
export function h(type: unknown, props?: Record<string, unknown> | null, ...children: unknown[]): unknown {
  return getReact().createElement(type, props ?? null, ...children);
}

export const useState = <T>(initial: T | (() => T)): [T, (next: T | ((prev: T) => T)) => void] =>
  getReact().useState<T>(initial);
export const useEffect = (effect: () => void | (() => void), deps?: unknown[]): void =>
  getReact().useEffect(effect, deps);
export const useRef = <T>(initial: T): { current: T } => getReact().useRef<T>(initial);
