/**
 * What real DICOMweb clients send to the embedded store: boundaries longer than RFC 2046's 70
 * characters (Orthanc's client sends 73), chunked bodies, parts with and without Content-Length, a
 * preamble and an epilogue; and Orthanc's own DICOMweb client (DicomWeb.Servers) doing STOW, QIDO and
 * WADO retrieve against EdgeSeg.
 */
import assert from "node:assert/strict";
import { orthancMissing, startOrthanc } from "../helpers/orthanc.ts";
import { countStored, otherPhantom, smallPhantom, withServer } from "./helpers.ts";

const enc = new TextEncoder();

function body(
  files: Uint8Array[],
  boundary: string,
  opts: { preamble?: string; epilogue?: string; contentLength?: boolean[] } = {},
): Uint8Array<ArrayBuffer> {
  const chunks: Uint8Array[] = [];
  if (opts.preamble) chunks.push(enc.encode(`${opts.preamble}\r\n`));
  files.forEach((f, i) => {
    const len = opts.contentLength?.[i] ? `Content-Length: ${f.length}\r\n` : "";
    chunks.push(
      enc.encode(`--${boundary}\r\nContent-Type: application/dicom\r\n${len}\r\n`),
      f,
      enc.encode("\r\n"),
    );
  });
  chunks.push(enc.encode(`--${boundary}--`));
  if (opts.epilogue) chunks.push(enc.encode(`\r\n${opts.epilogue}`));
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let o = 0;
  for (const c of chunks) out.set(c, o), o += c.length;
  return out;
}

/** The body as a stream of small chunks: fetch sends it with Transfer-Encoding: chunked. */
function chunked(bytes: Uint8Array, size: number): ReadableStream<Uint8Array> {
  let o = 0;
  return new ReadableStream({
    pull(c) {
      if (o >= bytes.length) return c.close();
      c.enqueue(bytes.slice(o, o + size));
      o += size;
    },
  });
}

async function stowed(res: Response): Promise<number> {
  const json = await res.json();
  return (json["00081199"]?.Value ?? []).length;
}

Deno.test("STOW accepts a 73-character boundary, as Orthanc's DICOMweb client sends", async () => {
  const ph = smallPhantom();
  const boundary = "x".repeat(73);
  await withServer({}, async (s) => {
    const res = await fetch(s.at("/dicom-web/studies"), {
      method: "POST",
      headers: { "content-type": `multipart/related; type="application/dicom"; boundary=${boundary}` },
      body: body(ph.files, boundary),
    });
    assert.equal(res.status, 200);
    assert.equal(await stowed(res), ph.files.length);
  });
});

Deno.test("STOW takes a chunked body with preamble, epilogue and parts with and without Content-Length", async () => {
  const ph = smallPhantom();
  const boundary = `b-${"7".repeat(90)}`;
  const bytes = body(ph.files, boundary, {
    preamble: "This is a multi-part message in MIME format.",
    epilogue: "trailing words the parser must ignore\r\n",
    contentLength: ph.files.map((_, i) => i % 2 === 0),
  });
  await withServer({}, async (s) => {
    // 37-byte chunks split every boundary and header across reads
    const res = await fetch(s.at("/dicom-web/studies"), {
      method: "POST",
      headers: { "content-type": `multipart/related; type="application/dicom"; boundary="${boundary}"` },
      body: chunked(bytes, 37),
    });
    assert.equal(res.status, 200);
    assert.equal(await stowed(res), ph.files.length);
    assert.equal(await countStored(s.dataDir), ph.files.length);
  });
});

Deno.test("a boundary longer than 200 characters is still refused with BAD_BOUNDARY", async () => {
  const ph = smallPhantom({ slices: 1 });
  const boundary = "y".repeat(201);
  await withServer({}, async (s) => {
    const res = await fetch(s.at("/dicom-web/studies"), {
      method: "POST",
      headers: { "content-type": `multipart/related; type="application/dicom"; boundary=${boundary}` },
      body: body(ph.files, boundary),
    });
    assert.equal(res.status, 400);
    assert.equal((await res.json()).error, "BAD_BOUNDARY");
  });
});

Deno.test({
  name: "Orthanc's own DICOMweb client stores into, queries and retrieves from the embedded store",
  ignore: (() => {
    const missing = orthancMissing();
    if (missing && Deno.env.get("CI") !== "true") {
      console.warn(`skipping: ${missing}`);
      return true;
    }
    return false;
  })(),
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  await withServer({}, async (s) => {
    const pacs = await startOrthanc({
      config: { DicomWeb: { Servers: { edgeseg: [s.at("/dicom-web/")] } } },
    });
    try {
      const post = async (route: string, payload: unknown) => {
        const res = await fetch(`${pacs.url}/dicom-web/servers/edgeseg/${route}`, {
          method: "POST",
          body: JSON.stringify(payload),
          headers: { "content-type": "application/json" },
        });
        const text = await res.text();
        assert.equal(res.status, 200, `${route}: ${text}`);
        return text;
      };
      // STOW: a study in Orthanc pushed to EdgeSeg
      const ph = smallPhantom();
      const dir = await Deno.makeTempDir();
      const paths = [];
      for (const [i, f] of ph.files.entries()) {
        paths.push(`${dir}/${i}.dcm`);
        await Deno.writeFile(paths[i], f);
      }
      await pacs.upload(paths);
      const studies = await pacs.getJson("/studies") as string[];
      await post("stow", { Resources: studies });
      assert.equal(await countStored(s.dataDir), ph.files.length);
      assert.ok(s.logs.some((l) => /^POST \/dicom-web\/studies 200/.test(l)), s.logs.join("\n"));

      // QIDO through Orthanc
      // (Orthanc answers in its own simplified form: { "0020000D": { "Name", "Type", "Value": "<uid>" } })
      const qido = JSON.parse(await post("qido", { Uri: "/studies" })) as Record<
        string,
        { Value?: unknown }
      >[];
      assert.deepEqual(qido.map((d) => d["0020000D"].Value), [ph.studyInstanceUID]);

      // WADO: a study only EdgeSeg holds, fetched by Orthanc (metadata with /get, instances with /retrieve)
      const other = otherPhantom();
      const res = await fetch(s.at("/dicom-web/studies"), {
        method: "POST",
        headers: { "content-type": `multipart/related; type="application/dicom"; boundary=zz` },
        body: body(other.files, "zz"),
      });
      assert.equal(await stowed(res), other.files.length);
      const meta = JSON.parse(await post("get", { Uri: `/studies/${other.studyInstanceUID}/metadata` }));
      assert.equal(meta.length, other.files.length);
      await post("retrieve", { Resources: [{ Study: other.studyInstanceUID }] });
      const instances = await fetch(`${pacs.url}/tools/find`, {
        method: "POST",
        body: JSON.stringify({ Level: "Instance", Query: { StudyInstanceUID: other.studyInstanceUID } }),
      }).then((r) => r.json()) as string[];
      assert.equal(instances.length, other.files.length);
      await Deno.remove(dir, { recursive: true });
    } finally {
      await pacs.stop();
    }
  });
});
