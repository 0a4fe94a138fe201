/**
 * Issue #18: one encoder. The viewer's export (extension/src/export.ts) and the CLI
 * (src/cli/segment.ts writeCaseOutputs) write byte-identical SEGs and Parametric Maps for the same
 * result, apart from UIDs and dates.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import dcmjs from "dcmjs";
import { encodeResult as viewerEncode, type ExportSource } from "../../extension/src/export.ts";
import { writeCaseOutputs } from "../../src/cli/segment.ts";
import { phantomSeries } from "../../src/dicom/phantom.ts";
import { readSeries } from "../../src/dicom/read.ts";
import { loadModel } from "../../src/inference/deno.ts";
import { segment } from "../../src/segmentation/segment.ts";
import { PROJECT_ROOT } from "../helpers/paths.ts";

const { DicomMessage, DicomMetaDictionary } = (dcmjs as unknown as {
  data: {
    DicomMessage: { readFile(b: ArrayBuffer): { dict: Record<string, unknown> } };
    DicomMetaDictionary: { naturalizeDataset(d: Record<string, unknown>): Record<string, unknown> };
  };
}).data;

/** The dataset with every UID, date and time blanked (they are meant to differ). */
function comparable(bytes: Uint8Array): Record<string, unknown> {
  const buf = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  const ds = DicomMetaDictionary.naturalizeDataset(DicomMessage.readFile(buf).dict);
  const scrub = (v: unknown, key = ""): unknown => {
    if (Array.isArray(v)) return v.map((x) => scrub(x));
    if (v instanceof ArrayBuffer) return Array.from(new Uint8Array(v));
    if (v && typeof v === "object") {
      return Object.fromEntries(
        Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, scrub(x, k)]),
      );
    }
    if (
      /(UID|Date|Time|DateTime)$/.test(key) &&
      !/^(ReferencedSOPClassUID|SOPClassUID|TransferSyntaxUID)$/.test(key)
    ) {
      return "*";
    }
    return v;
  };
  return scrub(ds) as Record<string, unknown>;
}

Deno.test("the viewer's export and the CLI write the same SEG and Parametric Map for the same result", async () => {
  const series = phantomSeries({ slices: 6, size: 48 });
  const read = await readSeries(series.files);
  const { runtime } = await loadModel(join(PROJECT_ROOT, "tests", "fixtures", "models", "tiny-2d"), {
    providers: ["wasm"],
  });
  const result = await segment(read.volume, runtime, { uncertainty: "mc", passes: 2, seed: 3 });
  assert.ok(result.uncertainty, "MC dropout gives an uncertainty map");

  const src: ExportSource = {
    displaySet: { displaySetInstanceUID: "ds", SeriesDescription: "phantom", instances: read.instances },
    volume: { geometry: read.volume.geometry, source: read.volume.source },
    result,
  } as unknown as ExportSource;
  const viewer = await viewerEncode(src);

  const out = await Deno.makeTempDir({ prefix: "edgeseg-parity-" });
  try {
    const source = {
      instances: read.instances,
      geometry: read.volume.geometry,
      refs: read.volume.source?.instances,
    };
    const cli = await writeCaseOutputs(
      { name: "case", kind: "dicom", notes: [], source } as never,
      result,
      out,
    );
    assert.deepEqual(cli.files, ["case_seg.dcm", "case_uncertainty_pm.dcm"]);
    assert.deepEqual(viewer.map((o) => o.kind), ["SEG", "PM"]);
    for (const [i, file] of cli.files.entries()) {
      const fromCli = comparable(await Deno.readFile(join(out, file)));
      const fromViewer = comparable(viewer[i].bytes);
      assert.deepEqual(fromViewer, fromCli, `${viewer[i].kind}: same dataset apart from UIDs and dates`);
      assert.ok(JSON.stringify(fromCli).length > 1000, "a real dataset was compared");
    }
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
