/**
 * deno task eval --model <id|path> --input <images> --reference <labels> [--fov <masks>]
 *   [--second-reference <labels>] [--uncertainty …] --json <file> [--report <file.html>] [--device …]
 *   [--negative <series>]… [--no-roi]
 *
 * Runs the package on every input case, pairs it with its reference by case key (DRIVE
 * `21_training.tif` ↔ `21_manual1.gif`, NIfTI `<case>_image` ↔ `<case>_label`, or a DICOM series ↔
 * its reference SEG), and reports per-case and mean Dice, IoU, precision, recall, specificity,
 * accuracy, AUC, HD95 and ASSD (mm), inside the field-of-view mask when one is given.
 *
 * `--negative` (repeatable) names a series without the target finding (a DICOM folder, a NIfTI
 * volume or an image): everything the model marks there is a false positive, reported as a volume
 * in mL per label and in total, with the triage band. `--input`/`--reference` may then be left out.
 */
import { InputError } from "../core/errors.ts";
import type { SegmentationResult, Volume } from "../core/types.ts";
import { writePng } from "../io/mod.ts";
import { compareOverlayRGBA, compositeOnGray } from "../overlays/mod.ts";
import { evaluateSegmentation, nanMean, segment } from "../segmentation/mod.ts";
import { type Interval, meanInterval, ratioInterval, ThresholdSweep } from "../segmentation/bootstrap.ts";
import { flag, parseArgs, requireFlag } from "./args.ts";
import { openModel, parseUncertainty, reportError, UNCERTAINTY_GRAMMAR } from "./common.ts";
import { type CaseInput, fileCase, loadInputs } from "./inputs.ts";
import { writeFileAtomic } from "./output.ts";
import { pairCases } from "./pairing.ts";
import { ProgressBar } from "./progress.ts";
import { type Histogram, type ReliabilityBins, renderEvalReport } from "./report.ts";
import { evaluateNegative, listPaths, type NegativeCase, readMask, readReference } from "./eval_inputs.ts";
import { meanOf, normalTwoSidedP, push, running, signTestP, varOf } from "./eval_stats.ts";
export { evaluateNegative, type NegativeCase, readReference } from "./eval_inputs.ts";
export { normalTwoSidedP, signTestP } from "./eval_stats.ts";

const USAGE = `usage: deno task eval --model <id|path> --input <images> --reference <labels> --json <file>
  [--fov <masks>] [--second-reference <labels>] [--uncertainty ${UNCERTAINTY_GRAMMAR}] [--report <file.html>]
  [--device auto|cpu|wasm|webgpu] [--limit N] [--negative <series without the finding>]... [--no-roi]
  (with --negative, --input and --reference may be left out)`;

export const METRICS = [
  "dice",
  "iou",
  "precision",
  "recall",
  "specificity",
  "accuracy",
  "auc",
  "hd95_mm",
  "assd_mm",
] as const;

export interface EvalCase {
  case: string;
  input: string;
  reference: string;
  metrics: Record<string, number>;
  perLabel: Record<string, Record<string, number>>;
  uncertainty?: { disagree: number; agree: number; ratio: number };
}

