/**
 * Fuzz targets. A target loads its seed inputs once (`setup`), then for each index builds one mutated
 * input from the seeded PRNG and runs it through the code under test. `run` resolves with "ok" or a
 * `Rejection` (a typed error's code, or an HTTP 4xx) and throws anything else: that is a failure.
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { EdgeSegError, ManifestError } from "../core/errors.ts";
import { validateManifest } from "../core/manifest.ts";
import { parseDicom, SopClass } from "../dicom/dataset.ts";
import { str } from "../dicom/dataset.ts";
import { phantomSeries } from "../dicom/phantom.ts";
import { readSeries } from "../dicom/read.ts";
import { readParametricMap, readSegmentation } from "../dicom/segread.ts";
import { multipartBody } from "../dicom/web.ts";
import { readNifti, writeNifti } from "../io/nifti.ts";
import { handleDicomWeb } from "../server/dicomweb.ts";
import { startServer } from "../server/mod.ts";
import type { RunningServer } from "../server/mod.ts";
import { MAX_BOUNDARY_LENGTH, MultipartError, parseMultipartStream } from "../server/multipart.ts";
import {
  dicomLength,
  dicomLengthFields,
  genericMutation,
  multipartStructure,
  niftiField,
  Rng,
  truncate,
  utf8,
} from "./mutators.ts";

export const PROJECT_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const DATA_ROOT = join(PROJECT_ROOT, "..", "shared", "data");

/** A typed refusal: the input was rejected the way the contract says it should be. */
export interface Rejection {
  rejected: string;
}
export type RunResult = "ok" | Rejection;

export interface FuzzTarget {
  readonly name: string;
  readonly description: string;
  /** loads seeds, starts servers; returns a note on where the seeds came from */
  setup(): Promise<string>;
  /** builds input `index` deterministically from `rng` */
  input(rng: Rng, index: number): unknown;
  run(input: unknown): Promise<RunResult>;
  teardown(): Promise<void>;
}

/** Maps a thrown value to a rejection when it is one of the typed errors; rethrows anything else. */
export function classify(e: unknown): Rejection {
  if (e instanceof EdgeSegError) return { rejected: e.code };
  if (e instanceof MultipartError && e.status >= 400 && e.status < 500) {
    return { rejected: `HTTP_${e.status}_${e.code}` };
  }
  throw e;
}

async function guarded(fn: () => Promise<unknown>): Promise<RunResult> {
  try {
    await fn();
    return "ok";
  } catch (e) {
    return classify(e);
  }
}

function existsSync(p: string): boolean {
  try {
    Deno.statSync(p);
    return true;
  } catch {
    return false;
  }
}

// DICOM ---------------------------------------------------------------------------------------------

/** Real files of every kind the readers handle, small enough to mutate thousands of times. */
export const DICOM_SEED_FILES = [
  "dicom/seg-examples/dcmqi/23x38x3/seg.dcm",
  "dicom/seg-examples/dcmqi/23x38x3/image/IMG0001.dcm",
  "dicom/seg-examples/dcmqi/24x38x3/multiframe/mf.dcm",
  "dicom/seg-examples/dcmqi/24x38x3/sparse-labelmap-ppv5.dcm",
  "dicom/seg-examples/dcmqi/liver-ct-3slice/liver.dcm",
  "dicom/seg-examples/pydicom-data/liver_rle.dcm",
  "dicom/seg-examples/pydicom-data/liver_deflate.dcm",
  "dicom/seg-examples/pydicom-data/liver_nonbyte_aligned_j2k.dcm",
  "dicom/seg-examples/highdicom/ct/seg_image_ct_binary_fractional.dcm",
  "dicom/pmap-examples/parametric_map_float.dcm",
  "dicom/ct-abdomen/raw/1-001.dcm",
  "dicom/mr/enhanced/siemens_xa10_6_1.dcm",
  "dicom/mr/adc-series/000000.dcm",
];

interface Seeds {
  files: Uint8Array[];
  names: string[];
  lengthFields: ReturnType<typeof dicomLengthFields>[];
}

