/**
 * The EdgeSeg edge server: the prebuilt OHIF viewer with our `app-config.js`, the extension bundles
 * (`/plugins/*`), model packages (`/models/*`), onnxruntime-web's runtime files (`/edgeseg/ort/*`), and either
 * the embedded file-backed DICOMweb store or a same-origin proxy to a PACS at `/dicom-web/`.
 *
 * Every response carries COOP/COEP/CORP (cross-origin isolation, so WASM threads work), nosniff, a
 * no-referrer policy and a CSP that still lets the viewer run. One log line per request.
 */
import { join, resolve } from "node:path";
import { type ModelSummary, summarizeManifest } from "../core/contract.ts";
import { validateManifest } from "../core/manifest.ts";
import { phantomSeries } from "../dicom/phantom.ts";
import { errorResponse, handleDicomWeb } from "./dicomweb.ts";
import {
  ConcurrencyGate,
  hostAllowed,
  hostPolicy,
  isLoopbackIp,
  isWriteMethod,
  modelPathServed,
  normaliseProxyPath,
  ownOrigins,
  proxyRequestHeaders,
  proxyResponseHeaders,
  rawPathProblem,
  writeAllowed,
} from "./guard.ts";
import { PROJECT_ROOT } from "./ohif.ts";
import { corsHeadersFor, isSharedAsset, preflight } from "./cors.ts";
import { resolveStatic, serveFile } from "./static.ts";
import { DicomStore } from "./store.ts";

export { ensureOhif, OHIF_OLDEST_TESTED, OHIF_VERSION, ohifDistPath, PROJECT_ROOT } from "./ohif.ts";
export { DicomStore } from "./store.ts";
export type { InstanceRecord } from "./dicomfile.ts";

export interface ServerOptions {
  /** 0 = ephemeral; default 8042 */
  port?: number;
  /** default "127.0.0.1" */
  hostname?: string;
  /** folder of the embedded DICOM store (created if missing) */
  dataDir: string;
  /** proxy `/dicom-web/*` to this DICOMweb root (e.g. `http://127.0.0.1:8043/dicom-web`) instead of the store */
  pacsUrl?: string;
  /** STOW body limit in bytes (default 1 GiB) */
  maxUploadBytes?: number;
  /** STOW requests stored at once (default 4); more wait in line */
  maxConcurrentStows?: number;
  /** STOW requests that may wait for a slot (default 32); beyond that, 503 with Retry-After */
  maxQueuedStows?: number;
  /**
   * Host names (optionally `name:port`) the server also answers to, besides its bind address (and
   * `localhost`/127.0.0.1/[::1] when that is loopback): the name of a reverse proxy in front of it.
   * Requests for any other Host get 421 (DNS rebinding).
   */
  publicHosts?: string[];
  /** the OHIF dist folder; without it the viewer routes answer 404 with a hint */
  ohifDist?: string;
  /** default `<project>/build/plugins` */
  pluginsDir?: string;
  /** default `<project>/models` */
  modelsDir?: string;
  /** seed the synthetic phantom study into an empty store (default true) */
  seed?: boolean;
  /** when set, STOW-RS needs `Authorization: Bearer <token>` */
  stowToken?: string;
  /** time limit for receiving a STOW body in ms (default 10 min; 408 after it) */
  uploadTimeoutMs?: number;
  /** per-request time limit for proxied PACS requests in ms (default 120 s) */
  proxyTimeoutMs?: number;
  /** how long close() waits for in-flight requests (default 5 s) */
  closeTimeoutMs?: number;
  /**
   * Origins (scheme://host[:port], see cors.ts parseAllowedOrigins) of OHIF deployments that load
   * EdgeSeg from this server: they may read the plugin, models and runtime files, nothing else.
   */
  allowOrigins?: ReadonlySet<string>;
  /** serve only the plugin, the models and the runtime files: no viewer, no store, no proxy */
  pluginOnly?: boolean;
  /** POST /edgeseg/enqueue for batch jobs (enqueue.ts); absent = the route does not exist */
  enqueue?: { handle(req: Request): Promise<Response> };
  log?: (line: string) => void;
}

