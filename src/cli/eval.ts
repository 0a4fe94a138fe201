/**
 * deno task eval --model <id|path> --input <images> --reference <labels> [--fov <masks>]
 *   [--second-reference <labels>] [--uncertainty …] --json <file> [--report <file.html>] [--device …]
 *   [--negative <series>]… [--no-roi] [--variant <id>]
 *
 * Runs the package on every input case, pairs it with its reference by case key (DRIVE
 * `21_training.tif` ↔ `21_manual1.gif`, NIfTI `<case>_image` ↔ `<case>_label`, or a DICOM series ↔
 * its reference SEG), and reports per-case and mean Dice, IoU, precision, recall, specificity,
 * accuracy, AUC, HD95 and ASSD (mm), inside the field-of-view mask when one is given.
 *
 * `--variant <id>` runs one of the manifest's variants (e.g. `int8`) instead of the main model; the JSON
 * records which one ran and its sha256.
 *
 * `--seed N` fixes the base seed of the MC-dropout masks (default 0, as segment()); the JSON records it.
 *
 * `--negative` (repeatable) names a series without the target finding (a DICOM folder, a NIfTI
 * volume or an image): everything the model marks there is a false positive, reported as a volume
 * in mL per label and in total, with the triage band. `--input`/`--reference` may then be left out.
 *
 * main() runs the steps in order: parse the options, load and pair the inputs, score each case
 * (eval_score.ts pools the figures), score the negatives, write the JSON, print the summary and
 * write the HTML report.
 */
import { InputError } from "../core/errors.ts";
import type { ModelRuntime, SegmentationResult, SegmentOptions, Volume } from "../core/types.ts";
import { writePng } from "../io/mod.ts";
import { compareOverlayRGBA, compositeOnGray } from "../overlays/mod.ts";
import { evaluateSegmentation, segment } from "../segmentation/mod.ts";
import type { Interval } from "../segmentation/bootstrap.ts";
import { flag, parseArgs, requireFlag } from "./args.ts";
import { openModel, parseUncertainty, reportError, UNCERTAINTY_GRAMMAR } from "./common.ts";
import { type CaseInput, fileCase, loadInputs } from "./inputs.ts";
import { writeFileAtomic } from "./output.ts";
import { type CasePair, pairCases } from "./pairing.ts";
import { ProgressBar } from "./progress.ts";
import { renderEvalReport } from "./report.ts";
import { evaluateNegative, listPaths, type NegativeCase, readMask, readReference } from "./eval_inputs.ts";
import { caseRecord, type EvalCase, EvalTally, labelProbabilities, METRICS } from "./eval_score.ts";

const USAGE = `usage: deno task eval --model <id|path> --input <images> --reference <labels> --json <file>
  [--fov <masks>] [--second-reference <labels>] [--uncertainty ${UNCERTAINTY_GRAMMAR}] [--report <file.html>]
  [--device auto|cpu|wasm|webgpu] [--limit N] [--seed N] [--negative <series without the finding>]... [--no-roi]
  [--variant <id of a manifest variant, e.g. int8; default: the main model>]
  (with --negative, --input and --reference may be left out)`;

interface EvalOptions {
  model: string;
  device?: string;
  /** a manifest variant id (--variant); undefined: the main model */
  variant?: string;
  /** false when only --negative series are given */
  scored: boolean;
  input: string;
  reference: string;
  secondReference?: string;
  fov?: string;
  negativePaths: string[];
  jsonPath: string;
  reportPath?: string;
  useRoi: boolean;
  unc: Pick<SegmentOptions, "uncertainty" | "passes">;
  /** base seed of the MC-dropout masks */
  seed: number;
  limit: number;
}

/** The command line as options, or null after printing the usage for --help. */
function parseOptions(argv: string[]): EvalOptions | null {
  const args = parseArgs(argv, ["help", "no-roi"]);
  if (args.flags.has("help")) {
    console.log(USAGE);
    return null;
  }
  const model = requireFlag(args, "model", USAGE);
  const negativePaths = args.flags.get("negative") ?? [];
  const scored = !negativePaths.length || flag(args, "input") !== undefined;
  const input = scored ? requireFlag(args, "input", USAGE) : "";
  const reference = scored ? requireFlag(args, "reference", USAGE) : "";
  const jsonPath = requireFlag(args, "json", USAGE);
  const seed = Number(flag(args, "seed") ?? 0);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new InputError(
      "BAD_SEED",
      `--seed expects an integer from 0 to 4294967295, found ${flag(args, "seed")}`,
    );
  }
  return {
    model,
    device: flag(args, "device"),
    variant: flag(args, "variant"),
    scored,
    input,
    reference,
    secondReference: flag(args, "second-reference"),
    fov: flag(args, "fov"),
    negativePaths,
    jsonPath,
    reportPath: flag(args, "report"),
    useRoi: !args.flags.has("no-roi"),
    unc: parseUncertainty(flag(args, "uncertainty")),
    seed,
    limit: flag(args, "limit") ? Number(flag(args, "limit")) : Infinity,
  };
}

