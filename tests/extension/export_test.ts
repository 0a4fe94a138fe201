/**
 * Store to PACS against a fake OHIF data source: what is sent, which metadata cache keys are cleared
 * around the refetch (OHIF 3.13.2 keys them as `name:StudyInstanceUID`), and the messages when the
 * PACS is down or refuses.
 */
import assert from "node:assert/strict";
import { describeStoreError, type EncodedObject, storeObjects } from "../../extension/src/export.ts";

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