export interface RunningServer {
  url: string;
  port: number;
  /** the embedded store (undefined in proxy mode) */
  store?: DicomStore;
  close(): Promise<void>;
}

/** Enough for a large CT study in one STOW; `--max-upload-mb` changes it. */
export const DEFAULT_MAX_UPLOAD = 1024 * 1024 * 1024;

/**
 * CSP for the OHIF 3.13.2 bundle: it has an inline script in index.html, evaluates code (rspack
 * runtime, codecs), compiles WASM, creates blob: workers and data:/blob: images. Everything else is
 * same-origin; nothing may be framed or sent elsewhere.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self' 'unsafe-inline' 'unsafe-eval' 'wasm-unsafe-eval' blob:",
  "worker-src 'self' blob:",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "font-src 'self' data:",
  "connect-src 'self' data: blob:",
  "media-src 'self' blob: data:",
  "object-src 'none'",
  "base-uri 'self'",
  "frame-ancestors 'none'",
  "form-action 'self'",
].join("; ");

const SECURITY_HEADERS: Record<string, string> = {
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-embedder-policy": "require-corp",
  "cross-origin-resource-policy": "same-origin",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "content-security-policy": CONTENT_SECURITY_POLICY,
};

function withSecurityHeaders(res: Response): Response {
  let headers: Headers;
  try {
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.headers.set(k, v);
    return res;
  } catch {
    // immutable headers (e.g. a fetch() response): copy
    headers = new Headers(res.headers);
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) headers.set(k, v);
    return new Response(res.body, { status: res.status, statusText: res.statusText, headers });
  }
}

/** Adds the CORS grant for a listed origin to a shared asset's response (after the security headers). */
function withCors(req: Request, res: Response, allowOrigins: ReadonlySet<string>): Response {
  res.headers.append("vary", "Origin");
  const cors = corsHeadersFor(req, allowOrigins);
  if (cors) { for (const [k, v] of Object.entries(cors)) res.headers.set(k, v); }
  return res;
}

interface PluginList {
  extensions: string[];
  modes: string[];
}

async function readPluginList(pluginsDir: string, log: (l: string) => void): Promise<PluginList> {
  const path = join(pluginsDir, "edgeseg", "plugins.json");
  try {
    const raw: unknown = JSON.parse(await Deno.readTextFile(path));
    const list = (v: unknown): string[] =>
      Array.isArray(v)
        ? v.filter((s): s is string => typeof s === "string" && s.startsWith("/plugins/"))
        : [];
    if (typeof raw === "object" && raw !== null) {
      const r = raw as Record<string, unknown>;
      return { extensions: list(r.extensions), modes: list(r.modes) };
    }
    log(`warning: ${path} is not an object; serving the viewer without the EdgeSeg plugins`);
  } catch (e) {
    log(
      `warning: ${path} ${
        e instanceof Deno.errors.NotFound
          ? "is missing (run deno task build)"
          : `is unreadable (${(e as Error).message})`
      }; serving the viewer without the EdgeSeg plugins`,
    );
  }
  return { extensions: [], modes: [] };
}

