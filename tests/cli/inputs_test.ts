/**
 * Issue #16 §2: what the CLI does with awkward folders and partial failures — DICOM beside images is
 * never dropped, a DICOMDIR is skipped, same stems never overwrite each other, one failed input still
 * leaves a report for the others (and a non-zero exit naming it), photographs report px, progress on
 * a non-terminal prints plain lines.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadInputs, uniqueCaseNames } from "../../src/cli/inputs.ts";
import { ProgressBar } from "../../src/cli/progress.ts";
import { phantomSeries } from "../../src/dicom/phantom.ts";
import { writePng } from "../../src/io/image2d.ts";
import { runScript } from "../helpers/cli.ts";
import { PROJECT_ROOT } from "../helpers/paths.ts";

const TINY = join(PROJECT_ROOT, "tests", "fixtures", "models", "tiny-2d");

function greyPng(seed: number): Uint8Array {
  const w = 40, h = 32, data = new Uint8Array(w * h);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7 + seed * 31) % 256;
  return writePng(w, h, data);
}

function colourPng(): Uint8Array {
  const w = 40, h = 32, n = w * h, data = new Uint8Array(3 * n);
  for (let i = 0; i < n; i++) {
    data[i] = i % 256;
    data[n + i] = (i * 3) % 256;
    data[2 * n + i] = 255 - (i % 256);
  }
  return writePng(w, h, data, 3);
}

Deno.test("a folder of images and DICOM yields both; a DICOMDIR is skipped; same stems get distinct names", async () => {
  const dir = await Deno.makeTempDir({ prefix: "edgeseg-inputs-" });
  try {
    const ph = phantomSeries({ slices: 3, size: 32 });
    await Deno.mkdir(join(dir, "ct"));
    for (const [k, f] of ph.files.entries()) await Deno.writeFile(join(dir, "ct", `${k}.dcm`), f);
    // A DICOMDIR has the DICM preamble but is a media index, not an image.
    await Deno.writeFile(join(dir, "DICOMDIR"), ph.files[0]);
    await Deno.writeFile(join(dir, "scan.png"), greyPng(1));
    await Deno.mkdir(join(dir, "other"));
    await Deno.writeFile(join(dir, "other", "scan.png"), greyPng(2));
    const cases = await loadInputs(dir);
    assert.deepEqual(cases.map((c) => c.kind).sort(), ["dicom", "image", "image"]);
    const dicom = cases.find((c) => c.kind === "dicom")!;
    assert.equal(dicom.volume.geometry.dims[2], 3, "the DICOMDIR was not read as a fourth slice");
    assert.ok(dicom.notes.some((n) => /DICOMDIR .* skipped/.test(n)), dicom.notes.join("; "));
    assert.ok(dicom.notes.some((n) => /2 image\/NIfTI inputs/.test(n)));
    const names = cases.map((c) => c.name);
    assert.equal(new Set(names).size, names.length, `distinct names: ${names.join(", ")}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("uniqueCaseNames keeps unique stems and suffixes the rest by extension", () => {
  const c = (name: string) => ({ name, kind: "image" as const, volume: undefined as never, notes: [] });
  const out = uniqueCaseNames([c("a"), c("b"), c("b"), c("b")], ["a.png", "b.png", "b.nii.gz", "x/b.png"]);
  assert.deepEqual(out.map((o) => o.name), ["a", "b_png", "b_nii_gz", "b_png2"]);
  assert.match(out[1].notes[0], /renamed from b/);
});

Deno.test("one failed input still writes the report for the others and exits non-zero naming it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "edgeseg-partial-" });
  try {
    await Deno.mkdir(join(dir, "in"));
    await Deno.writeFile(join(dir, "in", "good.png"), greyPng(3));
    // The greyscale test model refuses a colour photograph (CHANNELS).
    await Deno.writeFile(join(dir, "in", "colour.png"), colourPng());
    const run = await runScript("src/cli/segment.ts", [
      "--model",
      TINY,
      "--input",
      join(dir, "in"),
      "--out",
      join(dir, "out"),
    ]);
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /1 of 2 inputs failed: colour \(CHANNELS\)/);
    const report = JSON.parse(await Deno.readTextFile(join(dir, "out", "report.json")));
    assert.deepEqual(report.cases.map((c: { case: string }) => c.case), ["good"]);
    assert.deepEqual(report.failed.map((f: { case: string; code: string }) => [f.case, f.code]), [[
      "colour",
      "CHANNELS",
    ]]);
    assert.equal(report.cases[0].sizeUnit, "px", "a photograph states no pixel size: pixels, never mL");
    assert.doesNotMatch(run.stdout + run.stderr, /\bmL\b/);
    assert.match(run.stderr, /good: .*(px|no findings)/);
    // Non-terminal stderr: progress arrives as plain lines, not carriage-return bars.
    assert.doesNotMatch(run.stderr, /\r/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("progress on a non-terminal prints one plain line per phase and per tenth", () => {
  const lines: string[] = [];
  const out = {
    isTerminal: () => false,
    writeSync: (b: Uint8Array) => (lines.push(new TextDecoder().decode(b)), b.length),
  };
  const bar = new ProgressBar("case", out);
  for (let i = 0; i <= 100; i++) bar.update({ phase: "inference", done: i, total: 100 });
  bar.update({ phase: "postprocessing", done: 0, total: 1 });
  assert.ok(lines.length >= 2 && lines.length <= 13, `${lines.length} lines`);
  assert.ok(lines.every((l) => l.endsWith("\n") && !l.includes("\r")));
  assert.match(lines.at(-1)!, /^case: postprocessing 0\/1/);
});
