/**
 * DICOMweb client against a private Orthanc (tests/helpers/orthanc.ts) and against small fake
 * servers for the failure rules: 5xx and network errors retried with backoff, 4xx (409) thrown with
 * status and text, STOW counted against the parts sent, the outbox keeping objects until stored.
 */
import assert from "node:assert/strict";
import { DicomWebError } from "../../src/core/errors.ts";
import { parseDicom, pixelBuffers } from "../../src/dicom/dataset.ts";
import { FolderOutbox } from "../../src/dicom/fs.ts";
import { writeParametricMap } from "../../src/dicom/pmap.ts";
import { readSeries } from "../../src/dicom/read.ts";
import { writeSegmentation } from "../../src/dicom/seg.ts";
import { readParametricMap, readSegmentation } from "../../src/dicom/segread.ts";
import { DicomWebClient, flushOutbox, MemoryOutbox, storeWithRetention } from "../../src/dicom/web.ts";
import { readSeriesFromDicomWeb } from "../../src/dicom/web_series.ts";
import { orthancMissing, startOrthanc } from "../helpers/orthanc.ts";
import { syntheticSeries } from "./synthetic.ts";
import { artifacts, haveData, listDicom, provenance, SCT, segment } from "./tools.ts";

const missing = orthancMissing();
if (missing) console.log(`skip: ${missing}`);

const s = syntheticSeries({ seed: 31 });
const r = await readSeries(s.files);
const source = { instances: r.instances, geometry: r.volume.geometry, refs: r.volume.source!.instances };
const segs = [
  segment(1, "Soft tissue"),
  segment(2, "Bone", SCT("272673000", "Bone structure"), [241, 214, 145]),
];
const seg = writeSegmentation({
  source,
  labelmap: { geometry: r.volume.geometry, data: s.truth, segments: segs },
  provenance,
});
const labelSeg = writeSegmentation({
  source,
  labelmap: { geometry: r.volume.geometry, data: s.truth, segments: segs },
  provenance,
  options: { type: "LABELMAP" },
});
const um = new Float32Array(s.truth.length).map((_, i) => (i % 11) / 11);
const pm = writeParametricMap({
  source,
  map: { geometry: r.volume.geometry, data: um, measure: "entropy", method: "mc", passes: 10 },
  provenance,
});
const uid = (bytes: Uint8Array, key: string) => String(parseDicom(bytes).dataset[key]);

Deno.test({
  name:
    "STOW of a series, its BINARY and LABELMAP SEGs and its Parametric Map to Orthanc, then WADO back: identical pixel data",
  ignore: missing !== null,
  fn: async () => {
    const pacs = await startOrthanc();
    try {
      const client = new DicomWebClient({ baseUrl: pacs.dicomWebUrl });
      const stored = await client.store([...s.files, seg, labelSeg, pm]);
      assert.equal(stored.stored.length, s.files.length + 3);
      const series = await client.searchForSeries(s.studyUID);
      const modalities = series.map((x) => x["00080060"]?.Value?.[0]).sort();
      // the source CT, two SEG series and the Parametric Map (which takes the source modality)
      assert.deepEqual(modalities, ["CT", "CT", "SEG", "SEG"]);
      for (
        const [bytes, key] of [[seg, "PixelData"], [labelSeg, "PixelData"], [pm, "FloatPixelData"]] as const
      ) {
        const back = await client.retrieveInstance(
          s.studyUID,
          uid(bytes, "SeriesInstanceUID"),
          uid(bytes, "SOPInstanceUID"),
        );
        assert.deepEqual(
          pixelBuffers(parseDicom(back).dataset, key),
          pixelBuffers(parseDicom(bytes).dataset, key),
        );
      }
      const segBack = await readSegmentation(
        await client.retrieveInstance(s.studyUID, uid(seg, "SeriesInstanceUID"), uid(seg, "SOPInstanceUID")),
        { geometry: r.volume.geometry, refs: r.volume.source!.instances },
      );
      assert.deepEqual(segBack.labelmap!.data, s.truth);
      const pmBack = await readParametricMap(
        await client.retrieveInstance(s.studyUID, uid(pm, "SeriesInstanceUID"), uid(pm, "SOPInstanceUID")),
        { geometry: r.volume.geometry, refs: r.volume.source!.instances },
      );
      assert.deepEqual(pmBack.data, um);
      // QIDO filters and instance metadata
      const segInstances = await client.searchForInstances(s.studyUID, undefined, {
        SOPClassUID: "1.2.840.10008.5.1.4.1.1.66.4",
      });
      assert.equal(segInstances.length, 1);
      // the source series comes back through WADO-RS as the same volume
      const viaWeb = await readSeriesFromDicomWeb(client, s.studyUID, s.seriesUID);
      assert.deepEqual(viaWeb.volume.data, r.volume.data);
      assert.deepEqual(viaWeb.volume.geometry, r.volume.geometry);
      const meta = await client.retrieveMetadata(
        s.studyUID,
        uid(seg, "SeriesInstanceUID"),
        uid(seg, "SOPInstanceUID"),
      );
      assert.equal(meta[0]["00620001"]?.Value?.[0], "BINARY");
    } finally {
      await pacs.stop();
    }
  },
});

