/**
 * The edge server's route table, after the per-request guards (handler.ts) have passed: CORS
 * preflights for the shared assets, `--plugin-only`'s refusals, DICOMweb (the embedded store or the
 * PACS proxy), batch enqueue, `/app-config.js`, the model index, the plugin and model folders,
 * onnxruntime-web's runtime files and the OHIF viewer with its client-side routes.
 */
import { isSharedAsset, preflight } from "./cors.ts";
import { type DicomWebOptions, errorResponse, handleDicomWeb } from "./dicomweb.ts";
import { modelPathServed } from "./guard.ts";
import { modelIndex } from "./model_index.ts";
import { proxyToPacs } from "./proxy.ts";
import { resolveStatic, serveFile } from "./static.ts";
import type { DicomStore } from "./store.ts";

/** where onnxruntime-web's runtime files are served (src/inference/browser.ts uses the same) */
export const ORT_PREFIX = "/edgeseg/ort/";
const ORT_EXTENSIONS = /\.(mjs|wasm|js)$/;

/** What the routes serve, fixed when the server starts. */
export interface RouteTable {
  pluginOnly: boolean;
  /** proxy `/dicom-web/*` here instead of the store */
  pacsUrl?: string;
  proxyTimeoutMs: number;
  /** the embedded store (absent in proxy and plugin-only mode) */
  store?: DicomStore;
  dicomWeb: DicomWebOptions;
  enqueue?: { handle(req: Request): Promise<Response> };
  /** the generated `/app-config.js` */
  appConfig: string;
  pluginsDir: string;
  modelsDir: string;
  /** onnxruntime-web's dist folder */
  ortDir: string;
  ohifDist?: string;
  allowOrigins: ReadonlySet<string>;
  log: (line: string) => void;
}

/** The function that answers a request the guards let through. */
export function createRouter(t: RouteTable): (req: Request, url: URL) => Promise<Response> {
  async function route(req: Request, url: URL): Promise<Response> {
    const p = url.pathname;
    if (req.method === "OPTIONS" && isSharedAsset(p) && req.headers.has("access-control-request-method")) {
      return preflight(req, t.allowOrigins);
    }
    if (t.pluginOnly && !isSharedAsset(p)) {
      await req.body?.cancel().catch(() => {});
      return errorResponse(
        404,
        "PLUGIN_ONLY",
        `this server runs with --plugin-only and serves only /plugins/, /models/ and /edgeseg/ort/, not ${p}`,
      );
    }
    if (p === "/dicom-web" || p.startsWith("/dicom-web/")) {
      const sub = p.slice("/dicom-web".length) || "/";
      if (t.pacsUrl) return proxyToPacs(req, url, sub, t.pacsUrl, t.proxyTimeoutMs);
      return handleDicomWeb(t.store!, req, sub, t.dicomWeb);
    }
    if (p === "/edgeseg/enqueue" && t.enqueue && !t.pluginOnly) return t.enqueue.handle(req);
    if (req.method !== "GET" && req.method !== "HEAD") {
      await req.body?.cancel().catch(() => {});
      return errorResponse(405, "METHOD_NOT_ALLOWED", `${req.method} is only accepted under /dicom-web/`, {
        allow: "GET, HEAD",
      });
    }
    if (p === "/app-config.js") {
      return new Response(t.appConfig, {
        headers: { "content-type": "text/javascript; charset=utf-8", "cache-control": "no-cache" },
      });
    }
    if (p === "/models/index.json") {
      const body = JSON.stringify(await modelIndex(t.modelsDir, t.log));
      return new Response(body, {
        headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-cache" },
      });
    }
    const mounts: [string, string][] = [["/plugins/", t.pluginsDir], ["/models/", t.modelsDir]];
    for (const [prefix, root] of mounts) {
      if (!p.startsWith(prefix)) continue;
      if (prefix === "/models/" && !modelPathServed(p.slice(prefix.length))) {
        return errorResponse(404, "NOT_FOUND", `no model package file at ${p}`);
      }
      return staticOr404(req, root, p.slice(prefix.length));
    }
    // Our onnxruntime-web lives under its own prefix: OHIF ships an older onnxruntime under /ort/
    // for its own tools, and its JS glue must keep getting its own WASM files.
    if (p.startsWith(ORT_PREFIX)) {
      const rest = p.slice(ORT_PREFIX.length);
      if (ORT_EXTENSIONS.test(rest) && !rest.includes("/") && !rest.includes("%2")) {
        const r = await resolveStatic(t.ortDir, rest);
        if (r.kind === "file") return serveFile(req, r.path, r.stat);
      }
      return errorResponse(404, "NOT_FOUND", `no onnxruntime-web runtime file ${JSON.stringify(rest)}`);
    }
    return viewer(req, p);
  }

  /** The OHIF dist: its files, index.html for client-side routes, 404 for missing files. */
  async function viewer(req: Request, p: string): Promise<Response> {
    if (!t.ohifDist) {
      return errorResponse(
        404,
        "NO_VIEWER",
        "the OHIF viewer is not installed here (run deno task fetch-ohif)",
      );
    }
    const r = await resolveStatic(t.ohifDist, p.slice(1));
    if (r.kind === "file") {
      if (p === "/index.html") return serveFile(req, r.path, r.stat, { cacheControl: "no-cache" });
      return serveFile(req, r.path, r.stat);
    }
    if (r.kind === "forbidden") return errorResponse(400, "BAD_PATH", `rejected path: ${r.reason}`);
    // SPA fallback: client-side routes (no file extension) get index.html; missing files 404.
    const last = p.split("/").pop() ?? "";
    if (!last.includes(".")) {
      const index = await resolveStatic(t.ohifDist, "index.html");
      if (index.kind === "file") return serveFile(req, index.path, index.stat, { cacheControl: "no-cache" });
    }
    return errorResponse(404, "NOT_FOUND", `no file at ${p}`);
  }

  return route;
}

async function staticOr404(req: Request, root: string, rest: string): Promise<Response> {
  const r = await resolveStatic(root, rest);
  if (r.kind === "file") return serveFile(req, r.path, r.stat);
  if (r.kind === "forbidden") return errorResponse(400, "BAD_PATH", `rejected path: ${r.reason}`);
  return errorResponse(404, "NOT_FOUND", `no file at ${new URL(req.url).pathname}`);
}
