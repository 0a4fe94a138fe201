/**
 * Deno-only helpers (file system): read a folder of DICOM files, and an Outbox backed by a folder
 * (writes are temp file + rename, so a crash never leaves half an object). Not part of mod.ts, so the
 * pure modules stay usable in the browser.
 */
import { join } from "node:path";
import type { Outbox } from "./web.ts";

/** Every file under `dir` (recursively) whose bytes 128..131 are "DICM"; sorted by path. */
export async function readDicomFolder(dir: string): Promise<{ path: string; bytes: Uint8Array }[]> {
  const out: { path: string; bytes: Uint8Array }[] = [];
  async function walk(d: string) {
    const entries = [];
    for await (const e of Deno.readDir(d)) entries.push(e);
    entries.sort((a, b) => a.name.localeCompare(b.name));
    for (const e of entries) {
      const p = join(d, e.name);
      if (e.isDirectory) await walk(p);
      else if (e.isFile) {
        const bytes = await Deno.readFile(p);
        if (
          bytes.length > 132 && bytes[128] === 0x44 && bytes[129] === 0x49 && bytes[130] === 0x43 &&
          bytes[131] === 0x4d
        ) {
          out.push({ path: p, bytes });
        }
      }
    }
  }
  await walk(dir);
  return out;
}

export class FolderOutbox implements Outbox {
  constructor(readonly dir: string) {}
  private path(id: string): string {
    return join(this.dir, `${id.replace(/[^A-Za-z0-9._-]/g, "_")}.dcm`);
  }
  async put(id: string, bytes: Uint8Array): Promise<void> {
    await Deno.mkdir(this.dir, { recursive: true });
    const tmp = `${this.path(id)}.tmp-${crypto.randomUUID()}`;
    await Deno.writeFile(tmp, bytes);
    await Deno.rename(tmp, this.path(id));
  }
  async get(id: string): Promise<Uint8Array | undefined> {
    try {
      return await Deno.readFile(this.path(id));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return undefined;
      throw e;
    }
  }
  async remove(id: string): Promise<void> {
    await Deno.remove(this.path(id)).catch((e) => {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    });
  }
  async list(): Promise<string[]> {
    const ids: string[] = [];
    try {
      for await (const e of Deno.readDir(this.dir)) {
        if (e.isFile && e.name.endsWith(".dcm")) ids.push(e.name.slice(0, -4));
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    return ids.sort();
  }
}
