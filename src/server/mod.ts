/**
 * The EdgeSeg edge server: the prebuilt OHIF viewer with our `app-config.js`, the extension bundles
 * (`/plugins/*`), model packages (`/models/*`), onnxruntime-web's runtime files (`/edgeseg/ort/*`), and either
 * the embedded file-backed DICOMweb store or a same-origin proxy to a PACS at `/dicom-web/`.
 *
 * This module starts it: options, the store, the listening socket and the Host names it answers to.
 * What every request goes through is in handler.ts, the routes in routes.ts.
 */
import { join, resolve } from "node:path";
import { phantomSeries } from "../dicom/phantom.ts";
import { appConfigJs, readPluginList } from "./app_config.ts";
import { errorResponse } from "./dicomweb.ts";
import { ConcurrencyGate } from "./guard.ts";
import { createHandler } from "./handler.ts";
import { hostPolicy, isLoopbackIp } from "./host_guard.ts";
import { PROJECT_ROOT } from "./ohif.ts";
import { createRouter } from "./routes.ts";
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

/** The file in a data dir that names the server running on it (see `deno task import`). */
export const SERVER_MARKER = "server.json";

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

  const store = opts.pacsUrl || pluginOnly ? undefined : await openStore(opts, log);

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

  let hosts = hostPolicy({ bindAddress: hostname, loopback: false, publicHosts: opts.publicHosts });
  const handler = createHandler({
    route: createRouter({
      pluginOnly,
      pacsUrl: opts.pacsUrl,
      proxyTimeoutMs,
      store,
      dicomWeb: dicomWebOpts,
      enqueue: opts.enqueue,
      appConfig,
      pluginsDir,
      modelsDir,
      ortDir,
      ohifDist,
      allowOrigins,
      log,
    }),
    hosts: () => hosts,
    publicHosts: opts.publicHosts,
    allowOrigins,
    log,
  });
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
  if (marker) await writeServerMarker(marker, url);
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

/** The embedded store in `opts.dataDir`, seeded with the phantom study when empty (unless seed is false). */
async function openStore(opts: ServerOptions, log: (line: string) => void): Promise<DicomStore> {
  const store = await DicomStore.open(resolve(opts.dataDir), { log });
  if (store.size === 0 && opts.seed !== false) {
    const t = performance.now();
    const ph = phantomSeries();
    await store.storeFiles(ph.files);
    log(`seeded the sample study (${ph.files.length} CT slices, ${(performance.now() - t).toFixed(0)} ms)`);
  }
  return store;
}

/** Writes the marker atomically (temp file + rename): an import never reads half of it. */
async function writeServerMarker(marker: string, url: string): Promise<void> {
  const tmp = `${marker}.${Deno.pid}.tmp`;
  await Deno.writeTextFile(
    tmp,
    JSON.stringify({ url, pid: Deno.pid, startedAt: new Date().toISOString() }),
  );
  await Deno.rename(tmp, marker);
}
