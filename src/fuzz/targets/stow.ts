/** Fuzz target "stow": mutated STOW requests against a live embedded store. */
import { type MultipartInput, stowBody, streamOf } from "./multipart.ts";
import { join } from "node:path";
import { parseDicom } from "../../dicom/dataset.ts";
import { type RunningServer, startServer } from "../../server/mod.ts";
import type { FuzzTarget } from "./common.ts";

async function dirEntries(dir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) out.push(e.name);
  } catch {
    // missing folder = empty
  }
  return out;
}

/**
 * Prefix of the one known stow failure: the server's own parser (src/server/dicomfile.ts) reads with
 * dcmjs `ignoreErrors`, so a truncated instance can be accepted and stored. Documented in
 * docs/fuzzing.md; left to the server's owner.
 */
export const KNOWN_STORED_INCOMPLETE = "STORED_INCOMPLETE";

export function stowTarget(): FuzzTarget {
  let server: RunningServer | undefined;
  let dataDir = "";
  return {
    name: "stow",
    description:
      "mutated STOW-RS requests → a live embedded store (startServer on 127.0.0.1:0); checks nothing is partially stored",
    async setup() {
      dataDir = await Deno.makeTempDir({ prefix: "edgeseg-fuzz-stow-" });
      server = await startServer({
        port: 0,
        hostname: "127.0.0.1",
        dataDir,
        seed: false,
        maxUploadBytes: 8 * 1024 * 1024,
        uploadTimeoutMs: 5000,
      });
      return `embedded store at ${server.url} (temp data dir)`;
    },
    input: (rng, index) => stowBody(rng, index, `2.25.${2000 + rng.int(1000)}${index}`),
    async run(raw) {
      const input = raw as MultipartInput;
      const store = server!.store!;
      const before = store.size;
      const res = await fetch(`${server!.url}dicom-web/studies`, {
        method: "POST",
        headers: input.contentType ? { "content-type": input.contentType } : {},
        body: streamOf(input),
      });
      const text = await res.text();
      const leftovers = (await dirEntries(store.tmpDir)).filter((n) => n.startsWith("stow"));
      if (leftovers.length) {
        throw new Error(`HTTP ${res.status}: ${leftovers.length} staged part file(s) left in tmp/`);
      }
      const added = store.size - before;
      if (res.status >= 500 || res.status < 200) throw new Error(`HTTP ${res.status}: ${text.slice(0, 300)}`);
      if (res.status >= 400) {
        if (added !== 0) {
          throw new Error(`HTTP ${res.status} but ${added} instance(s) were stored (partial store)`);
        }
        let code = "";
        try {
          code = String((JSON.parse(text) as { error?: unknown }).error ?? "");
        } catch {
          // 409 bodies are DICOM JSON, not {error}
        }
        return { rejected: `HTTP_${res.status}${code ? `_${code}` : ""}` };
      }
      const json = JSON.parse(text) as Record<string, { Value?: Record<string, { Value?: string[] }>[] }>;
      const stored = json["00081199"]?.Value ?? [];
      for (const item of stored) {
        const uid = item["00081155"]?.Value?.[0] ?? "";
        const rec = store.get(uid);
        if (!rec) {
          throw new Error(`STOW answered ${res.status} listing ${uid}, which the store does not have`);
        }
        // the stored file must be complete: it parses again with the strict reader
        try {
          parseDicom(await Deno.readFile(join(dataDir, rec.path)));
        } catch (e) {
          throw new Error(
            `${KNOWN_STORED_INCOMPLETE}: ${uid} was stored (HTTP ${res.status}) but does not parse: ${
              e instanceof Error ? e.message : String(e)
            }`,
          );
        }
      }
      if (added > stored.length) {
        throw new Error(`${added} records added but ${stored.length} listed as stored`);
      }
      return "ok";
    },
    async teardown() {
      await server?.close();
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    },
  };
}
