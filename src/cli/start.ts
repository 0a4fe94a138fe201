/**
 * `deno task start`: fetches the OHIF viewer once, builds the EdgeSeg extension, starts the edge server.
 *
 *   deno task start [--port 8042] [--host 127.0.0.1] [--data .edgeseg/data] [--pacs <dicomweb url>]
 *                   [--max-upload-mb 1024] [--expose] [--public-host NAME]... [--no-seed]
 *                   [--stow-token <token>] [--quiet] [--allow-origin <origin>]... [--plugin-only]
 *                   [--enqueue-token <token> --redis <redis://host:port> [--enqueue-model <id>]]
 *
 * `--plugin-only --allow-origin https://ohif.hospital.example` is the way into a hospital's existing
 * OHIF: only the plugin, the models and the runtime files are served, readable by that origin, and the
 * app-config lines for it are printed (docs/deploy.md).
 *
 * Binding a non-loopback address needs --expose: the server then answers anyone who can reach the
 * machine, so STOW should be protected with --stow-token (or EDGESEG_STOW_TOKEN). Whether an address
 * is loopback is decided by the IP it resolves to. The server answers only to its bind address (and
 * localhost names when that is loopback) and to each `--public-host` name (repeatable), e.g. the name
 * of a reverse proxy in front of it; any other Host gets 421.
 */
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { InputError } from "../core/errors.ts";
import { resolvesToLoopback, splitHost } from "../server/host_guard.ts";
import { DEFAULT_MAX_UPLOAD, ensureOhif, PROJECT_ROOT, startServer } from "../server/mod.ts";
import { parseAllowedOrigins } from "../server/cors.ts";
import { createEnqueueEndpoint, ENQUEUE_PATH } from "../server/enqueue.ts";
import { flag, hasFlag, numberFlag, parseArgs } from "./args.ts";

const USAGE =
  "usage: deno task start [--port N] [--host ADDR] [--data DIR] [--pacs URL] [--max-upload-mb N] " +
  "[--expose] [--public-host NAME]... [--no-seed] [--stow-token TOKEN] [--quiet] [--allow-origin ORIGIN]... " +
  "[--plugin-only] [--enqueue-token TOKEN --redis URL [--enqueue-model ID]]";

/** The lines an OHIF admin adds to app-config.js for EdgeSeg served from `base` (ends in "/"). */
export function appConfigSnippet(base: string): string {
  const entry = (name: string) => new URL(`plugins/edgeseg/${name}`, base).href;
  return [
    "// in window.config of the OHIF app-config.js:",
    `extensions: [${JSON.stringify(entry("extension.js"))}],`,
    `modes: [${JSON.stringify(entry("mode.js"))}],`,
    "// so that OHIF still opens while this server is down, copy plugins/edgeseg/loader.js next to the",
    "// viewer's index.html as edgeseg-loader.js and list it instead (docs/deploy.md):",
    `// extensions: [${JSON.stringify(`/edgeseg-loader.js?extension=${entry("extension.js")}`)}],`,
    `// modes: [${JSON.stringify(`/edgeseg-loader.js?mode=${entry("mode.js")}`)}],`,
  ].join("\n");
}

/** Resolves a name with the system's DNS (bounded, so a missing resolver cannot hang the start). */
function resolveDns(name: string, type: "A" | "AAAA"): Promise<string[]> {
  return Deno.resolveDns(name, type, { signal: AbortSignal.timeout(3000) });
}

interface BuildModule {
  buildExtension: (options?: { minify?: boolean }) => Promise<unknown>;
}

async function buildPlugins(log: (l: string) => void): Promise<void> {
  const buildPath = join(PROJECT_ROOT, "extension", "build.ts");
  if (!existsSync(buildPath)) {
    log("warning: extension/build.ts not found; serving the viewer without a freshly built extension");
    return;
  }
  try {
    const mod = await import(new URL(`file://${buildPath}`).href) as Partial<BuildModule>;
    if (typeof mod.buildExtension !== "function") {
      log("warning: extension/build.ts exports no buildExtension(); skipping the build");
      return;
    }
    const t = performance.now();
    await mod.buildExtension();
    log(`built the EdgeSeg extension in ${(performance.now() - t).toFixed(0)} ms`);
  } catch (e) {
    log(`warning: building the extension failed (${(e as Error).message}); serving the last build if any`);
  }
}

