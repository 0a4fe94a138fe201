/** The pure parts of following MPR and layout changes: which labelmaps to redraw, add, and which bins τ hides. */
import assert from "node:assert/strict";
import { missingSegmentations, undrawnLabelmaps } from "../../extension/src/labelmap.ts";
import { hiddenBins } from "../../extension/src/heatmap.ts";

Deno.test("undrawnLabelmaps: a listed labelmap without its actor is unmounted, one with an uncoloured actor unstyled; other types are ignored", () => {
  const reps = [
    { segmentationId: "a", type: "Labelmap" },
    { segmentationId: "b", type: "Labelmap" },
    { segmentationId: "c", type: "Contour" },
  ];
  assert.deepEqual(
    undrawnLabelmaps(reps, [{ styled: true }, { representationUID: "a-Labelmap-a-storage-0", styled: true }]),
    { unmounted: ["b"], unstyled: [] },
  );
  assert.deepEqual(
    undrawnLabelmaps(reps, [
      { representationUID: "a-Labelmap-x", styled: true },
      { representationUID: "b-Labelmap-y", styled: false },
    ]),
    { unmounted: [], unstyled: ["b"] },
  );
  assert.deepEqual(
    undrawnLabelmaps(reps, [
      { representationUID: "a-Labelmap-x", styled: true },
      { representationUID: "b-Labelmap-y", styled: true },
    ]),
    { unmounted: [], unstyled: [] },
  );
});

Deno.test("missingSegmentations: only those of a shown series, not present yet, in the order shown", () => {
  const shown = new Map([["heat", "ds1"], ["label", "ds1"], ["other", "ds2"]]);
  assert.deepEqual(missingSegmentations(shown, ["ds1"], []), ["heat", "label"]);
  assert.deepEqual(missingSegmentations(shown, ["ds1"], ["heat"]), ["label"]);
  assert.deepEqual(missingSegmentations(shown, ["ds3"], []), []);
});

Deno.test("hiddenBins: τ at mid-range hides the lower half; the floor hides none; off hides all", () => {
  const d = { range: [0, 1] as [number, number], bins: 16, tau: 0.5, visible: true };
  assert.deepEqual(hiddenBins(d), [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.deepEqual(hiddenBins({ ...d, tau: 0 }), []);
  assert.equal(hiddenBins({ ...d, visible: false }).length, 16);
});
