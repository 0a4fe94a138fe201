/**
 * The embedded, file-backed DICOM store behind `/dicom-web/`.
 *
 * Layout under the data dir:
 *   instances/<study>/<series>/<sop>.dcm   the Part-10 files exactly as received
 *   index.json                             one record per instance (QIDO answers from it)
 *   tmp/                                   staging for atomic writes; emptied on open
 *
 * Writes are atomic: bytes go to `tmp/`, are flushed to disk, then renamed into place, and only then
 * enter the in-memory index; readers only ever see indexed (complete) files. The index file itself is
 * written the same way. On open, the index is reconciled with the files on disk (a crash between a
 * rename and an index write loses nothing), and rebuilt from the files when it is missing or unreadable.
 */
import { join, relative } from "node:path";
import { InputError } from "../core/errors.ts";
import { readPrefix, scanPart10 } from "./dicom_walk.ts";
import {
  type DicomJsonDataset,
  extractFrames,
  type Frames,
  type InstanceRecord,
  type ParsedDicom,
  parseDicom,
  recordFromParsed,
  toDicomJson,
  UID_PATTERN,
} from "./dicomfile.ts";

const INDEX_VERSION = 1;

/** A file that passed validation and waits to be committed. */
export interface ValidatedInstance {
  record: InstanceRecord;
  /** the staged file in tmp/ (already on disk) or the bytes */
  source: { tmpPath: string } | { bytes: Uint8Array };
}

/** What `commitEach` did: the instances now in the store, and the others with the reason. */
export interface CommitResult {
  stored: InstanceRecord[];
  failed: { record: InstanceRecord; reason: string }[];
}

export interface StoreOptions {
  log?: (line: string) => void;
  /** bytes of parsed instances kept for frame requests (default 256 MiB) */
  cacheBytes?: number;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** A small LRU by byte size for parsed files, so 100 frame requests do not parse a file 100 times. */
class ByteLru<V> {
  #map = new Map<string, { value: V; bytes: number }>();
  #bytes = 0;
  constructor(readonly maxBytes: number) {}
  get(key: string): V | undefined {
    const hit = this.#map.get(key);
    if (!hit) return undefined;
    this.#map.delete(key);
    this.#map.set(key, hit);
    return hit.value;
  }
  set(key: string, value: V, bytes: number): void {
    this.delete(key);
    if (bytes > this.maxBytes) return;
    this.#map.set(key, { value, bytes });
    this.#bytes += bytes;
    for (const [k, v] of this.#map) {
      if (this.#bytes <= this.maxBytes) break;
      this.#map.delete(k);
      this.#bytes -= v.bytes;
    }
  }
  delete(key: string): void {
    const hit = this.#map.get(key);
    if (hit) {
      this.#map.delete(key);
      this.#bytes -= hit.bytes;
    }
  }
}

export class DicomStore {
  readonly dataDir: string;
  readonly instancesDir: string;
  readonly tmpDir: string;
  readonly indexPath: string;
  #records = new Map<string, InstanceRecord>();
  #log: (line: string) => void;
  #parsed: ByteLru<ParsedDicom>;
  #metadata: ByteLru<DicomJsonDataset>;
  #chain: Promise<void> = Promise.resolve();
  #queued: Promise<void> | null = null;
  #tmpCounter = 0;

  private constructor(dataDir: string, opts: StoreOptions) {
    this.dataDir = dataDir;
    this.instancesDir = join(dataDir, "instances");
    this.tmpDir = join(dataDir, "tmp");
    this.indexPath = join(dataDir, "index.json");
    this.#log = opts.log ?? (() => {});
    this.#parsed = new ByteLru(opts.cacheBytes ?? 256 * 1024 * 1024);
    this.#metadata = new ByteLru(64 * 1024 * 1024);
  }

  /** Opens (creating if needed) the store in `dataDir`, reconciling the index with the files. */
  static async open(dataDir: string, opts: StoreOptions = {}): Promise<DicomStore> {
    const store = new DicomStore(dataDir, opts);
    await Deno.mkdir(store.instancesDir, { recursive: true });
    await Deno.remove(store.tmpDir, { recursive: true }).catch(() => {});
    await Deno.mkdir(store.tmpDir, { recursive: true });
    await store.#load();
    return store;
  }

  get size(): number {
    return this.#records.size;
  }

