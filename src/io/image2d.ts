/**
 * 2D image readers (PNG, JPEG, GIF, TIFF) and a PNG writer for the CLI: fundus photographs, windowed
 * CT slices and their label masks. Decoding uses the npm codecs the ecosystem already trusts
 * (pngjs, jpeg-js, omggif, utif); this module only maps their RGBA output onto a Volume.
 */
import { Buffer } from "node:buffer";
import jpeg from "jpeg-js";
import { GifReader } from "omggif";
import * as pngjs from "pngjs";
import * as utif from "utif";
import { InputError } from "../core/errors.ts";
import type { Volume } from "../core/types.ts";

// The codec packages ship no (or outdated) type declarations: these are the parts we call.
interface PngImage {
  width: number;
  height: number;
  data: Buffer;
}
interface PngApi {
  new (options: { width: number; height: number; colorType: number }): PngImage;
  sync: { read(buffer: Buffer): PngImage; write(png: PngImage): Buffer };
}
interface UtifIfd {
  width: number;
  height: number;
}
interface UtifApi {
  decode(buffer: ArrayBuffer): UtifIfd[];
  decodeImage(buffer: ArrayBuffer, ifd: UtifIfd): void;
  toRGBA8(ifd: UtifIfd): Uint8Array;
}
const PNG = (pngjs as unknown as { PNG: PngApi }).PNG;
const UTIF = ((utif as unknown as { default?: UtifApi }).default ?? utif) as unknown as UtifApi;

export type ImageFormat = "png" | "jpeg" | "gif" | "tiff";

/** Sniffs the format from magic bytes (never from the file name). */
export function sniffImageFormat(bytes: Uint8Array): ImageFormat | null {
  if (bytes.length >= 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) {
    return "png";
  }
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return "jpeg";
  if (bytes.length >= 6 && bytes[0] === 0x47 && bytes[1] === 0x49 && bytes[2] === 0x46) return "gif";
  if (
    bytes.length >= 4 &&
    ((bytes[0] === 0x49 && bytes[1] === 0x49 && bytes[2] === 42) ||
      (bytes[0] === 0x4d && bytes[1] === 0x4d && bytes[3] === 42))
  ) return "tiff";
  return null;
}

interface Rgba {
  width: number;
  height: number;
  rgba: Uint8Array;
}

/** Refuses absurd declared sizes before a decoder allocates for them. */
const MAX_PIXELS = 16384 * 16384;

function checkSize(width: number, height: number, format: string): void {
  if (!(width > 0 && height > 0) || width * height > MAX_PIXELS) {
    throw new InputError(
      "IMAGE_SIZE",
      `${format} image size ${width}×${height} is outside 1..${MAX_PIXELS} pixels`,
    );
  }
}

