/**
 * The inference Web Worker: answers src/inference/protocol.ts requests by running src/segmentation's
 * `segment()` on ONNX Runtime Web (WebGPU → WebNN → WASM, bundles served at /edgeseg/ort/). Bundled on its own
 * by extension/build.ts so the page never loads onnxruntime or the segmentation core.
 */
import { serveWorker } from "../../src/inference/browser.ts";
import { segment } from "../../src/segmentation/segment.ts";
import { assetUrl } from "./base.ts";

// The Worker may run from a blob bootstrap (EdgeSeg on another origin than the page), where its
// location is a blob: URL; its own module URL still says where the runtime files are.
serveWorker(self as unknown as Parameters<typeof serveWorker>[0], segment, {
  ortBase: assetUrl("edgeseg/ort/"),
});
