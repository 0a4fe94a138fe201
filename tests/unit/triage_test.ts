import assert from "node:assert/strict";
import type { SegmentStatistics, TriageSpec } from "../../src/core/types.ts";
import { triage } from "../../src/segmentation/mod.ts";

const close = (a: number, b: number, tol = 1e-9) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

const spec: TriageSpec = {
  labels: [1, 2],
  referenceVolumeMl: 1,
  locationWeights: { "2": 1.5 },
  boundaryWeight: 0.5,
  uncertaintyDiscount: 0.5,
  thresholds: { review: 0.3, urgent: 0.7 },
};

function seg(number: number, label: string, volumeMl: number, u?: number, b?: number): SegmentStatistics {
  return {
    number,
    label,
    voxels: Math.round(volumeMl * 1000),
    volumeMl,
    meanIntensity: 0,
    sdIntensity: 0,
    components: volumeMl > 0 ? 1 : 0,
    meanUncertainty: u,
    meanBoundaryUncertainty: b,
  };
}

Deno.test("the worked example of docs/triage.md scores 0.8091 and is Urgent", () => {
  const ln2 = Math.LN2;
  const r = triage(
    [seg(1, "IRF", 0.2, 0.2 * ln2, 0.5 * ln2), seg(2, "SRF", 0.3, 0.3 * ln2, 0.6 * ln2), seg(3, "PED", 5)],
    spec,
    ln2,
  );
  close(r.terms.volumeScore, 0.5);
  close(r.terms.locationMultiplier, 1.3);
  close(r.terms.boundaryUncertainty, 0.56);
  close(r.terms.overallUncertainty, 0.26);
  close(r.terms.discount, 0.87);
  close(r.score, 0.8091);
  assert.equal(r.band, "Urgent");
  assert.match(r.reasons.at(-1)!, /Urgent/);
});

Deno.test("nothing found is Monitor with score 0 and says so", () => {
  const r = triage([seg(1, "IRF", 0), seg(2, "SRF", 0)], spec);
  assert.equal(r.score, 0);
  assert.equal(r.band, "Monitor");
  assert.match(r.reasons[0], /no IRF, SRF found/);
});

Deno.test("the volume score saturates at the reference volume", () => {
  const r = triage([seg(1, "IRF", 10)], { ...spec, thresholds: { review: 0.5, urgent: 1.01 } });
  close(r.terms.volumeScore, 1);
  close(r.score, 1);
  assert.equal(r.band, "Review");
});

Deno.test("without uncertainty statistics the boundary and discount terms vanish", () => {
  const r = triage([seg(1, "IRF", 0.4)], spec);
  close(r.score, 0.4);
  assert.equal(r.band, "Review");
  assert.ok(r.reasons.some((x) => /no uncertainty estimate/.test(x)));
});

Deno.test("high uncertainty inside the lesion discounts an Urgent case down to Review", () => {
  const certain = triage([seg(1, "IRF", 0.8, 0, 0)], spec);
  const unsure = triage([seg(1, "IRF", 0.8, 1, 0)], spec);
  assert.equal(certain.band, "Urgent");
  close(unsure.score, 0.4);
  assert.equal(unsure.band, "Review");
});

Deno.test("boundary uncertainty raises a small lesion from Monitor to Review", () => {
  assert.equal(triage([seg(1, "IRF", 0.2, 0, 0)], spec).band, "Monitor");
  const r = triage([seg(1, "IRF", 0.2, 0, 0.4)], spec);
  close(r.score, 0.4);
  assert.equal(r.band, "Review");
});

Deno.test("labels outside the triage list and location weights default to 1", () => {
  const r = triage([seg(1, "IRF", 0.1), seg(9, "Other", 50)], spec);
  close(r.terms.totalVolumeMl, 0.1);
  close(r.terms.locationMultiplier, 1);
  assert.equal(r.band, "Monitor");
});