  /** All records (a snapshot). */
  records(): InstanceRecord[] {
    return [...this.#records.values()];
  }

  get(sopInstanceUID: string): InstanceRecord | undefined {
    return this.#records.get(sopInstanceUID);
  }

  async #load(): Promise<void> {
    let fromIndex: InstanceRecord[] = [];
    let indexOk = false;
    try {
      const raw: unknown = JSON.parse(await Deno.readTextFile(this.indexPath));
      if (
        typeof raw === "object" && raw !== null &&
        (raw as Record<string, unknown>).version === INDEX_VERSION &&
        Array.isArray((raw as Record<string, unknown>).instances)
      ) {
        fromIndex = (raw as { instances: InstanceRecord[] }).instances;
        indexOk = true;
      } else {
        this.#log(`store: ${this.indexPath} has an unknown format; rebuilding from files`);
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) {
        this.#log(`store: index unreadable (${(e as Error).message}); rebuilding`);
      }
    }
    const byPath = new Map(fromIndex.map((r) => [r.path, r]));
    let added = 0, dropped = 0, broken = 0;
    const seen = new Set<string>();
    for await (const abs of walk(this.instancesDir)) {
      if (!abs.endsWith(".dcm")) continue;
      const rel = relative(this.dataDir, abs);
      seen.add(rel);
      const known = byPath.get(rel);
      if (known) {
        this.#records.set(known.sopInstanceUID, known);
        continue;
      }
      try {
        const bytes = await Deno.readFile(abs);
        const rec = recordFromParsed(parseDicom(bytes), rel, bytes.length);
        this.#records.set(rec.sopInstanceUID, rec);
        added++;
      } catch (e) {
        broken++;
        this.#log(`store: skipping unreadable file ${rel}: ${(e as Error).message}`);
      }
    }
    for (const r of fromIndex) if (!seen.has(r.path)) dropped++;
    if (!indexOk || added || dropped) {
      this.#log(
        `store: index ${
          indexOk ? "reconciled" : "rebuilt"
        } — ${this.#records.size} instances (${added} added from files, ${dropped} missing files dropped, ${broken} unreadable)`,
      );
      await this.persist();
    }
  }

  /** Writes the index atomically; concurrent callers share one write that includes all their changes. */
  persist(): Promise<void> {
    if (this.#queued) return this.#queued;
    const p = this.#chain.then(() => {
      this.#queued = null;
      return this.#writeIndex();
    });
    this.#queued = p;
    this.#chain = p.catch(() => {});
    return p;
  }

