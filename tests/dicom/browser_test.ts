/**
 * The writers run in a browser page unchanged: src/dicom/result.ts (the encoder the extension bundles) bundled for the browser (esbuild,
 * as the extension bundles it), a SEG and a Parametric Map written inside headless Chromium, then read
 * back here voxel-exact. Skips when Chromium is absent.
 */
import assert from "node:assert/strict";
import { readSeries } from "../../src/dicom/read.ts";
import { readParametricMap, readSegmentation } from "../../src/dicom/segread.ts";
import { launchBrowser } from "../../src/harness/browser.ts";
import { chromiumMissing } from "../helpers/browser.ts";
import { syntheticSeries } from "./synthetic.ts";
import { artifacts, projectRoot, segment } from "./tools.ts";

const missing = chromiumMissing();
if (missing) console.log(`skip: ${missing}`);

Deno.test({
  name: "encodeResult (SEG and Parametric Map) runs in Chromium and its output reads back exactly",
  ignore: missing !== null,
  fn: async () => {
    const bundle = `${artifacts}result.bundle.js`;
    const built = new Deno.Command(`${projectRoot}node_modules/.bin/esbuild`, {
      args: [
        `${projectRoot}src/dicom/result.ts`,
        "--bundle",
        "--platform=browser",
        "--format=iife",
        "--global-name=EdgeSegDicom",
        `--outfile=${bundle}`,
        "--log-level=error",
      ],
      stdout: "piped",
      stderr: "piped",
    }).outputSync();
    assert.ok(built.success, new TextDecoder().decode(built.stderr));
    const s = syntheticSeries({ seed: 51 });
    const r = await readSeries(s.files);
    const browser = await launchBrowser();
    try {
      await browser.page.addScriptTag({ content: Deno.readTextFileSync(bundle) });
      const input = {
        instances: r.instances,
        geometry: r.volume.geometry,
        refs: r.volume.source!.instances,
        truth: Array.from(s.truth),
        segments: [segment(1, "Soft tissue"), segment(2, "Bone")],
      };
      const out = await browser.page.evaluate((inp) => {
        // deno-lint-ignore no-explicit-any
        const api = (globalThis as any).EdgeSegDicom;
        const geometry = inp.geometry;
        const source = { instances: inp.instances, geometry, refs: inp.refs };
        const data = Uint8Array.from(inp.truth);
        const map = new Float32Array(data.length).map((_: number, i: number) => data[i] * 0.25);
        const [seg, pm] = api.encodeResult({
          labelmap: { geometry, data, segments: inp.segments },
          uncertainty: { geometry, data: map, measure: "sd", passes: 4, method: "tta" },
          provenance: { modelId: "synthetic", modelName: "Synthetic", modelVersion: "1" },
        }, source);
        return { seg: Array.from(seg.bytes as Uint8Array), pm: Array.from(pm.bytes as Uint8Array) };
      }, input);
      const target = { geometry: r.volume.geometry, refs: r.volume.source!.instances };
      const seg = await readSegmentation(Uint8Array.from(out.seg), target);
      assert.deepEqual(seg.labelmap!.data, s.truth);
      const pm = await readParametricMap(Uint8Array.from(out.pm), target);
      assert.deepEqual(Array.from(pm.data!), Array.from(s.truth).map((v) => v * 0.25));
      assert.deepEqual(browser.errors, []);
    } finally {
      await browser.close();
    }
  },
});