async function main(): Promise<void> {
  const args = parseArgs(Deno.args, ["help", "no-roi"]);
  if (args.flags.has("help")) {
    console.log(USAGE);
    return;
  }
  const model = requireFlag(args, "model", USAGE);
  const negativePaths = args.flags.get("negative") ?? [];
  const scored = !negativePaths.length || flag(args, "input") !== undefined;
  const input = scored ? requireFlag(args, "input", USAGE) : "";
  const reference = scored ? requireFlag(args, "reference", USAGE) : "";
  const jsonPath = requireFlag(args, "json", USAGE);
  const useRoi = !args.flags.has("no-roi");
  const unc = parseUncertainty(flag(args, "uncertainty"));
  const second = flag(args, "second-reference");
  const limit = flag(args, "limit") ? Number(flag(args, "limit")) : Infinity;
  const { runtime } = await openModel(model, flag(args, "device"));
  const manifest = runtime.manifest;
  const labelValues = manifest.labels.map((l) => l.value);

  // DICOM series folders are one case each; files pair by case key.
  const inputStat = scored ? await Deno.stat(input) : undefined;
  const inputFiles = !inputStat ? [] : inputStat.isFile ? [input] : (await listPaths(input));
  const isDicomFolder = !!inputStat && !inputStat.isFile &&
    inputFiles.every((f) => !/\.(nii|nii\.gz|png|jpe?g|gif|tiff?)$/i.test(f));
  const pairs = !scored ? [] : isDicomFolder
    ? [{
      key: input,
      input,
      reference: (await listPaths(reference))[0],
      secondReference: undefined,
      fov: undefined,
    }]
    : pairCases(inputFiles, await listPaths(reference), {
      secondReferences: second ? await listPaths(second) : undefined,
      fovs: flag(args, "fov") ? await listPaths(flag(args, "fov")!) : undefined,
    });
  const usable = pairs.filter((p) => p.reference).slice(0, limit);
  if (scored && !usable.length) {
    throw new InputError(
      "NO_PAIRS",
      `no input in ${input} has a reference in ${reference} (pairing by case number or stem)`,
    );
  }
  const unpaired = pairs.filter((p) => !p.reference).map((p) => p.input);

  const cases: EvalCase[] = [];
  const thumbs: Uint8Array[] = [];
  const relCount = new Float64Array(10), relConf = new Float64Array(10), relPos = new Float64Array(10);
  const uBins = 30;
  let uMax = 0;
  const uHist = {
    correct: new Float64Array(uBins),
    wrong: new Float64Array(uBins),
    agree: new Float64Array(uBins),
    disagree: new Float64Array(uBins),
  };
  const agreeAll = running(), disagreeAll = running();
  // the threshold sweep (single-label models) and uncertainty on wrong vs right pixels, per case
  const sweep = labelValues.length === 1 ? new ThresholdSweep() : undefined;
  const uWrongPerCase: number[] = [], uRightPerCase: number[] = [];
  let casesMoreUncertain = 0, casesCompared = 0;

  for (const pair of usable) {
    const c: CaseInput = isDicomFolder
      ? (await loadInputs(pair.input, manifest))[0]
      : await fileCase(pair.input, manifest);
    const bar = new ProgressBar(pair.key);
    const result: SegmentationResult = await segment(c.volume, runtime, {
      ...unc,
      keepProbabilities: true,
      onProgress: bar.update,
      roi: useRoi,
    });
    const n = result.labelmap.data.length;
    const ref = await readReference(pair.reference!, manifest, c.volume);
    const fov = pair.fov ? await readMask(pair.fov, n) : undefined;
    const probabilities: Record<number, Float32Array> = {};
    if (result.probabilities) {
      manifest.labels.forEach((l, li) => {
        const p = new Float32Array(n);
        const q = result.probabilities!.data;
        for (let i = 0; i < n; i++) p[i] = q[li * n + i] / 255;
        probabilities[l.value] = p;
      });
    }
    const ev = evaluateSegmentation(result.labelmap.data, ref, result.labelmap.geometry, labelValues, {
      fov,
      probabilities,
    });
    const pick = (
      m: {
        dice: number;
        iou: number;
        precision: number;
        recall: number;
        specificity: number;
        accuracy: number;
        auc?: number;
        hd95Mm: number;
        assdMm: number;
      },
    ) => ({
      dice: m.dice,
      iou: m.iou,
      precision: m.precision,
      recall: m.recall,
      specificity: m.specificity,
      accuracy: m.accuracy,
      auc: m.auc ?? NaN,
      hd95_mm: m.hd95Mm,
      assd_mm: m.assdMm,
    });
    const perLabel: Record<string, Record<string, number>> = {};
    ev.perLabel.forEach((m, i) => (perLabel[manifest.labels[i].name] = pick(m)));
    const record: EvalCase = {
      case: pair.key,
      input: pair.input,
      reference: pair.reference!,
      metrics: pick(ev.mean),
      perLabel,
    };

    // Reliability of the first label's probability, pooled over cases.
    const p0 = probabilities[labelValues[0]];
    if (p0 && sweep) sweep.add(p0, (i) => ref[i] === labelValues[0], fov);
    if (p0) {
      for (let i = 0; i < n; i++) {
        if (fov && !fov[i]) continue;
        const b = Math.min(9, Math.floor(p0[i] * 10));
        relCount[b]++;
        relConf[b] += p0[i];
        relPos[b] += ref[i] === labelValues[0] ? 1 : 0;
      }
    }
    // Uncertainty where prediction is right vs wrong, and where the two references disagree vs agree.
    const u = result.uncertainty?.data;
    if (u) {
      uMax = Math.max(
        uMax,
        result.uncertainty!.measure === "variance"
          ? 0.25
          : result.uncertainty!.measure === "sd"
          ? 0.5
          : Math.log(Math.max(2, labelValues.length + 1)),
      );
      const ref2 = pair.secondReference
        ? await readReference(pair.secondReference, manifest, c.volume)
        : undefined;
      const agree = running(), disagree = running();
      let sumWrong = 0, nWrong = 0, sumRight = 0, nRight = 0;
      for (let i = 0; i < n; i++) {
        if (fov && !fov[i]) continue;
        const b = Math.min(uBins - 1, Math.floor((u[i] / uMax) * uBins));
        const right = result.labelmap.data[i] === ref[i];
        (right ? uHist.correct : uHist.wrong)[b]++;
        if (right) {
          sumRight += u[i];
          nRight++;
        } else {
          sumWrong += u[i];
          nWrong++;
        }
        if (ref2) {
          if ((ref[i] > 0) === (ref2[i] > 0)) {
            push(agree, u[i]);
            push(agreeAll, u[i]);
            uHist.agree[b]++;
          } else {
            push(disagree, u[i]);
            push(disagreeAll, u[i]);
            uHist.disagree[b]++;
          }
        }
      }
      if (nWrong && nRight) {
        uWrongPerCase.push(sumWrong / nWrong);
        uRightPerCase.push(sumRight / nRight);
      }
      if (ref2 && agree.n && disagree.n) {
        record.uncertainty = {
          disagree: meanOf(disagree),
          agree: meanOf(agree),
          ratio: meanOf(disagree) / meanOf(agree),
        };
        casesCompared++;
        if (meanOf(disagree) > meanOf(agree)) casesMoreUncertain++;
      }
    }
    cases.push(record);
    if (flag(args, "report") && c.volume.geometry.dims[2] >= 1) {
      thumbs.push(thumbnail(c.volume, result, ref, fov));
    }
    bar.done(`${pair.key}: ${METRICS.map((m) => `${m} ${fmt(record.metrics[m])}`).join("  ")}`);
  }

  const negatives: NegativeCase[] = [];
  for (const path of negativePaths) {
    negatives.push(...await evaluateNegative(path, runtime, { roi: useRoi, uncertainty: unc }));
  }

  const mean: Record<string, number> = {};
  for (const m of METRICS) mean[m] = nanMean(cases.map((c) => c.metrics[m]));
  const out: Record<string, unknown> = {
    model: {
      id: manifest.id,
      name: manifest.name,
      version: manifest.version,
      sha256: runtime.modelSha256,
      provider: runtime.provider,
    },
    input,
    reference,
    fov: flag(args, "fov") ?? null,
    uncertainty: unc.uncertainty,
    roi: runtime.manifest.roi && useRoi ? runtime.manifest.roi : null,
    cases,
    mean,
    unpaired,
    definitions:
      "per case: metrics per label, then the mean over labels; mean: mean over cases. Inside the field-of-view mask when given. " +
      "HD95/ASSD in mm from voxel spacing (NaN when one mask is empty). AUC from the label's probability (quantised to 1/255).",
  };
  // What a model card states, each with its 95 % interval by bootstrap over cases (seeded).
  if (cases.length) {
    out.meanInterval = Object.fromEntries(
      METRICS.map((m) => [m, meanInterval(cases.map((c) => c.metrics[m]))]),
    );
  }
  const pooled = relCount.reduce((a, b) => a + b, 0);
  if (pooled > 0) {
    let ece = 0;
    for (let b = 0; b < 10; b++) {
      if (relCount[b] > 0) {
        ece += (relCount[b] / pooled) * Math.abs(relPos[b] / relCount[b] - relConf[b] / relCount[b]);
      }
    }
    out.calibration = {
      label: manifest.labels[0].name,
      ece,
      uncertainty: unc.uncertainty,
      bins: Array.from(relCount, (count, b) => ({
        lo: b / 10,
        hi: (b + 1) / 10,
        count,
        meanProbability: count ? relConf[b] / count : null,
        fractionPositive: count ? relPos[b] / count : null,
      })),
    };
  }
  if (uWrongPerCase.length) {
    out.uncertaintyWrongVsRight = {
      meanWrong: nanMean(uWrongPerCase),
      meanRight: nanMean(uRightPerCase),
      ratio: ratioInterval(uWrongPerCase, uRightPerCase),
      cases: uWrongPerCase.length,
      note:
        "mean uncertainty on wrongly and rightly labelled pixels per case; the ratio's interval bootstraps cases",
    };
  }
  if (sweep) {
    out.thresholdSweep = {
      label: manifest.labels[0].name,
      points: sweep.points(),
      best: sweep.best() ?? null,
      note:
        "F1 (= Dice) pooled over the pixels of these cases at each threshold; choose thresholds on a validation split",
    };
  }
  if (negatives.length) {
    out.negatives = negatives;
    out.falsePositiveMl = negatives.reduce((a, c) => a + c.falsePositiveMl, 0);
  }
  if (casesCompared) {
    const ma = meanOf(agreeAll), md = meanOf(disagreeAll);
    const se = Math.sqrt(varOf(agreeAll) / agreeAll.n + varOf(disagreeAll) / disagreeAll.n);
    const z = (md - ma) / se;
    out.interRater = {
      meanUncertaintyDisagree: md,
      meanUncertaintyAgree: ma,
      ratio: md / ma,
      pixelsDisagree: disagreeAll.n,
      pixelsAgree: agreeAll.n,
      welchZ: z,
      welchP: normalTwoSidedP(z),
      casesMoreUncertainWhereDisagree: casesMoreUncertain,
      casesCompared,
      signTestP: signTestP(casesMoreUncertain, casesCompared),
      note: "pixel-level Welch z treats pixels as independent (optimistic); the per-case sign test does not",
    };
  }
  await writeFileAtomic(
    jsonPath,
    JSON.stringify(out, (_k, v) => (typeof v === "number" && !Number.isFinite(v) ? null : v), 2) + "\n",
  );

  if (cases.length) {
    console.log(`\n${"case".padEnd(24)}${METRICS.map((m) => m.padStart(12)).join("")}`);
    for (const c of cases) {
      console.log(`${c.case.padEnd(24)}${METRICS.map((m) => fmt(c.metrics[m]).padStart(12)).join("")}`);
    }
    console.log(`${"mean".padEnd(24)}${METRICS.map((m) => fmt(mean[m]).padStart(12)).join("")}`);
  }
  if (negatives.length) {
    console.log(
      `\n${"negative (no finding)".padEnd(24)}${"FP mL".padStart(12)}${"triage".padStart(12)}  region`,
    );
    for (const c of negatives) {
      console.log(
        `${c.case.padEnd(24)}${c.falsePositiveMl.toFixed(2).padStart(12)}${
          (c.triage?.band ?? "-").padStart(12)
        }  ${c.roi ?? "none declared or --no-roi"}`,
      );
    }
  }
  const mi = out.meanInterval as Record<string, Interval> | undefined;
  if (mi && cases.length > 1) {
    console.log(
      `95 % intervals (bootstrap over ${cases.length} cases): ${
        METRICS.filter((m) => Number.isFinite(mi[m].estimate)).map((m) =>
          `${m} ${fmt(mi[m].low)}–${fmt(mi[m].high)}`
        ).join("  ")
      }`,
    );
  }
  if (out.calibration) console.log(`calibration: ECE ${(out.calibration as { ece: number }).ece.toFixed(4)}`);
  if (out.uncertaintyWrongVsRight) {
    const r = (out.uncertaintyWrongVsRight as { ratio: Interval }).ratio;
    console.log(
      `uncertainty on wrong / right pixels: ${r.estimate.toFixed(2)}× (95 % ${r.low.toFixed(2)}–${
        r.high.toFixed(2)
      })`,
    );
  }
  if (out.thresholdSweep) {
    const b = (out.thresholdSweep as { best: { threshold: number; f1: number } | null }).best;
    if (b) console.log(`threshold sweep: best F1 ${fmt(b.f1)} at ${b.threshold}`);
  }
  if (out.interRater) {
    const r = out.interRater as { ratio: number; welchP: number; signTestP: number };
    console.log(
      `uncertainty where references disagree / agree: ${r.ratio.toFixed(2)}× (Welch p=${
        r.welchP.toExponential(2)
      }, sign test p=${r.signTestP.toFixed(4)})`,
    );
  }
  if (unpaired.length) console.log(`${unpaired.length} inputs had no reference and were skipped`);

  const reportPath = flag(args, "report");
  if (reportPath) {
    const reliability: ReliabilityBins | undefined = relCount.some((c) => c > 0)
      ? {
        counts: [...relCount],
        confidence: [...relConf].map((s, i) => s / (relCount[i] || 1)),
        frequency: [...relPos].map((s, i) => s / (relCount[i] || 1)),
      }
      : undefined;
    const edges = Array.from({ length: uBins + 1 }, (_, i) => (i / uBins) * uMax);
    const histograms: Histogram[] = [];
    if (uMax > 0) {
      histograms.push({
        title: "Uncertainty: correct vs wrong pixels",
        edges,
        series: [{ name: "correct", color: "#59a14f", counts: [...uHist.correct] }, {
          name: "wrong",
          color: "#e15759",
          counts: [...uHist.wrong],
        }],
      });
      if (casesCompared) {
        histograms.push({
          title: "Uncertainty: references agree vs disagree",
          edges,
          series: [{ name: "agree", color: "#4e79a7", counts: [...uHist.agree] }, {
            name: "disagree",
            color: "#f28e2b",
            counts: [...uHist.disagree],
          }],
        });
      }
    }
    await writeFileAtomic(
      reportPath,
      renderEvalReport({
        title: `EdgeSeg evaluation: ${manifest.name}`,
        model: {
          id: manifest.id,
          name: manifest.name,
          version: manifest.version,
          sha256: runtime.modelSha256,
        },
        generatedAt: new Date().toISOString(),
        metricNames: [...METRICS],
        cases: cases.map((c, i) => ({ key: c.case, metrics: c.metrics, overlayPng: thumbs[i] })),
        mean,
        reliability,
        histograms,
        notes: [
          `Input ${input}, reference ${reference}${
            flag(args, "fov") ? `, field of view ${flag(args, "fov")}` : ""
          }; uncertainty ${unc.uncertainty}.`,
        ],
      }),
    );
    console.log(`report: ${reportPath}`);
  }
}