async function dicomSeeds(maxBytes = 800_000): Promise<Seeds> {
  const files: Uint8Array[] = [], names: string[] = [];
  for (const rel of DICOM_SEED_FILES) {
    const p = join(DATA_ROOT, rel);
    if (!existsSync(p)) continue;
    const b = await Deno.readFile(p);
    if (b.length > maxBytes) continue;
    files.push(b);
    names.push(rel);
  }
  if (!files.length) {
    const ph = phantomSeries({ slices: 3, size: 32 });
    for (let i = 0; i < ph.files.length; i++) {
      files.push(ph.files[i]);
      names.push(`phantom slice ${i}`);
    }
  }
  return { files, names, lengthFields: files.map((f) => dicomLengthFields(f)) };
}

function mutateDicom(s: Seeds, rng: Rng, index: number): Uint8Array {
  const k = index % s.files.length;
  const b = s.files[k];
  const m = rng.int(10);
  if (m < 4) {
    let out = dicomLength(b, rng, s.lengthFields[k]);
    if (rng.chance(0.3)) out = dicomLength(out, rng, s.lengthFields[k]);
    return out;
  }
  if (m < 5) return truncate(b, rng);
  return genericMutation(b, rng);
}

export function dicomTarget(): FuzzTarget {
  let seeds: Seeds;
  return {
    name: "dicom",
    description: "mutated DICOM files → parseDicom, then readSegmentation / readParametricMap / readSeries",
    async setup() {
      seeds = await dicomSeeds();
      return `${seeds.files.length} seed files: ${seeds.names.join(", ")}`;
    },
    input: (rng, index) => mutateDicom(seeds, rng, index),
    run: (input) =>
      guarded(async () => {
        const bytes = input as Uint8Array;
        const parsed = parseDicom(bytes);
        const sop = str(parsed.dataset, "SOPClassUID");
        if (sop === SopClass.Segmentation || sop === SopClass.LabelmapSegmentation) {
          await readSegmentation(bytes);
        } else if (sop === SopClass.ParametricMap) await readParametricMap(bytes);
        else await readSeries([bytes]);
      }),
    teardown: () => Promise.resolve(),
  };
}

// manifests -----------------------------------------------------------------------------------------

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

const ODD_VALUES: Json[] = [
  null,
  true,
  false,
  0,
  -1,
  1.5,
  1e308,
  -1e308,
  2 ** 53 + 1,
  "",
  "x",
  "../../etc/passwd",
  "\u0000",
  "9".repeat(400),
  [],
  [0],
  [[]],
  {},
  { "x-a": 1 },
  "a".repeat(100_000),
];

/** Paths to every value in a JSON tree. */
function jsonPaths(
  v: Json,
  path: (string | number)[] = [],
  out: (string | number)[][] = [],
): (string | number)[][] {
  out.push(path);
  if (Array.isArray(v)) v.forEach((x, i) => jsonPaths(x, [...path, i], out));
  else if (v && typeof v === "object") {
    for (const [k, x] of Object.entries(v)) jsonPaths(x, [...path, k], out);
  }
  return out;
}

function mutateJson(root: Json, rng: Rng): Json {
  const copy: Json = structuredClone(root);
  const n = 1 + rng.int(3);
  for (let i = 0; i < n; i++) {
    const paths = jsonPaths(copy).filter((p) => p.length > 0);
    if (!paths.length) break;
    const p = rng.pick(paths);
    let parent: Json = copy;
    for (const seg of p.slice(0, -1)) parent = (parent as Record<string | number, Json>)[seg];
    const last = p[p.length - 1];
    const container = parent as Record<string | number, Json>;
    const cur = container[last];
    const op = rng.int(6);
    if (op === 0) {
      if (Array.isArray(container)) container.splice(last as number, 1);
      else delete container[last];
    } else if (op === 1 && typeof cur === "number") {
      container[last] = rng.pick([cur + 1, cur - 1, -cur, cur * 1e6, 0, cur / 3]);
    } else if (op === 2 && Array.isArray(cur)) {
      // duplicate or empty an array (labels, channels, files)
      container[last] = rng.chance(0.5) ? [] : [...cur, ...cur];
    } else if (op === 3 && typeof cur === "string") {
      container[last] = rng.pick([cur + cur, cur.slice(1), cur.toUpperCase(), "", `${cur}\u202e`]);
    } else if (op === 4 && !Array.isArray(container)) {
      container[rng.pick(["overlapp", "constructor", "toString", "x-note", "labels2"])] = rng.pick(
        ODD_VALUES,
      );
    } else container[last] = rng.pick(ODD_VALUES);
  }
  return copy;
}

