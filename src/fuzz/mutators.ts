/**
 * Deterministic input mutators for the fuzz harness. Every mutation is a pure function of the seed
 * input and a seeded PRNG, so `(seed, target, index)` reproduces an input exactly.
 *
 * Generic: bit flips, byte insert/delete, truncation, "interesting" integers. Format-aware: DICOM
 * element lengths (Explicit VR LE headers found by scanning), NIfTI-1 header fields (dims, datatype,
 * vox_offset), multipart boundaries and part headers, and huge declared sizes.
 */
import { mulberry32 } from "../core/random.ts";
import { LONG_VRS, SHORT_VRS } from "../dicom/vr.ts";

/** A seeded PRNG (mulberry32): fast, 32-bit state, identical on every platform. */
export class Rng {
  readonly #next: () => number;
  constructor(seed: number) {
    this.#next = mulberry32(seed);
  }
  /** uniform in [0, 1) */
  next(): number {
    return this.#next();
  }
  /** integer in [0, n) */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

/** Mixes seed, target name and input index into one 32-bit PRNG seed (FNV-1a over the text). */
export function inputSeed(seed: number, target: string, index: number): number {
  let h = 0x811c9dc5;
  for (const ch of `${seed}:${target}:${index}`) {
    h ^= ch.charCodeAt(0);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** Sizes that break naive length arithmetic: sign bits, overflow edges, "undefined length". */
export const INTERESTING_U32 = [
  0,
  1,
  2,
  3,
  0x7f,
  0xff,
  0x100,
  0x7fff,
  0x8000,
  0xffff,
  0x10000,
  0x7ffffff0,
  0x7fffffff,
  0x80000000,
  0xfffffffe,
  0xffffffff,
] as const;

const HUGE = [0x7ffffff0, 0x7fffffff, 0x80000000, 0xfffffff0, 0xfffffffe, 0x40000000, 0x10000000] as const;

export function bitFlip(b: Uint8Array, rng: Rng, flips = 1 + rng.int(8)): Uint8Array {
  const out = b.slice();
  if (!out.length) return out;
  for (let i = 0; i < flips; i++) out[rng.int(out.length)] ^= 1 << rng.int(8);
  return out;
}

export function insertBytes(b: Uint8Array, rng: Rng): Uint8Array {
  const n = 1 + rng.int(rng.chance(0.2) ? 512 : 8);
  const at = rng.int(b.length + 1);
  const out = new Uint8Array(b.length + n);
  out.set(b.subarray(0, at), 0);
  const fill = rng.chance(0.5) ? rng.int(256) : -1;
  for (let i = 0; i < n; i++) out[at + i] = fill < 0 ? rng.int(256) : fill;
  out.set(b.subarray(at), at + n);
  return out;
}

export function deleteBytes(b: Uint8Array, rng: Rng): Uint8Array {
  if (!b.length) return b.slice();
  const at = rng.int(b.length);
  const n = Math.min(b.length - at, 1 + rng.int(rng.chance(0.2) ? 512 : 8));
  const out = new Uint8Array(b.length - n);
  out.set(b.subarray(0, at), 0);
  out.set(b.subarray(at + n), at);
  return out;
}

export function truncate(b: Uint8Array, rng: Rng): Uint8Array {
  return b.slice(0, rng.int(b.length + 1));
}

/** Overwrites a random aligned 2- or 4-byte field with an interesting value. */
export function interestingInt(b: Uint8Array, rng: Rng): Uint8Array {
  const out = b.slice();
  if (out.length < 4) return out;
  const at = rng.int(out.length - 3);
  const v = rng.pick(INTERESTING_U32);
  const dv = new DataView(out.buffer);
  if (rng.chance(0.5)) dv.setUint32(at, v, rng.chance(0.8));
  else dv.setUint16(at, v & 0xffff, rng.chance(0.8));
  return out;
}

// DICOM ---------------------------------------------------------------------------------------------

/** Offsets of Explicit VR LE element length fields: {offset, width (2|4)}. Found by a VR-pattern scan. */
export function dicomLengthFields(b: Uint8Array): { offset: number; width: 2 | 4 }[] {
  const out: { offset: number; width: 2 | 4 }[] = [];
  for (let i = 132; i + 8 <= b.length; i++) {
    const c1 = b[i + 4], c2 = b[i + 5];
    if (c1 < 0x41 || c1 > 0x5a || c2 < 0x41 || c2 > 0x5a) continue;
    const vr = String.fromCharCode(c1, c2);
    // group must be even (standard) or the item/sequence groups; keeps false matches rare
    if (b[i] & 1) continue;
    if (LONG_VRS.has(vr) && b[i + 6] === 0 && b[i + 7] === 0 && i + 12 <= b.length) {
      out.push({ offset: i + 8, width: 4 });
    } else if (SHORT_VRS.has(vr)) out.push({ offset: i + 6, width: 2 });
  }
  // item / delimitation tags (FFFE,E000) carry 4-byte lengths too
  for (let i = 132; i + 8 <= b.length; i++) {
    if (b[i] === 0xfe && b[i + 1] === 0xff && b[i + 2] === 0x00 && b[i + 3] === 0xe0) {
      out.push({ offset: i + 4, width: 4 });
    }
  }
  return out;
}

/** Corrupts one element length: off by a little, zero, huge, or undefined length. */
export function dicomLength(b: Uint8Array, rng: Rng, fields = dicomLengthFields(b)): Uint8Array {
  if (!fields.length) return interestingInt(b, rng);
  const out = b.slice();
  const f = rng.pick(fields);
  const dv = new DataView(out.buffer);
  const cur = f.width === 4 ? dv.getUint32(f.offset, true) : dv.getUint16(f.offset, true);
  const choice = rng.int(4);
  const v = choice === 0
    ? cur + rng.int(17) - 8
    : choice === 1
    ? rng.pick(HUGE)
    : choice === 2
    ? rng.pick(INTERESTING_U32)
    : rng.int(out.length * 2 + 1);
  if (f.width === 4) dv.setUint32(f.offset, v >>> 0, true);
  else dv.setUint16(f.offset, v & 0xffff, true);
  return out;
}

// NIfTI-1 -------------------------------------------------------------------------------------------

/** Header fields (offset, type) that drive allocation and geometry. */
const NIFTI_FIELDS: { offset: number; type: "i16" | "f32" }[] = [
  ...Array.from({ length: 8 }, (_, k) => ({ offset: 40 + 2 * k, type: "i16" as const })), // dim[0..7]
  { offset: 70, type: "i16" }, // datatype
  { offset: 72, type: "i16" }, // bitpix
  ...Array.from({ length: 8 }, (_, k) => ({ offset: 76 + 4 * k, type: "f32" as const })), // pixdim
  { offset: 108, type: "f32" }, // vox_offset
  { offset: 112, type: "f32" }, // scl_slope
  { offset: 116, type: "f32" }, // scl_inter
  { offset: 252, type: "i16" }, // qform_code
  { offset: 254, type: "i16" }, // sform_code
  ...Array.from({ length: 18 }, (_, k) => ({ offset: 256 + 4 * k, type: "f32" as const })), // quatern…srow
];
const F32_ODD = [0, -0, -1, 1e-30, 1e30, 3.4e38, -3.4e38, NaN, Infinity, -Infinity, 0.5, 352, 1e9];
const I16_ODD = [0, -1, 1, 2, 3, 7, 8, 9, 255, 256, 0x7fff, -0x8000, 16, 64, 128, 512, 768, 1024, 2304];

export function niftiField(b: Uint8Array, rng: Rng): Uint8Array {
  if (b.length < 348) return interestingInt(b, rng);
  const out = b.slice();
  const dv = new DataView(out.buffer);
  const n = 1 + rng.int(3);
  for (let i = 0; i < n; i++) {
    const f = rng.pick(NIFTI_FIELDS);
    if (f.type === "i16") dv.setInt16(f.offset, rng.pick(I16_ODD), true);
    else dv.setFloat32(f.offset, rng.pick(F32_ODD), true);
  }
  return out;
}

// multipart ----------------------------------------------------------------------------------------

const enc = new TextEncoder();
const dec = new TextDecoder("latin1");

function findAll(hay: Uint8Array, needle: Uint8Array): number[] {
  const out: number[] = [];
  outer: for (
    let i = hay.indexOf(needle[0]);
    i !== -1 && i <= hay.length - needle.length;
    i = hay.indexOf(needle[0], i + 1)
  ) {
    for (let j = 1; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    out.push(i);
  }
  return out;
}

/** Damages a boundary line, a CRLF after one, or a part header (Content-Type, Content-Length). */
export function multipartStructure(b: Uint8Array, boundary: string, rng: Rng): Uint8Array {
  const hits = findAll(b, enc.encode(`--${boundary}`));
  if (!hits.length) return bitFlip(b, rng);
  const at = rng.pick(hits);
  const len = boundary.length + 2;
  const head = b.subarray(0, at), tail = b.subarray(at + len);
  const variants = [
    `--${boundary.slice(0, -1)}`, // one character short
    `--${boundary}x`,
    `-${boundary}`,
    `--${boundary}--`, // early close
    `--${boundary}\r\n\r\n`, // empty part headers
    `--${boundary}\r\nContent-Type: application/json`,
    `--${boundary}\r\nContent-Length: 4294967295`,
    `--${boundary}\r\nContent-Type: ${"x".repeat(20000)}`,
    `--${boundary}${" ".repeat(2000)}`,
    "",
  ];
  const v = enc.encode(rng.pick(variants));
  const out = new Uint8Array(head.length + v.length + tail.length);
  out.set(head, 0);
  out.set(v, head.length);
  out.set(tail, head.length + v.length);
  return out;
}

export { dec as latin1, enc as utf8 };

/** A generic mutation chosen at random (1–3 stacked). */
export function genericMutation(b: Uint8Array, rng: Rng): Uint8Array {
  let out = b;
  const n = 1 + rng.int(3);
  for (let i = 0; i < n; i++) {
    const m = rng.int(5);
    out = m === 0
      ? bitFlip(out, rng)
      : m === 1
      ? insertBytes(out, rng)
      : m === 2
      ? deleteBytes(out, rng)
      : m === 3
      ? interestingInt(out, rng)
      : (rng.chance(0.3) ? truncate(out, rng) : bitFlip(out, rng));
  }
  return out;
}
