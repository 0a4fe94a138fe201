import assert from "node:assert/strict";
import {
  countStored,
  otherPhantom,
  parseMultipartResponse,
  smallPhantom,
  stow,
  STOW_TYPE,
  stowBody,
  withServer,
} from "./helpers.ts";

Deno.test("a STOW'd instance comes back byte-identical through WADO-RS instance retrieve", async () => {
  const ph = smallPhantom();
  await withServer({}, async (s) => {
    const r = await stow(s, ph.files);
    assert.equal(r.status, 200);
    const ok = (r.json as Record<string, { Value: Record<string, { Value: string[] }>[] }>)["00081199"].Value;
    assert.equal(ok.length, ph.files.length);
    assert.deepEqual(ok.map((i) => i["00081155"].Value[0]).sort(), [...ph.sopInstanceUIDs].sort());
    for (let k = 0; k < ph.files.length; k++) {
      const url = `/dicom-web/studies/${ph.studyInstanceUID}/series/${ph.seriesInstanceUID}/instances/${
        ph.sopInstanceUIDs[k]
      }`;
      const res = await fetch(s.at(url), {
        headers: { accept: 'multipart/related; type="application/dicom"' },
      });
      assert.equal(res.status, 200);
      const parts = parseMultipartResponse(
        new Uint8Array(await res.arrayBuffer()),
        res.headers.get("content-type")!,
      );
      assert.equal(parts.length, 1);
      assert.match(parts[0].headers["content-type"], /^application\/dicom/);
      assert.deepEqual(parts[0].body, ph.files[k]);
    }
  });
});

Deno.test("study retrieve returns every stored instance of the study", async () => {
  const ph = smallPhantom();
  await withServer({}, async (s) => {
    await stow(s, [...ph.files, ...otherPhantom().files]);
    const res = await fetch(s.at(`/dicom-web/studies/${ph.studyInstanceUID}`));
    const parts = parseMultipartResponse(
      new Uint8Array(await res.arrayBuffer()),
      res.headers.get("content-type")!,
    );
    assert.equal(parts.length, ph.files.length);
    assert.deepEqual(parts.map((p) => p.body), ph.files); // instance-number order
  });
});

Deno.test("STOW to /studies/{study} with an instance of another study answers 409 and stores nothing", async () => {
  const ph = smallPhantom();
  const other = otherPhantom();
  await withServer({}, async (s) => {
    const r = await stow(s, [ph.files[0], other.files[0]], `/dicom-web/studies/${ph.studyInstanceUID}`);
    assert.equal(r.status, 409);
    const failed =
      (r.json as Record<string, { Value: Record<string, { Value: unknown[] }>[] }>)["00081198"].Value;
    assert.equal(failed.length, 1);
    assert.equal(failed[0]["00081155"].Value[0], other.sopInstanceUIDs[0]);
    assert.equal(await countStored(s.dataDir), 0);
    assert.equal(s.store!.size, 0);
  });
});

Deno.test("STOW to /studies/{study} with instances of that study succeeds", async () => {
  const ph = smallPhantom();
  await withServer({}, async (s) => {
    const r = await stow(s, ph.files, `/dicom-web/studies/${ph.studyInstanceUID}`);
    assert.equal(r.status, 200);
    assert.equal(await countStored(s.dataDir), ph.files.length);
  });
});

Deno.test("a STOW body with one non-DICOM part is refused with 400 JSON and stores nothing", async () => {
  const ph = smallPhantom();
  await withServer({}, async (s) => {
    const r = await stow(s, [ph.files[0], new TextEncoder().encode("this is not DICOM at all")]);
    assert.equal(r.status, 400);
    const j = r.json as { error: string; message: string };
    assert.equal(j.error, "NOT_DICOM");
    assert.match(j.message, /part 2/);
    assert.equal(await countStored(s.dataDir), 0);
    assert.deepEqual([...Deno.readDirSync(`${s.dataDir}/tmp`)].filter((e) => e.name.startsWith("stow")), []);
  });
});

Deno.test("a STOW body with a truncated DICOM part is refused and stores nothing", async () => {
  const ph = smallPhantom();
  await withServer({}, async (s) => {
    const r = await stow(s, [ph.files[0], ph.files[1].subarray(0, 300)]);
    assert.ok(r.status >= 400 && r.status < 500, `status ${r.status}`);
    assert.equal(await countStored(s.dataDir), 0);
  });
});

Deno.test("STOW without a boundary, with the wrong type or a wrong boundary is a 4xx JSON error", async () => {
  const ph = smallPhantom();
  const body = stowBody([ph.files[0]]);
  await withServer({}, async (s) => {
    const cases: [string, number, string][] = [
      ['multipart/related; type="application/dicom"', 400, "NO_BOUNDARY"],
      ["application/dicom", 415, "UNSUPPORTED_MEDIA_TYPE"],
      [
        'multipart/related; type="application/dicom+json"; boundary=EDGESEG-TEST-BOUNDARY',
        415,
        "UNSUPPORTED_MEDIA_TYPE",
      ],
      ["multipart/related; boundary=EDGESEG-TEST-BOUNDARY", 415, "UNSUPPORTED_MEDIA_TYPE"],
      ['multipart/related; type="application/dicom"; boundary=SOMETHING-ELSE', 400, "BAD_MULTIPART"],
    ];
    for (const [ct, status, code] of cases) {
      const res = await fetch(s.at("/dicom-web/studies"), {
        method: "POST",
        headers: { "content-type": ct },
        body,
      });
      assert.equal(res.status, status, ct);
      assert.match(res.headers.get("content-type") ?? "", /application\/json/);
      const j = await res.json();
      assert.equal(j.error, code, ct);
      assert.equal(typeof j.message, "string");
    }
    assert.equal(await countStored(s.dataDir), 0);
  });
});