function decodeRgba(bytes: Uint8Array): Rgba {
  const format = sniffImageFormat(bytes);
  try {
    switch (format) {
      case "png": {
        const png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
        return {
          width: png.width,
          height: png.height,
          rgba: new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.byteLength),
        };
      }
      case "jpeg": {
        const img = jpeg.decode(bytes, {
          useTArray: true,
          formatAsRGBA: true,
          maxResolutionInMP: 256,
          maxMemoryUsageInMB: 1024,
        });
        return { width: img.width, height: img.height, rgba: img.data };
      }
      case "gif": {
        const reader = new GifReader(bytes);
        checkSize(reader.width, reader.height, "GIF");
        const rgba = new Uint8Array(reader.width * reader.height * 4);
        reader.decodeAndBlitFrameRGBA(0, rgba);
        return { width: reader.width, height: reader.height, rgba };
      }
      case "tiff": {
        const buffer = bytes.buffer.slice(
          bytes.byteOffset,
          bytes.byteOffset + bytes.byteLength,
        ) as ArrayBuffer;
        const ifds = UTIF.decode(buffer);
        if (!ifds.length) throw new InputError("IMAGE_DECODE", "TIFF has no image directory");
        const ifd = ifds[0];
        UTIF.decodeImage(buffer, ifd);
        const width = Number(ifd.width), height = Number(ifd.height);
        checkSize(width, height, "TIFF");
        return { width, height, rgba: new Uint8Array(UTIF.toRGBA8(ifd)) };
      }
      default:
        throw new InputError(
          "IMAGE_FORMAT",
          "image format not recognised: expected PNG, JPEG, GIF or TIFF magic bytes",
        );
    }
  } catch (err) {
    if (err instanceof InputError) throw err;
    throw new InputError(
      "IMAGE_DECODE",
      `could not decode ${format} image: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    );
  }
}

export interface ReadImageOptions {
  /** "auto" (default): 1 channel when R = G = B everywhere, else 3 */
  channels?: "auto" | 1 | 3;
  modality?: string;
  /** pixel spacing in mm, if known (2D image formats rarely carry it) */
  spacingMm?: [number, number];
}

/** Decodes a 2D image into a one-slice Volume with planar channels (R, G, B). */
export function readImage(bytes: Uint8Array, options: ReadImageOptions = {}): Volume {
  const { width, height, rgba } = decodeRgba(bytes);
  checkSize(width, height, "image");
  const n = width * height;
  let gray = options.channels === 1;
  if (options.channels === undefined || options.channels === "auto") {
    gray = true;
    for (let p = 0; p < n; p++) {
      const r = rgba[4 * p];
      if (rgba[4 * p + 1] !== r || rgba[4 * p + 2] !== r) {
        gray = false;
        break;
      }
    }
  }
  const channels = gray ? 1 : 3;
  const data = new Uint8Array(n * channels);
  for (let c = 0; c < channels; c++) {
    const base = c * n;
    for (let p = 0; p < n; p++) data[base + p] = rgba[4 * p + c];
  }
  const [sx, sy] = options.spacingMm ?? [1, 1];
  return {
    geometry: {
      dims: [width, height, 1],
      spacing: [sx, sy, 1],
      origin: [0, 0, 0],
      direction: [1, 0, 0, 0, 1, 0, 0, 0, 1],
    },
    channels,
    data,
    modality: options.modality ?? (channels === 3 ? "OP" : "OT"),
  };
}

/**
 * Decodes a 2D label mask into label values. A palette PNG (colour type 3, as COVID-SemiSeg's GT masks:
 * index 1 drawn (128, 0, 0), index 2 (0, 128, 0)) yields its palette indices: decoders return colours,
 * and one channel of them would drop a label whose colour is 0 there. Any other image yields its first
 * channel.
 */
export function readLabelImage(bytes: Uint8Array): Volume {
  const palette = sniffImageFormat(bytes) === "png" ? pngPalette(bytes) : null;
  if (!palette) return readImage(bytes, { channels: 1 });
  const img = readImage(bytes, { channels: 3 });
  const n = img.geometry.dims[0] * img.geometry.dims[1];
  const index = new Map<number, number>();
  for (let p = palette.length / 3 - 1; p >= 0; p--) {
    index.set((palette[3 * p] << 16) | (palette[3 * p + 1] << 8) | palette[3 * p + 2], p);
  }
  const data = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const v = index.get((img.data[i] << 16) | (img.data[n + i] << 8) | img.data[2 * n + i]);
    if (v === undefined) {
      throw new InputError("LABEL_PALETTE", `label PNG pixel ${i} has a colour that is not in its palette`);
    }
    data[i] = v;
  }
  return { ...img, channels: 1, data };
}

/** The PLTE chunk of a palette PNG (RGB triplets), or null when the PNG is not colour type 3. */
function pngPalette(bytes: Uint8Array): Uint8Array | null {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 33 || bytes[25] !== 3) return null; // IHDR's colour type
  for (let at = 8; at + 8 <= bytes.length;) {
    const length = view.getUint32(at);
    const type = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
    if (type === "PLTE") return bytes.slice(at + 8, at + 8 + length);
    if (type === "IDAT" || type === "IEND") return null;
    at += 12 + length;
  }
  return null;
}

/** Encodes an 8-bit grey (1 channel) or RGB (3 planar channels) raster as PNG. */
export function writePng(
  width: number,
  height: number,
  data: Uint8Array,
  channels: 1 | 3 | 4 = 1,
): Uint8Array {
  const n = width * height;
  if (data.length !== n * channels) {
    throw new InputError(
      "IMAGE_SIZE",
      `PNG raster expected ${n * channels} values for ${width}×${height}×${channels}, found ${data.length}`,
    );
  }
  const png = new PNG({ width, height, colorType: 6 });
  for (let p = 0; p < n; p++) {
    if (channels === 4) {
      for (let c = 0; c < 4; c++) png.data[4 * p + c] = data[4 * p + c];
    } else {
      png.data[4 * p] = data[p];
      png.data[4 * p + 1] = channels === 3 ? data[n + p] : data[p];
      png.data[4 * p + 2] = channels === 3 ? data[2 * n + p] : data[p];
      png.data[4 * p + 3] = 255;
    }
  }
  const out = PNG.sync.write(png);
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}
