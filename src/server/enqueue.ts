/**
 * `POST /edgeseg/enqueue`: adds batch segmentation jobs from a PACS hook (deploy/orthanc/edgeseg-enqueue.lua
 * calls it from Orthanc's OnStableStudy) or any script. Off unless the server is started with a shared
 * token and a Redis URL (`deno task start --enqueue-token … --redis …`).
 *
 *   Authorization: Bearer <token>
 *   { "study": "<StudyInstanceUID>" [, "model": "<package id>"] [, "series": "<SeriesInstanceUID>"] }
 *   or { "studies": ["<uid>", …], "model": … }
 *
 * Answers 202 with what was queued and what already existed, 401 without the token, 400 for a body it
 * cannot use, 503 when Redis does not answer in time (the hook may try again; nothing half-done).
 * Only package ids are accepted as models, never paths or URLs: a caller must not make the workers
 * read files or fetch from addresses of its choosing.
 */
import { enqueueStudies, openQueue } from "../queue/jobs.ts";
import type { SegmentJobData } from "../queue/jobs.ts";
import { errorResponse } from "./dicomweb.ts";

export const ENQUEUE_PATH = "/edgeseg/enqueue";

export interface EnqueueEndpointOptions {
  token: string;
  redisUrl: string;
  /** the model for requests that name none */
  defaultModel?: string;
  /** how long to wait for Redis before answering 503 (default 5 s) */
  timeoutMs?: number;
  log?: (line: string) => void;
}

export interface EnqueueEndpoint {
  handle(req: Request): Promise<Response>;
  close(): Promise<void>;
}

const UID = /^[0-9]+(\.[0-9]+)*$/;
const MODEL_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const MAX_BODY_BYTES = 1024 * 1024;

/** Constant-time comparison, so the token cannot be guessed byte by byte from answer times. */
function sameToken(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a), y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

function isUid(v: unknown): v is string {
  return typeof v === "string" && v.length <= 64 && UID.test(v);
}

/** The jobs a request body asks for, or a message saying what is wrong with it. */
export function parseEnqueueBody(body: unknown, defaultModel?: string): SegmentJobData[] | string {
  if (!body || typeof body !== "object" || Array.isArray(body)) {
    return 'expected a JSON object like {"study": "<StudyInstanceUID>", "model": "<id>"}';
  }
  const b = body as Record<string, unknown>;
  const studies = b.studies !== undefined ? b.studies : b.study !== undefined ? [b.study] : undefined;
  if (!Array.isArray(studies) || studies.length === 0) {
    return 'expected "study" (a UID) or "studies" (a list of UIDs)';
  }
  if (studies.length > 10_000) return `expected at most 10000 studies per request, found ${studies.length}`;
  const bad = studies.find((s) => !isUid(s));
  if (bad !== undefined) {
    return `expected StudyInstanceUIDs (digits and dots, ≤ 64), found ${JSON.stringify(bad)}`;
  }
  const model = b.model ?? defaultModel;
  if (typeof model !== "string" || !MODEL_ID.test(model)) {
    return model === undefined
      ? 'expected "model" (a package id): the server has no default model (--enqueue-model)'
      : `expected "model" to be a package id (letters, digits, . _ -), found ${JSON.stringify(model)}`;
  }
  if (b.series !== undefined && (!isUid(b.series) || studies.length !== 1)) {
    return '"series" must be a SeriesInstanceUID and comes with exactly one study';
  }
  const source = typeof b.source === "string" ? b.source.slice(0, 32) : "http";
  return (studies as string[]).map((studyUID) => ({
    studyUID,
    model,
    ...(b.series ? { seriesUID: b.series as string } : {}),
    source,
  }));
}

export function createEnqueueEndpoint(opts: EnqueueEndpointOptions): EnqueueEndpoint {
  if (opts.token.length < 16) throw new TypeError("the enqueue token must be at least 16 characters");
  const log = opts.log ?? (() => {});
  let queue: ReturnType<typeof openQueue> | undefined;
  return {
    async handle(req: Request): Promise<Response> {
      if (req.method !== "POST") {
        await req.body?.cancel().catch(() => {});
        return errorResponse(405, "METHOD_NOT_ALLOWED", `${ENQUEUE_PATH} accepts POST only`, {
          allow: "POST",
        });
      }
      const auth = req.headers.get("authorization") ?? "";
      const m = /^Bearer\s+(.+)$/i.exec(auth);
      if (!m || !sameToken(m[1].trim(), opts.token)) {
        await req.body?.cancel().catch(() => {});
        return errorResponse(401, "UNAUTHORIZED", "expected Authorization: Bearer <the enqueue token>", {
          "www-authenticate": 'Bearer realm="edgeseg-enqueue"',
        });
      }
      const text = await req.text();
      if (text.length > MAX_BODY_BYTES) {
        return errorResponse(413, "TOO_LARGE", `expected at most ${MAX_BODY_BYTES} bytes`);
      }
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        return errorResponse(400, "BAD_JSON", "expected a JSON body");
      }
      const items = parseEnqueueBody(body, opts.defaultModel);
      if (typeof items === "string") return errorResponse(400, "BAD_REQUEST", items);
      queue ??= openQueue(opts.redisUrl);
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        // BullMQ's connection waits for Redis forever (it must, for workers); a hook must not.
        const outcomes = await Promise.race([
          enqueueStudies(queue, items),
          new Promise<never>((_, reject) => {
            timer = setTimeout(
              () => reject(new Error(`Redis did not answer within ${opts.timeoutMs ?? 5000} ms`)),
              opts.timeoutMs ?? 5000,
            );
          }),
        ]);
        const queued = outcomes.filter((o) => o.added).map((o) => o.studyUID);
        const existing = outcomes.filter((o) => !o.added).map((o) => ({ study: o.studyUID, state: o.state }));
        log(`enqueue: ${queued.length} queued, ${existing.length} already known (${items[0].model})`);
        return new Response(JSON.stringify({ queued, existing }), {
          status: 202,
          headers: { "content-type": "application/json; charset=utf-8" },
        });
      } catch (e) {
        return errorResponse(
          503,
          "QUEUE_UNAVAILABLE",
          `the job queue is unavailable: ${(e as Error).message}`,
          {
            "retry-after": "30",
          },
        );
      } finally {
        clearTimeout(timer);
      }
    },
    async close() {
      await queue?.close();
    },
  };
}
