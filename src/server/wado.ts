/** WADO-RS over the embedded store: instances, metadata, frames (transcoded on request) and bulk data. */
import { InputError } from "../core/errors.ts";
import { decodeFrame } from "../dicom/codecs.ts";
import { bulkValue, type DicomJsonDataset, type Frames, type InstanceRecord, num } from "./dicomfile.ts";
import { buildMultipart, newBoundary, parseMediaType } from "./multipart.ts";
import { headerUid, parseFrameList } from "./guard.ts";
import type { DicomStore } from "./store.ts";
import { errorResponse, EXPLICIT_LE, JSON_HEADERS } from "./dicomweb.ts";
import { byInstanceNumber } from "./qido.ts";
export function instanceUrl(base: string, r: InstanceRecord): string {
  return `${base}/studies/${r.studyInstanceUID}/series/${r.seriesInstanceUID}/instances/${r.sopInstanceUID}`;
}

export function notFound(what: string): Response {
  return errorResponse(404, "NOT_FOUND", `${what} is not in the store`);
}

/** Streams the stored Part-10 files as multipart/related; type="application/dicom". */
export function retrieveInstances(store: DicomStore, records: InstanceRecord[]): Response {
  const boundary = newBoundary();
  const enc = new TextEncoder();
  let i = 0;
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (i >= records.length) {
        controller.enqueue(enc.encode(`--${boundary}--\r\n`));
        controller.close();
        return;
      }
      const r = records[i++];
      const bytes = await store.readInstance(r);
      controller.enqueue(
        enc.encode(
          `--${boundary}\r\nContent-Type: application/dicom; transfer-syntax=${
            headerUid(r.transferSyntaxUID)
          }\r\nContent-Length: ${bytes.length}\r\n\r\n`,
        ),
      );
      controller.enqueue(bytes);
      controller.enqueue(enc.encode("\r\n"));
    },
  });
  return new Response(stream, {
    status: 200,
    headers: { "content-type": `multipart/related; type="application/dicom"; boundary=${boundary}` },
  });
}

