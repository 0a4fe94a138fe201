/**
 * Frame decoding for every transfer syntax EdgeSeg reads. Native syntaxes are sliced, RLE (PS3.5
 * Annex G) and Deflated Image Frame Compression are decoded here, and the JPEG family goes to the
 * codec packages Cornerstone publishes on npm (through @cornerstonejs/dicom-codec, which wraps
 * codec-charls, codec-openjpeg, codec-libjpeg-turbo-8bit and a JPEG lossless decoder). The codecs are
 * imported lazily: the writers, which also run in the browser, never pull their WASM in.
 */
import { InputError } from "../core/errors.ts";
import { TransferSyntax } from "./dataset.ts";

export interface FrameInfo {
  rows: number;
  columns: number;
  bitsAllocated: number;
  samplesPerPixel: number;
  pixelRepresentation: number;
  /** 0 = interleaved (R1G1B1 R2G2B2 …), 1 = planar; only for samplesPerPixel > 1 */
  planarConfiguration?: number;
}

const NATIVE = new Set<string>([
  TransferSyntax.ImplicitLE,
  TransferSyntax.ExplicitLE,
  TransferSyntax.DeflatedLE,
]);
const CODEC = new Set<string>([
  TransferSyntax.JpegBaseline,
  TransferSyntax.JpegExtended,
  TransferSyntax.JpegLossless,
  TransferSyntax.JpegLosslessSV1,
  TransferSyntax.JpegLsLossless,
  TransferSyntax.JpegLsNearLossless,
  TransferSyntax.Jpeg2000Lossless,
  TransferSyntax.Jpeg2000,
]);

export function isEncapsulated(ts: string): boolean {
  return !NATIVE.has(ts) && ts !== TransferSyntax.ExplicitBE;
}

export function isSupportedTransferSyntax(ts: string): boolean {
  return NATIVE.has(ts) || CODEC.has(ts) || ts === TransferSyntax.Rle ||
    ts === TransferSyntax.DeflatedImageFrame;
}

/** Bytes one decoded frame occupies (1-bit frames: ceil(rows·cols/8), byte aligned). */
export function frameBytes(info: FrameInfo): number {
  const n = info.rows * info.columns * info.samplesPerPixel;
  return info.bitsAllocated === 1 ? Math.ceil(n / 8) : n * (info.bitsAllocated / 8);
}

/**
 * Decodes one encapsulated frame to native little-endian bytes, colour interleaved. For JPEG 2000
 * and JPEG-LS a 1-bit source comes back one byte per pixel; the caller checks the length.
 */
export async function decodeFrame(ts: string, frame: Uint8Array, info: FrameInfo): Promise<Uint8Array> {
  if (ts === TransferSyntax.Rle) return decodeRle(frame, info);
  if (ts === TransferSyntax.DeflatedImageFrame) return await inflateRaw(frame);
  if (!CODEC.has(ts)) {
    throw new InputError(
      "UNSUPPORTED_TRANSFER_SYNTAX",
      `expected a supported transfer syntax (native LE, deflate, RLE, JPEG, JPEG-LS, JPEG 2000), found ${ts}`,
    );
  }
  if (
    (ts === TransferSyntax.JpegLsLossless || ts === TransferSyntax.JpegLsNearLossless) && !endsWithEoi(frame)
  ) {
    // Measured (fuzz harness): the JPEG-LS WASM decoder spends 15–25 s rejecting a truncated stream.
    // PS3.5 §A.4 frames are complete interchange-format streams, which end with EOI (FFD9), so a frame
    // without one is refused before it reaches the codec.
    throw new InputError(
      "FRAME_TRUNCATED",
      `expected a JPEG-LS frame ending with the EOI marker FFD9, found ${frame.length} bytes without one (truncated stream)`,
    );
  }
  const codec = await loadDicomCodec();
  let result: { imageFrame: ArrayBufferView };
  try {
    result = await codec.decode(frame, {
      columns: info.columns,
      rows: info.rows,
      bitsAllocated: info.bitsAllocated === 1 ? 8 : info.bitsAllocated,
      samplesPerPixel: info.samplesPerPixel,
      signed: info.pixelRepresentation === 1,
      planarConfiguration: info.planarConfiguration ?? 0,
    }, ts);
  } catch (e) {
    // the WASM codecs throw bare numbers (Emscripten exception pointers) or plain Errors on bad streams
    throw new InputError(
      "FRAME_DECODE",
      `expected a decodable ${ts} frame of ${info.columns}×${info.rows}, found ${frame.length} bytes the codec rejects: ${
        e instanceof Error ? e.message : `codec error ${String(e)}`
      }`,
      { cause: e },
    );
  }
  const out = result.imageFrame;
  // the typed array's element type varies by codec (Int8 for RLE, Uint16 for .70, Uint8 for JLS): view as bytes
  return new Uint8Array(out.buffer.slice(out.byteOffset, out.byteOffset + out.byteLength));
}