export function manifestTarget(): FuzzTarget {
  let texts: string[] = [];
  let trees: Json[] = [];
  return {
    name: "manifest",
    description: "mutated model manifests (JSON text and JSON structure) → JSON.parse + validateManifest",
    async setup() {
      const dir = join(PROJECT_ROOT, "tests", "fixtures", "models");
      texts = [];
      for (const e of [...Deno.readDirSync(dir)].sort((a, b) => a.name.localeCompare(b.name))) {
        const p = join(dir, e.name, "manifest.json");
        if (existsSync(p)) texts.push(await Deno.readTextFile(p));
      }
      if (!texts.length) throw new Error(`no manifests under tests/fixtures/models`);
      trees = texts.map((t) => JSON.parse(t) as Json);
      return `${texts.length} fixture manifests`;
    },
    input(rng, index) {
      const k = index % texts.length;
      if (rng.chance(0.3)) return new TextDecoder().decode(genericMutation(utf8.encode(texts[k]), rng));
      return JSON.stringify(mutateJson(trees[k], rng));
    },
    run: (input) =>
      guarded(() => {
        let json: unknown;
        try {
          json = JSON.parse(input as string);
        } catch (e) {
          // what loadPackage does with unparsable manifest.json
          throw new ManifestError("MANIFEST_JSON", "manifest.json is not valid JSON", {
            expected: "a JSON object",
            actual: e instanceof Error ? e.message : String(e),
          });
        }
        validateManifest(json);
        return Promise.resolve();
      }),
    teardown: () => Promise.resolve(),
  };
}

// NIfTI ---------------------------------------------------------------------------------------------

export function niftiTarget(): FuzzTarget {
  let plain: Uint8Array[] = [];
  let gz: Uint8Array[] = [];
  return {
    name: "nifti",
    description: "mutated NIfTI-1 files (header fields, truncation, gzip stream) → readNifti",
    async setup() {
      const geom = (dims: [number, number, number]) => ({
        dims,
        spacing: [0.8, 0.9, 2.5] as [number, number, number],
        origin: [-10, 20, 5] as [number, number, number],
        direction: [1, 0, 0, 0, 1, 0, 0, 0, 1] as [
          number,
          number,
          number,
          number,
          number,
          number,
          number,
          number,
          number,
        ],
      });
      const a = new Int16Array(12 * 10 * 4).map((_, i) => (i * 37) % 2000 - 1000);
      const b = new Float32Array(7 * 5 * 3).map((_, i) => i / 7);
      const c = new Uint8Array(9 * 9 * 2).map((_, i) => i % 3);
      plain = [
        await writeNifti(geom([12, 10, 4]), a, false),
        await writeNifti(geom([7, 5, 3]), b, false),
        await writeNifti(geom([9, 9, 2]), c, false),
      ];
      gz = await Promise.all(
        plain.map(async (_, i) =>
          await writeNifti(geom(i === 0 ? [12, 10, 4] : i === 1 ? [7, 5, 3] : [9, 9, 2]), [a, b, c][i], true)
        ),
      );
      return `${plain.length} writeNifti outputs (int16, float32, uint8), plain and gzipped`;
    },
    input(rng, index) {
      const k = index % plain.length;
      const m = rng.int(10);
      if (m < 5) return niftiField(plain[k], rng);
      if (m < 6) return truncate(plain[k], rng);
      if (m < 8) return genericMutation(plain[k], rng);
      return genericMutation(gz[k], rng);
    },
    run: (input) => guarded(() => readNifti(input as Uint8Array)),
    teardown: () => Promise.resolve(),
  };
}