/** Which transfer syntaxes an Accept header allows for frames/bulk ("*" = as stored). */
function acceptedTransferSyntaxes(
  accept: string | null,
): { any: boolean; list: string[]; singlePart: boolean } {
  if (!accept) return { any: true, list: [], singlePart: false };
  const list: string[] = [];
  let any = false;
  let singlePart = false;
  for (const range of accept.split(/,(?=(?:[^"]*"[^"]*")*[^"]*$)/)) {
    const m = parseMediaType(range);
    if (m.type === "application/octet-stream") singlePart = true;
    if (m.type === "*/*") any = true;
    const ts = m.params["transfer-syntax"];
    // OHIF's loader puts "transfer-syntax" inside or beside the quoted type parameter.
    const inner = m.params["type"] ? parseMediaType(m.params["type"]).params["transfer-syntax"] : undefined;
    const t = ts ?? inner;
    if (t === undefined || t === "*") any = true;
    else list.push(t);
  }
  return { any, list, singlePart };
}

export async function retrieveFrames(
  store: DicomStore,
  r: InstanceRecord,
  frameList: string,
  req: Request,
  base: string,
): Promise<Response> {
  const list = parseFrameList(frameList);
  if (!list.ok) return errorResponse(400, "BAD_FRAMES", list.reason);
  const numbers = list.frames;
  let frames: Frames;
  try {
    frames = await store.frames(r);
  } catch (e) {
    if (e instanceof InputError) return errorResponse(400, e.code, e.message);
    throw e;
  }
  const bad = numbers.find((n) => n > frames.frames.length);
  if (bad !== undefined) {
    return errorResponse(
      404,
      "NO_SUCH_FRAME",
      `frame ${bad} requested; the instance has ${frames.frames.length} frame(s)`,
    );
  }
  const acc = acceptedTransferSyntaxes(req.headers.get("accept"));
  if (!acc.any && !acc.list.includes(frames.transferSyntaxUID) && acc.list.includes(EXPLICIT_LE)) {
    // A client that only handles native pixels (e.g. a headless reader) gets them decoded here.
    const d = (await store.parsed(r)).dict;
    const info = {
      rows: num(d, "00280010") ?? 0,
      columns: num(d, "00280011") ?? 0,
      bitsAllocated: num(d, "00280100") ?? 16,
      samplesPerPixel: num(d, "00280002") ?? 1,
      pixelRepresentation: num(d, "00280103") ?? 0,
      planarConfiguration: num(d, "00280006") ?? 0,
    };
    try {
      const decoded: Uint8Array[] = [];
      for (const n of numbers) {
        decoded.push(await decodeFrame(frames.transferSyntaxUID, frames.frames[n - 1], info));
      }
      frames = { frames: [], transferSyntaxUID: EXPLICIT_LE, mediaType: "application/octet-stream" };
      numbers.forEach((n, i) => (frames.frames[n - 1] = decoded[i]));
    } catch (e) {
      if (!(e instanceof InputError)) throw e;
      return errorResponse(
        406,
        "NOT_ACCEPTABLE",
        `the frames are stored as ${r.transferSyntaxUID} and could not be decoded: ${e.message}`,
      );
    }
  }
  if (!acc.any && !acc.list.includes(frames.transferSyntaxUID)) {
    return errorResponse(
      406,
      "NOT_ACCEPTABLE",
      `the frames are stored as ${frames.transferSyntaxUID}; the request accepts only ${
        acc.list.join(", ")
      } (no transcoding here; ask for transfer-syntax=*)`,
    );
  }
  const partType = `${frames.mediaType}; transfer-syntax=${headerUid(frames.transferSyntaxUID)}`;
  const boundary = newBoundary();
  const body = buildMultipart(
    numbers.map((n) => ({
      contentType: partType,
      body: frames.frames[n - 1],
      location: `${instanceUrl(base, r)}/frames/${n}`,
    })),
    boundary,
  );
  return new Response(body, {
    status: 200,
    headers: {
      "content-type": `multipart/related; type="${frames.mediaType}"; transfer-syntax=${
        headerUid(frames.transferSyntaxUID)
      }; boundary=${boundary}`,
    },
  });
}

export async function retrieveBulk(
  store: DicomStore,
  r: InstanceRecord,
  tag: string,
  req: Request,
): Promise<Response> {
  const up = tag.toUpperCase();
  if (!/^[0-9A-F]{8}$/.test(up)) {
    return errorResponse(400, "BAD_TAG", `expected an 8-digit hex tag, found "${tag}"`);
  }
  const parsed = await store.parsed(r);
  const el = parsed.dict[up];
  if (!el) return notFound(`attribute ${up} of instance ${r.sopInstanceUID}`);
  let body: Uint8Array;
  let mediaType = "application/octet-stream";
  let ts = r.transferSyntaxUID;
  if (up === "7FE00010" || up === "7FE00008" || up === "7FE00009") {
    const frames = await store.frames(r);
    ts = frames.transferSyntaxUID;
    mediaType = frames.mediaType;
    if (frames.frames.length === 1 || mediaType === "application/octet-stream") {
      // native data: the value as stored (1-bit data stays packed across frames)
      body = mediaType === "application/octet-stream"
        ? bulkValue(parsed.dict, up) ?? new Uint8Array()
        : frames.frames[0];
    } else {
      const boundary = newBoundary();
      return new Response(
        buildMultipart(
          frames.frames.map((f) => ({
            contentType: `${mediaType}; transfer-syntax=${headerUid(ts)}`,
            body: f,
          })),
          boundary,
        ),
        {
          status: 200,
          headers: { "content-type": `multipart/related; type="${mediaType}"; boundary=${boundary}` },
        },
      );
    }
  } else {
    const v = bulkValue(parsed.dict, up);
    if (!v) {
      return errorResponse(
        400,
        "NOT_BULK",
        `attribute ${up} is not binary (vr ${el.vr}); read it from /metadata`,
      );
    }
    body = v;
  }
  const accept = req.headers.get("accept") ?? "";
  if (/^\s*application\/octet-stream/i.test(accept) && !/multipart/i.test(accept)) {
    return new Response(body as Uint8Array<ArrayBuffer>, {
      status: 200,
      headers: { "content-type": "application/octet-stream" },
    });
  }
  const boundary = newBoundary();
  const partType = mediaType === "application/octet-stream"
    ? mediaType
    : `${mediaType}; transfer-syntax=${headerUid(ts)}`;
  return new Response(buildMultipart([{ contentType: partType, body }], boundary), {
    status: 200,
    headers: { "content-type": `multipart/related; type="${mediaType}"; boundary=${boundary}` },
  });
}

export async function metadataResponse(
  store: DicomStore,
  records: InstanceRecord[],
  base: string,
): Promise<Response> {
  const out: DicomJsonDataset[] = [];
  for (const r of records.sort(byInstanceNumber)) out.push(await store.metadata(r, instanceUrl(base, r)));
  return new Response(JSON.stringify(out), { status: 200, headers: JSON_HEADERS });
}