function fmt(v: number): string {
  return Number.isFinite(v) ? v.toFixed(4) : "NaN";
}

/** The middle slice as grey (first input channel, min–max scaled) with the TP/FP/FN overlay. */
function thumbnail(
  volume: Volume,
  result: SegmentationResult,
  ref: Uint16Array,
  fov?: Uint8Array,
): Uint8Array {
  const [w, h, d] = volume.geometry.dims;
  const k = Math.floor(d / 2), plane = w * h;
  const channel = volume.channels === 3 ? 1 : 0; // green shows fundus vessels best
  const base = (channel * d + k) * plane;
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < plane; i++) {
    const v = volume.data[base + i];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const gray = new Uint8Array(plane);
  for (let i = 0; i < plane; i++) {
    gray[i] = hi > lo ? Math.round(((volume.data[base + i] - lo) / (hi - lo)) * 255) : 0;
  }
  const overlay = compareOverlayRGBA(
    result.labelmap.data.subarray(k * plane, (k + 1) * plane),
    ref.subarray(k * plane, (k + 1) * plane),
    {
      fov: fov?.subarray(k * plane, (k + 1) * plane),
    },
  );
  const rgba = compositeOnGray(gray, overlay.rgba);
  return writePng(w, h, new Uint8Array(rgba.buffer, rgba.byteOffset, rgba.byteLength), 4);
}

if (import.meta.main) await main().catch(reportError);
