/**
 * deno task card-eval [--model <id>]... [--data <dir>] [--no-mc]
 *
 * The evidence behind every model card: for each package, its validation split (the case list in
 * `validation.json`, written by the training script's `export`) is laid out from `../shared/data` in a
 * temporary folder, and `deno task eval` (src/cli/eval.ts, spawned as the user runs it) scores the
 * package on it twice on onnxruntime-node's CPU provider: deterministic, and with MC dropout (the
 * manifest's `defaultPasses`, seed 0). `models/<id>/eval.json` then holds what the card states: the
 * per-case table, the means with 95 % bootstrap intervals over cases, ECE and the reliability bins
 * with and without MC, the MC uncertainty on wrong vs right pixels (ratio with its interval), the
 * threshold sweep on the validation split, the headline figure next to `validation.json`'s, and the
 * commands, versions and commit that produced them. Each of the manifest's `variants` (e.g. `int8`) is
 * scored a third time, deterministic with `--variant <id>` (and `--negative` for the CT packages), so the
 * card states its headline and false positives next to the main model's ("variants" in eval.json).
 * `models/training/cards.py` reads it.
 *
 * Nothing but `eval.json` is written into the repository; the temporary folder is removed.
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { InputError } from "../../src/core/errors.ts";
import { EDGESEG_VERSION } from "../../src/core/version.ts";
import { flag, parseArgs } from "../../src/cli/args.ts";
import { reportError } from "../../src/cli/common.ts";
import { writeFileAtomic } from "../../src/cli/output.ts";
import { readLabelImage, writePng } from "../../src/io/mod.ts";

/** The project root (the folder holding deno.json). */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** The packages with a validation split, in the order the cards list them. */
export const PACKAGES = [
  "retina-vessels",
  "ct-lung-infection",
  "ct-lung-infection-3class",
  "la-mri-3d",
] as const;
export type PackageId = typeof PACKAGES[number];

/** The columns of the per-case table (eval's per-case metrics, mean over the package's labels). */
const CASE_METRICS = [
  "dice",
  "iou",
  "precision",
  "recall",
  "specificity",
  "auc",
  "hd95_mm",
  "assd_mm",
] as const;

const USAGE = `usage: deno task card-eval [--model <id>]... [--data <dir>] [--no-mc]
  --model   one of ${PACKAGES.join(", ")} (repeatable; default all)
  --data    the data sets folder (default ../shared/data beside the project)
  --no-mc   the deterministic run only (eval.json is not written: it needs both runs)`;

/** What eval reads for one package: the folders of the laid-out split and what the headline needs. */
export interface SplitLayout {
  input: string;
  reference: string;
  fov?: string;
  /** a series without the finding, for eval --negative (false-positive mL) */
  negative?: string;
  /** case key → labels present in the reference (3-class Dice is averaged over present-or-predicted) */
  present: Record<string, number[]>;
  /** the split's case ids as validation.json lists them */
  cases: (string | number)[];
  /** how the references were prepared, for the card */
  referenceNote: string;
  /** where the cases come from, relative to the data folder */
  source: string;
}

/** The pieces of eval's JSON this script reads (src/cli/eval.ts evalSummary). */
export interface EvalInterval {
  estimate: number;
  low: number;
  high: number;
  level: number;
  resamples: number;
}
export interface EvalJson {
  model: {
    id: string;
    version: string;
    sha256: string;
    provider: string;
    variant?: string;
    precision?: string;
  };
  uncertainty: string;
  mcPasses: number | null;
  seed: number;
  cases: {
    case: string;
    metrics: Record<string, number | null>;
    perLabel: Record<string, Record<string, number | null>>;
  }[];
  mean: Record<string, number | null>;
  meanInterval: Record<string, EvalInterval>;
  calibration?: {
    label: string;
    ece: number;
    bins: {
      lo: number;
      hi: number;
      count: number;
      meanProbability: number | null;
      fractionPositive: number | null;
    }[];
  };
  uncertaintyWrongVsRight?: { meanWrong: number; meanRight: number; ratio: EvalInterval; cases: number };
  thresholdSweep?: {
    label: string;
    points: { threshold: number; f1: number | null; precision: number | null; recall: number | null }[];
    best: { threshold: number; f1: number; precision: number; recall: number } | null;
  };
  negatives?: { case: string; falsePositiveMl: number; triage?: { band: string; score: number } }[];
  falsePositiveMl?: number;
}