Deno.test({
  name: "a JPEG-LS CT slice STOW'd to Orthanc comes back as raw frames equal to our decoded pixels",
  ignore: missing !== null || !haveData("ct-abdomen/raw"),
  fn: async () => {
    const pacs = await startOrthanc();
    try {
      const client = new DicomWebClient({ baseUrl: pacs.dicomWebUrl });
      const [file] = listDicom("ct-abdomen/raw").slice(60, 61);
      await client.store([file]);
      const { dataset } = parseDicom(file);
      const [frame] = await client.retrieveFrames(
        String(dataset.StudyInstanceUID),
        String(dataset.SeriesInstanceUID),
        String(dataset.SOPInstanceUID),
        [1],
      );
      const ours = await readSeries([file]);
      const stored = new Uint16Array(
        frame.buffer.slice(frame.byteOffset, frame.byteOffset + frame.byteLength),
      );
      // readSeries applies the rescale (intercept −1000); Orthanc returns stored values
      for (let i = 0; i < stored.length; i += 97) assert.equal(stored[i] - 1000, ours.volume.data[i]);
      assert.equal(stored.length, 512 * 512);
    } finally {
      await pacs.stop();
    }
  },
});

Deno.test({
  name:
    "Orthanc's 409 (instance of another study) is a DicomWebError with status and response text, not retried",
  ignore: missing !== null,
  fn: async () => {
    const pacs = await startOrthanc();
    try {
      let retries = 0;
      const client = new DicomWebClient({ baseUrl: pacs.dicomWebUrl, onRetry: () => retries++ });
      await assert.rejects(
        client.store([seg], "2.25.999"),
        (e: unknown) => e instanceof DicomWebError && e.status === 409 && e.responseText.length > 0,
      );
      assert.equal(retries, 0);
    } finally {
      await pacs.stop();
    }
  },
});

function fakeServer(handler: (req: Request, n: number) => Response | Promise<Response>) {
  let n = 0;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (req) => handler(req, ++n),
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}/dicom-web`,
    close: () => server.shutdown(),
    count: () => n,
  };
}

Deno.test("5xx answers are retried with doubling backoff until the server recovers", async () => {
  const fake = fakeServer((_req, n) => n <= 2 ? new Response("busy", { status: 503 }) : Response.json([]));
  try {
    const delays: number[] = [];
    const client = new DicomWebClient({
      baseUrl: fake.url,
      backoffMs: 5,
      onRetry: (i) => delays.push(i.delayMs),
    });
    assert.deepEqual(await client.searchForStudies({ PatientID: "X" }), []);
    assert.deepEqual(delays, [5, 10]);
    assert.equal(fake.count(), 3);
  } finally {
    await fake.close();
  }
});

Deno.test("retries are bounded: a dead PACS gives DicomWebError status 0 after retries + 1 attempts", async () => {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  let attempts = 0;
  const client = new DicomWebClient({
    baseUrl: `http://127.0.0.1:${port}/dicom-web`,
    retries: 2,
    backoffMs: 1,
    onRetry: () => attempts++,
  });
  await assert.rejects(
    client.searchForStudies(),
    (e: unknown) => e instanceof DicomWebError && e.status === 0 && /3 attempts/.test(e.message),
  );
  assert.equal(attempts, 2);
});

