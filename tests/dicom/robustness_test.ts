/**
 * Damaged input never crashes the readers: truncated and byte-flipped SEGs, Parametric Maps and CT
 * slices either read or fail with a typed EdgeSegError (fixed seed, bounded count; the full fuzzing
 * is issue 8's `deno task fuzz`).
 */
import assert from "node:assert/strict";
import { EdgeSegError } from "../../src/core/errors.ts";
import { writeParametricMap } from "../../src/dicom/pmap.ts";
import { readSeries } from "../../src/dicom/read.ts";
import { writeSegmentation } from "../../src/dicom/seg.ts";
import { readParametricMap, readSegmentation } from "../../src/dicom/segread.ts";
import { mulberry32 } from "../../src/core/random.ts";
import { syntheticSeries } from "./synthetic.ts";
import { segment } from "./tools.ts";

function mutants(bytes: Uint8Array, count: number, seed: number): Uint8Array[] {
  const rnd = mulberry32(seed);
  const out: Uint8Array[] = [];
  for (let n = 0; n < count; n++) {
    if (n % 3 === 0) {
      out.push(bytes.slice(0, Math.floor(rnd() * bytes.length)));
    } else {
      const m = bytes.slice();
      const flips = 1 + Math.floor(rnd() * 8);
      // flip bytes after the preamble, where the elements are
      for (let f = 0; f < flips; f++) m[132 + Math.floor(rnd() * (m.length - 132))] = Math.floor(rnd() * 256);
      out.push(m);
    }
  }
  return out;
}

const s = syntheticSeries({ seed: 41, slices: 4 });
const r = await readSeries(s.files);
const source = { instances: r.instances, geometry: r.volume.geometry, refs: r.volume.source!.instances };
const target = { geometry: r.volume.geometry, refs: r.volume.source!.instances };

async function outcome(f: () => Promise<unknown>): Promise<"ok" | "typed"> {
  try {
    await f();
    return "ok";
  } catch (e) {
    if (e instanceof EdgeSegError) return "typed";
    throw new Error(`untyped failure: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
  }
}

Deno.test("150 damaged BINARY SEGs each read or fail with a typed error", async () => {
  const seg = writeSegmentation({
    source,
    labelmap: { geometry: r.volume.geometry, data: s.truth, segments: [segment(1, "A"), segment(2, "B")] },
  });
  const seen = { ok: 0, typed: 0 };
  for (const m of mutants(seg, 150, 1)) seen[await outcome(() => readSegmentation(m, target))]++;
  assert.equal(seen.ok + seen.typed, 150);
  assert.ok(seen.typed > 0, "truncations must be refused");
});

Deno.test("100 damaged Parametric Maps each read or fail with a typed error", async () => {
  const pm = writeParametricMap({
    source,
    map: { geometry: r.volume.geometry, data: new Float32Array(s.truth.length).fill(0.5) },
  });
  const seen = { ok: 0, typed: 0 };
  for (const m of mutants(pm, 100, 2)) seen[await outcome(() => readParametricMap(m, target))]++;
  assert.equal(seen.ok + seen.typed, 100);
  assert.ok(seen.typed > 0);
});

Deno.test("100 damaged CT slices each read or fail with a typed error", async () => {
  const seen = { ok: 0, typed: 0 };
  for (const m of mutants(s.files[0], 100, 3)) seen[await outcome(() => readSeries([m]))]++;
  assert.equal(seen.ok + seen.typed, 100);
  assert.ok(seen.typed > 0);
});