/** Our `/app-config.js` (see docs/platform notes on OHIF 3.13.2's runtime plugins). */
export function appConfigJs(plugins: PluginList, opts: { proxy: boolean }): string {
  const config = {
    name: "edgeseg",
    routerBasename: "/",
    extensions: plugins.extensions,
    modes: plugins.modes,
    // OHIF 3.13.2 takes its onboarding tours from the 'ohif.tours' customization (mode-basic sets it
    // at mode scope), so it is cleared in both the global and the every-mode phase.
    customizationService: {
      global: { "ohif.tours": { $set: [] } },
      mode: { "*": { "ohif.tours": { $set: [] } } },
    },
    showStudyList: true,
    maxNumberOfWebWorkers: 3,
    showWarningMessageForCrossOrigin: false,
    showCPUFallbackMessage: true,
    showLoadingIndicator: true,
    strictZSpacingForVolumeViewport: true,
    groupEnabledModesFirst: true,
    // The onboarding tour would cover the viewport on every fresh profile (and in every e2e run).
    tours: [],
    // EdgeSeg states "research use, not for diagnosis" in its own panel; the host's modal
    // investigational-use dialog would block every first visit.
    investigationalUseDialog: { option: "never" },
    maxNumRequests: { interaction: 100, thumbnail: 5, prefetch: 25 },
    showErrorDetails: "always",
    defaultDataSourceName: "edgeseg",
    dataSources: [{
      namespace: "@ohif/extension-default.dataSourcesModule.dicomweb",
      sourceName: "edgeseg",
      configuration: {
        friendlyName: opts.proxy ? "PACS (via EdgeSeg)" : "EdgeSeg local store",
        name: "edgeseg",
        wadoUriRoot: "/dicom-web",
        qidoRoot: "/dicom-web",
        wadoRoot: "/dicom-web",
        qidoSupportsIncludeField: true,
        imageRendering: "wadors",
        thumbnailRendering: "wadors",
        enableStudyLazyLoad: true,
        supportsFuzzyMatching: false,
        supportsWildcard: true,
        supportsStow: true,
        omitQuotationForMultipartRequest: true,
        bulkDataURI: { enabled: true },
      },
    }],
  };
  return `/** Generated by the EdgeSeg edge server; do not edit (served with no-cache). */\nwindow.config = ${
    JSON.stringify(config, null, 2)
  };\n`;
}

/**
 * Lists `models/<id>/manifest.json` as the run contract's `ModelSummary` (src/core/contract.ts),
 * each built from a manifest `validateManifest` accepted; `training/`, folders without a manifest and
 * manifests that fail validation are left out (the last with a log line naming the field).
 */
export async function modelIndex(
  modelsDir: string,
  log: (l: string) => void = () => {},
): Promise<{ models: ModelSummary[] }> {
  const models: ModelSummary[] = [];
  let entries: Deno.DirEntry[] = [];
  try {
    entries = await Array.fromAsync(Deno.readDir(modelsDir));
  } catch {
    return { models };
  }
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    if (!e.isDirectory || e.name === "training" || e.name.startsWith(".")) continue;
    let text: string;
    try {
      text = await Deno.readTextFile(join(modelsDir, e.name, "manifest.json"));
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) {
        log(`models: skipping ${e.name}: ${(err as Error).message}`);
      }
      continue;
    }
    try {
      // Package URLs are relative to the index itself, so the index works under any prefix (reverse
      // proxy, a copy in the host's static files); the extension resolves them against its URL.
      models.push(summarizeManifest(validateManifest(JSON.parse(text)), e.name));
    } catch (err) {
      log(`models: skipping ${e.name}: ${(err as Error).message}`);
    }
  }
  return { models };
}

/** The file in a data dir that names the server running on it (see `deno task import`). */
export const SERVER_MARKER = "server.json";

/** where onnxruntime-web's runtime files are served (src/inference/browser.ts uses the same) */
export const ORT_PREFIX = "/edgeseg/ort/";
const ORT_EXTENSIONS = /\.(mjs|wasm|js)$/;