// multipart -----------------------------------------------------------------------------------------

interface MultipartInput {
  body: Uint8Array;
  boundary: string;
  /** chunk sizes the body is streamed in (exercises delimiters split across reads) */
  chunks: number[];
  contentType?: string;
}

function stowBody(rng: Rng, index: number, uidPrefix: string): MultipartInput {
  const n = 1 + rng.int(3);
  const ph = phantomSeries({ slices: n, size: 16 + rng.int(3) * 8, uidRoot: `${uidPrefix}.${index + 1}` });
  const boundary = rng.pick(["b", "edgeseg-0123456789abcdef", "x".repeat(70), "a'()+_,-./:=?"]);
  let body = multipartBody(ph.files, boundary);
  const m = rng.int(10);
  if (m < 4) body = multipartStructure(body, boundary, rng);
  else if (m < 7) body = genericMutation(body, rng);
  else if (m < 8) body = truncate(body, rng);
  // else: valid body (some inputs must pass, so the "ok" path is exercised too)
  const chunks: number[] = [];
  for (let left = body.length; left > 0;) {
    const c = 1 + rng.int(rng.chance(0.5) ? 64 : 65536);
    chunks.push(Math.min(c, left));
    left -= c;
  }
  let declaredBoundary = boundary;
  if (rng.chance(0.15)) {
    declaredBoundary = rng.pick([
      "",
      boundary + "x",
      "x".repeat(MAX_BOUNDARY_LENGTH + 1), // over the limit real clients need (Orthanc sends 73)
      boundary.slice(1),
      '"',
      `"${boundary}"`,
    ]);
  }
  const contentType = rng.chance(0.1)
    ? rng.pick([
      "multipart/related",
      "application/dicom",
      "",
      'multipart/related; type="application/dicom"; boundary=',
    ])
    : `multipart/related; type="application/dicom"; boundary=${declaredBoundary}`;
  return { body, boundary: declaredBoundary, chunks, contentType };
}

function streamOf(input: MultipartInput): ReadableStream<Uint8Array> {
  let off = 0, c = 0;
  return new ReadableStream({
    pull(ctl) {
      if (off >= input.body.length) return ctl.close();
      const n = input.chunks[c++] ?? input.body.length - off;
      ctl.enqueue(input.body.slice(off, off + n));
      off += n;
    },
  });
}

/** A sink that keeps part bytes in memory, bounded (a part larger than the body is impossible). */
class MemorySink {
  size = 0;
  write(chunk: Uint8Array): Promise<void> {
    this.size += chunk.length;
    return Promise.resolve();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

export function multipartTarget(): FuzzTarget {
  return {
    name: "multipart",
    description: "mutated multipart/related STOW bodies, streamed in random chunks → parseMultipartStream",
    setup: () => Promise.resolve("phantom instances (1–3 per body) in multipartBody()"),
    input: (rng, index) => stowBody(rng, index, "2.25.1001"),
    run: (raw) =>
      guarded(async () => {
        const input = raw as MultipartInput;
        const max = 4 * 1024 * 1024;
        const parts = await parseMultipartStream(streamOf(input), input.boundary, () =>
          Promise.resolve(new MemorySink()), max);
        const total = parts.reduce((s, p) =>
          s + p.result.size, 0);
        if (total > input.body.length) {
          throw new Error(`parser produced ${total} part bytes from a ${input.body.length}-byte body`);
        }
      }),
    teardown: () => Promise.resolve(),
  };
}

// live store (STOW) ---------------------------------------------------------------------------------

async function dirEntries(dir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) out.push(e.name);
  } catch {
    // missing folder = empty
  }
  return out;
}

/**
 * Prefix of the one known stow failure: the server's own parser (src/server/dicomfile.ts) reads with
 * dcmjs `ignoreErrors`, so a truncated instance can be accepted and stored. Documented in
 * docs/fuzzing.md; left to the server's owner.
 */
export const KNOWN_STORED_INCOMPLETE = "STORED_INCOMPLETE";