/** True when the stream ends with EOI (FF D9), allowing the zero byte that pads a fragment to even length. */
function endsWithEoi(frame: Uint8Array): boolean {
  let n = frame.length;
  while (n > 0 && frame[n - 1] === 0 && frame.length - n < 2) n--;
  return n >= 2 && frame[n - 2] === 0xff && frame[n - 1] === 0xd9;
}

interface DicomCodec {
  decode(
    frame: Uint8Array,
    info: Record<string, unknown>,
    ts: string,
  ): Promise<{ imageFrame: ArrayBufferView }>;
}

let codecPromise: Promise<DicomCodec> | undefined;
function loadDicomCodec(): Promise<DicomCodec> {
  codecPromise ??= import("@cornerstonejs/dicom-codec").then((m) => {
    const mod = (m as { default?: unknown }).default ?? m;
    return mod as DicomCodec;
  });
  return codecPromise;
}

/**
 * Deflate (RFC 1951, raw) through the platform's DecompressionStream: no library needed. A fragment
 * is padded to even length with a zero byte, which the stream rejects as trailing data: retry
 * without it.
 */
export async function inflateRaw(bytes: Uint8Array): Promise<Uint8Array> {
  try {
    return await inflateOnce(bytes);
  } catch (e) {
    if (bytes.length > 1 && bytes[bytes.length - 1] === 0) {
      try {
        return await inflateOnce(bytes.subarray(0, bytes.length - 1));
      } catch {
        // fall through to the typed error below (the first attempt's message is the informative one)
      }
    }
    throw new InputError(
      "BAD_DEFLATE",
      `expected a raw deflate stream, found bytes it cannot inflate: ${e instanceof Error ? e.message : e}`,
    );
  }
}

async function inflateOnce(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
    new DecompressionStream("deflate-raw"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/**
 * RLE Lossless (PS3.5 Annex G): a 64-byte header (segment count + 15 offsets), then one PackBits
 * segment per byte plane, most significant byte first, one plane set per sample. Output is native
 * little endian, colour interleaved. 1-bit frames: one segment holding the packed bits.
 */
export function decodeRle(frame: Uint8Array, info: FrameInfo): Uint8Array {
  if (frame.length < 64) {
    throw new InputError(
      "BAD_RLE",
      `expected an RLE frame with a 64-byte header, found ${frame.length} bytes`,
    );
  }
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const nSegments = view.getUint32(0, true);
  const bytesPerSample = info.bitsAllocated === 1 ? 1 : info.bitsAllocated / 8;
  const expectedSegments = bytesPerSample * info.samplesPerPixel;
  if (nSegments !== expectedSegments || nSegments > 15) {
    throw new InputError(
      "BAD_RLE",
      `expected ${expectedSegments} RLE segments (${info.samplesPerPixel} samples × ${bytesPerSample} bytes), found ${nSegments}`,
    );
  }
  const pixels = info.rows * info.columns;
  const planeLen = info.bitsAllocated === 1 ? Math.ceil(pixels / 8) : pixels;
  const out = new Uint8Array(frameBytes(info));
  const stride = bytesPerSample * info.samplesPerPixel;
  for (let s = 0; s < nSegments; s++) {
    const start = view.getUint32(4 + 4 * s, true);
    // offsets come from the file: clamp them so a corrupt header cannot read past the frame
    const end = Math.min(frame.length, s + 1 < nSegments ? view.getUint32(8 + 4 * s, true) : frame.length);
    const sample = Math.floor(s / bytesPerSample);
    // segment 0 of a sample is its most significant byte; little-endian output puts it last
    const byteInSample = bytesPerSample - 1 - (s % bytesPerSample);
    const offset = info.bitsAllocated === 1 ? 0 : sample * bytesPerSample + byteInSample;
    const step = info.bitsAllocated === 1 ? 1 : stride;
    let o = 0;
    let i = start;
    while (i < end && o < planeLen) {
      const n = (frame[i++] << 24) >> 24;
      if (n >= 0) {
        for (let c = 0; c <= n && o < planeLen; c++) out[offset + step * o++] = frame[i++];
      } else if (n !== -128) {
        const v = frame[i++];
        for (let c = 0; c < 1 - n && o < planeLen; c++) out[offset + step * o++] = v;
      }
    }
    if (o < planeLen) {
      throw new InputError("BAD_RLE", `expected ${planeLen} bytes in RLE segment ${s + 1}, found ${o}`);
    }
  }
  return out;
}