/** The one figure a card leads with, as eval computes it and as validation.json records it. */
export interface Headline {
  name: string;
  /** from the fresh eval */
  eval: number;
  /** validation.json's figure (PyTorch at export) and the key it sits under */
  validationJson: number;
  validationKey: string;
}

function caseKey(path: string): string {
  return path.split("/").pop()!.replace(/(_training)?\.(tif|jpg|png|nii\.gz)$/i, "").replace(/_image$/, "");
}

async function requireFile(path: string, what: string): Promise<void> {
  try {
    if ((await Deno.stat(path)).isFile || (await Deno.stat(path)).isDirectory) return;
  } catch { /* reported below */ }
  throw new InputError(
    "CARD_DATA_MISSING",
    `${what} ${path} is missing: is the data folder (--data) complete?`,
  );
}

async function link(from: string, dir: string, name: string): Promise<void> {
  await requireFile(from, "case file");
  await Deno.mkdir(dir, { recursive: true });
  await Deno.symlink(from, join(dir, name));
}

async function readJson<T>(path: string): Promise<T> {
  try {
    return JSON.parse(await Deno.readTextFile(path)) as T;
  } catch (e) {
    throw new InputError("CARD_JSON", `cannot read ${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** validation.json's split.validation: the case ids the training script held out. */
export async function validationCases(id: PackageId): Promise<(string | number)[]> {
  const v = await readJson<{ split?: { validation?: (string | number)[] } }>(
    join(ROOT, "models", id, "validation.json"),
  );
  const cases = v.split?.validation;
  if (!Array.isArray(cases) || !cases.length) {
    throw new InputError("CARD_SPLIT", `models/${id}/validation.json has no split.validation list`);
  }
  return cases;
}

/**
 * Lays out the package's validation split under `tmp` (symbolic links to the data; the binary CT
 * model's references written as 0/1 PNGs, GGO ∪ consolidation, as ct.py scores infection).
 */
export async function layoutSplit(id: PackageId, data: string, tmp: string): Promise<SplitLayout> {
  const cases = await validationCases(id);
  const input = join(tmp, "img"), reference = join(tmp, "ref");
  const present: Record<string, number[]> = {};
  if (id === "retina-vessels") {
    const drive = join(data, "drive", "training");
    for (const n of cases) {
      await link(join(drive, "images", `${n}_training.tif`), input, `${n}_training.tif`);
      await link(join(drive, "1st_manual", `${n}_manual1.gif`), reference, `${n}_manual1.gif`);
      await link(join(drive, "mask", `${n}_training_mask.gif`), join(tmp, "fov"), `${n}_training_mask.gif`);
    }
    return {
      input,
      reference,
      fov: join(tmp, "fov"),
      present,
      cases,
      referenceNote: "1st_manual, read as value > 0; metrics inside the FOV mask",
      source: "drive/training (images, 1st_manual, mask)",
    };
  }
  if (id === "ct-lung-infection" || id === "ct-lung-infection-3class") {
    const ct = join(data, "covid-ct", "MultiClassInfection-Train");
    await Deno.mkdir(reference, { recursive: true });
    for (const k of cases) {
      await link(join(ct, "Imgs", `${k}.jpg`), input, `${k}.jpg`);
      const gtPath = join(ct, "GT", `${k}.png`);
      await requireFile(gtPath, "reference");
      const gt = readLabelImage(await Deno.readFile(gtPath));
      const [width, height] = gt.geometry.dims;
      const values = gt.data as Uint8Array;
      const labels = new Set<number>();
      for (const v of values) if (v > 0) labels.add(v);
      present[String(k)] = [...labels].sort();
      const out = id === "ct-lung-infection" ? values.map((v) => (v > 0 ? 1 : 0)) : values;
      await Deno.writeFile(join(reference, `${k}.png`), writePng(width, height, out, 1));
    }
    return {
      input,
      reference,
      negative: join(data, "dicom", "ct-abdomen", "raw"),
      present,
      cases,
      referenceNote: id === "ct-lung-infection"
        ? "GT masks binarised (GGO ∪ consolidation > 0 → 1)"
        : "GT masks as labelled (1 GGO, 2 consolidation)",
      source: "covid-ct/MultiClassInfection-Train (Imgs, GT)",
    };
  }
  const la = join(data, "la-mri");
  for (const c of cases) {
    await link(join(la, `${c}_image.nii.gz`), input, `${c}_image.nii.gz`);
    await link(join(la, `${c}_label.nii.gz`), reference, `${c}_label.nii.gz`);
  }
  return { input, reference, present, cases, referenceNote: "label > 0", source: "la-mri" };
}

/** The arguments of one eval run; temporary paths as given (the record replaces them). */
export function evalArgs(
  id: PackageId,
  split: SplitLayout,
  json: string,
  mc: boolean,
  options: { negative?: boolean; variant?: string } = {},
): string[] {
  const args = ["--model", id, "--input", split.input, "--reference", split.reference];
  if (options.variant) args.push("--variant", options.variant);
  if (split.fov) args.push("--fov", split.fov);
  if (mc) args.push("--uncertainty", "mc", "--seed", "0");
  else if (split.negative && options.negative !== false) args.push("--negative", split.negative);
  args.push("--device", "cpu", "--json", json);
  return args;
}

/** Runs `deno task eval` as a user does and returns its JSON; an exit code ≠ 0 throws with its stderr. */
export async function runEval(args: string[], log: (line: string) => void = () => {}): Promise<EvalJson> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(ROOT, "src", "cli", "eval.ts"), ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const dec = new TextDecoder();
  const stdout = dec.decode(out.stdout);
  for (const line of stdout.split("\n")) if (line.trim()) log(line);
  if (out.code !== 0) {
    throw new InputError(
      "CARD_EVAL_FAILED",
      `deno task eval ${args.join(" ")} failed:\n${dec.decode(out.stderr)}`,
    );
  }
  const json = args[args.indexOf("--json") + 1];
  return await readJson<EvalJson>(json);
}

function finite(v: number | null | undefined): v is number {
  return typeof v === "number" && Number.isFinite(v);
}

/**
 * A label's Dice averaged over the cases where the label is in the reference or in the prediction
 * (ct.py's per-class convention): a case without the label in its reference scores Dice 1 in eval
 * exactly when nothing was predicted, and is then left out.
 */
export function presentOrPredictedDice(
  run: EvalJson,
  label: string,
  value: number,
  split: SplitLayout,
): number {
  const kept: number[] = [];
  for (const c of run.cases) {
    const d = c.perLabel[label]?.dice;
    if (!finite(d)) continue;
    const inRef = (split.present[caseKey(c.case)] ?? []).includes(value);
    if (!inRef && d === 1) continue;
    kept.push(d);
  }
  return kept.length ? kept.reduce((a, b) => a + b, 0) / kept.length : NaN;
}

/** The headline figure(s) of a package, from a fresh eval and from validation.json. */
export async function headlines(id: PackageId, run: EvalJson, split: SplitLayout): Promise<Headline[]> {
  const v = await readJson<{ fp32: Record<string, number> }>(join(ROOT, "models", id, "validation.json"));
  const mean = run.mean.dice ?? NaN;
  if (id === "retina-vessels") {
    return [{
      name: "mean image Dice (F1) inside the FOV",
      eval: mean,
      validationJson: v.fp32.meanImageDice,
      validationKey: "fp32.meanImageDice",
    }];
  }
  if (id === "ct-lung-infection") {
    return [{
      name: "infection Dice, mean over slices",
      eval: mean,
      validationJson: v.fp32.infectionDice,
      validationKey: "fp32.infectionDice",
    }];
  }
  if (id === "ct-lung-infection-3class") {
    return [
      {
        name: "GGO Dice, mean over slices where present or predicted",
        eval: presentOrPredictedDice(run, "Ground-glass opacity", 1, split),
        validationJson: v.fp32.ggoDice,
        validationKey: "fp32.ggoDice",
      },
      {
        name: "consolidation Dice, mean over slices where present or predicted",
        eval: presentOrPredictedDice(run, "Consolidation", 2, split),
        validationJson: v.fp32.consolidationDice,
        validationKey: "fp32.consolidationDice",
      },
    ];
  }
  return [{
    name: "Dice, mean over volumes",
    eval: mean,
    validationJson: v.fp32.dice,
    validationKey: "fp32.dice",
  }];
}

/** The package's own decision rule for the swept label, to compare with the sweep's best threshold. */
async function packageThreshold(id: PackageId): Promise<{ threshold: number; rule: string }> {
  const m = await readJson<{ activation: string; labels: { threshold?: number }[] }>(
    join(ROOT, "models", id, "manifest.json"),
  );
  if (m.activation === "sigmoid") {
    return { threshold: m.labels[0].threshold ?? 0.5, rule: "sigmoid, manifest labels[0].threshold" };
  }
  return {
    threshold: 0.5,
    rule: "argmax of a 2-class softmax (p ≥ 0.5; the manifest has no threshold for softmax)",
  };
}

async function git(...args: string[]): Promise<string> {
  const out = await new Deno.Command("git", { args, cwd: ROOT, stdout: "piped", stderr: "null" }).output();
  return out.code === 0 ? new TextDecoder().decode(out.stdout).trim() : "";
}

async function versions(): Promise<Record<string, string>> {
  const ort = await readJson<{ version: string }>(
    join(ROOT, "node_modules", "onnxruntime-node", "package.json"),
  )
    .then((p) => p.version, () => "absent");
  return { edgeseg: EDGESEG_VERSION, deno: Deno.version.deno, onnxruntimeNode: ort };
}

const round = (v: number | null | undefined, d = 6): number | null =>
  finite(v) ? Math.round(v * 10 ** d) / 10 ** d : null;

function interval(i: EvalInterval | undefined): Record<string, number | null> | null {
  return i ? { estimate: round(i.estimate), low: round(i.low), high: round(i.high) } : null;
}

function calibration(run: EvalJson): Record<string, unknown> | null {
  const c = run.calibration;
  if (!c) return null;
  return {
    label: c.label,
    ece: round(c.ece),
    bins: c.bins.map((b) => ({
      lo: b.lo,
      hi: b.hi,
      count: b.count,
      meanProbability: round(b.meanProbability, 4),
      fractionPositive: round(b.fractionPositive, 4),
    })),
  };
}

/** One manifest variant's deterministic run (`--variant <id>`), beside the main model's. */
export interface VariantRun {
  id: string;
  file: string;
  precision: string;
  description?: string;
  run: EvalJson;
  args: string[];
}

/** The card's evidence from the runs; small (no per-pixel data), no temporary paths. */
export async function cardEvidence(
  id: PackageId,
  split: SplitLayout,
  det: EvalJson,
  mc: EvalJson,
  commands: { det: string[]; mc: string[] },
  tmp: string,
  data: string,
  variantRuns: VariantRun[] = [],
): Promise<Record<string, unknown>> {
  // no machine paths in the record: the split folder and the data folder by their roles
  const relabel = (args: string[]) =>
    [
      "deno task eval",
      ...args.map((a) =>
        a.startsWith(tmp)
          ? `<split>${a.slice(tmp.length)}`
          : a.startsWith(data)
          ? `../shared/data${a.slice(data.length)}`
          : a
      ),
    ].join(" ");
  const head = await headlines(id, det, split);
  const pkgThreshold = await packageThreshold(id);
  const sweep = det.thresholdSweep;
  const atPackage = sweep?.points.find((p) => Math.abs(p.threshold - pkgThreshold.threshold) < 1e-9);
  const commit = await git("rev-parse", "HEAD");
  const dirty = await git(
    "status",
    "--porcelain",
    "--untracked-files=no",
    "--",
    "src",
    "models",
    "package.json",
    "deno.json",
  );
  const dirtyPaths = dirty.split("\n").filter((l) => l && !/(eval\.json|MODEL_CARD\.md)$/.test(l));
  const labels = Object.keys(det.cases[0]?.perLabel ?? {});
  return {
    schema: "edgeseg-card-eval/1",
    note: "written by deno task card-eval (models/training/eval_cards.ts); models/training/cards.py reads it",
    model: {
      id: det.model.id,
      version: det.model.version,
      sha256: det.model.sha256,
      provider: det.model.provider,
    },
    split: {
      cases: split.cases,
      from: `validation.json split.validation; data ../shared/data/${split.source}`,
      reference: split.referenceNote,
    },
    headline: head.map((h) => ({ ...h, eval: round(h.eval), validationJson: round(h.validationJson) })),
    cases: det.cases.map((c, i) => ({
      case: caseKey(c.case),
      ...Object.fromEntries(CASE_METRICS.map((m) => [m, round(c.metrics[m])])),
      ...(labels.length > 1
        ? { perLabelDice: Object.fromEntries(labels.map((l) => [l, round(c.perLabel[l]?.dice)])) }
        : {}),
      mcDice: round(mc.cases[i]?.metrics.dice),
    })),
    mean: Object.fromEntries(CASE_METRICS.map((m) => [m, interval(det.meanInterval[m])])),
    mcMean: { dice: interval(mc.meanInterval.dice) },
    bootstrap: {
      level: det.meanInterval.dice?.level ?? null,
      resamples: det.meanInterval.dice?.resamples ?? null,
      over: "cases (percentile bootstrap, seed 1; src/segmentation/bootstrap.ts)",
    },
    calibration: { deterministic: calibration(det), mc: calibration(mc) },
    mc: { passes: mc.mcPasses, seed: mc.seed, measure: "entropy" },
    uncertaintyWrongVsRight: mc.uncertaintyWrongVsRight
      ? {
        meanWrong: round(mc.uncertaintyWrongVsRight.meanWrong),
        meanRight: round(mc.uncertaintyWrongVsRight.meanRight),
        ratio: interval(mc.uncertaintyWrongVsRight.ratio),
        cases: mc.uncertaintyWrongVsRight.cases,
      }
      : null,
    thresholdSweep: sweep
      ? {
        label: sweep.label,
        points: sweep.points.map((p) => ({
          threshold: p.threshold,
          f1: round(p.f1),
          precision: round(p.precision),
          recall: round(p.recall),
        })),
        best: sweep.best
          ? {
            threshold: sweep.best.threshold,
            f1: round(sweep.best.f1),
            precision: round(sweep.best.precision),
            recall: round(sweep.best.recall),
          }
          : null,
        package: { ...pkgThreshold, f1: round(atPackage?.f1) },
        pooled: "F1 pooled over the pixels of the validation cases, probabilities quantised to 1/255",
      }
      : null,
    negatives: det.negatives?.length
      ? {
        series: "../shared/data/dicom/ct-abdomen/raw (non-COVID CT, no lung infection)",
        falsePositiveMl: round(det.falsePositiveMl, 3),
        triage: det.negatives[0].triage
          ? { band: det.negatives[0].triage.band, score: round(det.negatives[0].triage.score, 4) }
          : null,
      }
      : null,
    variants: await Promise.all(variantRuns.map(async (v) => {
      const vh = await headlines(id, v.run, split);
      return {
        id: v.id,
        file: v.file,
        precision: v.precision,
        description: v.description ?? null,
        sha256: v.run.model.sha256,
        headline: vh.map((h, i) => ({
          name: h.name,
          eval: round(h.eval),
          main: round(head[i].eval),
          difference: round(h.eval - head[i].eval),
        })),
        dice: interval(v.run.meanInterval.dice),
        cases: v.run.cases.map((c) => ({ case: caseKey(c.case), dice: round(c.metrics.dice) })),
        falsePositiveMl: v.run.negatives?.length ? round(v.run.falsePositiveMl, 3) : null,
        command: relabel(v.args),
      };
    })),
    provenance: {
      command: `deno task card-eval --model ${id}`,
      evalCommands: [relabel(commands.det), relabel(commands.mc), ...variantRuns.map((v) => relabel(v.args))],
      versions: await versions(),
      commit: commit || null,
      uncommittedChanges: dirtyPaths.length > 0,
      generatedAt: new Date().toISOString(),
    },
  };
}

/** Evaluates one package and writes models/<id>/eval.json (unless mc is false); returns the evidence. */
export async function evaluatePackage(
  id: PackageId,
  data: string,
  options: { mc?: boolean; log?: (line: string) => void } = {},
): Promise<Record<string, unknown> | null> {
  const log = options.log ?? (() => {});
  const tmp = await Deno.makeTempDir({ prefix: `edgeseg-card-${id}-` });
  try {
    const split = await layoutSplit(id, data, tmp);
    const detArgs = evalArgs(id, split, join(tmp, "det.json"), false);
    log(`${id}: deterministic run`);
    const det = await runEval(detArgs, log);
    if (options.mc === false) return null;
    const mcArgs = evalArgs(id, split, join(tmp, "mc.json"), true);
    log(`${id}: MC dropout run`);
    const mc = await runEval(mcArgs, log);
    const manifest = await readJson<
      { variants?: { id: string; file: string; precision: string; description?: string }[] }
    >(
      join(ROOT, "models", id, "manifest.json"),
    );
    const variantRuns: VariantRun[] = [];
    for (const v of manifest.variants ?? []) {
      const args = evalArgs(id, split, join(tmp, `variant-${v.id}.json`), false, { variant: v.id });
      log(`${id}: deterministic run of variant ${v.id}`);
      variantRuns.push({ ...v, run: await runEval(args, log), args });
    }
    const evidence = await cardEvidence(
      id,
      split,
      det,
      mc,
      { det: detArgs, mc: mcArgs },
      tmp,
      data.replace(/\/$/, ""),
      variantRuns,
    );
    await writeFileAtomic(join(ROOT, "models", id, "eval.json"), JSON.stringify(evidence, null, 1) + "\n");
    log(`wrote models/${id}/eval.json`);
    return evidence;
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

async function main(): Promise<void> {
  const args = parseArgs(Deno.args, ["help", "no-mc"]);
  if (args.flags.has("help")) {
    console.log(USAGE);
    return;
  }
  const ids = (args.flags.get("model") ?? [...PACKAGES]) as string[];
  for (const id of ids) {
    if (!(PACKAGES as readonly string[]).includes(id)) {
      throw new InputError("CARD_MODEL", `--model expects one of ${PACKAGES.join(", ")}, found ${id}`);
    }
  }
  const data = flag(args, "data") ?? join(ROOT, "..", "shared", "data");
  await requireFile(data, "data folder");
  for (const id of ids as PackageId[]) {
    await evaluatePackage(id, data, { mc: !args.flags.has("no-mc"), log: (l) => console.log(l) });
  }
}

if (import.meta.main) await main().catch(reportError);
