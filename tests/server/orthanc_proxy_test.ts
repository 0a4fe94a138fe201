import assert from "node:assert/strict";
import { orthancMissing, startOrthanc } from "../helpers/orthanc.ts";
import { getJson, parseMultipartResponse, smallPhantom, stow, val, withServer } from "./helpers.ts";

const missing = orthancMissing();
if (missing) console.log(`skipping the Orthanc proxy test: ${missing}`);

Deno.test({
  name:
    "through the proxy, a real Orthanc stores a STOW, answers QIDO, and writes URLs pointing back at the edge server",
  ignore: missing !== null,
  fn: async () => {
    const pacs = await startOrthanc();
    const ph = smallPhantom();
    try {
      await withServer({ pacsUrl: pacs.dicomWebUrl }, async (s) => {
        const r = await stow(s, ph.files);
        assert.equal(r.status, 200);
        const ok = (r.json as Record<string, { Value: unknown[] }>)["00081199"].Value;
        assert.equal(ok.length, ph.files.length); // Orthanc answers 200 even when nothing was stored
        const studies = (await getJson(s, "/dicom-web/studies?PatientName=edgeseg*")).json;
        assert.equal(studies.length, 1);
        assert.equal(val(studies[0], "0020000D"), ph.studyInstanceUID);
        const meta = (await getJson(
          s,
          `/dicom-web/studies/${ph.studyInstanceUID}/series/${ph.seriesInstanceUID}/metadata`,
        )).json;
        const bulk = meta[0]["7FE00010"].BulkDataURI!;
        const origin = new URL(s.url).origin;
        assert.ok(bulk.startsWith(`${origin}/dicom-web/`), `BulkDataURI ${bulk} should point at ${origin}`);
        const res = await fetch(
          s.at(
            `/dicom-web/studies/${ph.studyInstanceUID}/series/${ph.seriesInstanceUID}/instances/${
              ph.sopInstanceUIDs[0]
            }`,
          ),
        );
        const parts = parseMultipartResponse(
          new Uint8Array(await res.arrayBuffer()),
          res.headers.get("content-type")!,
        );
        assert.deepEqual(parts[0].body, ph.files[0]);
      });
    } finally {
      await pacs.stop();
    }
  },
});
