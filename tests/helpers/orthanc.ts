/**
 * A private Orthanc PACS for a test: its own temp folder (storage, index, config), free loopback
 * ports, DICOMweb enabled with full study/series metadata. Never the system service.
 *
 *   const pacs = await startOrthanc();         // throws OrthancUnavailable when not installed
 *   await pacs.upload(files);
 *   ... pacs.dicomWebUrl ...
 *   await pacs.stop();
 */
import { join } from "node:path";
import { requireTool } from "./tools.ts";

export const ORTHANC_BINARY = "/usr/sbin/Orthanc";

/** Where Debian releases put Orthanc plugins (the .so name carries the plugin's version). */
const PLUGIN_DIRS = ["/usr/lib/orthanc", "/usr/share/orthanc/plugins", "/usr/lib/x86_64-linux-gnu/orthanc"];

/**
 * The DICOMweb plugin installed here (`libOrthancDicomWeb.so.<version>` or `libOrthancDicomWeb.so`), or
 * null: the version in the name differs between Debian releases, so it is looked up, not hard-coded.
 */
export function findDicomWebPlugin(dirs: string[] = PLUGIN_DIRS): string | null {
  for (const dir of dirs) {
    let names: string[];
    try {
      names = [...Deno.readDirSync(dir)].filter((e) => !e.isDirectory).map((e) => e.name);
    } catch {
      continue;
    }
    const found = names.filter((n) => /^libOrthancDicomWeb\.so(\.[0-9.]+)?$/.test(n))
      // the most specific version first (libOrthancDicomWeb.so.1.7 over a bare .so link)
      .sort((a, b) => b.length - a.length || b.localeCompare(a));
    if (found.length) return join(dir, found[0]);
  }
  return null;
}

/**
 * Why Orthanc cannot run here, or null when it can (for `Deno.test({ ignore })`). Under CI a missing
 * Orthanc throws (see tests/helpers/tools.ts).
 */
export function orthancMissing(): string | null {
  return requireTool("orthanc").ignore ? requireTool("orthanc").reason : null;
}

export interface Orthanc {
  /** e.g. http://127.0.0.1:40123 */
  url: string;
  /** e.g. http://127.0.0.1:40123/dicom-web */
  dicomWebUrl: string;
  httpPort: number;
  dir: string;
  /** POSTs each file to /instances; returns the number Orthanc accepted (200 Success / AlreadyStored). */
  upload(files: string[], concurrency?: number): Promise<number>;
  /** GET a JSON path of the REST API, e.g. "/studies". */
  getJson(path: string): Promise<unknown>;
  /** Kills the process but keeps its folder (a PACS that went down); `start()` brings it back. */
  kill(): Promise<void>;
  /** Starts it again on the same ports and storage after `kill()`. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** A free loopback TCP port (bind to 0, read the port, release). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function waitReady(url: string, child: Deno.ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  child.status.then(() => exited = true);
  let lastError = "";
  while (Date.now() < deadline) {
    if (exited) throw new Error("Orthanc exited during start-up (see its log in the test's temp folder)");
    try {
      const res = await fetch(`${url}/system`);
      await res.body?.cancel();
      if (res.ok) return;
      lastError = `HTTP ${res.status}`;
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err);
    }
    // Polling a local process; 50 ms keeps the 2-core machine idle while Orthanc opens its index.
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`Orthanc did not answer GET /system within ${timeoutMs} ms (last: ${lastError})`);
}

export async function startOrthanc(
  options: {
    timeoutMs?: number;
    /** more configuration (e.g. LuaScripts, StableAge); "DicomWeb" is merged into the default block */
    config?: Record<string, unknown>;
  } = {},
): Promise<Orthanc> {
  const missing = orthancMissing();
  if (missing) throw new Error(missing);
  if (!findDicomWebPlugin()) throw new Error("the Orthanc DICOMweb plugin is not installed");
  const dir = await Deno.makeTempDir({ prefix: "edgeseg-orthanc-" });
  const httpPort = freePort();
  const dicomPort = freePort();
  const config = {
    Name: "EDGESEG_TEST",
    StorageDirectory: join(dir, "storage"),
    IndexDirectory: join(dir, "index"),
    HttpPort: httpPort,
    DicomPort: dicomPort,
    DicomAet: "EDGESEGTEST",
    RemoteAccessAllowed: false,
    AuthenticationEnabled: false,
    HttpCompressionEnabled: false,
    StorageCompression: false,
    ConcurrentJobs: 1,
    HttpThreadsCount: 8,
    Plugins: [findDicomWebPlugin()!],
    ...options.config,
    DicomWeb: {
      Enable: true,
      Root: "/dicom-web/",
      StudiesMetadata: "Full",
      SeriesMetadata: "Full",
      ...(options.config?.DicomWeb as Record<string, unknown> | undefined),
    },
  };
  const configPath = join(dir, "orthanc.json");
  await Deno.writeTextFile(configPath, JSON.stringify(config, null, 2));
  const url = `http://127.0.0.1:${httpPort}`;
  let child: Deno.ChildProcess | undefined;
  let drained: Promise<void> = Promise.resolve();
  const launch = async () => {
    const log = await Deno.open(join(dir, "orthanc.log"), { write: true, create: true, append: true });
    const c = new Deno.Command(ORTHANC_BINARY, {
      args: [`--logdir=${dir}`, configPath],
      stdout: "null",
      stderr: "piped",
      stdin: "null",
    }).spawn();
    child = c;
    // Keep stderr drained into a file so a chatty Orthanc never blocks on a full pipe.
    drained = c.stderr.pipeTo(log.writable).catch(() => {});
    await waitReady(url, c, options.timeoutMs ?? 20000);
  };
  const kill = async () => {
    const c = child;
    child = undefined;
    if (!c) return;
    try {
      c.kill("SIGKILL");
    } catch {
      // already exited
    }
    await c.status;
    await drained;
  };
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await kill();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    await launch();
  } catch (err) {
    const text = await Deno.readTextFile(join(dir, "orthanc.log")).catch(() => "");
    await stop();
    throw new Error(`${err instanceof Error ? err.message : err}\n${text.slice(-2000)}`);
  }

  return {
    url,
    dicomWebUrl: `${url}/dicom-web`,
    httpPort,
    dir,
    async upload(files: string[], concurrency = 4): Promise<number> {
      let next = 0, accepted = 0;
      const worker = async () => {
        while (next < files.length) {
          const file = files[next++];
          const body = await Deno.readFile(file);
          const res = await fetch(`${url}/instances`, {
            method: "POST",
            body,
            headers: { "content-type": "application/dicom" },
          });
          const text = await res.text();
          if (!res.ok) throw new Error(`Orthanc rejected ${file}: HTTP ${res.status} ${text.slice(0, 200)}`);
          accepted++;
        }
      };
      await Promise.all(Array.from({ length: Math.min(concurrency, files.length) }, worker));
      return accepted;
    },
    async getJson(path: string): Promise<unknown> {
      const res = await fetch(`${url}${path}`);
      if (!res.ok) throw new Error(`Orthanc GET ${path}: HTTP ${res.status} ${await res.text()}`);
      return await res.json();
    },
    kill,
    start: launch,
    stop,
  };
}