export async function main(argv: string[]): Promise<void> {
  const args = parseArgs(argv, ["expose", "no-seed", "quiet", "help", "plugin-only"]);
  if (hasFlag(args, "help")) {
    console.log(USAGE);
    return;
  }
  const host = flag(args, "host") ?? "127.0.0.1";
  const loopback = await resolvesToLoopback(host, resolveDns);
  if (!loopback && !hasFlag(args, "expose")) {
    throw new InputError(
      "NOT_LOOPBACK",
      `--host ${host} would make the server reachable from other machines; add --expose to confirm (expected a loopback address without it)`,
    );
  }
  const port = numberFlag(args, "port", 8042);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new InputError("BAD_PORT", `--port expects 0..65535, found ${port}`);
  }
  const maxUploadMb = numberFlag(args, "max-upload-mb", DEFAULT_MAX_UPLOAD / (1024 * 1024));
  if (!(maxUploadMb > 0)) {
    throw new InputError("BAD_LIMIT", `--max-upload-mb expects a positive number, found ${maxUploadMb}`);
  }
  const dataDir = resolve(flag(args, "data") ?? join(PROJECT_ROOT, ".edgeseg", "data"));
  const pacsUrl = flag(args, "pacs");
  const publicHosts = args.flags.get("public-host") ?? [];
  for (const h of publicHosts) {
    if (!splitHost(h)) {
      throw new InputError("BAD_HOST", `--public-host expects a host name or name:port, found "${h}"`);
    }
  }
  const stowToken = flag(args, "stow-token") ?? Deno.env.get("EDGESEG_STOW_TOKEN") ?? undefined;
  const quiet = hasFlag(args, "quiet");
  const allowOrigins = parseAllowedOrigins(args.flags.get("allow-origin") ?? []);
  const pluginOnly = hasFlag(args, "plugin-only");
  if (pluginOnly && pacsUrl) {
    throw new InputError(
      "ARG_CONFLICT",
      "--plugin-only serves no DICOMweb, so --pacs has nothing to do: the hospital OHIF reads its own PACS",
    );
  }
  const log = (l: string) => console.error(l);
  const requestLog = quiet
    ? (l: string) => (/^(GET|HEAD|POST|PUT|DELETE|OPTIONS) /.test(l) ? undefined : log(l))
    : log;

  // Batch jobs from a PACS hook: only with a shared token (and a Redis to put them in).
  const enqueueToken = flag(args, "enqueue-token") ?? Deno.env.get("EDGESEG_ENQUEUE_TOKEN") ?? undefined;
  const redisUrl = flag(args, "redis");
  if (enqueueToken && !redisUrl) {
    throw new InputError(
      "ARG_REQUIRED",
      "--enqueue-token needs --redis <redis://host:port> for the job queue",
    );
  }
  const enqueue = enqueueToken && redisUrl
    ? createEnqueueEndpoint({ token: enqueueToken, redisUrl, defaultModel: flag(args, "enqueue-model"), log })
    : undefined;

  const ohifDist = pluginOnly ? undefined : await ensureOhif({ log });
  await buildPlugins(log);
  const server = await startServer({
    port,
    hostname: host,
    dataDir,
    pacsUrl,
    maxUploadBytes: Math.round(maxUploadMb * 1024 * 1024),
    ohifDist,
    seed: !hasFlag(args, "no-seed"),
    stowToken,
    allowOrigins,
    pluginOnly,
    publicHosts,
    enqueue,
    log: requestLog,
  });
  if (enqueue) console.log(`  enqueue:   POST ${new URL(ENQUEUE_PATH, server.url).href} (bearer token)`);
  console.log(`EdgeSeg is running at ${server.url}${pluginOnly ? " (plugin only)" : ""}`);
  console.log(`  port:      ${server.port}`);
  if (!pluginOnly) {
    console.log(pacsUrl ? `  PACS:      ${pacsUrl} (proxied at /dicom-web)` : `  data dir:  ${dataDir}`);
  }
  if (publicHosts.length) console.log(`  also answers to: ${publicHosts.join(", ")}`);
  console.log(
    `  shared with: ${
      allowOrigins.size ? [...allowOrigins].join(", ") : "no other origin (add --allow-origin)"
    }`,
  );
  console.log(`\nTo add EdgeSeg to an existing OHIF ${allowOrigins.size ? "on those origins" : ""}:`);
  console.log(appConfigSnippet(server.url));
  if (!loopback) {
    console.log(
      `  exposed on ${host}${
        stowToken ? " (STOW needs the bearer token)" : " — STOW is open; consider --stow-token"
      }`,
    );
  }
  const stop = async () => {
    await server.close();
    await enqueue?.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
}

if (import.meta.main) {
  try {
    await main(Deno.args);
  } catch (e) {
    console.error(e instanceof InputError ? `error: ${e.message}\n${USAGE}` : e);
    Deno.exit(2);
  }
}