/** The cases to score: a DICOM series folder is one case; files pair by case key. */
interface EvalInputs {
  pairs: CasePair[];
  /** inputs without a reference (skipped) */
  unpaired: string[];
  isDicomFolder: boolean;
}

async function loadPairs(o: EvalOptions): Promise<EvalInputs> {
  if (!o.scored) return { pairs: [], unpaired: [], isDicomFolder: false };
  const inputStat = await Deno.stat(o.input);
  const inputFiles = inputStat.isFile ? [o.input] : (await listPaths(o.input));
  const isDicomFolder = !inputStat.isFile &&
    inputFiles.every((f) => !/\.(nii|nii\.gz|png|jpe?g|gif|tiff?)$/i.test(f));
  const pairs = isDicomFolder
    ? [{
      key: o.input,
      input: o.input,
      reference: (await listPaths(o.reference))[0],
      secondReference: undefined,
      fov: undefined,
    }]
    : pairCases(inputFiles, await listPaths(o.reference), {
      secondReferences: o.secondReference ? await listPaths(o.secondReference) : undefined,
      fovs: o.fov ? await listPaths(o.fov) : undefined,
    });
  const usable = pairs.filter((p) => p.reference).slice(0, o.limit);
  if (!usable.length) {
    throw new InputError(
      "NO_PAIRS",
      `no input in ${o.input} has a reference in ${o.reference} (pairing by case number or stem)`,
    );
  }
  return { pairs: usable, unpaired: pairs.filter((p) => !p.reference).map((p) => p.input), isDicomFolder };
}

/** Segments one case, scores it against its reference(s) and adds it to the tally; returns its thumbnail. */
async function scoreCase(
  pair: CasePair,
  isDicomFolder: boolean,
  runtime: ModelRuntime,
  o: EvalOptions,
  tally: EvalTally,
): Promise<Uint8Array | undefined> {
  const manifest = runtime.manifest;
  const c: CaseInput = isDicomFolder
    ? (await loadInputs(pair.input, manifest))[0]
    : await fileCase(pair.input, manifest);
  const bar = new ProgressBar(pair.key);
  const result: SegmentationResult = await segment(c.volume, runtime, {
    ...o.unc,
    seed: o.seed,
    keepProbabilities: true,
    onProgress: bar.update,
    roi: o.useRoi,
  });
  const n = result.labelmap.data.length;
  const ref = await readReference(pair.reference!, manifest, c.volume);
  const fov = pair.fov ? await readMask(pair.fov, n) : undefined;
  const probabilities = labelProbabilities(result, manifest);
  const labelValues = manifest.labels.map((l) => l.value);
  const ev = evaluateSegmentation(result.labelmap.data, ref, result.labelmap.geometry, labelValues, {
    fov,
    probabilities,
  });
  const record = caseRecord({ key: pair.key, input: pair.input, reference: pair.reference! }, ev, manifest);
  tally.addReliability(probabilities[labelValues[0]], ref, fov);
  if (result.uncertainty?.data) {
    const ref2 = pair.secondReference
      ? await readReference(pair.secondReference, manifest, c.volume)
      : undefined;
    const agreement = tally.addUncertainty(result, ref, fov, ref2);
    if (agreement) record.uncertainty = agreement;
  }
  tally.cases.push(record);
  const thumb = o.reportPath && c.volume.geometry.dims[2] >= 1
    ? thumbnail(c.volume, result, ref, fov)
    : undefined;
  bar.done(`${pair.key}: ${METRICS.map((m) => `${m} ${fmt(record.metrics[m])}`).join("  ")}`);
  return thumb;
}

/** The JSON eval writes: the run, every case, the means and the pooled figures that apply. */
function evalSummary(
  o: EvalOptions,
  runtime: ModelRuntime,
  tally: EvalTally,
  unpaired: string[],
  negatives: NegativeCase[],
): Record<string, unknown> {
  const manifest = runtime.manifest;
  const out: Record<string, unknown> = {
    model: {
      id: manifest.id,
      name: manifest.name,
      version: manifest.version,
      sha256: runtime.modelSha256,
      provider: runtime.provider,
      ...(runtime.variant ? { variant: runtime.variant, precision: runtime.precision } : {}),
    },
    input: o.input,
    reference: o.reference,
    fov: o.fov ?? null,
    uncertainty: o.unc.uncertainty,
    mcPasses: mcPasses(o, manifest),
    seed: o.seed,
    roi: manifest.roi && o.useRoi ? manifest.roi : null,
    cases: tally.cases,
    mean: tally.mean(),
    unpaired,
    definitions:
      "per case: metrics per label, then the mean over labels; mean: mean over cases. Inside the field-of-view mask when given. " +
      "HD95/ASSD in mm from voxel spacing (NaN when one mask is empty). AUC from the label's probability (quantised to 1/255).",
  };
  const pooled: [string, unknown][] = [
    ["meanInterval", tally.meanInterval()],
    ["calibration", tally.calibration(o.unc.uncertainty)],
    ["uncertaintyWrongVsRight", tally.uncertaintyWrongVsRight()],
    ["thresholdSweep", tally.thresholdSweep()],
    ["negatives", negatives.length ? negatives : undefined],
    ["falsePositiveMl", negatives.length ? negatives.reduce((a, c) => a + c.falsePositiveMl, 0) : undefined],
    ["interRater", tally.interRater()],
  ];
  for (const [key, value] of pooled) if (value !== undefined) out[key] = value;
  return out;
}

