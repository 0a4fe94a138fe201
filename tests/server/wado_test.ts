import assert from "node:assert/strict";
import { join } from "node:path";
import { parseDicom } from "../../src/dicom/dataset.ts";
import { writeParametricMap } from "../../src/dicom/pmap.ts";
import { readSeries } from "../../src/dicom/read.ts";
import {
  getJson,
  parseMultipartResponse,
  sharedDataDir,
  smallPhantom,
  stow,
  val,
  withServer,
} from "./helpers.ts";

const ph = smallPhantom();
const seriesPath = `/dicom-web/studies/${ph.studyInstanceUID}/series/${ph.seriesInstanceUID}`;
const OHIF_FRAME_ACCEPT = "multipart/related; type=application/octet-stream; transfer-syntax=*";

/** The stored (unsigned, intercept −1024) pixel bytes of phantom slice k. */
function storedSlice(k: number): Uint8Array {
  const n = ph.rows * ph.columns;
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) out[i] = ph.hu[k * n + i] + 1024;
  return new Uint8Array(out.buffer);
}

Deno.test("series metadata is DICOM JSON whose values match the stored files, pixel data as BulkDataURI", async () => {
  await withServer({}, async (s) => {
    await stow(s, ph.files);
    const { status, json } = await getJson(s, `${seriesPath}/metadata`);
    assert.equal(status, 200);
    assert.equal(json.length, ph.files.length);
    json.forEach((ds, k) => {
      assert.equal(val(ds, "00080018"), ph.sopInstanceUIDs[k]);
      assert.deepEqual(ds["00200032"].Value, [-(31 * 1.5) / 2, -(31 * 1.5) / 2, k === 0 ? 0 : -k * 2.5]);
      assert.deepEqual(ds["00200037"].Value, [1, 0, 0, 0, 1, 0]);
      assert.deepEqual(ds["00280030"].Value, [1.5, 1.5]);
      assert.equal(val(ds, "00281052"), -1024);
      assert.equal(val(ds, "00280010"), 32);
      assert.deepEqual(val(ds, "00100010"), { Alphabetic: "EdgeSeg^Phantom" });
      assert.equal(ds["7FE00010"].Value, undefined);
      assert.match(
        ds["7FE00010"].BulkDataURI!,
        new RegExp(`/instances/${ph.sopInstanceUIDs[k]}/bulk/7FE00010$`),
      );
      for (const attr of Object.values(ds)) assert.ok(!("_rawValue" in attr));
    });
    const study = await getJson(s, `/dicom-web/studies/${ph.studyInstanceUID}/metadata`);
    assert.equal(study.json.length, ph.files.length);
    const one = await getJson(s, `${seriesPath}/instances/${ph.sopInstanceUIDs[1]}/metadata`);
    assert.equal(one.json.length, 1);
    assert.equal(val(one.json[0], "00200013"), 2);
  });
});

Deno.test("the BulkDataURI of pixel data is served and equals the stored pixels", async () => {
  await withServer({}, async (s) => {
    await stow(s, ph.files);
    const { json } = await getJson(s, `${seriesPath}/instances/${ph.sopInstanceUIDs[2]}/metadata`);
    const res = await fetch(json[0]["7FE00010"].BulkDataURI!);
    assert.equal(res.status, 200);
    const parts = parseMultipartResponse(
      new Uint8Array(await res.arrayBuffer()),
      res.headers.get("content-type")!,
    );
    assert.equal(parts.length, 1);
    assert.deepEqual(parts[0].body, storedSlice(2));
    const single = await fetch(json[0]["7FE00010"].BulkDataURI!, {
      headers: { accept: "application/octet-stream" },
    });
    assert.equal(single.headers.get("content-type"), "application/octet-stream");
    assert.deepEqual(new Uint8Array(await single.arrayBuffer()), storedSlice(2));
  });
});

Deno.test("frames come back as raw little-endian pixels with the transfer syntax in the part type", async () => {
  await withServer({}, async (s) => {
    await stow(s, ph.files);
    for (const k of [0, 3]) {
      const res = await fetch(s.at(`${seriesPath}/instances/${ph.sopInstanceUIDs[k]}/frames/1`), {
        headers: { accept: OHIF_FRAME_ACCEPT },
      });
      assert.equal(res.status, 200);
      const ct = res.headers.get("content-type")!;
      assert.match(ct, /^multipart\/related/);
      const parts = parseMultipartResponse(new Uint8Array(await res.arrayBuffer()), ct);
      assert.equal(parts.length, 1);
      assert.equal(
        parts[0].headers["content-type"],
        "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1",
      );
      assert.deepEqual(parts[0].body, storedSlice(k));
    }
  });
});

