/**
 * STOW parts are validated from their element headers: the structure is checked to the last byte,
 * only the dataset before PixelData is read and parsed (src/server/dicom_walk.ts).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { InputError } from "../../src/core/errors.ts";
import { concatBytes } from "../../src/dicom/encode.ts";
import { scanPart10 } from "../../src/server/dicom_walk.ts";
import { DicomStore } from "../../src/server/store.ts";
import { smallPhantom, stow, withServer } from "./helpers.ts";

const EXPLICIT_LE = "1.2.840.10008.1.2.1";
const IMPLICIT_LE = "1.2.840.10008.1.2";
const JPEG_LOSSLESS = "1.2.840.10008.1.2.4.70";
const LONG = new Set(["OB", "OW", "SQ", "UN", "UT"]);
const UNDEFINED = 0xffffffff;

/** One encoded element; `value` as bytes, or a number = a declared length with no bytes (for cuts). */
function el(
  tag: number,
  vr: string,
  value: Uint8Array | string,
  explicit = true,
  length?: number,
): Uint8Array {
  let v = typeof value === "string" ? new TextEncoder().encode(value) : value;
  if (typeof value === "string" && v.length % 2) v = new Uint8Array([...v, vr === "UI" ? 0 : 0x20]);
  const len = length ?? v.length;
  const group = tag >>> 16, element = tag & 0xffff;
  const long = !explicit || LONG.has(vr) || group === 0xfffe;
  const head = new Uint8Array(explicit && group !== 0xfffe ? (long ? 12 : 8) : 8);
  const dv = new DataView(head.buffer);
  dv.setUint16(0, group, true);
  dv.setUint16(2, element, true);
  if (explicit && group !== 0xfffe) {
    head[4] = vr.charCodeAt(0);
    head[5] = vr.charCodeAt(1);
    if (long) dv.setUint32(8, len, true);
    else dv.setUint16(6, len, true);
  } else dv.setUint32(4, len, true);
  return concat(head, v);
}

const concat = (...parts: Uint8Array[]): Uint8Array => concatBytes(parts);

const item = (body: Uint8Array, defined = false) =>
  concat(
    el(0xfffee000, "", new Uint8Array(0), true, defined ? body.length : UNDEFINED),
    body,
    defined ? new Uint8Array(0) : el(0xfffee00d, "", new Uint8Array(0), true, 0),
  ); // deno-fmt-ignore
const seqEnd = () => el(0xfffee0dd, "", new Uint8Array(0), true, 0);