export function stowTarget(): FuzzTarget {
  let server: RunningServer | undefined;
  let dataDir = "";
  return {
    name: "stow",
    description:
      "mutated STOW-RS requests → a live embedded store (startServer on 127.0.0.1:0); checks nothing is partially stored",
    async setup() {
      dataDir = await Deno.makeTempDir({ prefix: "edgeseg-fuzz-stow-" });
      server = await startServer({
        port: 0,
        hostname: "127.0.0.1",
        dataDir,
        seed: false,
        maxUploadBytes: 8 * 1024 * 1024,
        uploadTimeoutMs: 5000,
      });
      return `embedded store at ${server.url} (temp data dir)`;
    },
    input: (rng, index) => stowBody(rng, index, `2.25.${2000 + rng.int(1000)}${index}`),
    async run(raw) {
      const input = raw as MultipartInput;
      const store = server!.store!;
      const before = store.size;
      const res = await fetch(`${server!.url}dicom-web/studies`, {
        method: "POST",
        headers: input.contentType ? { "content-type": input.contentType } : {},
        body: streamOf(input),
      });
      const text = await res.text();
      const leftovers = (await dirEntries(store.tmpDir)).filter((n) => n.startsWith("stow"));
      if (leftovers.length) {
        throw new Error(`HTTP ${res.status}: ${leftovers.length} staged part file(s) left in tmp/`);
      }
      const added = store.size - before;
      if (res.status >= 500 || res.status < 200) throw new Error(`HTTP ${res.status}: ${text.slice(0, 300)}`);
      if (res.status >= 400) {
        if (added !== 0) {
          throw new Error(`HTTP ${res.status} but ${added} instance(s) were stored (partial store)`);
        }
        let code = "";
        try {
          code = String((JSON.parse(text) as { error?: unknown }).error ?? "");
        } catch {
          // 409 bodies are DICOM JSON, not {error}
        }
        return { rejected: `HTTP_${res.status}${code ? `_${code}` : ""}` };
      }
      const json = JSON.parse(text) as Record<string, { Value?: Record<string, { Value?: string[] }>[] }>;
      const stored = json["00081199"]?.Value ?? [];
      for (const item of stored) {
        const uid = item["00081155"]?.Value?.[0] ?? "";
        const rec = store.get(uid);
        if (!rec) {
          throw new Error(`STOW answered ${res.status} listing ${uid}, which the store does not have`);
        }
        // the stored file must be complete: it parses again with the strict reader
        try {
          parseDicom(await Deno.readFile(join(dataDir, rec.path)));
        } catch (e) {
          throw new Error(
            `${KNOWN_STORED_INCOMPLETE}: ${uid} was stored (HTTP ${res.status}) but does not parse: ${
              e instanceof Error ? e.message : String(e)
            }`,
          );
        }
      }
      if (added > stored.length) {
        throw new Error(`${added} records added but ${stored.length} listed as stored`);
      }
      return "ok";
    },
    async teardown() {
      await server?.close();
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    },
  };
}

// QIDO ----------------------------------------------------------------------------------------------

const QIDO_KEYS = [
  "PatientName",
  "PatientID",
  "StudyDate",
  "StudyTime",
  "AccessionNumber",
  "ModalitiesInStudy",
  "Modality",
  "StudyInstanceUID",
  "SeriesInstanceUID",
  "SOPInstanceUID",
  "SeriesNumber",
  "InstanceNumber",
  "StudyDescription",
  "00100010",
  "0020000D",
  "includefield",
  "limit",
  "offset",
  "fuzzymatching",
  "PatientBirthDate",
  "ReferringPhysicianName",
  "NoSuchKeyword",
  "0010",
  "",
];
const QIDO_VALUES = [
  "*",
  "?",
  "**",
  "A*",
  "*a*b*c*d*e*f*g*",
  "PHANTOM*",
  "20240115",
  "20240101-20241231",
  "-20240115",
  "20240115-",
  "2024",
  "99999999",
  "20241332",
  "-",
  "--",
  "120000-",
  "1.2.3,4.5.6",
  "\\",
  "\\\\",
  "all",
  "0",
  "-1",
  "1e309",
  "NaN",
  "99999999999999999999",
  "true",
  "CT",
  "CT\\MR",
  "%",
  "%ZZ",
  "%00",
  "\u0000",
  "\ud800",
  "'",
  '"',
  "(a+)+$",
  "[",
  "x".repeat(10_000),
  "00100010,00080020",
  "PatientName,Nope",
  "",
];