Deno.test("STOW over the upload limit answers 413 from Content-Length and while streaming", async () => {
  const ph = smallPhantom();
  const body = stowBody(ph.files);
  await withServer({ maxUploadBytes: 4096 }, async (s) => {
    const res = await fetch(s.at("/dicom-web/studies"), {
      method: "POST",
      headers: { "content-type": STOW_TYPE() },
      body,
    });
    assert.equal(res.status, 413);
    assert.equal((await res.json()).error, "TOO_LARGE");
    // A chunked body has no Content-Length: the server counts bytes as they arrive.
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        for (let o = 0; o < body.length; o += 1000) c.enqueue(body.slice(o, o + 1000));
        c.close();
      },
    });
    const res2 = await fetch(s.at("/dicom-web/studies"), {
      method: "POST",
      headers: { "content-type": STOW_TYPE() },
      body: stream,
    });
    assert.equal(res2.status, 413);
    await res2.body?.cancel();
    assert.equal(await countStored(s.dataDir), 0);
  });
});

Deno.test("a chunked STOW body split at awkward places is parsed correctly", async () => {
  const ph = smallPhantom();
  const body = stowBody(ph.files);
  await withServer({}, async (s) => {
    // 97-byte chunks split boundaries and part headers across reads.
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        for (let o = 0; o < body.length; o += 97) c.enqueue(body.slice(o, o + 97));
        c.close();
      },
    });
    const res = await fetch(s.at("/dicom-web/studies"), {
      method: "POST",
      headers: { "content-type": STOW_TYPE() },
      body: stream,
    });
    assert.equal(res.status, 200);
    await res.body?.cancel();
    assert.equal(await countStored(s.dataDir), ph.files.length);
    const back = await s.store!.readInstance(s.store!.get(ph.sopInstanceUIDs[2])!);
    assert.deepEqual(back, ph.files[2]);
  });
});

Deno.test("STOW needs the bearer token when one is configured", async () => {
  const ph = smallPhantom();
  await withServer({ stowToken: "s3cret" }, async (s) => {
    const body = stowBody([ph.files[0]]);
    const denied = await fetch(s.at("/dicom-web/studies"), {
      method: "POST",
      headers: { "content-type": STOW_TYPE() },
      body,
    });
    assert.equal(denied.status, 401);
    assert.equal((await denied.json()).error, "UNAUTHORIZED");
    const wrong = await fetch(s.at("/dicom-web/studies"), {
      method: "POST",
      headers: { "content-type": STOW_TYPE(), authorization: "Bearer nope" },
      body,
    });
    assert.equal(wrong.status, 401);
    await wrong.body?.cancel();
    const ok = await fetch(s.at("/dicom-web/studies"), {
      method: "POST",
      headers: { "content-type": STOW_TYPE(), authorization: "Bearer s3cret" },
      body,
    });
    assert.equal(ok.status, 200);
    await ok.body?.cancel();
    assert.equal(await countStored(s.dataDir), 1);
  });
});

Deno.test("a DICOM file whose UIDs are not UIDs is refused (no path tricks through the store layout)", async () => {
  const { default: dcmjs } = await import("dcmjs");
  const ph = smallPhantom();
  const dd = dcmjs.data.DicomMessage.readFile(ph.files[0].slice().buffer);
  dd.dict["0020000D"].Value = ["../../evil"];
  const bad = new Uint8Array(dd.write());
  await withServer({}, async (s) => {
    const r = await stow(s, [bad]);
    assert.equal(r.status, 400);
    assert.equal((r.json as { error: string }).error, "BAD_UID");
    assert.equal(await countStored(s.dataDir), 0);
  });
});

Deno.test("a STOW body that stalls is cut off with 408 and stores nothing", async () => {
  const ph = smallPhantom();
  const body = stowBody(ph.files);
  await withServer({ uploadTimeoutMs: 300 }, async (s) => {
    let controller: ReadableStreamDefaultController<Uint8Array> | undefined;
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        controller = c;
        c.enqueue(body.slice(0, 500)); // then nothing more until the server gives up
      },
    });
    const res = await fetch(s.at("/dicom-web/studies"), {
      method: "POST",
      headers: { "content-type": STOW_TYPE() },
      body: stream,
    });
    assert.equal(res.status, 408);
    assert.equal((await res.json()).error, "TIMEOUT");
    controller?.close();
    assert.equal(await countStored(s.dataDir), 0);
  });
});
