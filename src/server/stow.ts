/** STOW-RS into the embedded store: streamed multipart parts, validated, committed one by one. */
import { InputError } from "../core/errors.ts";
import type { DicomJsonDataset } from "./dicomfile.ts";
import { MultipartError, parseMediaType, parseMultipartStream } from "./multipart.ts";
import type { DicomStore, ValidatedInstance } from "./store.ts";
import { type DicomWebOptions, errorResponse, JSON_HEADERS } from "./dicomweb.ts";
import { instanceUrl } from "./wado.ts";
/** A sink that writes one part to a temp file in the store's tmp dir. */
class FilePart {
  #file: Deno.FsFile | null = null;
  constructor(readonly path: string, readonly headers: Record<string, string>) {}
  async open(): Promise<this> {
    this.#file = await Deno.open(this.path, { write: true, createNew: true });
    return this;
  }
  async write(chunk: Uint8Array): Promise<void> {
    let off = 0;
    while (off < chunk.length) off += await this.#file!.write(chunk.subarray(off));
  }
  close(): Promise<void> {
    this.#file?.close();
    this.#file = null;
    return Promise.resolve();
  }
}

function sopItem(
  r: { sopClassUID: string; sopInstanceUID: string },
  extra: DicomJsonDataset = {},
): DicomJsonDataset {
  return {
    "00081150": { vr: "UI", Value: [r.sopClassUID] },
    "00081155": { vr: "UI", Value: [r.sopInstanceUID] },
    ...extra,
  };
}

/** STOW within the server's concurrency bound: beyond it, 503 with Retry-After and the body unread. */
export async function gatedStow(
  store: DicomStore,
  req: Request,
  studyInPath: string | undefined,
  opts: DicomWebOptions,
  base: string,
): Promise<Response> {
  const entered = opts.stowGate ? opts.stowGate.enter() : Promise.resolve(() => {});
  if (!entered) {
    await req.body?.cancel().catch(() => {});
    return errorResponse(
      503,
      "BUSY",
      `${opts.stowGate!.max} uploads are being stored and ${
        opts.stowGate!.queue
      } more are waiting; try again in a few seconds`,
      { "retry-after": "5" },
    );
  }
  const release = await entered;
  try {
    return await stow(store, req, studyInPath, opts, base);
  } finally {
    release();
  }
}