/** Relays `/dicom-web/*` to a PACS on the same origin (see the header notes inline). */
async function proxy(
  req: Request,
  url: URL,
  subPath: string,
  pacsUrl: string,
  timeoutMs: number,
): Promise<Response> {
  const checked = normaliseProxyPath(subPath, req.method);
  if (!checked.ok) {
    await req.body?.cancel().catch(() => {});
    return errorResponse(
      checked.status,
      checked.code,
      checked.reason,
      checked.allow ? { allow: checked.allow } : {},
    );
  }
  const target = new URL(pacsUrl.replace(/\/+$/, "") + checked.path + url.search);
  // An allow-list (no Cookie, Origin, Sec-*, forwarding headers); no Accept-Encoding either: Deno's
  // fetch un-gzips transparently, and asking for identity keeps bodies and lengths consistent.
  const headers = proxyRequestHeaders(req.headers);
  // Orthanc builds RetrieveURL/BulkDataURI from RFC 7239 Forwarded (it ignores X-Forwarded-*).
  headers.set("forwarded", `host=${url.host};proto=${url.protocol.replace(":", "")}`);
  const init: RequestInit & { duplex?: string } = {
    method: req.method,
    headers,
    redirect: "manual",
    signal: AbortSignal.timeout(timeoutMs),
  };
  if (req.body && req.method !== "GET" && req.method !== "HEAD") {
    init.body = req.body;
    init.duplex = "half";
  }
  let upstream: Response;
  try {
    upstream = await fetch(target, init);
  } catch (e) {
    const timeout = e instanceof DOMException && e.name === "TimeoutError";
    return errorResponse(
      timeout ? 504 : 502,
      timeout ? "PACS_TIMEOUT" : "PACS_UNREACHABLE",
      `the PACS at ${target.origin} ${
        timeout ? `did not answer within ${timeoutMs} ms` : `could not be reached: ${(e as Error).message}`
      }`,
    );
  }
  const out = proxyResponseHeaders(upstream.headers);
  return new Response(upstream.body, {
    status: upstream.status,
    statusText: upstream.statusText,
    headers: out,
  });
}

/** The request target as the client sent it (Deno keeps it unnormalised in `Request.url`). */
function rawTarget(requestUrl: string): string {
  const afterScheme = requestUrl.indexOf("//") + 2;
  const slash = requestUrl.indexOf("/", afterScheme);
  return slash < 0 ? "/" : requestUrl.slice(slash);
}

/**
 * Starts the server. Resolves once it listens; `close()` stops it and waits for in-flight requests.
 */