/** encodeURIComponent, with lone surrogates (which it refuses) replaced by U+FFFD first. */
function safeEncode(s: string): string {
  return encodeURIComponent(s.replace(/[\ud800-\udfff]/g, (c, i: number) => {
    const code = c.charCodeAt(0);
    const next = s.charCodeAt(i + 1), prev = s.charCodeAt(i - 1);
    const paired = code < 0xdc00 ? next >= 0xdc00 && next <= 0xdfff : prev >= 0xd800 && prev < 0xdc00;
    return paired ? c : "\ufffd";
  }));
}

export function qidoTarget(): FuzzTarget {
  let server: RunningServer | undefined;
  let dataDir = "";
  const paths = ["/studies", "/series", "/instances"];
  return {
    name: "qido",
    description:
      "random and mutated QIDO-RS query strings → the store's DICOMweb handler (seeded phantom study)",
    async setup() {
      dataDir = await Deno.makeTempDir({ prefix: "edgeseg-fuzz-qido-" });
      server = await startServer({ port: 0, hostname: "127.0.0.1", dataDir, seed: true });
      const ph = phantomSeries();
      paths.push(`/studies/${ph.studyInstanceUID}/series`, `/studies/${ph.studyInstanceUID}/instances`);
      paths.push(`/studies/${ph.studyInstanceUID}/series/${ph.seriesInstanceUID}/instances`);
      return `embedded store seeded with the phantom study (${server.store!.size} instances)`;
    },
    input(rng) {
      const n = rng.int(5);
      const parts: string[] = [];
      for (let i = 0; i < n; i++) {
        const k = rng.pick(QIDO_KEYS);
        let v = rng.pick(QIDO_VALUES);
        if (rng.chance(0.3)) v = new TextDecoder().decode(genericMutation(utf8.encode(v), rng));
        // half the time encoded correctly, half raw (malformed percent-escapes reach the parser)
        parts.push(rng.chance(0.5) ? `${safeEncode(k)}=${safeEncode(v)}` : `${k}=${v}`);
      }
      return `${rng.pick(paths)}?${parts.join("&")}`;
    },
    async run(raw) {
      const pathAndQuery = raw as string;
      let req: Request;
      try {
        req = new Request(`http://127.0.0.1/dicom-web${pathAndQuery}`, {
          headers: { accept: "application/dicom+json" },
        });
      } catch (e) {
        // the URL itself cannot be built: an HTTP server would answer 400 before reaching us
        if (e instanceof TypeError) return { rejected: "HTTP_400_BAD_URL" };
        throw e;
      }
      const subPath = new URL(req.url).pathname.slice("/dicom-web".length);
      const res = await handleDicomWeb(server!.store!, req, subPath, { maxUploadBytes: 1 << 20 });
      const text = await res.text();
      if (res.status >= 500) throw new Error(`HTTP ${res.status}: ${text.slice(0, 300)}`);
      if (res.status >= 400) {
        let code = "";
        try {
          code = String((JSON.parse(text) as { error?: unknown }).error ?? "");
        } catch {
          throw new Error(`HTTP ${res.status} with a body that is not JSON: ${text.slice(0, 200)}`);
        }
        return { rejected: `HTTP_${res.status}_${code}` };
      }
      if (res.status === 200) {
        const json: unknown = JSON.parse(text);
        if (!Array.isArray(json)) throw new Error(`HTTP 200 with a body that is not a JSON array`);
      }
      return "ok";
    },
    async teardown() {
      await server?.close();
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    },
  };
}

/** Every target by name, in report order. */
export const TARGETS: Record<string, () => FuzzTarget> = {
  dicom: dicomTarget,
  manifest: manifestTarget,
  nifti: niftiTarget,
  multipart: multipartTarget,
  stow: stowTarget,
  qido: qidoTarget,
};