Deno.test({
  name:
    "a STOW answered 200 with nothing stored is an error, the SEG stays in the outbox and a later flush stores it",
  ignore: missing !== null,
  fn: async () => {
    // Orthanc's silent case: 200 with empty sequences (e.g. a wrong boundary)
    const fake = fakeServer(async (req) => {
      await req.arrayBuffer();
      return Response.json({ "00081198": { vr: "SQ", Value: [] }, "00081199": { vr: "SQ", Value: [] } });
    });
    const outboxDir = `${artifacts}outbox-${crypto.randomUUID()}`;
    const outbox = new FolderOutbox(outboxDir);
    try {
      const client = new DicomWebClient({ baseUrl: fake.url });
      await assert.rejects(
        storeWithRetention(client, [{ id: uid(seg, "SOPInstanceUID"), bytes: seg }], outbox),
        (e: unknown) =>
          e instanceof DicomWebError && /expected 1 instances.*found 0/.test(e.message) &&
          /kept in the outbox/.test(e.message),
      );
      assert.deepEqual(await outbox.list(), [uid(seg, "SOPInstanceUID")]);
      assert.deepEqual(await outbox.get(uid(seg, "SOPInstanceUID")), seg);
    } finally {
      await fake.close();
    }
    const pacs = await startOrthanc();
    try {
      const client = new DicomWebClient({ baseUrl: pacs.dicomWebUrl });
      const flushed = await flushOutbox(client, outbox);
      assert.deepEqual(flushed, { stored: [uid(seg, "SOPInstanceUID")], pending: [] });
      assert.deepEqual(await outbox.list(), []);
      const back = await client.searchForInstances(undefined, undefined, {
        SOPInstanceUID: uid(seg, "SOPInstanceUID"),
      });
      assert.equal(back.length, 1);
    } finally {
      await pacs.stop();
      await Deno.remove(outboxDir, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test("storeWithRetention removes an object from the outbox only once the PACS lists it", async () => {
  const fake = fakeServer(async (req) => {
    await req.arrayBuffer();
    return Response.json({
      "00081199": { vr: "SQ", Value: [{ "00081155": { vr: "UI", Value: ["2.25.1"] } }] },
    });
  });
  try {
    const outbox = new MemoryOutbox();
    const result = await storeWithRetention(new DicomWebClient({ baseUrl: fake.url }), [{
      id: "a",
      bytes: seg,
    }], outbox);
    assert.equal(result.stored.length, 1);
    assert.deepEqual(await outbox.list(), []);
  } finally {
    await fake.close();
  }
});

Deno.test({
  name:
    "measured: our fetch client vs dicomweb-client + xhr2 on the same QIDO (same answers; timings printed)",
  ignore: missing !== null,
  fn: async () => {
    const pacs = await startOrthanc();
    try {
      const ours = new DicomWebClient({ baseUrl: pacs.dicomWebUrl });
      await ours.store(s.files);
      const g = globalThis as { XMLHttpRequest?: unknown };
      const hadXhr = g.XMLHttpRequest !== undefined;
      const { default: XHR2 } = await import("xhr2");
      g.XMLHttpRequest = XHR2;
      const { api } = (await import("dicomweb-client")) as unknown as {
        api: {
          DICOMwebClient: new (
            o: { url: string },
          ) => { searchForSeries(o: Record<string, unknown>): Promise<unknown[]> };
        };
      };
      const theirs = new api.DICOMwebClient({ url: pacs.dicomWebUrl });
      const time = async (f: () => Promise<unknown[]>) => {
        const ms: number[] = [];
        let n = 0;
        for (let i = 0; i < 15; i++) {
          const t = performance.now();
          n = (await f()).length;
          ms.push(performance.now() - t);
        }
        return { n, median: ms.sort((a, b) => a - b)[7] };
      };
      const a = await time(() => ours.searchForSeries(s.studyUID));
      const b = await time(() => theirs.searchForSeries({ studyInstanceUID: s.studyUID }));
      console.log(
        `QIDO series, median of 15: fetch client ${a.median.toFixed(2)} ms, dicomweb-client+xhr2 ${
          b.median.toFixed(2)
        } ms`,
      );
      assert.equal(a.n, b.n);
      if (!hadXhr) delete g.XMLHttpRequest;
    } finally {
      await pacs.stop();
    }
  },
});

Deno.test("a pasted DICOMweb URL splits into base URL, study and series", async () => {
  const { parseDicomWebUrl } = await import("../../src/dicom/web.ts");
  assert.deepEqual(parseDicomWebUrl("http://127.0.0.1:8042/dicom-web/studies/1.2.3/series/4.5.6"), {
    baseUrl: "http://127.0.0.1:8042/dicom-web",
    studyUID: "1.2.3",
    seriesUID: "4.5.6",
  });
  assert.deepEqual(parseDicomWebUrl("https://pacs.example/wado/studies/1.2.3/"), {
    baseUrl: "https://pacs.example/wado",
    studyUID: "1.2.3",
  });
  assert.throws(() => parseDicomWebUrl("http://host/dicom-web/series/1.2"), /expected a DICOMweb URL/);
});
