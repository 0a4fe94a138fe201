/**
 * A private Redis for a test: Debian's redis-server on a free loopback port, in its own temp folder,
 * AOF on with fsync on every write (so a kill -9 loses nothing a client was told is stored), no RDB
 * snapshots. `kill()` + `start()` restart it on the same port and data.
 *
 *   const redis = await startRedis();          // throws when redis-server is not installed
 *   ... redis.url ...
 *   await redis.stop();
 */
import { join } from "node:path";
import { freePort } from "./orthanc.ts";
import { existsSync } from "./paths.ts";

export const REDIS_BINARY = "/usr/bin/redis-server";

/** Why Redis cannot run here, or null when it can (for `Deno.test({ ignore })`). */
export function redisMissing(): string | null {
  return existsSync(REDIS_BINARY)
    ? null
    : `redis-server is not installed (${REDIS_BINARY}; Debian package "redis-server")`;
}

export interface Redis {
  /** redis://127.0.0.1:<port> */
  url: string;
  port: number;
  dir: string;
  /** SIGKILL: no shutdown save, only what the AOF holds survives */
  kill(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** Sends PING over a raw socket (no client library in the helper) and expects +PONG. */
async function ping(port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      await conn.write(new TextEncoder().encode("PING\r\n"));
      const buf = new Uint8Array(64);
      const n = await conn.read(buf);
      return n !== null && new TextDecoder().decode(buf.subarray(0, n)).startsWith("+PONG");
    } finally {
      conn.close();
    }
  } catch {
    return false;
  }
}

export async function startRedis(options: { timeoutMs?: number } = {}): Promise<Redis> {
  const missing = redisMissing();
  if (missing) throw new Error(missing);
  const dir = await Deno.makeTempDir({ prefix: "edgeseg-redis-" });
  const port = freePort();
  const conf = [
    `port ${port}`,
    "bind 127.0.0.1",
    "protected-mode yes",
    `dir ${dir}`,
    "appendonly yes",
    "appendfsync always",
    'save ""',
    "daemonize no",
    `logfile ${join(dir, "redis.log")}`,
    // BullMQ asks for this policy; any eviction could drop jobs.
    "maxmemory-policy noeviction",
  ].join("\n");
  const confPath = join(dir, "redis.conf");
  await Deno.writeTextFile(confPath, conf + "\n");
  let child: Deno.ChildProcess | undefined;
  const start = async () => {
    const c = new Deno.Command(REDIS_BINARY, {
      args: [confPath],
      stdout: "null",
      stderr: "null",
      stdin: "null",
    })
      .spawn();
    child = c;
    let exited = false;
    c.status.then(() => exited = true);
    const deadline = Date.now() + (options.timeoutMs ?? 10000);
    while (Date.now() < deadline) {
      if (exited) {
        const log = await Deno.readTextFile(join(dir, "redis.log")).catch(() => "");
        throw new Error(`redis-server exited during start-up:\n${log.slice(-1500)}`);
      }
      if (await ping(port)) return;
      // polling a local process that loads its AOF
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(
      `redis-server did not answer PING on port ${port} within ${options.timeoutMs ?? 10000} ms`,
    );
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
  };
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await kill();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    await start();
  } catch (e) {
    await stop();
    throw e;
  }
  return { url: `redis://127.0.0.1:${port}`, port, dir, kill, start, stop };
}
