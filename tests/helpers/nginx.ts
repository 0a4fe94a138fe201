/**
 * A hospital's own OHIF for the deployment tests: Debian's nginx serving an unmodified OHIF dist at the
 * root of its own origin, with *no* COOP/COEP (so the page is not cross-origin isolated), our test's
 * app-config.js, `/dicom-web/` reverse-proxied to a PACS, and optionally a folder served under a
 * sub-path (the `deno task export-plugin` output copied into the host's static files).
 */
import { join } from "node:path";
import { freePort } from "./orthanc.ts";

export const NGINX_BINARY = "/usr/sbin/nginx";

export function nginxMissing(): string | null {
  try {
    Deno.statSync(NGINX_BINARY);
    return null;
  } catch {
    return `nginx is not installed (${NGINX_BINARY}); .ci/run installs Debian's nginx-light`;
  }
}

export interface HostOhif {
  url: string;
  port: number;
  stop(): Promise<void>;
}

export interface HostOhifOptions {
  ohifDist: string;
  /** the JavaScript served as /app-config.js */
  appConfig: string;
  /** DICOMweb root to proxy `/dicom-web/` to, e.g. http://127.0.0.1:8043/dicom-web */
  dicomWebUrl: string;
  /** extra static folders: URL prefix (e.g. "/edgeseg/") → folder */
  aliases?: Record<string, string>;
  /** reverse proxies: URL prefix (e.g. "/edgeseg/") → upstream URL ending in "/" (the prefix is stripped) */
  proxies?: Record<string, string>;
  port?: number;
}

async function waitReady(url: string, child: Deno.ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    const exited = await Promise.race([child.status.then(() => true), Promise.resolve(false)]);
    if (exited) throw new Error("nginx exited during start-up");
    try {
      const res = await fetch(new URL("/app-config.js", url));
      await res.body?.cancel();
      if (res.ok) return;
      last = `HTTP ${res.status}`;
    } catch (e) {
      last = e instanceof Error ? e.message : String(e);
    }
    // Polling a local process that starts in milliseconds.
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nginx did not answer within ${timeoutMs} ms (last: ${last})`);
}

/** Starts nginx in the foreground with its own prefix, config, logs and temp folders. */
export async function startHostOhif(opts: HostOhifOptions): Promise<HostOhif> {
  const missing = nginxMissing();
  if (missing) throw new Error(missing);
  const dir = await Deno.makeTempDir({ prefix: "edgeseg-nginx-" });
  const port = opts.port ?? freePort();
  const upstream = new URL(opts.dicomWebUrl.replace(/\/+$/, "") + "/");
  await Deno.writeTextFile(join(dir, "app-config.js"), opts.appConfig);
  const aliases =
    Object.entries(opts.aliases ?? {}).map(([prefix, folder]) =>
      `    location ${prefix} { alias ${folder.replace(/\/?$/, "/")}; }`
    ).join("\n") + "\n" + Object.entries(opts.proxies ?? {}).map(([prefix, upstream]) =>
      `    location ${prefix} { proxy_pass ${upstream}; proxy_http_version 1.1; }`
    ).join("\n");
  const conf = `
daemon off;
user root;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 256; }
http {
  include /etc/nginx/mime.types;
  types { application/wasm wasm; text/javascript mjs; }
  default_type application/octet-stream;
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  sendfile on;
  server {
    listen 127.0.0.1:${port};
    client_max_body_size 2g;
    location = /app-config.js {
      alias ${dir}/app-config.js;
      add_header Cache-Control no-cache;
    }
    location /dicom-web/ {
      proxy_pass ${upstream.href};
      proxy_http_version 1.1;
      proxy_set_header Host $http_host;
      proxy_set_header Forwarded "host=$http_host;proto=$scheme";
      proxy_request_buffering off;
      proxy_buffering off;
      proxy_read_timeout 300s;
    }
${aliases}
    location / {
      root ${opts.ohifDist};
      try_files $uri /index.html;
    }
  }
}
`;
  const confPath = join(dir, "nginx.conf");
  await Deno.writeTextFile(confPath, conf);
  const child = new Deno.Command(NGINX_BINARY, {
    args: ["-p", dir, "-c", confPath],
    stdout: "null",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  const stderr = child.stderr.pipeTo(
    (await Deno.open(join(dir, "stderr.log"), { write: true, create: true })).writable,
  ).catch(() => {});
  const url = `http://127.0.0.1:${port}/`;
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    try {
      child.kill("SIGQUIT");
    } catch {
      // already exited
    }
    await child.status;
    await stderr;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    await waitReady(url, child, 10000);
  } catch (err) {
    const text = await Deno.readTextFile(join(dir, "stderr.log")).catch(() => "") +
      await Deno.readTextFile(join(dir, "error.log")).catch(() => "");
    await stop();
    throw new Error(`${err instanceof Error ? err.message : err}\n${text.slice(-2000)}`);
  }
  return { url, port, stop };
}

/**
 * The app-config.js of a typical hospital OHIF: its own DICOMweb data source on its own origin, and
 * the EdgeSeg lines an admin adds.
 */
export function hospitalAppConfig(
  plugins: { extensions: string[]; modes: string[] },
  ohifVersion = "3.13",
): string {
  const config = {
    routerBasename: "/",
    extensions: plugins.extensions,
    modes: plugins.modes,
    showStudyList: true,
    maxNumberOfWebWorkers: 3,
    showWarningMessageForCrossOrigin: false,
    showLoadingIndicator: true,
    strictZSpacingForVolumeViewport: true,
    investigationalUseDialog: { option: "never" },
    // 3.13 reads its onboarding tours from this customization; 3.12's customization service takes
    // another shape (and crashes on this one), and its tours are off with `tours: []`.
    ...(ohifVersion.startsWith("3.12") ? {} : {
      customizationService: {
        global: { "ohif.tours": { $set: [] } },
        mode: { "*": { "ohif.tours": { $set: [] } } },
      },
    }),
    tours: [],
    defaultDataSourceName: "hospital-pacs",
    dataSources: [{
      namespace: "@ohif/extension-default.dataSourcesModule.dicomweb",
      sourceName: "hospital-pacs",
      configuration: {
        friendlyName: "Hospital PACS",
        name: "hospital-pacs",
        wadoUriRoot: "/dicom-web",
        qidoRoot: "/dicom-web",
        wadoRoot: "/dicom-web",
        qidoSupportsIncludeField: true,
        imageRendering: "wadors",
        thumbnailRendering: "wadors",
        enableStudyLazyLoad: true,
        supportsFuzzyMatching: true,
        supportsWildcard: true,
        supportsStow: true,
        omitQuotationForMultipartRequest: true,
        bulkDataURI: { enabled: true },
      },
    }],
  };
  return `window.config = ${JSON.stringify(config, null, 2)};\n`;
}
