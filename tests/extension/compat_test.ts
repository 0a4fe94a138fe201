import assert from "node:assert/strict";
import { compatibilityMessage, judgeHost, SUPPORTED_OHIF } from "../../extension/src/compat.ts";

Deno.test("OHIF 3.13 (rspack, React 18, Cornerstone 5) and 3.12 (webpack, React 18, Cornerstone 4) fit", () => {
  assert.deepEqual(
    judgeHost({ chunkRuntime: "rspackChunk", react: "18.3.1", cornerstone: "5.6.8" }).problems,
    [],
  );
  assert.equal(judgeHost({ chunkRuntime: "webpackChunk", react: "18.3.1", cornerstone: "4.15.29" }).ok, true);
});

Deno.test("a viewer on React 19 or another Cornerstone major is named as unsupported, with the range", () => {
  const c = judgeHost({ chunkRuntime: "rspackChunk", react: "19.2.7", cornerstone: "6.0.0" });
  assert.equal(c.ok, false);
  assert.equal(c.problems.length, 2);
  const message = compatibilityMessage(c);
  assert.match(message, new RegExp(`supports OHIF ${SUPPORTED_OHIF.replace(/[.<>=]/g, "\\$&")}`));
  assert.match(message, /React 19\.2\.7; EdgeSeg needs React 18/);
  assert.match(message, /Cornerstone3D 6\.0\.0; EdgeSeg supports 4\.x and 5\.x/);
});

Deno.test("a page that is not a prebuilt OHIF says so once, not three times", () => {
  const c = judgeHost({});
  assert.deepEqual(c.problems, [
    "the viewer has no rspack/webpack chunk runtime (not a prebuilt OHIF 3.12–3.13 build)",
    "window.cornerstone is missing (the cornerstone extension has not loaded)",
  ]);
});
