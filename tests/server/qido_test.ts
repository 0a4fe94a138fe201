import assert from "node:assert/strict";
import { getJson, otherPhantom, smallPhantom, stow, type TestServer, val, withServer } from "./helpers.ts";

const A = smallPhantom(); // EdgeSeg^Phantom, 20240115, CT
const B = otherPhantom(); // Doe^Jane, 20231105, CT

async function withTwoStudies(fn: (s: TestServer) => Promise<void>): Promise<void> {
  await withServer({}, async (s) => {
    const r = await stow(s, [...A.files, ...B.files]);
    assert.equal(r.status, 200);
    await fn(s);
  });
}

const studyUids = (json: Record<string, { Value?: unknown[] }>[]) =>
  json.map((d) => val(d, "0020000D")).sort();

Deno.test("QIDO studies returns the attributes OHIF's study list needs", async () => {
  await withTwoStudies(async (s) => {
    const { status, json, headers } = await getJson(s, "/dicom-web/studies");
    assert.equal(status, 200);
    assert.match(headers.get("content-type")!, /application\/dicom\+json/);
    assert.equal(json.length, 2);
    const a = json.find((d) => val(d, "0020000D") === A.studyInstanceUID)!;
    assert.deepEqual(val(a, "00100010"), { Alphabetic: "EdgeSeg^Phantom" });
    assert.equal(val(a, "00100020"), "EDGESEG-PHANTOM-1");
    assert.equal(val(a, "00080020"), "20240115");
    assert.equal(val(a, "00080030"), "101500");
    assert.equal(val(a, "00080050"), "EDGESEG0001");
    assert.equal(val(a, "00081030"), "EdgeSeg synthetic CT phantom");
    assert.deepEqual(a["00080061"].Value, ["CT"]);
    assert.equal(val(a, "00201206"), 1);
    assert.equal(val(a, "00201208"), A.files.length);
    // newest study first
    assert.equal(val(json[0], "0020000D"), A.studyInstanceUID);
  });
});

Deno.test("PatientName matches with * wildcards, case-insensitively", async () => {
  await withTwoStudies(async (s) => {
    assert.deepEqual(studyUids((await getJson(s, "/dicom-web/studies?PatientName=doe*")).json), [
      B.studyInstanceUID,
    ]);
    assert.deepEqual(studyUids((await getJson(s, "/dicom-web/studies?PatientName=*PHANTOM*")).json), [
      A.studyInstanceUID,
    ]);
    assert.deepEqual(studyUids((await getJson(s, "/dicom-web/studies?00100010=Doe%5EJane")).json), [
      B.studyInstanceUID,
    ]);
    assert.equal((await getJson(s, "/dicom-web/studies?PatientName=Smith*")).json.length, 0);
    assert.equal((await getJson(s, "/dicom-web/studies?PatientName=*")).json.length, 2);
  });
});

Deno.test("StudyDate matches exactly and by ranges (A-B, -B, A-)", async () => {
  await withTwoStudies(async (s) => {
    const q = async (v: string) => studyUids((await getJson(s, `/dicom-web/studies?StudyDate=${v}`)).json);
    assert.deepEqual(await q("20240115"), [A.studyInstanceUID]);
    assert.deepEqual(await q("20240101-20241231"), [A.studyInstanceUID]);
    assert.deepEqual(await q("-20231231"), [B.studyInstanceUID]);
    assert.deepEqual(await q("20231105-"), [A.studyInstanceUID, B.studyInstanceUID].sort());
    assert.deepEqual(await q("20231106-20240114"), []);
  });
});

Deno.test("ModalitiesInStudy, PatientID, AccessionNumber and StudyInstanceUID lists filter studies", async () => {
  await withTwoStudies(async (s) => {
    const q = async (v: string) => studyUids((await getJson(s, `/dicom-web/studies?${v}`)).json);
    assert.equal((await q("ModalitiesInStudy=CT")).length, 2);
    assert.equal((await q("ModalitiesInStudy=MR,CT")).length, 2);
    assert.deepEqual(await q("ModalitiesInStudy=MR"), []);
    assert.deepEqual(await q("PatientID=PID-2"), [B.studyInstanceUID]);
    assert.deepEqual(await q("AccessionNumber=EDGESEG0001"), [A.studyInstanceUID]);
    assert.deepEqual(
      await q(`StudyInstanceUID=${A.studyInstanceUID},${B.studyInstanceUID}`),
      [A.studyInstanceUID, B.studyInstanceUID].sort(),
    );
    assert.deepEqual(await q(`StudyInstanceUID=${B.studyInstanceUID}`), [B.studyInstanceUID]);
  });
});

