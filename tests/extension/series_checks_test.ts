/**
 * The picker's refusals that protect a run: too few slices for the model's minimum, and a series of
 * several images without the patient geometry to stack them.
 */
import assert from "node:assert/strict";
import { fitOnDisplaySet } from "../../extension/src/fit.ts";
import { missingGeometry } from "../../extension/src/run.ts";
import { type ModelIndexEntry, parseModelIndexEntry } from "../../extension/src/models.ts";

/** The refusal, if any, of a model on a series. */
const refusal = (...args: Parameters<typeof fitOnDisplaySet>) => fitOnDisplaySet(...args).refusal;

const model3d = parseModelIndexEntry({
  id: "tiny-3d",
  name: "Tiny 3D",
  version: "1",
  modalities: ["CT"],
  spatialMode: "patch3d",
  minSlices: 4,
  labels: [],
}, 0) as ModelIndexEntry;
const placed = (z: number) => ({
  SamplesPerPixel: 1,
  ImagePositionPatient: [0, 0, z],
  ImageOrientationPatient: [1, 0, 0, 0, 1, 0],
});

Deno.test("a series with fewer slices than the manifest's minSlices is flagged with both numbers", () => {
  const two = {
    displaySetInstanceUID: "1",
    Modality: "CT",
    numImageFrames: 2,
    instances: [placed(0), placed(2)],
  };
  assert.equal(refusal(model3d, two), "needs at least 4 slices, series has 2");
  const four = { ...two, numImageFrames: 4, instances: [0, 1, 2, 3].map(placed) };
  assert.equal(refusal(model3d, four), undefined);
  const { minSlices: _, ...noMinimum } = model3d;
  assert.equal(refusal(noMinimum, two), undefined, "no minimum stated");
});

Deno.test("a series of several images without position or orientation is flagged, naming what is missing", () => {
  const bare = [0, 1, 2].map(() => ({ SamplesPerPixel: 1 }));
  assert.deepEqual(missingGeometry(bare), [
    "ImagePositionPatient (absent or malformed in 3 of 3 images)",
    "ImageOrientationPatient (absent or malformed in 3 of 3 images)",
  ]);
  const one = [placed(0), { ...placed(1), ImagePositionPatient: undefined }, placed(2)];
  assert.deepEqual(missingGeometry(one), ["ImagePositionPatient (absent or malformed in 1 of 3 images)"]);
  const model = { ...model3d, minSlices: 2 };
  assert.match(
    refusal(model, {
      displaySetInstanceUID: "1",
      Modality: "CT",
      numImageFrames: 3,
      instances: bare,
    }) ?? "",
    /^series lacks ImagePositionPatient .* and ImageOrientationPatient /,
  );
});

Deno.test("one image (a photograph) needs no patient geometry", () => {
  assert.deepEqual(missingGeometry([{ SamplesPerPixel: 3 }]), []);
  assert.deepEqual(missingGeometry([]), []);
});

Deno.test("a volume is read only once every frame is at full resolution, not when its load callback fires", async () => {
  const { framesNotFull, waitForFullResolution } = await import("../../extension/src/viewer_volume.ts");
  // Progressive retrieval: frame 1 still holds its neighbour's copy (ADJACENT_REPLICATE = 3).
  const frames = [8, 3, 8, true];
  assert.equal(framesNotFull({ cachedFrames: frames }), 1);
  assert.equal(framesNotFull({}), 0, "no per-frame status: nothing to wait for");
  let resolved = false;
  const waiting = waitForFullResolution({ cachedFrames: frames }, 5000).then(() => resolved = true);
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(resolved, false, "still waiting while a frame is replicated");
  frames[1] = 8;
  await waiting;
  assert.equal(resolved, true);
  await assert.rejects(
    waitForFullResolution({ cachedFrames: [1] }, 50),
    /1 images of the series did not load at full resolution/,
  );
});
