import assert from "node:assert/strict";
import { fetchModelIndex, type ModelIndexEntry, parseModelIndexEntry } from "../../extension/src/models.ts";
import { fitOnDisplaySet, type PanelDisplaySet } from "../../extension/src/fit.ts";

/** An index entry as the panel gets it (missing facts filled the way the parser fills them). */
const entry = (raw: Record<string, unknown>): ModelIndexEntry => {
  const e = parseModelIndexEntry(raw, 0);
  if (typeof e === "string") throw new Error(e);
  return e;
};
const modelFit = (raw: Record<string, unknown>, ds: PanelDisplaySet | undefined) =>
  fitOnDisplaySet(entry(raw), ds);
/** The refusal, if any, of a model on a series. */
const refusal = (raw: Record<string, unknown>, ds: PanelDisplaySet | undefined) => modelFit(raw, ds).refusal;

Deno.test("a model index entry keeps its fields and fills a missing name from the id", () => {
  const e = parseModelIndexEntry({
    id: "tiny-2d",
    version: "0.1.0",
    modalities: ["CT", 3],
    labels: [{ value: 1, name: "Liver" }],
    bodyParts: ["ABDOMEN"],
  }, 0);
  assert.ok(typeof e !== "string");
  assert.equal(e.name, "tiny-2d");
  assert.deepEqual(e.modalities, ["CT"]);
  assert.equal(e.labels[0].name, "Liver");
  assert.deepEqual(e.bodyParts, ["ABDOMEN"]);
  assert.equal(e.channels, 1, "greyscale unless the entry says otherwise");
  assert.deepEqual(e.uncertainty.map((c) => c.method), ["none"], "uncertainty off is always offered");
  assert.match(
    String(parseModelIndexEntry({ id: "x", spatialMode: "4d" }, 2)),
    /entry 2 \(x\): expected "spatialMode"/,
  );
});

Deno.test("a model index entry without an id is rejected with the entry's position", () => {
  assert.equal(parseModelIndexEntry({ name: "x" }, 3), 'entry 3: expected a non-empty string "id"');
  assert.match(String(parseModelIndexEntry(null, 1)), /entry 1: expected an object, found null/);
});

Deno.test("the model index is fetched, bad entries are set aside, and HTTP errors say what was expected", async () => {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    if (new URL(req.url).pathname === "/models/index.json") {
      return Response.json([{ id: "a", name: "A", version: "1", modalities: ["CT"], labels: [] }, {
        nope: 1,
      }]);
    }
    return new Response("no", { status: 404 });
  });
  const base = `http://127.0.0.1:${server.addr.port}`;
  try {
    const idx = await fetchModelIndex(`${base}/models/index.json`);
    assert.deepEqual(idx.models.map((m) => m.id), ["a"]);
    // No url in the entry: the package is beside the index, wherever the index was served from.
    assert.equal(idx.models[0].url, `${base}/models/a/`);
    assert.equal(idx.models[0].manifest, `${base}/models/a/manifest.json`);
    assert.equal(idx.rejected.length, 1);
    await assert.rejects(fetchModelIndex(`${base}/missing.json`), /HTTP 404 \(expected 200/);
  } finally {
    await server.shutdown();
  }
});

Deno.test("a model is flagged when the series modality is not one it takes", () => {
  const m = { id: "r", name: "R", version: "1", modalities: ["OP"], labels: [] };
  assert.equal(refusal(m, { displaySetInstanceUID: "1", Modality: "CT" }), "needs OP, series is CT");
  assert.equal(refusal(m, { displaySetInstanceUID: "1", Modality: "OP" }), undefined);
  assert.equal(refusal(m, undefined), undefined);
});

Deno.test("a model is refused for colour vs greyscale and for a 3D model on one image", () => {
  const base = { id: "m", name: "M", version: "1", modalities: [], labels: [] };
  const ct = {
    displaySetInstanceUID: "1",
    Modality: "CT",
    numImageFrames: 1,
    instances: [{ SamplesPerPixel: 1, BodyPartExamined: "CHEST" }],
  };
  assert.equal(refusal({ ...base, channels: 3 }, ct), "needs colour images, series is greyscale");
  assert.equal(refusal({ ...base, spatialMode: "patch3d" }, ct), "3D model, series has 1 image");
  assert.equal(refusal({ ...base, spatialMode: "patch3d" }, { ...ct, numImageFrames: 40 }), undefined);
});

Deno.test("a different body part is a warning that leaves Run available, never a refusal", () => {
  const base = { id: "m", name: "M", version: "1", modalities: ["CT"], labels: [] };
  const ct = {
    displaySetInstanceUID: "1",
    Modality: "CT",
    numImageFrames: 40,
    instances: [{ SamplesPerPixel: 1, BodyPartExamined: "chest " }],
  };
  assert.deepEqual(modelFit({ ...base, bodyParts: ["ABDOMEN", "LIVER"] }, ct), {
    warning: "made for ABDOMEN/LIVER, series is tagged CHEST",
  });
  assert.deepEqual(
    modelFit({ ...base, bodyParts: ["Chest"] }, ct),
    {},
    "same part, any case",
  );
  assert.deepEqual(
    modelFit({ ...base, bodyParts: ["HEART"] }, { ...ct, instances: [{ SamplesPerPixel: 1 }] }),
    {},
    "the series states no body part",
  );
  assert.deepEqual(modelFit(base, ct), {}, "the model states no body part");
});

Deno.test("a refusal wins over a body-part warning: the hard reason is the one shown", () => {
  const model = { id: "r", name: "R", version: "1", modalities: ["OP"], bodyParts: ["EYE"], labels: [] };
  const ct = {
    displaySetInstanceUID: "1",
    Modality: "CT",
    instances: [{ SamplesPerPixel: 1, BodyPartExamined: "ABDOMEN" }],
  };
  assert.deepEqual(modelFit(model, ct), { refusal: "needs OP, series is CT" });
  assert.deepEqual(modelFit(model, undefined), {}, "no series open: nothing to say");
});

Deno.test("package URLs in the index resolve against the index's URL, not the page's origin", async () => {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    if (new URL(req.url).pathname === "/edgeseg/models/index.json") {
      return Response.json({
        models: [{ id: "rel", name: "R", version: "1", modalities: [], labels: [], url: "rel/" }, {
          id: "abs",
          name: "A",
          version: "1",
          modalities: [],
          labels: [],
          url: "/models/abs/",
          manifest: "/models/abs/manifest.json",
        }],
      });
    }
    return new Response("no", { status: 404 });
  });
  const origin = `http://127.0.0.1:${server.addr.port}`;
  try {
    const idx = await fetchModelIndex(`${origin}/edgeseg/models/index.json`);
    assert.equal(idx.models[0].url, `${origin}/edgeseg/models/rel/`);
    assert.equal(idx.models[0].manifest, `${origin}/edgeseg/models/rel/manifest.json`);
    assert.equal(idx.models[1].url, `${origin}/models/abs/`);
  } finally {
    await server.shutdown();
  }
});