Deno.test("limit and offset page through the results; bad values are 400", async () => {
  await withTwoStudies(async (s) => {
    const all = (await getJson(s, "/dicom-web/studies")).json.map((d) => val(d, "0020000D"));
    const p1 = (await getJson(s, "/dicom-web/studies?limit=1")).json.map((d) => val(d, "0020000D"));
    const p2 = (await getJson(s, "/dicom-web/studies?limit=1&offset=1")).json.map((d) => val(d, "0020000D"));
    assert.deepEqual([...p1, ...p2], all);
    assert.equal((await getJson(s, "/dicom-web/studies?offset=2")).json.length, 0);
    const bad = await fetch(s.at("/dicom-web/studies?limit=-1"));
    assert.equal(bad.status, 400);
    assert.equal((await bad.json()).error, "BAD_QUERY");
  });
});

Deno.test("includefield adds attributes that are not returned by default", async () => {
  await withTwoStudies(async (s) => {
    const plain = (await getJson(s, `/dicom-web/studies/${A.studyInstanceUID}/series`)).json[0];
    assert.equal(plain["00180015"], undefined);
    const withBody =
      (await getJson(s, `/dicom-web/studies/${A.studyInstanceUID}/series?includefield=00180015,Manufacturer`))
        .json[0];
    assert.equal(val(withBody, "00180015"), "CHESTABDOMEN");
    assert.equal(val(withBody, "00080070"), "EdgeSeg");
    const inst = (await getJson(
      s,
      `/dicom-web/studies/${A.studyInstanceUID}/instances?includefield=00200032&InstanceNumber=2`,
    )).json;
    assert.equal(inst.length, 1);
    assert.equal(inst[0]["00200032"].Value!.length, 3);
  });
});

Deno.test("series and instance levels answer with Modality, counts, SOPClassUID, Rows and Columns", async () => {
  await withTwoStudies(async (s) => {
    const series = (await getJson(s, "/dicom-web/series?Modality=CT")).json;
    assert.equal(series.length, 2);
    const a = series.find((d) => val(d, "0020000E") === A.seriesInstanceUID)!;
    assert.equal(val(a, "00080060"), "CT");
    assert.equal(val(a, "0008103E"), "Phantom chest-abdomen 2.5 mm");
    assert.equal(val(a, "00200011"), 2);
    assert.equal(val(a, "00201209"), A.files.length);
    const inst =
      (await getJson(s, `/dicom-web/studies/${A.studyInstanceUID}/series/${A.seriesInstanceUID}/instances`))
        .json;
    assert.deepEqual(inst.map((d) => val(d, "00080018")), A.sopInstanceUIDs);
    assert.equal(val(inst[0], "00080016"), "1.2.840.10008.5.1.4.1.1.2");
    assert.equal(val(inst[0], "00280010"), 32);
    assert.equal(val(inst[0], "00280011"), 32);
    assert.equal(val(inst[0], "00200013"), 1);
    const bySop = (await getJson(s, `/dicom-web/instances?SOPInstanceUID=${B.sopInstanceUIDs[1]}`)).json;
    assert.equal(bySop.length, 1);
    assert.equal(val(bySop[0], "0020000D"), B.studyInstanceUID);
    const byClass = (await getJson(
      s,
      `/dicom-web/studies/${B.studyInstanceUID}/instances?SOPClassUID=1.2.840.10008.5.1.4.1.1.4`,
    )).json;
    assert.equal(byClass.length, 0);
  });
});

Deno.test("an unknown study is an empty QIDO answer and a 404 for retrieve", async () => {
  await withTwoStudies(async (s) => {
    assert.deepEqual((await getJson(s, "/dicom-web/studies/1.2.3/series")).json, []);
    const res = await fetch(s.at("/dicom-web/studies/1.2.3/metadata"));
    assert.equal(res.status, 404);
    assert.equal((await res.json()).error, "NOT_FOUND");
  });
});
