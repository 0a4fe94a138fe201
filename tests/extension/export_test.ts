/**
 * Store to PACS against a fake OHIF data source: what is sent (our own STOW-RS with `fetch` to the
 * source's DICOMweb root, or the source's store.dicom when it has none), which metadata cache keys are
 * cleared around the refetch (OHIF 3.13.2 keys them as `name:StudyInstanceUID`), the multipart body,
 * the STOW answer check, and the messages when the PACS is down or refuses.
 */
import assert from "node:assert/strict";
import { DicomWebError } from "../../src/core/errors.ts";
import { multipartBody } from "../../src/dicom/web.ts";
import {
  checkStowResponse,
  describeFailureReason,
  describeStoreError,
  type EncodedObject,
  storeObjects,
  stowBody,
  stowBoundary,
  stowTarget,
} from "../../extension/src/export.ts";

const STUDY = "1.2.3";

function objects(): EncodedObject[] {
  return [
    { kind: "SEG", bytes: new Uint8Array([1, 2, 3]), seriesInstanceUID: "1.2.3.10", fileName: "a-seg.dcm" },
    { kind: "PM", bytes: new Uint8Array([4, 5]), seriesInstanceUID: "1.2.3.11", fileName: "a-pm.dcm" },
  ];
}

/** A dicomweb-client style failure: Error("request failed") with status and response. */
function requestFailed(status: number, response: unknown): Error {
  return Object.assign(new Error("request failed"), { status, response });
}

function fakeSource(opts: { storeError?: unknown; retrieveError?: unknown } = {}) {
  const log: string[] = [];
  const stored: number[] = [];
  const ds = {
    store: {
      dicom(data: ArrayBuffer): Promise<unknown> {
        if (opts.storeError) return Promise.reject(opts.storeError);
        stored.push(data.byteLength);
        log.push("store");
        return Promise.resolve(undefined);
      },
    },
    deleteStudyMetadataPromise(key: string) {
      log.push(`delete ${key}`);
    },
    getConfig: () => ({ name: "edgeseg" }),
    retrieve: {
      series: {
        metadata(args: { StudyInstanceUID: string; filters?: { seriesInstanceUID?: string[] } }) {
          log.push(`retrieve ${args.StudyInstanceUID} ${args.filters?.seriesInstanceUID?.join(",")}`);
          return opts.retrieveError ? Promise.reject(opts.retrieveError) : Promise.resolve([]);
        },
      },
    },
  };
  return { manager: { getActiveDataSource: () => [ds] }, log, stored };
}

Deno.test("a store sends each object, clears both metadata cache keys and refetches only the new series", async () => {
  const { manager, log, stored } = fakeSource();
  const outcome = await storeObjects(manager, STUDY, objects());
  assert.deepEqual(outcome, {});
  assert.deepEqual(stored, [3, 2], "the bytes are sent as written, one request per object");
  assert.deepEqual(log, [
    "store",
    "store",
    `delete ${STUDY}`,
    `delete edgeseg:${STUDY}`,
    `retrieve ${STUDY} 1.2.3.10,1.2.3.11`,
    `delete ${STUDY}`,
    `delete edgeseg:${STUDY}`,
  ]);
});

Deno.test("a PACS answering 503 to STOW fails the store with the status and body, and nothing is refetched", async () => {
  const { manager, log } = fakeSource({ storeError: requestFailed(503, "PACS unavailable") });
  await assert.rejects(
    () => storeObjects(manager, STUDY, objects()),
    (err: Error) => {
      assert.equal(err.message, "SEG not stored: the PACS answered HTTP 503 (PACS unavailable)");
      return true;
    },
  );
  assert.deepEqual(log, [], "no refetch after a failed store");
});

Deno.test("a store whose refetch fails still succeeds and says why the series are not listed yet", async () => {
  const { manager, stored } = fakeSource({ retrieveError: requestFailed(0, null) });
  const outcome = await storeObjects(manager, STUDY, objects());
  assert.equal(stored.length, 2);
  assert.deepEqual(outcome, { refetchError: "the PACS could not be reached" });
});

Deno.test("store errors are described by HTTP status, JSON body or message", () => {
  assert.equal(describeStoreError(requestFailed(0, "")), "the PACS could not be reached");
  assert.equal(
    describeStoreError(requestFailed(409, { error: "conflict" })),
    'the PACS answered HTTP 409 ({"error":"conflict"})',
  );
  assert.equal(describeStoreError(requestFailed(400, undefined)), "the PACS answered HTTP 400");
  assert.equal(describeStoreError(new TypeError("Failed to fetch")), "Failed to fetch");
  assert.equal(describeStoreError("odd"), "odd");
});

Deno.test("a data source without STOW is refused before anything is sent", async () => {
  await assert.rejects(
    () => storeObjects({ getActiveDataSource: () => [{}] }, STUDY, objects()),
    /cannot store DICOM/,
  );
});

// --- our own STOW-RS (a data source with a DICOMweb root) -------------------------------------------

