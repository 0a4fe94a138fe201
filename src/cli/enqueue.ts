/**
 * deno task enqueue --redis <redis://host:port> --model <id> (--study <uid>… | --query "<QIDO params>" --pacs <url>)
 *   [--series <uid>] [--limit N] [--attempts 12] [--backoff-ms 5000] [--dry-run]
 *
 * Adds one segmentation job per study to the shared queue. `--query` asks the PACS which studies match
 * (QIDO-RS study level, e.g. "ModalitiesInStudy=CT&StudyDate=20250101-20251231"). A study already
 * queued, done or failed for this model is left as it is (`deno task queue retry` re-runs failures).
 */
import { InputError } from "../core/errors.ts";
import { DicomWebClient } from "../dicom/mod.ts";
import { DEFAULT_RETRY, enqueueStudies, openQueue } from "../queue/jobs.ts";
import type { SegmentJobData } from "../queue/jobs.ts";
import { flag, hasFlag, numberFlag, parseArgs, requireFlag } from "./args.ts";
import { reportError } from "./common.ts";

const USAGE =
  `usage: deno task enqueue --redis <redis://host:port> --model <id|path> (--study <uid>… | --query "<QIDO params>" --pacs <DICOMweb url>)
  [--series <uid>] [--limit N] [--attempts N] [--backoff-ms N] [--dry-run]`;

/** "A=1&B=x,y" → { A: "1", B: "x,y" } (commas are QIDO's multi-value separator and stay as they are). */
export function parseQuery(q: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of q.replace(/^\?/, "").split("&")) {
    if (!part) continue;
    const eq = part.indexOf("=");
    if (eq <= 0) {
      throw new InputError(
        "BAD_QUERY",
        `--query expects KEY=VALUE pairs joined by &, found ${JSON.stringify(part)}`,
      );
    }
    out[decodeURIComponent(part.slice(0, eq))] = decodeURIComponent(part.slice(eq + 1));
  }
  return out;
}

/** Study UIDs matching a QIDO query, paged (limit/offset) so a large archive is not one response. */
export async function queryStudies(
  client: DicomWebClient,
  query: Record<string, string>,
  max = Infinity,
): Promise<string[]> {
  const uids: string[] = [];
  const page = 500;
  for (let offset = 0; uids.length < max; offset += page) {
    const found = await client.searchForStudies({ ...query, limit: page, offset });
    for (const s of found) {
      const uid = s["0020000D"]?.Value?.[0];
      if (typeof uid === "string" && !uids.includes(uid)) uids.push(uid);
    }
    if (found.length < page) break;
  }
  return uids.slice(0, max);
}

async function main(): Promise<void> {
  const args = parseArgs(Deno.args, ["help", "dry-run"]);
  if (args.flags.has("help")) {
    console.log(USAGE);
    return;
  }
  const model = requireFlag(args, "model", USAGE);
  const query = flag(args, "query");
  let studies = args.flags.get("study") ?? [];
  if (!studies.length && !query) {
    throw new InputError("ARG_REQUIRED", `--study or --query is required\n${USAGE}`);
  }
  if (query) {
    const pacs = requireFlag(args, "pacs", USAGE);
    const found = await queryStudies(
      new DicomWebClient({ baseUrl: pacs }),
      parseQuery(query),
      numberFlag(args, "limit", Infinity),
    );
    console.error(`${found.length} studies match ${query}`);
    studies = [...studies, ...found];
  }
  const series = flag(args, "series");
  const items: SegmentJobData[] = studies.map((studyUID) => ({
    studyUID,
    model,
    ...(series ? { seriesUID: series } : {}),
    source: query ? "query" : "enqueue",
  }));
  if (hasFlag(args, "dry-run")) {
    for (const i of items) console.log(i.studyUID);
    return;
  }
  const queue = openQueue(requireFlag(args, "redis", USAGE));
  try {
    const outcomes = await enqueueStudies(queue, items, {
      attempts: numberFlag(args, "attempts", DEFAULT_RETRY.attempts),
      backoffMs: numberFlag(args, "backoff-ms", DEFAULT_RETRY.backoffMs),
    });
    for (const o of outcomes) console.log(`${o.added ? "queued " : `exists (${o.state})`} ${o.studyUID}`);
    const added = outcomes.filter((o) => o.added).length;
    console.error(`queued ${added} of ${outcomes.length} studies for ${model}`);
  } finally {
    await queue.close();
  }
}

if (import.meta.main) await main().catch(reportError);
