/**
 * What this browser can run: a WebGPU adapter (onnxruntime-web's WebGPU EP) and WASM threads
 * (needs cross-origin isolation for SharedArrayBuffer). The panel shows both so a user knows why a
 * model runs on the CPU.
 */

export interface Capabilities {
  webgpu: boolean;
  /** Adapter description when found, e.g. "google swiftshader (fallback)". */
  adapter?: string;
  /** Why WebGPU is unavailable, when it is. */
  webgpuReason?: string;
  threads: boolean;
  /** Threads ORT would use (navigator.hardwareConcurrency), or 1 when threads are off. */
  threadCount: number;
}

interface GpuAdapterInfoLike {
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
}
interface GpuAdapterLike {
  info?: GpuAdapterInfoLike;
  isFallbackAdapter?: boolean;
  requestAdapterInfo?: () => Promise<GpuAdapterInfoLike>;
}
interface GpuLike {
  requestAdapter(options?: Record<string, unknown>): Promise<GpuAdapterLike | null>;
}

function describeAdapter(adapter: GpuAdapterLike, info: GpuAdapterInfoLike | undefined): string {
  const parts = [info?.vendor, info?.architecture, info?.device].filter((p): p is string =>
    !!p && p.length > 0
  );
  const text = parts.length ? parts.join(" ") : (info?.description || "unnamed adapter");
  return adapter.isFallbackAdapter || info?.architecture === "swiftshader" ? `${text} (fallback)` : text;
}

/** Probes WebGPU and WASM threads. Never throws: a failed probe is reported as "not available". */
export async function detectCapabilities(): Promise<Capabilities> {
  // Typed by hand: this file is checked with Deno's libs, which describe neither the DOM's
  // crossOriginIsolated nor the browser's navigator.gpu the same way.
  const g = globalThis as unknown as {
    navigator?: { gpu?: GpuLike; hardwareConcurrency?: number };
    crossOriginIsolated?: boolean;
  };
  const nav = g.navigator;
  const threads = g.crossOriginIsolated === true && typeof SharedArrayBuffer === "function";
  const threadCount = threads ? Math.max(1, nav?.hardwareConcurrency ?? 1) : 1;
  if (!nav?.gpu) return { webgpu: false, webgpuReason: "navigator.gpu is absent", threads, threadCount };
  try {
    const adapter = await nav.gpu.requestAdapter();
    if (!adapter) return { webgpu: false, webgpuReason: "no adapter", threads, threadCount };
    const info = adapter.info ??
      (adapter.requestAdapterInfo ? await adapter.requestAdapterInfo() : undefined);
    return { webgpu: true, adapter: describeAdapter(adapter, info), threads, threadCount };
  } catch (err) {
    return {
      webgpu: false,
      webgpuReason: err instanceof Error ? err.message : String(err),
      threads,
      threadCount,
    };
  }
}