/** The per-case table, the negatives and one line per pooled figure, on stdout. */
function printSummary(out: Record<string, unknown>, negatives: NegativeCase[], unpaired: string[]): void {
  printCases(out.cases as EvalCase[], out.mean as Record<string, number>);
  printNegatives(negatives);
  printPooled(out);
  if (unpaired.length) console.log(`${unpaired.length} inputs had no reference and were skipped`);
}

function printCases(cases: EvalCase[], mean: Record<string, number>): void {
  if (cases.length) {
    console.log(`\n${"case".padEnd(24)}${METRICS.map((m) => m.padStart(12)).join("")}`);
    for (const c of cases) {
      console.log(`${c.case.padEnd(24)}${METRICS.map((m) => fmt(c.metrics[m]).padStart(12)).join("")}`);
    }
    console.log(`${"mean".padEnd(24)}${METRICS.map((m) => fmt(mean[m]).padStart(12)).join("")}`);
  }
}

function printNegatives(negatives: NegativeCase[]): void {
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
}

/** One line for each pooled figure the JSON holds: intervals, calibration, uncertainty, sweep. */
function printPooled(out: Record<string, unknown>): void {
  const cases = out.cases as EvalCase[];
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
}

/** The HTML report: per-case thumbnails and metrics, reliability diagram, uncertainty histograms. */
async function writeReport(
  path: string,
  o: EvalOptions,
  runtime: ModelRuntime,
  tally: EvalTally,
  thumbs: (Uint8Array | undefined)[],
): Promise<void> {
  const manifest = runtime.manifest;
  await writeFileAtomic(
    path,
    renderEvalReport({
      title: `EdgeSeg evaluation: ${manifest.name}`,
      model: { id: manifest.id, name: manifest.name, version: manifest.version, sha256: runtime.modelSha256 },
      generatedAt: new Date().toISOString(),
      metricNames: [...METRICS],
      cases: tally.cases.map((c, i) => ({ key: c.case, metrics: c.metrics, overlayPng: thumbs[i] })),
      mean: tally.mean(),
      reliability: tally.reliabilityBins(),
      histograms: tally.histograms(),
      notes: [
        `Input ${o.input}, reference ${o.reference}${
          o.fov ? `, field of view ${o.fov}` : ""
        }; uncertainty ${o.unc.uncertainty}.`,
      ],
    }),
  );
  console.log(`report: ${path}`);
}

async function main(): Promise<void> {
  const o = parseOptions(Deno.args);
  if (!o) return;
  const { runtime } = await openModel(o.model, o.device, undefined, o.variant);
  const { pairs, unpaired, isDicomFolder } = await loadPairs(o);

  const tally = new EvalTally(runtime.manifest);
  const thumbs: (Uint8Array | undefined)[] = [];
  for (const pair of pairs) thumbs.push(await scoreCase(pair, isDicomFolder, runtime, o, tally));
  const negatives: NegativeCase[] = [];
  for (const path of o.negativePaths) {
    negatives.push(...await evaluateNegative(path, runtime, { roi: o.useRoi, uncertainty: o.unc }));
  }

  const out = evalSummary(o, runtime, tally, unpaired, negatives);
  await writeFileAtomic(
    o.jsonPath,
    JSON.stringify(out, (_k, v) => (typeof v === "number" && !Number.isFinite(v) ? null : v), 2) + "\n",
  );
  printSummary(out, negatives, unpaired);
  if (o.reportPath) await writeReport(o.reportPath, o, runtime, tally, thumbs);
}

/** The MC-dropout passes a run drew (the option, else the manifest's default), or null without MC. */
function mcPasses(o: EvalOptions, manifest: ModelRuntime["manifest"]): number | null {
  if (!o.unc.uncertainty?.startsWith("mc")) return null;
  return o.unc.passes ?? manifest.uncertainty?.mcDropout?.defaultPasses ?? null;
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