export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const log = opts.log ?? (() => {});
  const hostname = opts.hostname ?? "127.0.0.1";
  const pluginsDir = resolve(opts.pluginsDir ?? join(PROJECT_ROOT, "build", "plugins"));
  const modelsDir = resolve(opts.modelsDir ?? join(PROJECT_ROOT, "models"));
  const ortDir = join(PROJECT_ROOT, "node_modules", "onnxruntime-web", "dist");
  const ohifDist = opts.ohifDist ? resolve(opts.ohifDist) : undefined;
  const maxUploadBytes = opts.maxUploadBytes ?? DEFAULT_MAX_UPLOAD;
  const proxyTimeoutMs = opts.proxyTimeoutMs ?? 120_000;
  const allowOrigins = opts.allowOrigins ?? new Set<string>();
  const pluginOnly = opts.pluginOnly === true;
  if (pluginOnly && opts.pacsUrl) {
    throw new TypeError("pluginOnly serves no DICOMweb: a pacsUrl cannot be proxied as well");
  }
  if (opts.pacsUrl) {
    const u = new URL(opts.pacsUrl); // throws early on a malformed URL
    if (u.protocol !== "http:" && u.protocol !== "https:") {
      throw new TypeError(`pacsUrl must be http(s), found ${u.protocol}`);
    }
  }

  let store: DicomStore | undefined;
  if (!opts.pacsUrl && !pluginOnly) {
    store = await DicomStore.open(resolve(opts.dataDir), { log });
    if (store.size === 0 && opts.seed !== false) {
      const t = performance.now();
      const ph = phantomSeries();
      await store.storeFiles(ph.files);
      log(`seeded the sample study (${ph.files.length} CT slices, ${(performance.now() - t).toFixed(0)} ms)`);
    }
  }

  const plugins = await readPluginList(pluginsDir, log);
  const appConfig = appConfigJs(plugins, { proxy: Boolean(opts.pacsUrl) });
  if (!ohifDist && !pluginOnly) {
    log("warning: no OHIF dist given; the viewer is not served (DICOMweb, plugins and models are)");
  }

  const dicomWebOpts = {
    maxUploadBytes,
    stowToken: opts.stowToken,
    uploadTimeoutMs: opts.uploadTimeoutMs,
    stowGate: new ConcurrencyGate(opts.maxConcurrentStows ?? 4, opts.maxQueuedStows ?? 32),
    log,
  };

  async function route(req: Request, url: URL): Promise<Response> {
    const p = url.pathname;
    if (req.method === "OPTIONS" && isSharedAsset(p) && req.headers.has("access-control-request-method")) {
      return preflight(req, allowOrigins);
    }
    if (pluginOnly && !isSharedAsset(p)) {
      await req.body?.cancel().catch(() => {});
      return errorResponse(
        404,
        "PLUGIN_ONLY",
        `this server runs with --plugin-only and serves only /plugins/, /models/ and /edgeseg/ort/, not ${p}`,
      );
    }
    if (p === "/dicom-web" || p.startsWith("/dicom-web/")) {
      const sub = p.slice("/dicom-web".length) || "/";
      if (opts.pacsUrl) return proxy(req, url, sub, opts.pacsUrl, proxyTimeoutMs);
      return handleDicomWeb(store!, req, sub, dicomWebOpts);
    }
    if (p === "/edgeseg/enqueue" && opts.enqueue && !pluginOnly) return opts.enqueue.handle(req);
    if (req.method !== "GET" && req.method !== "HEAD") {
      await req.body?.cancel().catch(() => {});
      return errorResponse(405, "METHOD_NOT_ALLOWED", `${req.method} is only accepted under /dicom-web/`, {
        allow: "GET, HEAD",
      });
    }
    if (p === "/app-config.js") {
      return new Response(appConfig, {
        headers: { "content-type": "text/javascript; charset=utf-8", "cache-control": "no-cache" },
      });
    }
    if (p === "/models/index.json") {
      const body = JSON.stringify(await modelIndex(modelsDir, log));
      return new Response(body, {
        headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-cache" },
      });
    }
    const mounts: [string, string][] = [["/plugins/", pluginsDir], ["/models/", modelsDir]];
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
        const r = await resolveStatic(ortDir, rest);
        if (r.kind === "file") return serveFile(req, r.path, r.stat);
      }
      return errorResponse(404, "NOT_FOUND", `no onnxruntime-web runtime file ${JSON.stringify(rest)}`);
    }
    if (!ohifDist) {
      return errorResponse(
        404,
        "NO_VIEWER",
        "the OHIF viewer is not installed here (run deno task fetch-ohif)",
      );
    }
    const r = await resolveStatic(ohifDist, p.slice(1));
    if (r.kind === "file") {
      if (p === "/index.html") return serveFile(req, r.path, r.stat, { cacheControl: "no-cache" });
      return serveFile(req, r.path, r.stat);
    }
    if (r.kind === "forbidden") return errorResponse(400, "BAD_PATH", `rejected path: ${r.reason}`);
    // SPA fallback: client-side routes (no file extension) get index.html; missing files 404.
    const last = p.split("/").pop() ?? "";
    if (!last.includes(".")) {
      const index = await resolveStatic(ohifDist, "index.html");
      if (index.kind === "file") return serveFile(req, index.path, index.stat, { cacheControl: "no-cache" });
    }
    return errorResponse(404, "NOT_FOUND", `no file at ${p}`);
  }

  async function staticOr404(req: Request, root: string, rest: string): Promise<Response> {
    const r = await resolveStatic(root, rest);
    if (r.kind === "file") return serveFile(req, r.path, r.stat);
    if (r.kind === "forbidden") return errorResponse(400, "BAD_PATH", `rejected path: ${r.reason}`);
    return errorResponse(404, "NOT_FOUND", `no file at ${new URL(req.url).pathname}`);
  }

  async function handler(req: Request): Promise<Response> {
    const t0 = performance.now();
    const url = new URL(req.url);
    let res: Response;
    try {
      const write = isWriteMethod(req.method)
        ? writeAllowed(
          { origin: req.headers.get("origin"), secFetchSite: req.headers.get("sec-fetch-site") },
          ownOrigins(url, opts.publicHosts),
        )
        : { ok: true as const };
      // The Host check comes before any route: a page on a foreign name that resolves here (DNS
      // rebinding) gets nothing, not even a 404 that tells it which paths exist.
      if (!hostAllowed(req.headers.get("host"), hosts)) {
        await req.body?.cancel().catch(() => {});
        res = errorResponse(
          421,
          "MISDIRECTED",
          "this server does not answer to that Host name (start it with --public-host <name> to add one)",
        );
      } else if (!write.ok) {
        await req.body?.cancel().catch(() => {});
        res = errorResponse(403, "FOREIGN_ORIGIN", write.reason);
      } else if (rawPathProblem(rawTarget(req.url))) {
        // Reject traversal before any routing, on the path as sent: `new URL` would fold "..".
        res = errorResponse(400, "BAD_PATH", `rejected path: ${rawPathProblem(rawTarget(req.url))}`);
      } else {
        res = await route(req, url);
      }
    } catch (e) {
      log(`error: ${req.method} ${url.pathname}: ${(e as Error).stack ?? e}`);
      res = errorResponse(500, "INTERNAL", `the server failed on this request: ${(e as Error).message}`);
    }
    res = withSecurityHeaders(res);
    // Shared assets get the grant for a listed origin (a refused preflight gets none).
    if (isSharedAsset(url.pathname) && (req.method !== "OPTIONS" || res.status === 204)) {
      res = withCors(req, res, allowOrigins);
    }
    log(`${req.method} ${url.pathname} ${res.status} ${(performance.now() - t0).toFixed(1)}ms`);
    return res;
  }

  let hosts = hostPolicy({ bindAddress: hostname, loopback: false, publicHosts: opts.publicHosts });
  const { promise: listening, resolve: onListen } = Promise.withResolvers<Deno.NetAddr>();
  const server = Deno.serve({
    port: opts.port ?? 8042,
    hostname,
    onListen: (addr) => onListen(addr as Deno.NetAddr),
    onError: (e) => {
      log(`error: ${(e as Error).stack ?? e}`);
      return errorResponse(500, "INTERNAL", "the server failed on this request");
    },
  }, handler);
  const addr = await listening;
  // Loopback is decided by the address actually bound, not by how --host was spelled.
  const loopback = isLoopbackIp(addr.hostname);
  let interfaceAddresses: string[] = [];
  try {
    interfaceAddresses = Deno.networkInterfaces().map((i) => i.address);
  } catch {
    // without --allow-sys a wildcard bind answers only to localhost and --public-host names
  }
  hosts = hostPolicy({
    bindAddress: hostname,
    loopback,
    // the bound address itself: a name given to --host answers by its IP too
    publicHosts: [...(opts.publicHosts ?? []), addr.hostname],
    interfaceAddresses,
  });
  const hostForUrl = hostname.includes(":")
    ? `[${hostname}]`
    : hostname === "0.0.0.0"
    ? "127.0.0.1"
    : hostname;
  if (!loopback) log(`warning: listening on ${hostname}, reachable from other machines`);
  const url = `http://${hostForUrl}:${addr.port}/`;
  // Tells `deno task import` that a server owns this store, so it STOWs through it (the server keeps
  // its index in memory and would not see files written beside it).
  const marker = store ? join(store.dataDir, SERVER_MARKER) : undefined;
  if (marker) {
    const tmp = `${marker}.${Deno.pid}.tmp`;
    await Deno.writeTextFile(
      tmp,
      JSON.stringify({ url, pid: Deno.pid, startedAt: new Date().toISOString() }),
    );
    await Deno.rename(tmp, marker);
  }
  return {
    url,
    port: addr.port,
    store,
    close: async () => {
      if (marker) await Deno.remove(marker).catch(() => {});
      // Graceful shutdown waits for in-flight requests; a client that never finishes its upload must
      // not hang the caller (e2e teardown), so give up waiting after a few seconds.
      let timer: ReturnType<typeof setTimeout> | undefined;
      const gaveUp = await Promise.race([
        server.shutdown().then(() => false),
        new Promise<boolean>((r) => timer = setTimeout(() => r(true), opts.closeTimeoutMs ?? 5000)),
      ]);
      clearTimeout(timer);
      if (gaveUp) {
        log("warning: requests still in flight at close; stopped waiting for them");
        server.unref();
      }
    },
  };
}