/** A STOW-RS answer listing `stored` instances and `failed` (with reasons) in DICOM JSON. */
function stowAnswer(stored: string[], failed: [string, number][] = []): string {
  const out: Record<string, unknown> = {
    "00081199": { vr: "SQ", Value: stored.map((uid) => ({ "00081155": { vr: "UI", Value: [uid] } })) },
  };
  if (failed.length) {
    out["00081198"] = {
      vr: "SQ",
      Value: failed.map(([uid, reason]) => ({
        "00081155": { vr: "UI", Value: [uid] },
        "00081197": { vr: "US", Value: [reason] },
      })),
    };
  }
  return JSON.stringify(out);
}

interface SentRequest {
  url: string;
  headers: Record<string, string>;
  body: Uint8Array;
  bodyIsBlob: boolean;
}

/** A DICOMweb data source whose STOW goes through an injected fetch answering `answers` in turn. */
function webSource(answers: (Response | Error)[], config: Record<string, unknown> = {}) {
  const sent: SentRequest[] = [];
  const log: string[] = [];
  const ds = {
    store: {
      dicom(): Promise<unknown> {
        log.push("store.dicom");
        return Promise.resolve(undefined);
      },
    },
    deleteStudyMetadataPromise(key: string) {
      log.push(`delete ${key}`);
    },
    getConfig: () => ({ name: "edgeseg", wadoRoot: "/dicom-web/", ...config }),
    retrieve: {
      series: {
        metadata(args: { StudyInstanceUID: string; filters?: { seriesInstanceUID?: string[] } }) {
          log.push(`retrieve ${args.StudyInstanceUID} ${args.filters?.seriesInstanceUID?.join(",")}`);
          return Promise.resolve([]);
        },
      },
    },
  };
  const fetchFn = (async (url: string | URL | Request, init?: RequestInit) => {
    const body = init?.body;
    sent.push({
      url: String(url),
      headers: { ...(init?.headers as Record<string, string>) },
      body: body instanceof Blob ? new Uint8Array(await body.arrayBuffer()) : new Uint8Array(),
      bodyIsBlob: body instanceof Blob,
    });
    log.push("fetch");
    const next = answers.shift();
    if (!next) throw new Error("unexpected request");
    if (next instanceof Error) throw next;
    return next;
  }) as typeof fetch;
  return { manager: { getActiveDataSource: () => [ds] }, sent, log, fetchFn };
}

function boundaryOf(contentType: string): string {
  const m = /boundary=([^;]+)/.exec(contentType);
  assert.ok(m, `a boundary in ${contentType}`);
  return m[1];
}

Deno.test("a store to a DICOMweb source POSTs each object as a multipart Blob to wadoRoot/studies with the auth header", async () => {
  const { manager, sent, log, fetchFn } = webSource([
    new Response(stowAnswer(["1.2.3.10.1"]), { status: 200 }),
    new Response(stowAnswer(["1.2.3.11.1"]), { status: 202 }),
  ]);
  const outcome = await storeObjects(manager, STUDY, objects(), {
    fetch: fetchFn,
    authorizationHeader: () => ({ Authorization: "Bearer t0ken" }),
  });
  assert.deepEqual(outcome, {});
  assert.equal(sent.length, 2, "one request per object");
  for (const [i, req] of sent.entries()) {
    assert.equal(req.url, "/dicom-web/studies");
    assert.ok(req.bodyIsBlob, "the body is a Blob, not an ArrayBuffer");
    assert.equal(req.headers.Authorization, "Bearer t0ken");
    assert.equal(req.headers.Accept, "application/dicom+json");
    const boundary = boundaryOf(req.headers["Content-Type"]);
    assert.match(req.headers["Content-Type"], /^multipart\/related; type="application\/dicom"; boundary=/);
    assert.deepEqual(req.body, multipartBody([objects()[i].bytes], boundary));
  }
  assert.deepEqual(log, [
    "fetch",
    "fetch",
    `delete ${STUDY}`,
    `delete edgeseg:${STUDY}`,
    `retrieve ${STUDY} 1.2.3.10,1.2.3.11`,
    `delete ${STUDY}`,
    `delete edgeseg:${STUDY}`,
  ], "store.dicom is not used when the source has a DICOMweb root");
});

Deno.test("stowTarget prefers stowRoot, sends no Authorization when signed out, and is undefined without a root", () => {
  const ds = (config: Record<string, unknown>) => ({ getConfig: () => config });
  assert.deepEqual(stowTarget(ds({ wadoRoot: "https://pacs/dicom-web", stowRoot: "https://stow/rs" })), {
    url: "https://stow/rs/studies",
    headers: {},
  });
  assert.deepEqual(
    stowTarget(ds({ wadoRoot: "https://pacs/dicom-web" }), { authorizationHeader: () => ({}) }),
    { url: "https://pacs/dicom-web/studies", headers: {} },
  );
  assert.equal(stowTarget(ds({ name: "json" })), undefined);
  assert.equal(stowTarget({}), undefined);
});

