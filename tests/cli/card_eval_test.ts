/**
 * The model cards' numbers are reproduced by `deno task eval` (issue #19, "honest cards"): for each
 * package, a fresh deterministic eval on its validation split (laid out from ../shared/data as
 * `deno task card-eval` does) must agree within 0.002 with the headline figure in `eval.json`, in
 * `MODEL_CARD.md` and in `validation.json` (PyTorch at export). A variant that `eval.json` scored (its
 * "variants", e.g. ct-lung-infection's static INT8) must be reproduced within the same tolerance and may
 * not lose more than 0.01 of the main model's headline (issue #19's rule for INT8 variants). Skipped when
 * ../shared/data is absent.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  evalArgs,
  type EvalJson,
  type Headline,
  headlines,
  layoutSplit,
  type PackageId,
  PACKAGES,
  ROOT,
  runEval,
} from "../../models/training/eval_cards.ts";
import { sharedData } from "../../src/harness/paths.ts";

const TOLERANCE = 0.002;
/**
 * the most a variant's headline may fall below the main model's: issue #19's rule for INT8 variants
 * ("only where they keep Dice within 0.01"); ct-lung-infection's static INT8, the one variant that exists
 * for speed, is also inside issue #15's 0.005 (−0.0015, see its card)
 */
const VARIANT_LOSS = 0.01;
const data = sharedData();
if (!data) {
  console.log("skip: ../shared/data is absent, the model cards are not checked against a fresh eval");
}

/** One fresh deterministic eval per package, shared by its tests. */
const fresh = new Map<PackageId, Promise<Headline[]>>();
function freshHeadlines(id: PackageId): Promise<Headline[]> {
  if (!fresh.has(id)) {
    fresh.set(
      id,
      (async () => {
        const tmp = await Deno.makeTempDir({ prefix: `edgeseg-card-test-${id}-` });
        try {
          const split = await layoutSplit(id, data!, tmp);
          const run: EvalJson = await runEval(
            evalArgs(id, split, join(tmp, "det.json"), false, { negative: false }),
          );
          return await headlines(id, run, split);
        } finally {
          await Deno.remove(tmp, { recursive: true });
        }
      })(),
    );
  }
  return fresh.get(id)!;
}

async function readJson(path: string): Promise<Record<string, unknown>> {
  return JSON.parse(await Deno.readTextFile(path));
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

for (const id of PACKAGES) {
  Deno.test({
    name: `${id}: eval.json and the card state the headline a fresh eval gives, within ${TOLERANCE}`,
    ignore: !data,
    async fn() {
      const pkg = join(ROOT, "models", id);
      const manifest = await readJson(join(pkg, "manifest.json")) as {
        files: Record<string, { sha256: string }>;
      };
      const evidence = await readJson(join(pkg, "eval.json")) as {
        model: { sha256: string };
        headline: { name: string; eval: number }[];
      };
      assert.equal(
        evidence.model.sha256,
        manifest.files["model.onnx"].sha256,
        `models/${id}/eval.json was measured on other weights: rerun deno task card-eval --model ${id}`,
      );
      const card = await Deno.readTextFile(join(pkg, "MODEL_CARD.md"));
      const now = await freshHeadlines(id);
      assert.equal(evidence.headline.length, now.length, "eval.json lists the package's headline figures");
      for (const [i, h] of now.entries()) {
        assert.ok(Number.isFinite(h.eval), `${h.name}: the fresh eval gives a number`);
        const stated = evidence.headline[i];
        assert.equal(stated.name, h.name);
        assert.ok(
          Math.abs(stated.eval - h.eval) <= TOLERANCE,
          `${h.name}: eval.json states ${stated.eval}, a fresh eval gives ${h.eval.toFixed(6)}`,
        );
        const m = new RegExp(`^- ${escapeRegExp(h.name)}: \\*\\*([0-9.]+)\\*\\*`, "m").exec(card);
        assert.ok(m, `models/${id}/MODEL_CARD.md states "${h.name}": rerun models/training/cards.py`);
        assert.ok(
          Math.abs(Number(m[1]) - h.eval) <= TOLERANCE,
          `${h.name}: the card states ${m[1]}, a fresh eval gives ${h.eval.toFixed(6)}`,
        );
      }
    },
  });

  Deno.test({
    name:
      `${id}: validation.json's headline (PyTorch at export) agrees with a fresh eval within ${TOLERANCE}`,
    ignore: !data,
    async fn() {
      for (const h of await freshHeadlines(id)) {
        assert.ok(
          Math.abs(h.validationJson - h.eval) <= TOLERANCE,
          `${h.name}: validation.json ${h.validationKey} = ${
            h.validationJson.toFixed(6)
          }, a fresh deno task ` +
            `eval gives ${h.eval.toFixed(6)} (difference ${(h.eval - h.validationJson).toFixed(4)})`,
        );
      }
    },
  });
}

for (const id of PACKAGES) {
  Deno.test({
    name: `${id}: each variant in eval.json is reproduced by a fresh eval and loses at most ${VARIANT_LOSS}`,
    ignore: !data,
    async fn() {
      const evidence = await readJson(join(ROOT, "models", id, "eval.json")) as {
        variants?: { id: string; sha256: string; headline: { name: string; eval: number }[] }[];
      };
      const manifest = await readJson(join(ROOT, "models", id, "manifest.json")) as {
        variants?: { id: string; file: string }[];
        files: Record<string, { sha256: string }>;
      };
      for (const v of evidence.variants ?? []) {
        const file = manifest.variants?.find((m) => m.id === v.id)?.file;
        assert.ok(file, `eval.json scores variant ${v.id}, which the manifest no longer lists`);
        assert.equal(
          v.sha256,
          manifest.files[file].sha256,
          `eval.json scored another ${file}: rerun card-eval`,
        );
        const tmp = await Deno.makeTempDir({ prefix: `edgeseg-card-test-${id}-${v.id}-` });
        try {
          const split = await layoutSplit(id, data!, tmp);
          const run = await runEval(
            evalArgs(id, split, join(tmp, "variant.json"), false, { negative: false, variant: v.id }),
          );
          const main = await freshHeadlines(id);
          for (const [i, h] of (await headlines(id, run, split)).entries()) {
            assert.ok(
              Math.abs(v.headline[i].eval - h.eval) <= TOLERANCE,
              `${v.id} ${h.name}: eval.json states ${v.headline[i].eval}, a fresh eval gives ${
                h.eval.toFixed(6)
              }`,
            );
            assert.ok(
              h.eval >= main[i].eval - VARIANT_LOSS,
              `${v.id} ${h.name}: ${h.eval.toFixed(4)} vs the main model's ${main[i].eval.toFixed(4)}`,
            );
          }
        } finally {
          await Deno.remove(tmp, { recursive: true });
        }
      }
    },
  });
}