  async #writeIndex(): Promise<void> {
    const body = JSON.stringify({ version: INDEX_VERSION, instances: [...this.#records.values()] });
    const tmp = this.tempPath("index");
    await Deno.writeTextFile(tmp, body);
    await Deno.rename(tmp, this.indexPath);
  }

  /** A fresh path in tmp/ (same file system as the final place, so rename is atomic). */
  tempPath(prefix = "part"): string {
    return join(
      this.tmpDir,
      `${prefix}-${Date.now().toString(36)}-${(this.#tmpCounter++).toString(36)}-${crypto.randomUUID()}`,
    );
  }

  /**
   * Parses and checks one instance (staged in tmp/ or in memory) without storing it.
   * Throws `InputError` with a code (NOT_DICOM, MISSING_ATTRIBUTE, BAD_UID).
   */
  async validate(source: { tmpPath: string } | { bytes: Uint8Array }): Promise<ValidatedInstance> {
    let bytes: Uint8Array;
    let size: number;
    if ("bytes" in source) {
      bytes = source.bytes;
      size = bytes.length;
    } else {
      // A staged file is walked by its element headers (truncation and structure checked to the end),
      // and only the part before PixelData is read and parsed: memory stays near the header's size.
      const scan = await scanPart10(source.tmpPath);
      size = scan.size;
      bytes = scan.deflated
        ? await Deno.readFile(source.tmpPath)
        : await readPrefix(source.tmpPath, scan.headerEnd);
    }
    const parsed = parseDicom(bytes);
    const rec0 = recordFromParsed(parsed, "", size);
    const rel = join(
      "instances",
      rec0.studyInstanceUID,
      rec0.seriesInstanceUID,
      `${rec0.sopInstanceUID}.dcm`,
    );
    return { record: { ...rec0, path: rel }, source };
  }

  /**
   * Commits validated instances one by one: each file is fsynced and renamed into place, then the
   * index is written once. One that fails (disk full, a rename refused) does not undo or stop the
   * others: the answer says exactly which were stored and why each other one was not. A later
   * instance with the same SOP Instance UID replaces the earlier one.
   */
  async commitEach(items: ValidatedInstance[]): Promise<CommitResult> {
    const stored: InstanceRecord[] = [];
    const failed: { record: InstanceRecord; reason: string }[] = [];
    for (const item of items) {
      try {
        stored.push(await this.#commitOne(item));
      } catch (e) {
        failed.push({ record: item.record, reason: (e as Error).message ?? String(e) });
        this.#log(`store: instance ${item.record.sopInstanceUID} was not stored: ${(e as Error).message}`);
        if ("tmpPath" in item.source) await Deno.remove(item.source.tmpPath).catch(() => {});
      }
    }
    if (stored.length) {
      try {
        await this.persist();
      } catch (e) {
        // The files are in place and the index is reconciled with them on the next open: they are
        // stored, so the answer still says so.
        this.#log(
          `store: writing the index failed (${(e as Error).message}); it is rebuilt on the next start`,
        );
      }
    }
    return { stored, failed };
  }

  /** Commits validated instances; throws when any of them could not be stored (the rest are kept). */
  async commit(items: ValidatedInstance[]): Promise<InstanceRecord[]> {
    const { stored, failed } = await this.commitEach(items);
    if (failed.length) {
      throw new Error(
        `${failed.length} of ${items.length} instance(s) could not be stored: ${
          failed.map((f) => `${f.record.sopInstanceUID} (${f.reason})`).join("; ")
        }`,
      );
    }
    return stored;
  }

  async #commitOne(item: ValidatedInstance): Promise<InstanceRecord> {
    const rec = item.record;
    const finalPath = join(this.dataDir, rec.path);
    await Deno.mkdir(join(this.instancesDir, rec.studyInstanceUID, rec.seriesInstanceUID), {
      recursive: true,
    });
    let staged: string;
    if ("tmpPath" in item.source) {
      staged = item.source.tmpPath;
      const f = await Deno.open(staged, { read: true, write: true });
      try {
        await f.syncData();
      } finally {
        f.close();
      }
    } else {
      staged = this.tempPath("inst");
      const f = await Deno.open(staged, { write: true, createNew: true });
      try {
        let off = 0;
        while (off < item.source.bytes.length) off += await f.write(item.source.bytes.subarray(off));
        await f.syncData();
      } catch (e) {
        f.close();
        await Deno.remove(staged).catch(() => {});
        throw e;
      }
      f.close();
    }
    const old = this.#records.get(rec.sopInstanceUID);
    try {
      await Deno.rename(staged, finalPath);
    } catch (e) {
      if (!("tmpPath" in item.source)) await Deno.remove(staged).catch(() => {});
      throw e;
    }
    if (old && old.path !== rec.path) await Deno.remove(join(this.dataDir, old.path)).catch(() => {});
    this.#parsed.delete(rec.sopInstanceUID);
    this.#metadata.delete(rec.sopInstanceUID);
    this.#records.set(rec.sopInstanceUID, rec);
    return rec;
  }

  /** Validates then commits in-memory Part-10 files; nothing is stored if any is invalid. */
  async storeFiles(files: Uint8Array[]): Promise<InstanceRecord[]> {
    const items: ValidatedInstance[] = [];
    for (let i = 0; i < files.length; i++) {
      try {
        items.push(await this.validate({ bytes: files[i] }));
      } catch (e) {
        if (e instanceof InputError) throw new InputError(e.code, `instance ${i + 1}: ${e.message}`);
        throw e;
      }
    }
    return this.commit(items);
  }

  /** The stored bytes of an instance, exactly as received. */
  readInstance(rec: InstanceRecord): Promise<Uint8Array> {
    return Deno.readFile(join(this.dataDir, rec.path));
  }

  async parsed(rec: InstanceRecord): Promise<ParsedDicom> {
    const hit = this.#parsed.get(rec.sopInstanceUID);
    if (hit) return hit;
    const p = parseDicom(await this.readInstance(rec));
    this.#parsed.set(rec.sopInstanceUID, p, rec.size);
    return p;
  }

  /** DICOM JSON of the whole instance, binaries as BulkDataURI under `instanceUrl`. */
  async metadata(rec: InstanceRecord, instanceUrl: string): Promise<DicomJsonDataset> {
    const key = `${rec.sopInstanceUID}|${instanceUrl}`;
    const hit = this.#metadata.get(key);
    if (hit) return hit;
    const p = await this.parsed(rec);
    const json = toDicomJson(p.dict, instanceUrl);
    this.#metadata.set(key, json, 16 * 1024);
    return json;
  }

  async frames(rec: InstanceRecord): Promise<Frames> {
    return extractFrames(await this.parsed(rec), rec.transferSyntaxUID);
  }
}

/** Recursively lists regular files; symlinks are not followed (a store never contains them). */
async function* walk(dir: string): AsyncGenerator<string> {
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return;
    throw e;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory) yield* walk(p);
    else if (e.isFile) yield p;
  }
}

export { exists as pathExists, UID_PATTERN, walk };