Deno.test("a source without a DICOMweb root falls back to its own store.dicom with a copy of the bytes", async () => {
  const { manager, stored } = fakeSource();
  await storeObjects(manager, STUDY, objects(), {
    fetch: () => Promise.reject(new Error("not to be called")),
  });
  assert.deepEqual(stored, [3, 2]);
});

Deno.test("the STOW body is the same multipart/related bytes as the CLI's, for one part and several", async () => {
  const parts = [new Uint8Array([0, 1, 2, 255]), new Uint8Array(0), new Uint8Array([13, 10, 45, 45])];
  for (const sub of [parts.slice(0, 1), parts]) {
    const blob = stowBody(sub, "b-1");
    assert.deepEqual(new Uint8Array(await blob.arrayBuffer()), multipartBody(sub, "b-1"));
    assert.equal(blob.type, 'multipart/related; type="application/dicom"; boundary=b-1');
  }
  const a = stowBoundary(), b = stowBoundary();
  assert.match(a, /^edgeseg-[0-9a-f]{32}$/);
  assert.notEqual(a, b, "a fresh boundary per request");
});

Deno.test("a STOW answer is accepted only when every instance sent is listed as stored", () => {
  checkStowResponse(200, stowAnswer(["1.2"]), 1);
  checkStowResponse(200, JSON.stringify([JSON.parse(stowAnswer(["1.2", "1.3"]))]), 2);
  const fails = (status: number, body: string, expected: number, message: string) =>
    assert.throws(() => checkStowResponse(status, body, expected), (err: Error) => {
      assert.ok(err instanceof DicomWebError, `typed error for ${message}`);
      assert.equal(err.message, message);
      assert.equal(err.status, status);
      return true;
    });
  fails(
    200,
    stowAnswer([]),
    1,
    "the PACS answered HTTP 200 but listed 0 stored instances in ReferencedSOPSequence (0008,1199), expected 1",
  );
  fails(
    200,
    "",
    1,
    "the PACS answered HTTP 200 but listed 0 stored instances in ReferencedSOPSequence (0008,1199), expected 1",
  );
  fails(
    202,
    stowAnswer(["1.2"], [["1.3", 0xa700]]),
    2,
    "the PACS answered HTTP 202 but refused 1 of 2 instances (1.3: 0xA700, out of resources)",
  );
  fails(
    409,
    stowAnswer([], [["1.2", 0xa900]]),
    1,
    "the PACS answered HTTP 409 (1.2: 0xA900, data set does not match SOP class)",
  );
  fails(413, "Payload Too Large\n", 1, "the PACS answered HTTP 413 (Payload Too Large)");
  fails(500, "", 1, "the PACS answered HTTP 500");
});

Deno.test("STOW failure reasons are named by their PS3.18 code or range", () => {
  assert.equal(describeFailureReason(0x0110), "0x0110, processing failure");
  assert.equal(describeFailureReason(0x0122), "0x0122, SOP class not supported");
  assert.equal(describeFailureReason(0x0124), "0x0124, not authorized");
  assert.equal(describeFailureReason(0xa7ff), "0xA7FF, out of resources");
  assert.equal(describeFailureReason(0xc123), "0xC123, cannot understand");
  assert.equal(describeFailureReason(0xb000), "0xB000");
  assert.equal(describeFailureReason(undefined), "no reason given");
});

Deno.test("a STOW refused by the PACS or unreachable fails the store naming the object, and nothing is refetched", async () => {
  const refused = webSource([new Response(stowAnswer([], [["9.9", 0x0124]]), { status: 409 })]);
  await assert.rejects(
    () => storeObjects(refused.manager, STUDY, objects(), { fetch: refused.fetchFn }),
    (err: Error) => {
      assert.equal(err.message, "SEG not stored: the PACS answered HTTP 409 (9.9: 0x0124, not authorized)");
      assert.ok(err.cause instanceof DicomWebError);
      return true;
    },
  );
  assert.deepEqual(refused.log, ["fetch"], "no PM request and no refetch after the SEG failed");

  const partial = webSource([
    new Response(stowAnswer(["1.2.3.10.1"]), { status: 200 }),
    new Response(stowAnswer([]), { status: 200 }),
  ]);
  await assert.rejects(
    () => storeObjects(partial.manager, STUDY, objects(), { fetch: partial.fetchFn }),
    /^EdgeSegError: PM not stored: the PACS answered HTTP 200 but listed 0 stored instances/,
  );

  const down = webSource([new TypeError("Failed to fetch")]);
  await assert.rejects(
    () => storeObjects(down.manager, STUDY, objects(), { fetch: down.fetchFn }),
    (err: Error) => {
      assert.equal(err.message, "SEG not stored: the PACS could not be reached (Failed to fetch)");
      assert.equal((err.cause as DicomWebError).code, "NETWORK");
      return true;
    },
  );
});
