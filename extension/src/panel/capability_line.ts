/** What this browser can run: WebGPU adapter, WASM threads (read by the e2e tests). */
import { h } from "../host_react.ts";
import type { Capabilities } from "../capabilities.ts";
import { WASM_THREADS_OFF } from "../../../src/inference/protocol.ts";
import { styles } from "./styles.ts";

/** Capability line with machine-readable data attributes (read by the e2e tests). */
export function CapabilityLine(props: { caps: Capabilities | null }): unknown {
  const { caps } = props;
  if (!caps) {
    return h(
      "div",
      { id: "edgeseg-capabilities", "data-state": "probing" },
      "Probing WebGPU and WASM threads…",
    );
  }
  const gpuText = caps.webgpu
    ? `WebGPU adapter: found (${caps.adapter ?? "unnamed"})`
    : "WebGPU: not available — WASM only";
  const threadText = caps.threads
    ? `WASM threads: on (${caps.threadCount})`
    : `${WASM_THREADS_OFF} (single-threaded; docs/deploy.md says which headers turn threads on)`;
  return h(
    "div",
    {
      id: "edgeseg-capabilities",
      "data-state": "ready",
      "data-webgpu": caps.webgpu ? "yes" : "no",
      "data-threads": caps.threads ? "on" : "off",
      title: caps.webgpuReason ? `WebGPU: ${caps.webgpuReason}` : undefined,
    },
    h("div", { style: styles.cap }, gpuText),
    h("div", { style: styles.cap }, threadText),
  );
}