Deno.test("frame numbers out of range are 404 and malformed lists 400", async () => {
  await withServer({}, async (s) => {
    await stow(s, ph.files);
    const base = `${seriesPath}/instances/${ph.sopInstanceUIDs[0]}/frames`;
    const r404 = await fetch(s.at(`${base}/2`));
    assert.equal(r404.status, 404);
    assert.equal((await r404.json()).error, "NO_SUCH_FRAME");
    const r400 = await fetch(s.at(`${base}/0`));
    assert.equal(r400.status, 400);
    await r400.body?.cancel();
  });
});

const ctDir = sharedDataDir("dicom", "ct-abdomen", "raw");
if (!ctDir) console.log("skipping the real-CT WADO test: ../shared/data/dicom/ct-abdomen/raw is absent");

Deno.test({
  name: "JPEG-LS frames of the real CT are returned as stored (image/jls) and decode to the right size",
  ignore: !ctDir,
  fn: async () => {
    const files = [1, 2, 3].map((i) => Deno.readFileSync(join(ctDir!, `1-00${i}.dcm`)));
    await withServer({}, async (s) => {
      const r = await stow(s, files);
      assert.equal(r.status, 200);
      const inst = (await getJson(s, "/dicom-web/instances")).json;
      assert.equal(inst.length, 3);
      const d = inst[0];
      const url = `/dicom-web/studies/${val(d, "0020000D")}/series/${val(d, "0020000E")}/instances/${
        val(d, "00080018")
      }`;
      const res = await fetch(s.at(`${url}/frames/1`), { headers: { accept: OHIF_FRAME_ACCEPT } });
      assert.equal(res.status, 200);
      const parts = parseMultipartResponse(
        new Uint8Array(await res.arrayBuffer()),
        res.headers.get("content-type")!,
      );
      assert.equal(parts[0].headers["content-type"], "image/jls; transfer-syntax=1.2.840.10008.1.2.4.80");
      // JPEG-LS start-of-image marker, then the frame decodes with the codec the viewer uses.
      assert.deepEqual([...parts[0].body.subarray(0, 2)], [0xff, 0xd8]);
      const { default: charls } = await import("@cornerstonejs/codec-charls");
      const m = await charls();
      const dec = new m.JpegLSDecoder();
      dec.getEncodedBuffer(parts[0].body.length).set(parts[0].body);
      dec.decode();
      const info = dec.getFrameInfo();
      assert.equal(info.width, val(d, "00280011"));
      assert.equal(info.height, val(d, "00280010"));
      const decoded = new Uint8Array(dec.getDecodedBuffer()).slice();
      dec.delete();
      // Asking only for explicit VR LE decodes on the server, to the same pixels the viewer's codec gives.
      const raw = await fetch(s.at(`${url}/frames/1`), {
        headers: {
          accept: "multipart/related; type=application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1",
        },
      });
      assert.equal(raw.status, 200);
      const rawParts = parseMultipartResponse(
        new Uint8Array(await raw.arrayBuffer()),
        raw.headers.get("content-type")!,
      );
      assert.equal(
        rawParts[0].headers["content-type"],
        "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1",
      );
      assert.equal(rawParts[0].body.length, info.width * info.height * 2);
      assert.deepEqual(rawParts[0].body, decoded);
      // A syntax we neither store nor decode to is refused, not answered with the wrong bytes.
      const j2k = await fetch(s.at(`${url}/frames/1`), {
        headers: { accept: 'multipart/related; type="image/jp2"; transfer-syntax=1.2.840.10008.1.2.4.90' },
      });
      assert.equal(j2k.status, 406);
      await j2k.body?.cancel();
      const meta = (await getJson(s, `${url}/metadata`)).json[0];
      assert.ok(meta["7FE00010"].BulkDataURI);
    });
  },
});

const segDir = sharedDataDir("dicom", "seg-examples", "dcmqi", "23x38x3");
if (!segDir) console.log("skipping the 1-bit SEG frame test: ../shared/data/dicom/seg-examples is absent");

