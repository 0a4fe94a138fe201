/**
 * Pixel frames of a parsed instance as native little-endian bytes: native data sliced per frame,
 * encapsulated data decoded per frame. 1-bit native data is bit-contiguous across frames and cannot
 * be sliced per byte: `nativeBits` hands the whole bit stream to the SEG reader instead.
 */
import { InputError } from "../core/errors.ts";
import {
  decodeFrame,
  frameBytes,
  type FrameInfo,
  isEncapsulated,
  isSupportedTransferSyntax,
} from "./codecs.ts";
import { type NaturalizedDataset, num, pixelBuffers } from "./dataset.ts";

export function frameInfoOf(ds: NaturalizedDataset): FrameInfo {
  const rows = num(ds, "Rows"), columns = num(ds, "Columns"), bitsAllocated = num(ds, "BitsAllocated");
  if (!rows || !columns || !bitsAllocated) {
    throw new InputError(
      "MISSING_ATTRIBUTE",
      `expected Rows, Columns and BitsAllocated, found ${rows ?? "none"}, ${columns ?? "none"}, ${
        bitsAllocated ?? "none"
      }`,
    );
  }
  return {
    rows,
    columns,
    bitsAllocated,
    samplesPerPixel: num(ds, "SamplesPerPixel") ?? 1,
    pixelRepresentation: num(ds, "PixelRepresentation") ?? 0,
    planarConfiguration: num(ds, "PlanarConfiguration") ?? 0,
  };
}

/** The encoded bytes of each frame of an encapsulated instance (one entry per frame). */
export function encapsulatedFrames(ds: NaturalizedDataset, pixelKey = "PixelData"): Uint8Array[] {
  const nFrames = num(ds, "NumberOfFrames") ?? 1;
  const buffers = pixelBuffers(ds, pixelKey);
  if (buffers.length === nFrames) return buffers;
  if (nFrames === 1 && buffers.length > 1) {
    // several fragments of one frame: concatenate
    const total = buffers.reduce((s, b) => s + b.length, 0);
    const out = new Uint8Array(total);
    let o = 0;
    for (const b of buffers) out.set(b, o), o += b.length;
    return [out];
  }
  throw new InputError(
    "BAD_FRAGMENTS",
    `expected one fragment per frame (${nFrames} frames), found ${buffers.length} fragments without a usable offset table`,
  );
}

/**
 * Returns frame `index` (0-based) as native LE bytes (colour interleaved). Not for 1-bit native
 * data (see the SEG reader).
 */
export async function readFrames(
  ds: NaturalizedDataset,
  transferSyntaxUID: string,
  pixelKey = "PixelData",
): Promise<Uint8Array[]> {
  const info = frameInfoOf(ds);
  const nFrames = num(ds, "NumberOfFrames") ?? 1;
  if (!isSupportedTransferSyntax(transferSyntaxUID)) {
    throw new InputError(
      "UNSUPPORTED_TRANSFER_SYNTAX",
      `expected a supported transfer syntax (native LE, deflate, RLE, JPEG, JPEG-LS, JPEG 2000), found ${transferSyntaxUID}`,
    );
  }
  if (!isEncapsulated(transferSyntaxUID)) {
    const [whole] = pixelBuffers(ds, pixelKey);
    const bytesPerFrame = pixelKey === "PixelData"
      ? frameBytes(info)
      : info.rows * info.columns * (pixelKey === "FloatPixelData" ? 4 : 8);
    if (!whole || whole.length < bytesPerFrame * nFrames) {
      throw new InputError(
        "PIXEL_DATA_LENGTH",
        `expected ${bytesPerFrame * nFrames} bytes of pixel data (${nFrames} frames), found ${
          whole?.length ?? 0
        }`,
      );
    }
    const out: Uint8Array[] = [];
    for (let f = 0; f < nFrames; f++) out.push(whole.subarray(f * bytesPerFrame, (f + 1) * bytesPerFrame));
    return out;
  }
  const encoded = encapsulatedFrames(ds, pixelKey);
  const out: Uint8Array[] = [];
  for (const frame of encoded) out.push(await decodeFrame(transferSyntaxUID, frame, info));
  return out;
}
