/**
 * Per-scanner intensity recipes (`preprocessing.intensityByManufacturer`) and the triage's central
 * zone (`triage.centre`): manifest validation, the interpreter, statistics and the score.
 */
import assert from "node:assert/strict";
import { ManifestError } from "../../src/core/errors.ts";
import { validateManifest } from "../../src/core/manifest.ts";
import type { SegmentStatistics, TriageSpec } from "../../src/core/types.ts";
import { intensityFor, planPreprocessing, preprocessSlab } from "../../src/segmentation/preprocess.ts";
import { centralZoneMask, segmentStatistics } from "../../src/segmentation/statistics.ts";
import { segment, triage } from "../../src/segmentation/mod.ts";
import { geometry, manifest, runtime, thresholdPredictor, volume } from "./segmentation_fakes.ts";

const close = (a: number, b: number, tol = 1e-9) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

const BY = {
  "Carl Zeiss": { kind: "scale" as const, scale: 2, offset: 0 },
  "Carl Zeiss Meditec": { kind: "scale" as const, scale: 3, offset: 1 },
  "Topcon": { kind: "clipScale" as const, min: 0, max: 10, outMin: 0, outMax: 1 },
};

/** A fresh copy of the fake manifest as raw JSON, for validation tests. */
// deno-lint-ignore no-explicit-any
function raw(over: Record<string, unknown> = {}): any {
  return JSON.parse(JSON.stringify(manifest(over as never)));
}

function manifestError(fn: () => unknown, code: string, pathPart: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ManifestError, String(e));
    assert.equal(e.code, code, e.message);
    assert.ok(e.message.includes(pathPart), e.message);
    return true;
  });
}

Deno.test("the Manufacturer picks its intensity recipe; the longest matching key wins; others get the default", () => {
  const pre = { intensity: { kind: "zscore" as const, mask: "all" as const }, intensityByManufacturer: BY };
  assert.deepEqual(intensityFor(pre, "Carl Zeiss Meditec"), {
    transform: BY["Carl Zeiss Meditec"],
    manufacturer: "Carl Zeiss Meditec",
  });
  assert.deepEqual(intensityFor(pre, "carl zeiss AG"), {
    transform: BY["Carl Zeiss"],
    manufacturer: "Carl Zeiss",
  });
  assert.deepEqual(intensityFor(pre, "  TOPCON Corporation "), {
    transform: BY.Topcon,
    manufacturer: "Topcon",
  });
  assert.deepEqual(intensityFor(pre, "Heidelberg Engineering"), { transform: pre.intensity });
  assert.deepEqual(intensityFor(pre, undefined), { transform: pre.intensity });
  assert.deepEqual(intensityFor(pre, ""), { transform: pre.intensity });
  assert.deepEqual(intensityFor({ intensity: pre.intensity }, "Topcon"), { transform: pre.intensity });
});

Deno.test("preprocessing applies the volume's scanner recipe and records which one", () => {
  const m = manifest({
    preprocessing: { intensity: { kind: "none" }, intensityByManufacturer: { Topcon: BY.Topcon } },
  });
  const v = volume([4, 4, 1], (i) => i * 5);
  const plain = planPreprocessing(v, m);
  assert.equal(plain.manufacturer, undefined);
  assert.deepEqual([...preprocessSlab(v, plain, 0, 1).slice(0, 4)], [0, 5, 10, 15]);
  const topcon = planPreprocessing({ ...v, manufacturer: "Topcon" }, m);
  assert.equal(topcon.manufacturer, "Topcon");
  assert.deepEqual([...preprocessSlab(v, topcon, 0, 1).slice(0, 4)], [0, 0.5, 1, 1]);
});