Deno.test({
  name: "frames of a BINARY SEG with 23 columns are re-packed from bit 0 and carry the frame's bits",
  ignore: !segDir,
  fn: async () => {
    const { default: dcmjs } = await import("dcmjs");
    const bytes = Deno.readFileSync(join(segDir!, "seg.dcm"));
    const dd = dcmjs.data.DicomMessage.readFile(bytes.slice().buffer);
    const rows: number = dd.dict["00280010"].Value[0], cols: number = dd.dict["00280011"].Value[0];
    const nFrames = Number(dd.dict["00280008"].Value[0]);
    const all = new Uint8Array(dd.dict["7FE00010"].Value[0]);
    const bit = (i: number) => (all[i >> 3] >> (i & 7)) & 1;
    await withServer({}, async (s) => {
      assert.equal((await stow(s, [bytes])).status, 200);
      const d = (await getJson(s, "/dicom-web/instances")).json[0];
      const url = `/dicom-web/studies/${val(d, "0020000D")}/series/${val(d, "0020000E")}/instances/${
        val(d, "00080018")
      }`;
      const list = Array.from({ length: nFrames }, (_, i) => i + 1).join(",");
      const res = await fetch(s.at(`${url}/frames/${list}`));
      const parts = parseMultipartResponse(
        new Uint8Array(await res.arrayBuffer()),
        res.headers.get("content-type")!,
      );
      assert.equal(parts.length, nFrames);
      const n = rows * cols;
      for (let f = 0; f < nFrames; f++) {
        assert.equal(parts[f].body.length, Math.ceil(n / 8));
        for (let i = 0; i < n; i++) {
          assert.equal((parts[f].body[i >> 3] >> (i & 7)) & 1, bit(f * n + i), `frame ${f + 1} pixel ${i}`);
        }
      }
    });
  },
});

Deno.test("a stored Parametric Map: metadata carries what OHIF's PMAP handler reads, float frames, bulk data and the instance come back exact", async () => {
  const { instances, volume } = await readSeries(ph.files);
  const P = ph.rows * ph.columns;
  const map = new Float32Array(P * ph.files.length).map((_, i) => (i % 97) / 97 + 1e-3);
  const pm = writeParametricMap({
    source: { instances, geometry: volume.geometry, refs: volume.source!.instances },
    map: { geometry: volume.geometry, data: map, measure: "entropy" },
  });
  const sopUID = String(parseDicom(pm).dataset.SOPInstanceUID);
  const pmSeries = String(parseDicom(pm).dataset.SeriesInstanceUID);
  await withServer({}, async (s) => {
    await stow(s, [...ph.files, pm]);
    const instancePath = `/dicom-web/studies/${ph.studyInstanceUID}/series/${pmSeries}/instances/${sopUID}`;
    const { json } = await getJson(s, `${instancePath}/metadata`);
    const ds = json[0] as Record<
      string,
      { Value?: Record<string, { Value?: unknown[] }>[]; BulkDataURI?: string }
    >;
    // OHIF's PMAP SOP class handler and viewport read these from the metadata, not from the file.
    assert.equal(val(ds, "00080016"), "1.2.840.10008.5.1.4.1.1.30");
    assert.equal(val(ds["00081115"].Value![0], "0020000E"), ph.seriesInstanceUID);
    const shared = ds["52009229"].Value![0] as Record<string, { Value?: Record<string, unknown>[] }>;
    assert.ok(shared["00289110"].Value![0], "SharedFunctionalGroups has PixelMeasuresSequence");
    assert.match(ds["7FE00008"].BulkDataURI!, new RegExp(`/instances/${sopUID}/bulk/7FE00008$`));
    // frames/N: raw little-endian float32 of frame N
    const res = await fetch(s.at(`${instancePath}/frames/2`), { headers: { accept: OHIF_FRAME_ACCEPT } });
    assert.equal(res.status, 200);
    const [part] = parseMultipartResponse(
      new Uint8Array(await res.arrayBuffer()),
      res.headers.get("content-type")!,
    );
    assert.deepEqual(new Float32Array(part.body.slice().buffer), map.subarray(P, 2 * P));
    // bulk data: all frames
    const bulk = await fetch(ds["7FE00008"].BulkDataURI!, {
      headers: { accept: "application/octet-stream" },
    });
    assert.equal(bulk.status, 200);
    assert.deepEqual(new Float32Array(await bulk.arrayBuffer()), map);
    // the whole instance, as OHIF's PMAP loader retrieves it
    const whole = await fetch(s.at(instancePath), {
      headers: { accept: 'multipart/related; type="application/dicom"' },
    });
    const [file] = parseMultipartResponse(
      new Uint8Array(await whole.arrayBuffer()),
      whole.headers.get("content-type")!,
    );
    assert.deepEqual(file.body, pm);
  });
});