/** A small Part-10 file: an undefined-length sequence with nested items, then PixelData. */
function part10(ts: string, pixel: "native" | "encapsulated", sop = "1.2.3.4.5.6"): {
  bytes: Uint8Array;
  pixelAt: number;
  /** offsets between top-level elements: a file cut there is complete, just shorter */
  boundaries: Set<number>;
} {
  const explicit = ts !== IMPLICIT_LE;
  const metaBody = concat(
    el(0x00020001, "OB", new Uint8Array([0, 1])),
    el(0x00020002, "UI", "1.2.840.10008.5.1.4.1.1.2"),
    el(0x00020003, "UI", sop),
    el(0x00020010, "UI", ts),
  );
  const groupLength = new Uint8Array(4);
  new DataView(groupLength.buffer).setUint32(0, metaBody.length, true);
  const meta = concat(el(0x00020000, "UL", groupLength), metaBody);
  const e = (tag: number, vr: string, v: Uint8Array | string, len?: number) => el(tag, vr, v, explicit, len);
  const inner = concat(e(0x00080100, "SH", "T-1"), e(0x00080102, "SH", "SCT"));
  const nested = concat(
    e(0x00081150, "UI", "1.2.840.10008.5.1.4.1.1.2"),
    e(0x00089215, "SQ", new Uint8Array(0), UNDEFINED),
    item(inner),
    seqEnd(),
  ); // deno-fmt-ignore
  const u16 = (n: number) => new Uint8Array([n & 0xff, n >> 8]);
  const top = [
    e(0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.2"),
    e(0x00080018, "UI", sop),
    e(0x00080060, "CS", "CT"),
    concat(
      e(0x00081140, "SQ", new Uint8Array(0), UNDEFINED),
      item(nested),
      item(e(0x00081155, "UI", "1.2.3"), true),
      seqEnd(),
    ), // deno-fmt-ignore
    e(0x00100010, "PN", "Walk^Test"),
    e(0x0020000d, "UI", "1.2.3.4"),
    e(0x0020000e, "UI", "1.2.3.4.5"),
    e(0x00280010, "US", u16(4)),
    e(0x00280011, "US", u16(4)),
    e(0x00280100, "US", u16(16)),
  ];
  const head = concat(...top);
  const pixels = pixel === "native" ? e(0x7fe00010, "OW", new Uint8Array(32)) : concat(
    e(0x7fe00010, "OB", new Uint8Array(0), UNDEFINED),
    item(new Uint8Array(0), true),
    item(new Uint8Array(10).fill(7), true),
    seqEnd(),
  ); // deno-fmt-ignore
  const bytes = concat(new Uint8Array(128), new TextEncoder().encode("DICM"), meta, head, pixels);
  const boundaries = new Set<number>([132 + meta.length]);
  for (const t of top) boundaries.add([...boundaries].at(-1)! + t.length);
  return { bytes, pixelAt: 132 + meta.length + head.length, boundaries };
}

async function staged(bytes: Uint8Array): Promise<string> {
  const path = await Deno.makeTempFile({ prefix: "edgeseg-walk-", suffix: ".dcm" });
  await Deno.writeFile(path, bytes);
  return path;
}

async function refused(bytes: Uint8Array): Promise<string> {
  const path = await staged(bytes);
  try {
    await scanPart10(path);
  } catch (e) {
    assert.ok(e instanceof InputError, `expected InputError, got ${e}`);
    assert.equal(e.code, "NOT_DICOM");
    return e.message;
  } finally {
    await Deno.remove(path);
  }
  throw new assert.AssertionError({ message: `expected ${bytes.length} bytes to be refused` });
}

Deno.test("the walk finds where PixelData starts in explicit, implicit and encapsulated files", async () => {
  for (
    const [ts, pixel] of [[EXPLICIT_LE, "native"], [IMPLICIT_LE, "native"], [
      JPEG_LOSSLESS,
      "encapsulated",
    ]] as const
  ) {
    const f = part10(ts, pixel);
    const path = await staged(f.bytes);
    const scan = await scanPart10(path);
    await Deno.remove(path);
    assert.equal(scan.transferSyntaxUID, ts);
    assert.equal(scan.headerEnd, f.pixelAt, `${ts}: the header ends where PixelData starts`);
    assert.equal(scan.deflated, false);
  }
});

Deno.test("a staged instance gives the same record as the same bytes validated in memory", async () => {
  const store = await DicomStore.open(await Deno.makeTempDir({ prefix: "edgeseg-walk-store-" }));
  const files = [
    ...smallPhantom().files,
    part10(EXPLICIT_LE, "native").bytes,
    part10(IMPLICIT_LE, "native").bytes,
  ];
  for (const bytes of files) {
    const path = await staged(bytes);
    const fromFile = (await store.validate({ tmpPath: path })).record;
    const fromBytes = (await store.validate({ bytes })).record;
    await Deno.remove(path);
    assert.deepEqual(fromFile, fromBytes);
    assert.equal(fromFile.size, bytes.length);
  }
  await Deno.remove(store.dataDir, { recursive: true });
});

Deno.test("a file cut anywhere after its preamble is refused as truncated, naming where", async () => {
  for (const ts of [EXPLICIT_LE, IMPLICIT_LE, JPEG_LOSSLESS]) {
    const f = part10(ts, ts === JPEG_LOSSLESS ? "encapsulated" : "native");
    // every cut inside the dataset: in a header, in a value, inside nested items, before a delimiter
    const datasetStart = Math.min(...f.boundaries);
    for (let cut = f.bytes.length - 1; cut > datasetStart; cut -= 3) {
      if (f.boundaries.has(cut)) continue;
      const message = await refused(f.bytes.subarray(0, cut));
      assert.match(message, /truncated or malformed: .*(byte|delimiter)/, `${ts} cut at ${cut}: ${message}`);
    }
  }
  assert.match(await refused(new Uint8Array(100)), /128-byte preamble/);
});

Deno.test("a sequence with no delimiter, an item outside a sequence and runaway nesting are refused", async () => {
  const f = part10(EXPLICIT_LE, "native");
  const body = concat(f.bytes.subarray(0, 132), el(0x00020010, "UI", EXPLICIT_LE));
  const deep = (n: number): Uint8Array =>
    n === 0
      ? el(0x00100010, "PN", "Deep")
      : concat(el(0x00081140, "SQ", new Uint8Array(0), true, UNDEFINED), item(deep(n - 1)), seqEnd()); // deno-fmt-ignore
  assert.match(await refused(concat(body, deep(40))), /nested deeper than 32/);
  assert.ok(
    (await refused(
      concat(body, el(0x00081140, "SQ", new Uint8Array(0), true, UNDEFINED), item(el(0x00100010, "PN", "A"))),
    ))
      .includes("no delimiter"),
  ); // deno-fmt-ignore
  assert.match(await refused(concat(body, item(el(0x00100010, "PN", "A"), true))), /outside any sequence/);
  assert.match(
    await refused(concat(body, el(0x00100010, "ZZ", "A"))),
    /expected a value representation, found "ZZ"/,
  );
  // 12 levels, as real objects never exceed, pass
  const ok = await staged(concat(body, deep(12)));
  assert.equal((await scanPart10(ok)).headerEnd, (await Deno.stat(ok)).size);
  await Deno.remove(ok);
});

Deno.test("STOW refuses a truncated instance and stores nothing", async () => {
  const ph = smallPhantom();
  const cut = ph.files[1].subarray(0, ph.files[1].length - 10);
  await withServer({}, async (s) => {
    const res = await stow(s, [ph.files[0], cut]);
    assert.equal(res.status, 400);
    const text = JSON.stringify(res.json);
    assert.match(text, /part 2: the DICOM file is truncated or malformed/);
    assert.match(text, /nothing was stored/);
    const list = await (await fetch(s.at("/dicom-web/studies"))).json();
    assert.equal(list.length, 0);
    const tmp = [...Deno.readDirSync(join(s.dataDir, "tmp"))].filter((e) => e.name.startsWith("stow"));
    assert.deepEqual(tmp, [], "staged parts are removed");
  });
});

Deno.test("validating a 768 MiB staged instance reads its header, not its pixel data", async () => {
  // A sparse file: the pixel data's 768 MiB are declared and present on disk as a hole, so the test
  // costs no disk. Reading it whole (as dcmjs would need) would raise RSS by at least its size.
  const f = part10(EXPLICIT_LE, "native");
  const pixelBytes = 768 * 1024 * 1024;
  const head = concat(
    f.bytes.subarray(0, f.pixelAt),
    el(0x7fe00010, "OW", new Uint8Array(0), true, pixelBytes),
  );
  const path = await staged(head);
  await Deno.truncate(path, head.length + pixelBytes);
  const store = await DicomStore.open(await Deno.makeTempDir({ prefix: "edgeseg-walk-big-" }));
  const before = Deno.memoryUsage().rss;
  const { record } = await store.validate({ tmpPath: path });
  const grew = Deno.memoryUsage().rss - before;
  assert.equal(record.size, head.length + pixelBytes);
  assert.equal(record.sopInstanceUID, "1.2.3.4.5.6");
  assert.ok(grew < 64 * 1024 * 1024, `RSS grew by ${(grew / 2 ** 20).toFixed(0)} MiB validating the header`);
  // one byte short of what PixelData declares: refused, still without reading it
  await Deno.truncate(path, head.length + pixelBytes - 1);
  await assert.rejects(store.validate({ tmpPath: path }), /PixelData|7FE0,0010.*declares 805306368 byte/);
  await Deno.remove(path);
  await Deno.remove(store.dataDir, { recursive: true });
});