async function stow(
  store: DicomStore,
  req: Request,
  studyInPath: string | undefined,
  opts: DicomWebOptions,
  base: string,
): Promise<Response> {
  if (opts.stowToken !== undefined) {
    const auth = req.headers.get("authorization") ?? "";
    if (auth !== `Bearer ${opts.stowToken}`) {
      await req.body?.cancel().catch(() => {});
      return errorResponse(
        401,
        "UNAUTHORIZED",
        "STOW-RS on this server needs an Authorization: Bearer <token> header",
        {
          "www-authenticate": 'Bearer realm="edgeseg-stow"',
        },
      );
    }
  }
  const contentType = req.headers.get("content-type") ?? "";
  const mt = parseMediaType(contentType);
  if (mt.type !== "multipart/related") {
    await req.body?.cancel().catch(() => {});
    return errorResponse(
      415,
      "UNSUPPORTED_MEDIA_TYPE",
      `expected Content-Type multipart/related; type="application/dicom", found "${contentType || "(none)"}"`,
    );
  }
  const partTypeParam = (mt.params["type"] ?? "").toLowerCase();
  if (partTypeParam !== "application/dicom") {
    await req.body?.cancel().catch(() => {});
    return errorResponse(
      415,
      "UNSUPPORTED_MEDIA_TYPE",
      `expected type="application/dicom" (PS3.18 §10.5), found type="${partTypeParam || "(none)"}"`,
    );
  }
  const boundary = mt.params["boundary"];
  if (!boundary) {
    await req.body?.cancel().catch(() => {});
    return errorResponse(
      400,
      "NO_BOUNDARY",
      "expected a boundary parameter in the multipart/related Content-Type, found none",
    );
  }
  const declared = Number(req.headers.get("content-length") ?? NaN);
  if (Number.isFinite(declared) && declared > opts.maxUploadBytes) {
    await req.body?.cancel().catch(() => {});
    return errorResponse(
      413,
      "TOO_LARGE",
      `upload of ${declared} bytes exceeds the limit of ${opts.maxUploadBytes} bytes`,
    );
  }
  if (!req.body) return errorResponse(400, "EMPTY_BODY", "expected a multipart body, found none");

  const staged: FilePart[] = [];
  const cleanup = async () => {
    for (const p of staged) await Deno.remove(p.path).catch(() => {});
  };
  try {
    let parts;
    // The upload's deadline. Its timer is cleared as soon as the body is read: an armed 10-minute timer
    // (AbortSignal.timeout) would keep a process that has stopped serving alive that long.
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), opts.uploadTimeoutMs ?? 600_000);
    try {
      parts = await parseMultipartStream(
        req.body,
        boundary,
        async (headers) => {
          const part = await new FilePart(store.tempPath("stow"), headers).open();
          staged.push(part);
          return part;
        },
        opts.maxUploadBytes,
        deadline.signal,
      );
    } catch (e) {
      if (e instanceof MultipartError) return errorResponse(e.status, e.code, e.message);
      throw e;
    } finally {
      clearTimeout(timer);
    }
    if (parts.length === 0) {
      return errorResponse(400, "NO_PARTS", "expected at least one application/dicom part, found none");
    }
    const validated: ValidatedInstance[] = [];
    for (let i = 0; i < parts.length; i++) {
      const partType = parseMediaType(parts[i].headers["content-type"] ?? "").type;
      if (partType !== "application/dicom") {
        return errorResponse(
          partType === "" ? 400 : 415,
          "BAD_PART",
          `part ${i + 1}: expected Content-Type application/dicom, found "${
            parts[i].headers["content-type"] ?? "(none)"
          }"; nothing was stored`,
        );
      }
      try {
        validated.push(await store.validate({ tmpPath: parts[i].result.path }));
      } catch (e) {
        if (e instanceof InputError) {
          return errorResponse(400, e.code, `part ${i + 1}: ${e.message}; nothing was stored`);
        }
        throw e;
      }
    }
    if (studyInPath) {
      const wrong = validated.filter((v) => v.record.studyInstanceUID !== studyInPath);
      if (wrong.length) {
        // PS3.18 §10.5.3: instances of another study fail with 409; we store none of the request.
        const body: DicomJsonDataset = {
          "00081190": { vr: "UR", Value: [`${base}/studies/${studyInPath}`] },
          "00081198": {
            vr: "SQ",
            Value: wrong.map((w) => sopItem(w.record, { "00081197": { vr: "US", Value: [0x0110] } })),
          },
          "00081199": { vr: "SQ", Value: [] },
        };
        return new Response(JSON.stringify(body), { status: 409, headers: JSON_HEADERS });
      }
    }
    const { stored, failed } = await store.commitEach(validated);
    staged.length = 0; // committed files were renamed away, failed ones removed by the store
    const firstStudy = (stored[0] ?? failed[0].record).studyInstanceUID;
    const body: DicomJsonDataset = {
      "00081190": { vr: "UR", Value: [`${base}/studies/${studyInPath ?? firstStudy}`] },
      "00081199": {
        vr: "SQ",
        Value: stored.map((r) => sopItem(r, { "00081190": { vr: "UR", Value: [instanceUrl(base, r)] } })),
      },
    };
    opts.log?.(
      `stow: stored ${stored.length} instance(s)${failed.length ? `, ${failed.length} failed` : ""}`,
    );
    if (!failed.length) return new Response(JSON.stringify(body), { status: 200, headers: JSON_HEADERS });
    // PS3.18 §10.5.3: 202 when some were stored and some not, 409 when none was; each failed
    // instance is listed with FailureReason 0110H (processing failure).
    body["00081198"] = {
      vr: "SQ",
      Value: failed.map((f) => sopItem(f.record, { "00081197": { vr: "US", Value: [0x0110] } })),
    };
    const reasons = failed.map((f) => `${f.record.sopInstanceUID}: ${f.reason}`).join("; ")
      .replace(/[^\x20-\x7e]/g, "?").replace(/"/g, "'").slice(0, 500);
    return new Response(JSON.stringify(body), {
      status: stored.length ? 202 : 409,
      headers: {
        ...JSON_HEADERS,
        warning:
          `299 edgeseg "${failed.length} of ${validated.length} instance(s) were not stored: ${reasons}"`,
      },
    });
  } finally {
    await cleanup();
  }
}