Deno.test("segment() normalises by the scanner recipe and names it in the provenance", async () => {
  // threshold at 0.5 after the Topcon recipe (x / 10): voxels above 5 are found; the default (none) would find all > 0.5
  const m = manifest({
    preprocessing: { intensity: { kind: "none" }, intensityByManufacturer: { Topcon: BY.Topcon } },
  });
  const v = { ...volume([8, 8, 1], (i) => i), manufacturer: "Topcon" };
  const r = await segment(v, runtime(m, [thresholdPredictor(0.5)]));
  assert.equal(r.provenance.intensityManufacturer, "Topcon");
  assert.equal(r.statistics[0].voxels, 2 * 8); // i = 6, 7
  const d = await segment({ ...v, manufacturer: "Other" }, runtime(m, [thresholdPredictor(0.5)]));
  assert.equal(d.provenance.intensityManufacturer, undefined);
  assert.equal(d.statistics[0].voxels, 7 * 8); // i = 1..7
});

Deno.test("intensityByManufacturer is validated: each entry an intensity spec, no empty or repeated key", () => {
  const ok = validateManifest(raw({
    preprocessing: { intensity: { kind: "zscore", mask: "all" }, intensityByManufacturer: BY },
  }));
  assert.deepEqual(ok.preprocessing.intensityByManufacturer, BY);
  manifestError(
    () =>
      validateManifest(raw({ preprocessing: { intensity: { kind: "none" }, intensityByManufacturer: {} } })),
    "MANIFEST_VALUE",
    "preprocessing.intensityByManufacturer",
  );
  manifestError(
    () =>
      validateManifest(raw({
        preprocessing: {
          intensity: { kind: "none" },
          intensityByManufacturer: { Topcon: { kind: "window" } },
        },
      })),
    "MANIFEST_MISSING_FIELD",
    'preprocessing.intensityByManufacturer["Topcon"]',
  );
  manifestError(
    () =>
      validateManifest(raw({
        preprocessing: {
          intensity: { kind: "none" },
          intensityByManufacturer: { Topcon: { kind: "none" }, " topcon": { kind: "none" } },
        },
      })),
    "MANIFEST_VALUE",
    "intensityByManufacturer",
  );
});

Deno.test("the central zone is a cylinder around the grid centre along the chosen axes, in mm", () => {
  const g = geometry([5, 3, 5], [0.5, 1, 0.5]);
  const zone = centralZoneMask(g, 0.5, [0, 2]);
  // centre (2, ·, 2); within 0.5 mm: the centre and its 4 in-plane face neighbours, at every depth j
  for (let j = 0; j < 3; j++) {
    const at = (i: number, k: number) => zone[i + 5 * (j + 3 * k)];
    assert.equal(at(2, 2), 1);
    assert.equal(at(1, 2) + at(3, 2) + at(2, 1) + at(2, 3), 4);
    assert.equal(at(1, 1), 0); // 0.707 mm away
  }
  assert.equal(zone.reduce((a, b) => a + b, 0), 5 * 3);
  // all three axes: j = 0 is 1 mm from the centre row, outside 0.5 mm
  assert.equal(centralZoneMask(g, 0.5).reduce((a, b) => a + b, 0), 5);
});

Deno.test("statistics report each segment's volume inside the central zone", () => {
  const g = geometry([5, 1, 5], [1, 1, 1]);
  const labels = new Uint8Array(25);
  labels[12] = 1; // centre
  labels[0] = 1; // corner
  labels[13] = 2; // next to the centre
  const stats = segmentStatistics({
    labels,
    geometry: g,
    segments: [{ value: 1, name: "A" }, { value: 2, name: "B" }],
    intensity: new Float32Array(25),
    centre: { radiusMm: 1, axes: [0, 2] },
  });
  close(stats[0].volumeMl, 0.002);
  close(stats[0].centralVolumeMl!, 0.001);
  close(stats[1].centralVolumeMl!, 0.001);
  const none = segmentStatistics({
    labels,
    geometry: g,
    segments: [{ value: 1, name: "A" }],
    intensity: new Float32Array(25),
  });
  assert.equal(none[0].centralVolumeMl, undefined);
});

function stat(number: number, volumeMl: number, centralVolumeMl?: number): SegmentStatistics {
  return {
    number,
    label: `L${number}`,
    voxels: 1,
    volumeMl,
    meanIntensity: 0,
    sdIntensity: 0,
    components: 1,
    centralVolumeMl,
  };
}

const spec: TriageSpec = {
  labels: [1, 2],
  referenceVolumeMl: 1,
  locationWeights: { "2": 1.5 },
  boundaryWeight: 0,
  uncertaintyDiscount: 0,
  thresholds: { review: 0.3, urgent: 0.7 },
  centre: { radiusMm: 0.5, weight: 2, axes: [0, 2] },
};

Deno.test("central volume counts centre.weight times in the location multiplier", () => {
  // M = (1·(0.2 + 1·0.1) + 1.5·(0.3 + 1·0.2)) / 0.5 = (0.3 + 0.75) / 0.5 = 2.1
  const r = triage([stat(1, 0.2, 0.1), stat(2, 0.3, 0.2)], spec);
  close(r.terms.locationMultiplier, 2.1);
  close(r.terms.centralVolumeMl, 0.3);
  close(r.score, 0.5 * 2.1);
  assert.equal(r.band, "Urgent");
  assert.ok(r.reasons.some((s) => /0.30 mL within 0.5 mm of the centre × 2/.test(s)), r.reasons.join("\n"));
  // the same fluid away from the centre: M = (0.2 + 0.45) / 0.5 = 1.3 → 0.65, Review
  const away = triage([stat(1, 0.2, 0), stat(2, 0.3, 0)], spec);
  close(away.terms.locationMultiplier, 1.3);
  assert.equal(away.band, "Review");
});

Deno.test("without a centre block the central volume is ignored; weight 1 changes nothing", () => {
  const { centre: _, ...plain } = spec;
  const a = triage([stat(1, 0.2, 0.2)], plain);
  close(a.terms.locationMultiplier, 1);
  close(a.terms.centralVolumeMl, 0);
  assert.match(a.reasons[0], /0\.20 mL of 1\.00 mL reference/);
  const tiny = triage([stat(1, 0.00037, 0.00007)], { ...spec, referenceVolumeMl: 0.0005 });
  assert.match(tiny.reasons[0], /0\.00037 mL of 0\.00050 mL reference/);
  assert.ok(tiny.reasons.some((r) => r.startsWith("0.000070 mL within 0.5 mm")), tiny.reasons.join("\n"));
  const b = triage([stat(1, 0.2, 0.2)], { ...spec, centre: { radiusMm: 0.5, weight: 1 } });
  close(b.terms.locationMultiplier, 1);
  assert.throws(() => triage([stat(1, 0.2)], { ...spec, centre: { radiusMm: 0, weight: 2 } }), RangeError);
});

Deno.test("triage.centre is validated: radius > 0, weight ≥ 0, distinct axes 0..2", () => {
  const t = { labels: [1], referenceVolumeMl: 1, boundaryWeight: 0, uncertaintyDiscount: 0 };
  const thresholds = { review: 0.3, urgent: 0.7 };
  const m = validateManifest(
    raw({ triage: { ...t, thresholds, centre: { radiusMm: 0.5, weight: 2, axes: [0, 2] } } }),
  );
  assert.deepEqual(m.triage?.centre, { radiusMm: 0.5, weight: 2, axes: [0, 2] });
  const bad = (centre: unknown, code: string, path: string) =>
    manifestError(() => validateManifest(raw({ triage: { ...t, thresholds, centre } })), code, path);
  bad({ radiusMm: 0, weight: 2 }, "MANIFEST_VALUE", "triage.centre.radiusMm");
  bad({ radiusMm: 1, weight: -1 }, "MANIFEST_VALUE", "triage.centre.weight");
  bad({ radiusMm: 1, weight: 2, axes: [0, 3] }, "MANIFEST_VALUE", "triage.centre.axes[1]");
  bad({ radiusMm: 1, weight: 2, axes: [0, 0] }, "MANIFEST_VALUE", "triage.centre.axes");
  bad({ radiusMm: 1, weight: 2, fovea: true }, "MANIFEST_UNKNOWN_FIELD", "triage.centre");
});
