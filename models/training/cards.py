#!/usr/bin/python3
"""Writes MODEL_CARD.md for each exported package from its manifest.json, validation.json (PyTorch, written by
the training script's `export`) and eval.json (`deno task card-eval`: the package through `deno task eval` on
its validation split), so every number in a card is one a script measured; this file states none.

    /usr/bin/python3 models/training/cards.py [package ids…]
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402


def f4(v):
    return "n/a" if v is None or v != v else ("%.4f" % v).replace("-0.0000", "0.0000")


def f2(v):
    return "n/a" if v is None or v != v else ("%.2f" % v).replace("-0.00", "0.00")


def files_table(man):
    rows = ["| file | bytes | sha256 |", "|---|---|---|"]
    for name, e in man["files"].items():
        rows.append("| `%s` | %d | `%s…` |" % (name, e["bytes"], e["sha256"][:16]))
    return "\n".join(rows)


def ci(i, fmt=f4):
    if not i:
        return "n/a"
    return "%s (%s–%s)" % (fmt(i["estimate"]), fmt(i["low"]), fmt(i["high"]))


CASE_COLS = [("dice", "Dice", f4), ("iou", "IoU", f4), ("precision", "precision", f4), ("recall", "recall", f4),
             ("specificity", "specificity", f4), ("auc", "AUC", f4), ("hd95_mm", "HD95", f2), ("assd_mm", "ASSD", f2)]


def sweep_text(e, chosen=False):
    """The eval's threshold sweep; `chosen`: the package's threshold was chosen on this split at export."""
    sw = e.get("thresholdSweep")
    if not sw:
        return ("No threshold sweep: the package labels each pixel by the argmax over its classes, which has no "
                "threshold to choose.")
    best, pkg = sw["best"], sw["package"]
    rows = ["| threshold | F1 (pooled) | precision | recall |", "|---|---|---|---|"]
    for p in sw["points"]:
        mark = " (package)" if abs(p["threshold"] - pkg["threshold"]) < 1e-9 else ""
        mark += " (best)" if best and abs(p["threshold"] - best["threshold"]) < 1e-9 else ""
        if round(p["threshold"] * 100) % 10 == 0 or mark:
            rows.append("| %.2f%s | %s | %s | %s |" % (p["threshold"], mark, f4(p["f1"]), f4(p["precision"]),
                                                      f4(p["recall"])))
    if best and abs(best["threshold"] - pkg["threshold"]) < 1e-9:
        verdict = "The package's threshold %.2f is the sweep's best." % pkg["threshold"]
    elif best and chosen:
        verdict = ("The sweep's best threshold here is %.2f (pooled F1 %s); the package's %.2f (pooled F1 %s, %+.4f) "
                   "was chosen on the same split by the export's sweep of the mean image Dice (see the training "
                   "recipe)." % (best["threshold"], f4(best["f1"]), pkg["threshold"], f4(pkg["f1"]),
                                 (pkg["f1"] or 0) - best["f1"]))
    elif best:
        verdict = ("The sweep's best threshold on the validation split is **%.2f** (pooled F1 %s); the package uses "
                   "%.2f (%s; pooled F1 %s there, %+.4f). The package is left as it is: a threshold chosen on these "
                   "%d cases would be tuned on the split that also selected the checkpoint, and the difference is "
                   "%s." % (best["threshold"], f4(best["f1"]), pkg["threshold"], pkg["rule"], f4(pkg["f1"]),
                            (pkg["f1"] or 0) - best["f1"], len(e["cases"]),
                            "small" if best["f1"] - (pkg["f1"] or 0) < 0.005 else "not small"))
    else:
        verdict = ""
    return ("Threshold sweep of the probability of `%s` on the validation split (every 0.05 from 0.05 to 0.95; rows "
            "every 0.1 plus the package's and the best; F1 pooled over the pixels of all cases):\n\n%s\n\n%s" % (
                sw["label"], "\n".join(rows), verdict))


def calibration_table(e):
    det, mc = e["calibration"]["deterministic"], e["calibration"]["mc"]
    if not det:
        return ""
    rows = ["| probability bin | pixels | mean p / observed (deterministic) | pixels (MC) | mean p / observed (MC) |",
            "|---|---|---|---|---|"]
    for i, b in enumerate(det["bins"]):
        m = mc["bins"][i] if mc else None
        rows.append("| %.1f–%.1f | %d | %s / %s | %s | %s |" % (
            b["lo"], b["hi"], b["count"], f4(b["meanProbability"]), f4(b["fractionPositive"]),
            "%d" % m["count"] if m else "n/a", "%s / %s" % (f4(m["meanProbability"]), f4(m["fractionPositive"])) if m else "n/a"))
    return "\n".join(rows)


WEIGHT_ONLY_INT8 = """`model.int8.onnx` is weight-only INT8: each Conv weight is stored as int8 with one symmetric scale per
output channel and restored by `DequantizeLinear` (per-tensor scales are wrong on the JSEP WebGPU EP).
Activations stay float32, so speed is unchanged; the download is about 4× smaller."""

STATIC_INT8 = """`model.int8.onnx` is static INT8 (QDQ, `models/training/quantize_qdq.py`): Conv weights int8 per output
channel (symmetric), biases int32, and every activation up to the MC-dropout mask uint8 with a per-tensor scale
calibrated (min/max) on the training slices and the training half of the non-COVID CT's lung slices; from the
mask on (mask, 1×1 head, log-sum-exp) it stays float32. onnxruntime's optimiser fuses it into QLinearConv,
QLinearAdd, QLinearMul, QLinearSigmoid and QLinearConcat (`check_onnx.mjs` checks the fusion), so it runs
integer kernels: faster in WASM and natively (`bench/results.md`, section "int8"), about 4× smaller. It is
meant for the WASM and CPU providers; nothing selects it on its own (`deno task segment|eval --variant int8`).
Its accuracy is measured through `deno task eval` under "Evaluation" ("Variants")."""


def static_int8(man):
    """True when the package's int8 variant is static QDQ (quantize_qdq.py) rather than weight-only."""
    return any(v.get("precision") == "int8" and v.get("description", "").startswith("static")
               for v in man.get("variants", []))


def int8_paragraph(man):
    return STATIC_INT8 if static_int8(man) else WEIGHT_ONLY_INT8


def variants_text(man, e):
    """The variants' deterministic runs from eval.json, next to the main model's (empty when none)."""
    vs = e.get("variants") or []
    if not vs:
        return ""
    lines = ["", "### Variants", "",
             "Each variant scored on the same split, deterministic (`--variant <id>`), on onnxruntime-node's CPU "
             "provider:", ""]
    for v in vs:
        one = len(v["headline"]) == 1
        lines.append("- `%s` (`%s`, %s):" % (v["id"], v["file"], v["precision"]))
        for h in v["headline"]:
            lines.append("  %s **%s** (main model %s, difference %+.4f)%s." % (
                h["name"], f4(h["eval"]), f4(h["main"]), h["difference"],
                "; 95 %% interval %s–%s" % (f4(v["dice"]["low"]), f4(v["dice"]["high"])) if one and v.get("dice")
                else ""))
        if v.get("falsePositiveMl") is not None and e.get("negatives"):
            lines.append("  On the shared non-COVID CT it marks **%s mL** (main model %s mL)." % (
                f2(v["falsePositiveMl"]), f2(e["negatives"]["falsePositiveMl"])))
        lines.append("  Per case: %s." % ", ".join("%s: %s" % (c["case"], f4(c["dice"])) for c in v["cases"]))
    return "\n".join(lines) + "\n"


def evaluation(man, e, chosen=False):
    """The card's section from eval.json: every figure in it is read from that file."""
    if not e:
        return """
## Evaluation with `deno task eval` (validation split)

Not measured yet: run `deno task card-eval --model %s` (writes `eval.json`), then this script.
""" % man["id"]
    stale = e["model"]["sha256"] != man["files"]["model.onnx"]["sha256"] if "model.onnx" in man["files"] else False
    # the interval belongs to the mean Dice; headlines that are not the mean Dice carry none
    lines = []
    for h in e["headline"]:
        iv = e["mean"]["dice"] if h["name"].startswith(("mean image Dice", "infection Dice", "Dice, mean")) else None
        lines.append("- %s: **%s**%s; `validation.json` (`%s`, PyTorch at export): %s, difference %+.4f." % (
            h["name"], f4(h["eval"]),
            " (95 %% interval %s–%s, bootstrap over the %d cases)" % (f4(iv["low"]), f4(iv["high"]), len(e["cases"]))
            if iv else "", h["validationKey"], f4(h["validationJson"]), h["eval"] - h["validationJson"]))
    head = "\n".join(lines)
    per_label = "perLabelDice" in (e["cases"][0] if e["cases"] else {})
    label_names = list(e["cases"][0]["perLabelDice"]) if per_label else []
    cols = CASE_COLS + [("mcDice", "Dice (MC)", f4)]
    hdr = "| case | " + " | ".join(c[1] for c in cols) + "".join(" | %s Dice" % n for n in label_names) + " |"
    rows = [hdr, "|" + "---|" * (len(cols) + len(label_names) + 1)]
    for c in e["cases"]:
        rows.append("| %s | " % c["case"] + " | ".join(f(c[k]) for k, _, f in cols)
                    + "".join(" | %s" % f4(c["perLabelDice"][n]) for n in label_names) + " |")
    means = ["| metric | mean (95 % interval) |", "|---|---|"]
    for k, name, f in CASE_COLS:
        means.append("| %s | %s |" % (name, ci(e["mean"][k], f)))
    means.append("| Dice with MC dropout | %s |" % ci(e["mcMean"]["dice"]))
    cal = e["calibration"]
    u = e.get("uncertaintyWrongVsRight")
    unc = ("MC-dropout uncertainty (%s over %d passes, seed %d) is **%s× higher on wrongly labelled pixels than on "
           "rightly labelled ones** (95 %% interval %s–%s, bootstrap over the %d cases; mean %s vs %s)." % (
               e["mc"]["measure"], e["mc"]["passes"], e["mc"]["seed"], f2(u["ratio"]["estimate"]),
               f2(u["ratio"]["low"]), f2(u["ratio"]["high"]), u["cases"], f4(u["meanWrong"]), f4(u["meanRight"]))
           if u else "No uncertainty comparison (the MC run found no wrong or no right pixels).")
    neg = e.get("negatives")
    neg_txt = ("\nOn the shared non-COVID CT (%s), `eval --negative` marks **%s mL** (triage %s, score %s).\n" % (
        neg["series"].split(" (")[0].replace("../shared/data/", ""), f2(neg["falsePositiveMl"]),
        neg["triage"]["band"] if neg.get("triage") else "not configured",
        f4(neg["triage"]["score"]) if neg.get("triage") else "n/a") if neg else "")
    prov = e["provenance"]
    ver = prov["versions"]
    return f"""
## Evaluation with `deno task eval` (validation split, `eval.json`)

{'**Stale:** `eval.json` was measured on other weights than this package holds; rerun `deno task card-eval`.' if stale else ''}
The validation cases {', '.join(str(c) for c in e['split']['cases'])} (from `validation.json`; references:
{e['split']['reference']}) scored by the package itself, on onnxruntime-node's CPU provider, as
`deno task eval` reports them (per case: metrics inside the field of view when there is one, averaged over the
labels; HD95/ASSD in mm from the voxel spacing, in pixels for images without one). Headline:

{head}

{chr(10).join(rows)}

Means over the cases, with 95 % intervals from the percentile bootstrap over cases ({e['bootstrap']['resamples']}
resamples, seed 1):

{chr(10).join(means)}

### Calibration and uncertainty

Expected calibration error of the probability of `{cal['deterministic']['label'] if cal['deterministic'] else 'the first label'}` (10 bins, pixels pooled over the cases):
deterministic **{f4(cal['deterministic']['ece']) if cal['deterministic'] else 'n/a'}**, with MC dropout ({e['mc']['passes']} passes, mean probability)
**{f4(cal['mc']['ece']) if cal['mc'] else 'n/a'}**. Reliability diagram (mean predicted probability / observed fraction of the label):

{calibration_table(e)}

{unc}

### Threshold

{sweep_text(e, chosen)}
{neg_txt}{variants_text(man, e)}
Produced by `{prov['command']}` (EdgeSeg {ver['edgeseg']}, Deno {ver['deno']}, onnxruntime-node
{ver['onnxruntimeNode']}, commit {(prov['commit'] or 'unknown')[:12]}{' with uncommitted changes' if prov['uncommittedChanges'] else ''}), which ran
{' and '.join('`%s`' % c for c in prov['evalCommands'])} on the split laid out in a temporary folder.
"""


COMMON_TAIL = """
## Intended use

Research and education only. This model is **not a medical device**, has not been clinically validated,
and must not be used for diagnosis, triage or treatment decisions. Its numbers come from a handful of
validation images on a CPU-only training budget (see "Known limits").

## Uncertainty

MC dropout: the last decoder features are multiplied by a channel mask supplied as the input `mc_mask`
(shape in the manifest, values 0 or 1/(1-p), p = {rate}); an all-ones mask gives the deterministic
prediction. The EdgeSeg pipeline draws masks from a mulberry32 PRNG per pass seed, so samples are
reproducible on every execution provider. Flip TTA axes are listed in the manifest.

## Files

{files}

{int8}

## Reproduce

See `models/training/README.md`; the split and metric definitions of "Validation" are exactly what
`models/training/{script} validate` computes, and "Evaluation" is `deno task card-eval --model {id}` (its
`eval.json` sits beside this card).{history} `node models/training/check_onnx.mjs models/{id}` checks
the ONNX files against the manifest (sha256, names, shapes) and against the PyTorch outputs recorded at
export.
"""


# The data paragraph of every card of a package trained on DRIVE.
DRIVE_TERMS = """DRIVE (Digital Retinal Images for Vessel Extraction), training part only: 20 colour fundus photographs
565×584 (images 21–40) with one manual vessel annotation (`1st_manual`) and a field-of-view (FOV) mask.
Terms: research and education only; redistribution of the data is prohibited, and results must
acknowledge DRIVE. The data are not in this repository; the weights are derived from them and inherit
the research-only restriction.
Citation: J.J. Staal, M.D. Abràmoff, M. Niemeijer, M.A. Viergever, B. van Ginneken, "Ridge-based vessel
segmentation in color images of the retina", IEEE TMI 23(4):501–509, 2004."""


def threshold_choice(v, thr, metric, script):
    """How the package's threshold was chosen: the export's sweep on the validation split, when it ran."""
    sw = v.get("thresholdSweep")
    if not sw:
        return ('The threshold (%s) was not tuned; the threshold sweep on the validation split is under '
                '"Evaluation".' % thr)
    key = "meanImageDice" if metric == "mean image Dice" else "dice"
    at = {round(r["threshold"], 2): r[key] for r in sw}
    best = max(sw, key=lambda r: r[key])
    return ("The threshold (%s) was chosen on the validation split: `%s validate --sweep` gives %s %s at 0.5 and "
            "%s at %s (best of %.2f–%.2f: %.2f). It is chosen on the same cases that select the checkpoint and "
            "report it, so the validation figures at this threshold are optimistic by up to that difference."
            % (thr, script, metric, f4(at.get(0.5)), f4(at.get(round(thr, 2))), thr, sw[0]["threshold"],
               sw[-1]["threshold"], best["threshold"]))


def training_time(v, script):
    """How long the shipped weights trained (issue #19): each fine-tune whose train.log was summarised at export
    (`validation.json` `fineTunes[].training`, from `common.log_summary`); the earlier runs' logs went with
    their machines, which the line says instead of guessing."""
    def took(t):
        return ("%d steps, %s min wall-clock on %d CPU thread%s in %d session%s, periodic validations included"
                % (t["steps"], t["minutes"], t["threads"], "" if t["threads"] == 1 else "s", t["sessions"],
                   "" if t["sessions"] == 1 else "s") if t else "not recorded")
    sr = v.get("scratchRun")
    if sr:
        runs = ["%s, one run from random weights (`--name %s`): %s" % (sr["version"], sr["run"], took(sr.get("training")))]
        runs += ["ensemble member %s (`--name %s`): %s" % (f, m["run"], took(m.get("training")))
                 for f, m in (v.get("ensembleMembers") or {}).items() if m.get("run")]
        return "Training time (`%s`'s logs, summarised at export): %s." % (script, "; ".join(runs))
    runs = ["%s fine-tune (`--name %s`): %s" % (ft["version"], ft["run"], took(ft.get("training")))
            for ft in v.get("fineTunes") or []]
    runs.append("earlier runs: not recorded (their `train.log` files were not kept; the step schedules are in "
                "`models/training/README.md`)")
    return "Training time (`%s`'s logs, summarised at export): %s." % (script, "; ".join(runs))


def member_seed(fname):
    """The seed of an ensemble member from its file name (`model.seedN.onnx`, as retina.py exports it)."""
    return fname.split(".")[1][len("seed"):]


def retina_schedule(v):
    """The recipe's run lines: one long run from random weights (`scratchRun`, from 1.3.0) or the 1.0.0 run and
    its fine-tune (earlier versions)."""
    sr = v.get("scratchRun")
    if not sr:
        return """- Debian PyTorch 1.13 on CPU, 1 thread, seed 1; the checkpoint with the best validation F1 (evaluated
  periodically) is kept. The exact step schedule, with its resumes, is in `models/training/README.md`
  ("Training history").
- Then fine-tuned from that package's own ONNX weights (`--init-onnx package`: BatchNorms folded into the
  convolutions and frozen) for 2000 steps at lr 5e-4 (seed 2: 1500 steps), same data and augmentation; the
  best validation F1 of the fine-tune is exported: step %s of the fine-tune.""" % v["checkpointStep"]
    t = sr.get("training") or {}
    members = "".join(" Ensemble member %s: the same recipe with seed %s (`--name %s`), best step %s." % (
        f, member_seed(f), m["run"], m["step"]) for f, m in (v.get("ensembleMembers") or {}).items()
        if m.get("run"))
    return ("- Debian PyTorch 1.13 on CPU, 1 thread, seed %s: one run from random weights of %s steps with validation "
            "F1 every 250 steps (`retina.py train --seed %s --steps %s --name %s`); the best checkpoint is exported: "
            "step %s.%s Earlier versions (1.0.0–1.2.0: a 1500-step run, then a fine-tune of its package) are in "
            "`HISTORY.md`." % (sr["seed"], t.get("steps", "?"), sr["seed"], t.get("steps", "?"), sr["run"],
                               sr["checkpointStep"], members))


def retina(man, v, e):
    fp, q = v["fp32"], v["int8"]
    thr = man["labels"][0].get("threshold", 0.5)
    ens = v.get("ensembleMembers", {})
    ens_txt = ""
    for name, m in ens.items():
        ens_txt += "\n| %s (ensemble member, seed %s) | %s | %s | %s | %s | %s |" % (
            name, member_seed(name), f4(m["f1"]), f4(m["auc"]), f4(m["sensitivity"]), f4(m["specificity"]), f4(m["accuracy"]))
    return f"""# Model card: {man['name']} (`{man['id']}` {man['version']})

{man['description']}

## Data and terms

{DRIVE_TERMS}

## Model

Attention residual U-Net (2D): residual units (conv-BN-ReLU-conv-BN + projected identity), 3 strided
downsamplings (16-32-64-128 channels), bilinear Resize + conv upsampling, additive attention gates on
every skip (Oktay et al. 2018), channel dropout p = {man['uncertainty']['mcDropout']['rate']} before the 1×1 head, one sigmoid
output (vessel probability). {v['params']:,} parameters.

Input (as declared in the manifest, so the viewer reproduces it exactly): the **green channel** of the RGB
photograph (`channels: [1]`), **z-scored over the whole image** (`zscore`, mask "all"). Inference: one window
over the whole photograph (`"window": [-1, -1]`; until 1.0.0, 256×256 windows with 25 % overlap and Gaussian
blending), threshold {thr} (manifest `labels[0].threshold`).

## Training recipe

- Split (fixed): train = images {v['split']['train'][0]}–{v['split']['train'][-1]} (16), validation = images {', '.join(str(i) for i in v['split']['validation'])} (4).
- Random 128×128 patches (centre inside the FOV 90 % of the time), batch 8, random 90° rotations and
  flips, z-score contrast ×U(0.85, 1.15) and offset U(−0.15, 0.15).
- Loss: BCE + soft Dice. AdamW (lr 2e-3, weight decay 1e-4), 50 warm-up steps then cosine decay.
{retina_schedule(v)}
- {threshold_choice(v, thr, "mean image Dice", "retina.py")}
- {training_time(v, "retina.py")}

## Validation (own split, images {', '.join(str(i) for i in v['split']['validation'])})

Metrics are computed **inside the FOV mask only**, with all FOV pixels of the 4 validation images pooled
(DRIVE convention); F1 = pixel Dice at threshold {thr}; AUC = ROC area from the pooled probabilities
(rank-sum formula). "Mean image Dice" averages per-image F1. Labels read as `value > 0`.

| model | F1 (Dice) | AUC | sensitivity | specificity | accuracy |
|---|---|---|---|---|---|
| model.onnx (fp32) | {f4(fp['f1'])} | {f4(fp['auc'])} | {f4(fp['sensitivity'])} | {f4(fp['specificity'])} | {f4(fp['accuracy'])} |
| model.int8.onnx | {f4(q['f1'])} | {f4(q['auc'])} | {f4(q['sensitivity'])} | {f4(q['specificity'])} | {f4(q['accuracy'])} |{ens_txt}

Mean image Dice: fp32 {f4(fp['meanImageDice'])}, int8 {f4(q['meanImageDice'])}. INT8 − fp32 F1 difference:
{f4(q['f1'] - fp['f1'])}. The int8 numbers come from the same weights rounded exactly as in
`model.int8.onnx` (per-channel symmetric int8 of the BN-folded conv weights).

Targets from issue #19: F1 ≥ 0.83 and AUC ≥ 0.985 — {'**met** on this split, which also selected the checkpoint (optimistic; the held-out test set decides)' if fp['f1'] >= 0.83 and fp['auc'] >= 0.985 else '**not met** by this package (F1 %.3f, AUC %.3f)' % (fp['f1'], fp['auc'])}. Reference points on the DRIVE
*test* set (not comparable one-to-one with 4 validation images): orobix retina-unet F1 0.816 / AUC 0.979;
second human observer F1 0.789.
{evaluation(man, e, "thresholdSweep" in v)}
## Known limits

- Trained on 16 images from one camera (Canon CR5, 45° FOV) and one screening population; other cameras,
  resolutions (the net sees pixels, not millimetres) and pathologies are untested.
- The validation split has only 4 images, and the checkpoint was selected on it, so the numbers are
  optimistic; the held-out DRIVE test set is scored separately.
- Thin capillaries at the FOV border and the optic-disc rim are the main error sources.
- Closing the gap (if any) to the targets: much longer training at full resolution on a GPU ({"the main run had %s minutes of one CPU thread" % v['scratchRun']['training']['minutes'] if (v.get('scratchRun') or {}).get('training') else 'these runs had ~2 hours of one CPU thread each'}; going from about 3000 steps of run and fine-tune to one
  5000-step schedule gained +0.009 F1 and +0.003 AUC), all 20 images after model selection, and more ensemble
  members.
""" + COMMON_TAIL.format(rate=man['uncertainty']['mcDropout']['rate'], files=files_table(man), int8=int8_paragraph(man),
                         script="retina.py", id=man["id"], history=history(man["id"]))


def ct_inference(man):
    sp = man["spatial"]
    if sp.get("cropToRoi") and sp["window"] == [-1, -1]:
        return ("one window per slice spanning the lung region's bounding box (`cropToRoi`); until 1.1.0, "
                "256×256 windows with 50 % overlap, Gaussian blending")
    return "%d×%d windows with %d %% overlap, %s blending" % (
        sp["window"][0], sp["window"][1], round(sp["overlap"] * 100), sp["blending"])


# how each CT package decides "infection" (ct.py evaluate), by `three`
INFECTION_RULE = {True: "the 3-class argmax is not background (this package's labelmap)",
                  False: "p(GGO) + p(consolidation) > p(background), this package's own 2-class decision"}


def ct_fine_tunes(v):
    """The CT fine-tunes recorded at export (`validation.json` `fineTunes`, from 1.4.0 on)."""
    out, prev = "", "1.3.0"
    for f in v.get("fineTunes") or []:
        lr = (f.get("training") or {}).get("peakLr")
        aug = ("nnU-Net-style augmentation (`heavy_crop`: rotation ±20°, scale ×U(0.75, 1.3), a third of the "
               "crops centred on infection, flips, blur, gamma, contrast/brightness jitter and noise)"
               if f.get("aug") == "heavy" else "the basic augmentation")
        out += ("\n- Fine-tuned from %s's weights (`ct.py train --init-onnx package --aug %s --neg-per-batch %s "
                "--name %s`%s) with %s and %s hard-negative crops per batch; the checkpoint with the best validation "
                "Dice − %g × held-out false-positive mL was exported: step %s (%s)."
                % (prev, f.get("aug"), f.get("negPerBatch"), f["run"], ", peak lr %g" % lr if lr else "", aug,
                   f.get("negPerBatch"), f.get("fpWeight"), f["checkpointStep"], f["version"]))
        prev = f["version"]
    return out


def ct(man, v, e):
    fp, q = v["fp32"], v["int8"]
    three = man["id"].endswith("3class")
    per = ", ".join("%s: %s" % (k, d) for k, d in zip(fp["slices"], fp["perSliceInfectionDice"]))
    return f"""# Model card: {man['name']} (`{man['id']}` {man['version']})

{man['description']}

## Data and terms

COVID-SemiSeg (Inf-Net), doctor-labelled training part: 50 axial chest CT slices (8-bit, windowed and
cropped, no HU, no pixel spacing) with ground-glass opacity (1) and consolidation (2) masks, derived from
MedSeg's "COVID-19 CT segmentation dataset" (100 slices of >40 patients from the SIRM case collection).
Terms: **non-commercial research only** (COVID-SemiSeg licence); check MedSeg's terms before any
redistribution. The data are not in this repository.
Citations: D.-P. Fan et al., "Inf-Net: Automatic COVID-19 Lung Infection Segmentation From CT Images",
IEEE TMI 39(8):2626–2637, 2020; MedSeg, COVID-19 CT segmentation dataset, medicalsegmentation.com/covid19.

## From DICOM HU to the training input (window)

The training slices were windowed before publication and the window is not documented. We estimated it
from the grey-level histogram of the 50 training slices: aerated lung parenchyma (≈ −850 HU) peaks at grey
44–49 and chest-wall soft tissue (≈ −20 HU) at grey 208–212, which a linear window [−1100, +200] HU
reproduces (−850 → 49, −20 → 212); `models/training/ct.py window` recomputes the fit (peaks at grey
45 and 210 → centre −435, width 1283 HU, rounded to the declared −450 / 1300). The net was trained on grey/255, and the manifest declares
`{{"kind": "window", "center": -450, "width": 1300, "outMin": 0, "outMax": 1}}`, which gives the same
number for a DICOM CT slice in HU (rescale slope/intercept applied). Training also jittered intensity
(×U(0.9, 1.1), +U(−0.05, 0.05)) and padded with air (grey 20 ≈ −1000 HU) so a full 512×512 DICOM slice
with air and table around the body looks familiar. This window is an estimate: a different true window
shifts the input by a few percent.

## Model

Attention residual U-Net (2D, slice by slice): residual units, 4 strided downsamplings (16–256 channels),
bilinear Resize + conv upsampling, additive attention gates, channel dropout p = {man['uncertainty']['mcDropout']['rate']} before
the head; {v['params']:,} parameters. One network is trained with 3 classes (background, GGO,
consolidation). {'This package outputs those 3 classes (softmax).' if three else 'This binary package exports the same network with the two lesion logits merged by log-sum-exp, so its 2-class softmax gives exactly p(infection) = p(GGO) + p(consolidation).'}
Inference: {ct_inference(man)}.

## Training recipe

- Split (fixed): validation = the 10 highest MedSeg slice indices {v['split']['validation']}; train = the other 40.
- Random 160×160 crops, batch 6, scale ×U(0.75, 1.3), horizontal flips, intensity jitter, air padding.
- Loss: cross-entropy (3 classes) + soft Dice of the infection union + 0.5 × soft Dice of GGO and
  consolidation. AdamW lr 2e-3, warm-up + cosine; Debian PyTorch 1.13, CPU, 1 thread, seed 1.
- The base run's checkpoint with the best validation infection Dice (evaluated periodically) was step 490;
  step schedule and resumes: `models/training/README.md` ("Training history").
- Two hard-negative fine-tunes (issue #19), each from the previous package's weights: crops of the training
  half of the shared non-COVID CT's lung slices with an all-background target (2 of 6 crops per batch). The
  second (1.3.0) ran 600 steps at lr 1.5e-4 and kept the checkpoint with the best validation Dice − 0.005 ×
  held-out false-positive mL: step {600 if v.get('fineTunes') else v['checkpointStep']} of that run. Recipes and commands:
  `models/training/README.md` ("Hard negatives"). The false positives on that CT are under "Evaluation".{ct_fine_tunes(v)}
- {training_time(v, "ct.py")}

## Validation (own split)

Each validation slice is predicted at its own size (grey/255 input, as the window produces) and scored
against its mask; Dice is computed per slice and averaged over the 10 slices (Inf-Net's "mean Dice").
Infection = {INFECTION_RULE[three]}; GGO and consolidation are the
3-class argmax. Per-class Dice is averaged over the slices where that class is present or predicted.

| model | infection Dice | sensitivity | specificity | GGO Dice | consolidation Dice |
|---|---|---|---|---|---|
| fp32 | {f4(fp['infectionDice'])} | {f4(fp['infectionSensitivity'])} | {f4(fp['infectionSpecificity'])} | {f4(fp['ggoDice'])} | {f4(fp['consolidationDice'])} |
| {'int8 weight-only (no longer shipped)' if static_int8(man) else 'int8'} | {f4(q['infectionDice'])} | {f4(q['infectionSensitivity'])} | {f4(q['infectionSpecificity'])} | {f4(q['ggoDice'])} | {f4(q['consolidationDice'])} |

{'Weight-only' if static_int8(man) else 'INT8'} − fp32 infection Dice: {f4(q['infectionDice'] - fp['infectionDice'])}.{' The shipped `model.int8.onnx` is static INT8 (see "Files"), scored by `deno task eval` under "Variants".' if static_int8(man) else ''} Per-slice fp32 infection Dice: {per}.

Target (issue #19): infection Dice ≥ 0.74 — {'**met** on this split, which also selected the checkpoint (optimistic; the held-out test set decides)' if fp['infectionDice'] >= 0.74 else '**not met** by this package (%.3f)' % fp['infectionDice']}. (Published on the 48-slice test split: U-Net 0.44, Inf-Net 0.68,
Semi-Inf-Net 0.74 with 1600 extra pseudo-labelled slices; multi-class GGO 0.62 / consolidation 0.36).
{evaluation(man, e)}
## Known limits

- 40 training slices; the validation split has 10 slices and selected the checkpoint, so its numbers are
  optimistic. Slices of one patient may sit on both sides of the split (patient ids are not available).
- The input window is estimated (see above); real DICOM CT differs from the published 8-bit JPEGs
  (reconstruction kernel, noise, no JPEG artefacts, full field of view).
- Slice-wise: no 3D context; pleural effusion was not labelled and is not segmented.
- Closing the gap: the 1600 pseudo-labelled COVID-SemiSeg slices (semi-supervision, as Semi-Inf-Net),
  HU-native training data, longer training and seed ensembles.
""" + COMMON_TAIL.format(rate=man['uncertainty']['mcDropout']['rate'], files=files_table(man), int8=int8_paragraph(man),
                         script="ct.py", id=man["id"], history=history(man["id"]))


def la(man, v, e):
    fp, q = v["fp32"], v["int8"]
    thr = man["labels"][0].get("threshold", 0.5)
    ft = v.get("fineTune")
    fts = v.get("fineTunes") or ([{"version": "1.1.0", "run": ft["run"], "aug": ft["aug"],
                                   "checkpointStep": v["checkpointStep"]}] if ft else [])
    sp = man["spatial"]
    win = "×".join(str(n) for n in sp["window"])

    def patch_txt(f):
        """A fine-tune's patch and batch when it changed them (`la.py --patch/--batch`), else ''."""
        if not f.get("patch") or (f["patch"] == [32, 64, 64] and f.get("batch", 2) == 2):
            return ""
        return ", %s-voxel patches (x, y, z), batch %d" % ("×".join(str(n) for n in f["patch"][::-1]), f["batch"])
    ft_txt = ""
    for i, f in enumerate(fts):
        if i == 0:
            ft_txt += ("\n- Then fine-tuned from 1.0.0's own ONNX weights (`la.py train --init-onnx package --aug %s "
                       "--name %s`: BatchNorms folded and frozen), with nnU-Net-style augmentation: in-plane rotation "
                       "±20°, scaling 0.85–1.2, gamma 0.7–1.5, contrast/brightness jitter and Gaussian noise on 1.5× "
                       "crops (`sample_heavy`); best validation Dice of the fine-tune exported: step %s (%s)."
                       % (f["aug"], f["run"], f["checkpointStep"], f["version"]))
        else:
            lr = (f.get("training") or {}).get("peakLr")
            ft_txt += ("\n- Fine-tuned again from %s's weights the same way (`--name %s`%s%s): best validation Dice "
                       "exported: step %s (%s)." % (fts[i - 1]["version"], f["run"],
                                                   ", peak lr %g" % lr if lr else "", patch_txt(f),
                                                   f["checkpointStep"], f["version"]))
    if fts:
        ft_txt += " Schedules: `models/training/README.md`."
    rows = "\n".join("| %s | %s | %s | %s | %s |" % (cid, f4(m["dice"]), f2(m["hd95Mm"]), f2(m["assdMm"]),
                                                       f4(q["cases"][cid]["dice"]))
                     for cid, m in fp["cases"].items())
    return f"""# Model card: {man['name']} (`{man['id']}` {man['version']})

{man['description']}

## Data and terms

2018 Atrial Segmentation Challenge LGE-MRI in UA-MT's preprocessed form: 16 labelled volumes (the
"16 labelled" cases of UA-MT's train list), 0.625 mm isotropic, 88 slices, z-scored per volume and
cropped around the atrium in x/y. Terms: research use with citation (no explicit licence found; confirm
with the challenge organisers before commercial use). The data are not in this repository.
Citations: Z. Xiong et al., "A global benchmark of algorithms for segmenting the left atrium from late
gadolinium-enhanced cardiac MRI", Medical Image Analysis 67:101832, 2021; L. Yu et al., UA-MT, MICCAI 2019.

## Model

3D attention residual U-Net for WebGPU: residual units, 3 **strided-convolution** downsamplings
(12–96 channels), **trilinear Resize + Conv3d** upsampling (no MaxPool3d / ConvTranspose3d, which fail on
onnxruntime-web's WebGPU EPs), additive attention gates, channel dropout p = {man['uncertainty']['mcDropout']['rate']} before the head,
2-class softmax; {v['params']:,} parameters.

Preprocessing (manifest): z-score over all voxels, **resample to 1.25 mm isotropic** (`targetSpacingMm`;
half the native resolution, chosen so training fits a CPU budget), sliding window {win} voxels
(x, y, z) with {round(sp['overlap'] * 100)} % overlap and {sp['blending'].capitalize()} blending, then the probabilities go back to the native grid;
post-processing keeps the largest connected component.

## Training recipe

- Split (fixed): cases sorted by id; validation = the last 3 ({', '.join(v['split']['validation'])}); train = the other 13.
- Random 64×64×32 patches at 1.25 mm (2/3 centred near the atrium), batch 2, flips in x and y, intensity
  ×U(0.9, 1.1) + U(−0.1, 0.1). Loss: cross-entropy + soft Dice. AdamW lr 2e-3, warm-up + cosine;
  Debian PyTorch 1.13 on CPU, 1 thread, seed 1. Best validation Dice checkpoint exported{'' if ft else ": step " + str(v['checkpointStep'])}
  (step schedule and resumes: `models/training/README.md`, "Training history").{ft_txt}
- {threshold_choice(v, thr, "Dice", "la.py")}
- {training_time(v, "la.py")}

## Validation (own split, 3 volumes)

Each volume is z-scored, resampled to 1.25 mm (trilinear), predicted with the sliding window, the LA
probability resampled back to the native 0.625 mm grid (trilinear), thresholded at {thr}, reduced to its
largest component, and scored against the native label: Dice; HD95 and ASSD in mm from the symmetric
surface distances (boundary voxels, 6-connectivity, Euclidean distance transform). Means over the 3 cases:

| model | Dice | HD95 (mm) | ASSD (mm) |
|---|---|---|---|
| fp32 | {f4(fp['dice'])} | {f2(fp['hd95Mm'])} | {f2(fp['assdMm'])} |
| int8 | {f4(q['dice'])} | {f2(q['hd95Mm'])} | {f2(q['assdMm'])} |

| case | fp32 Dice | fp32 HD95 (mm) | fp32 ASSD (mm) | int8 Dice |
|---|---|---|---|---|
{rows}

INT8 − fp32 Dice: {f4(q['dice'] - fp['dice'])}.

Target (issue #19): Dice ≥ 0.90 — {'**met** on this split, which also selected the checkpoint (optimistic; the held-out test set decides)' if fp['dice'] >= 0.90 else '**not met** by this package (%.3f)' % fp['dice']}. (Fully supervised V-Net on 80 cases ≈ 0.91; UA-MT with 16 labelled + 64
unlabelled cases 0.889 on the 20-case test set, which uses 0.625 mm voxels; published HD95/ASD there are in
voxels, ours are in mm: 1 voxel = 0.625 mm).
{evaluation(man, e, "thresholdSweep" in v)}
## Known limits

- 13 training volumes and about an hour on one CPU thread{' (1.0.0), then %s on one thread of a shared machine' % ('a fine-tune of about an hour' if len(fts) == 1 else '%d successive fine-tunes of about an hour each' % len(fts)) if fts else ''}; 3 validation volumes (also used to pick the
  checkpoint{' and the threshold' if 'thresholdSweep' in v else ''}), so the numbers are noisy and optimistic{': between validations 250 steps apart the first fine-tune moved by up to 0.03 Dice' if fts else ''}.
- Working at 1.25 mm costs boundary accuracy (thin pulmonary-vein ostia, the appendage tip).
- The volumes were already cropped around the atrium; on a full-field LGE volume the net has not seen
  as much background, and the largest-component step matters more.
- Closing the gap: native 0.625 mm with larger patches (112×112×80 as UA-MT) on a GPU, the 64 unlabelled
  volumes (mean teacher / UA-MT), longer training and seed ensembles.
""" + COMMON_TAIL.format(rate=man['uncertainty']['mcDropout']['rate'], files=files_table(man), int8=int8_paragraph(man),
                         script="la.py", id=man["id"], history=history(man["id"]))


def oct_fluid(man, v, ev=None):
    classes = ["IRF", "SRF", "PED"]

    def row(name, m):
        return "| %s | %s | %s |" % (name, " | ".join(f4(m["dice"][c]) for c in classes), f4(m["meanFluidDice"]))

    rows = [row("small (`%s`, fp32)" % v["small"]["file"], v["small"]),
            row("large (`%s`, fp32)" % v["large"]["file"], v["large"]),
            row("ensemble (mean of both members' probabilities)", v["ensemble"])]
    q = v["int8"]
    rows.append(row("small INT8 (`%s`)" % q["file"] if q["kept"] else "small INT8 (not shipped)", q))
    per = ["| %s | %s |" % (k, " | ".join(f4(d[c]) for c in classes)) for k, d in v["small"]["perPhantom"].items()]
    tr = v["training"]
    t = man["triage"]
    mc = man["uncertainty"]["mcDropout"]
    specs = man["preprocessing"].get("intensityByManufacturer", {})
    spec_rows = "\n".join("| %s | x · %.6f %+.6f |" % (k, s["scale"], s["offset"]) for k, s in specs.items())
    def segs(size):
        out = []
        for g in tr[size]["segments"]:
            w = "" if not g["ceWeights"] else ", cross-entropy class weights %s" % "/".join(
                "%g" % x for x in g["ceWeights"])
            out.append("steps %d–%d of a %d-step schedule%s" % (g["from"], g["to"], g["schedule"], w))
        return "; ".join(out)

    audit_txt = ""
    rp = os.path.join(C.MODELS, man["id"], "package-report.json")
    if os.path.exists(rp):
        rep = json.load(open(rp))
        files = [(rep["file"], rep["audit"])] + [(c["file"], c["audit"]) for c in rep.get("companions", [])]
        lines = ["| file | " + " | ".join(r["provider"] for r in rep["audit"]) + " |",
                 "|---|" + "---|" * len(rep["audit"])]
        for name, au in files:
            cells = []
            for r in au:
                if r.get("skipped"):
                    cells.append("skipped")
                elif not r["ok"]:
                    cells.append("**failed**")
                else:
                    cells.append("reference" if "maxAbsDiff" not in r else "%.1e" % r["maxAbsDiff"])
            lines.append("| `%s` | %s |" % (name, " | ".join(cells)))
        audit_txt = ("\n\nThe package tool's op audit (`package-report.json`: one probe window, max abs difference "
                     "from onnxruntime-node; WebGPU in headless Chromium with SwiftShader); `providers` = %s:\n\n%s"
                     % (", ".join(rep.get("providers", ["not audited"])), "\n".join(lines)))
        bad = [n for n, au in files for r in au if r.get("maxAbsDiff", 0) > 1e-3]
        if bad:
            audit_txt += ("\n\nOver 1e-3: %s on the JSEP WebGPU EP (`webgpu-jsep`), which EdgeSeg does not use "
                          "for WebGPU (it ships the native WebGPU EP, within 1e-5 above); not investigated further."
                          % ", ".join("`%s`" % n for n in sorted(set(bad))))

    int8_txt = ("kept: every class's Dice within 0.01 of fp32 (IRF %s, SRF %s, PED %s vs %s, %s, %s)"
                % tuple([f4(q["dice"][c]) for c in classes] + [f4(v["small"]["dice"][c]) for c in classes])
                if q["kept"] else "**not shipped**: a class's Dice moved by more than 0.01")
    return f"""# Model card: {man['name']} (`{man['id']}` {man['version']})

> **Demonstration weights, not a clinical model.** This package was trained only on synthetic OCT phantoms
> generated by EdgeSeg itself (`deno task phantom-oct`); no patient data and no public OCT data set were
> available. It shows the OCT fluid reference design running end to end (segmentation, MC dropout, a
> two-model ensemble with its disagreement map, per-scanner normalisation, UCUS triage, INT8) through
> EdgeSeg's `segment()` (tested from the CLI, and in OHIF by `tests/e2e/oct_test.ts`: ensemble, disagreement
> heatmap, UCUS band, store). It says nothing about performance on real OCT scans and must not be used on patients.

{man['description']}

## Data

Synthetic retinal OCT volumes from `src/dicom/oct_phantom.ts` (layered retina with a foveal pit, speckle,
fluid: IRF cysts in the inner/outer nuclear layers, an SRF lens under the fovea, a PED dome beside it),
each written as an Ophthalmic Tomography (OPT) instance of 25 B-scans of 256×256 (6 × 2 mm, B-scans
0.25 mm apart) with its ground truth. Four scanner profiles by Manufacturer (Heidelberg Engineering,
Carl Zeiss Meditec, Topcon; "EdgeSeg" is the generic one and stands for an unknown scanner), both eyes.
Split: train = {len(v['split']['train'])} phantoms (seeds 1–24), validation = {len(v['split']['validation'])}
held-out phantoms (seeds 101–108, two per profile). Labels: 0 background, 1 IRF, 2 SRF, 3 PED. Fluid is
0.28–0.43 mm³ per phantom.

## Model

TransUNet-style network after the OCT reference design, widths shrunk for CPU training
(`models/training/oct.py`):

- **Encoder**: EfficientNetV2-like, a stride-2 stem, Fused-MBConv stages at 1/2, 1/4, 1/8 and MBConv
  stages with squeeze-excite at 1/16 and 1/32 (BatchNorm + SiLU).
- **Transformer bottleneck**: 2 pre-norm layers of multi-head self-attention + MLP over the 8 × 8 tokens of
  a 256 × 256 B-scan, learnable position encoding, attention written as plain MatMul/Softmax (runs in
  onnxruntime-web). The token count is fixed, so the input is fixed at 256 × 256 and the manifest declares
  that window (`slice2d`, one window per B-scan; batch axis dynamic).
- **Decoder**: 4 attention-gate levels (Oktay et al.: bilinear ×2 + conv, additive gate on the skip,
  concatenation, two convs) back to 1/2 resolution, then the MC-dropout channel mask, a 1×1 head (4
  classes, softmax) and bilinear ×2 of the logits to full resolution.

| member | encoder widths (s1…s4, bottleneck) | transformer width / heads | parameters | steps | wall time |
|---|---|---|---|---|---|
| small (V2S-like, main model) | {tr['small']['widths']} | {tr['small']['dModel']} / {tr['small']['heads']} | {v['small']['params']:,} | {tr['small']['steps']} | {tr['small']['wallMinutes']} min |
| large (V2L-like, ensemble member) | {tr['large']['widths']} | {tr['large']['dModel']} / {tr['large']['heads']} | {v['large']['params']:,} | {tr['large']['steps']} | {tr['large']['wallMinutes']} min |

The reference's widths are V2S 24/48/64/160/256 (d 256) and V2L 32/64/96/192/640 (d 512), 16 heads; the
large member projects its last decoder level to the shared 8-channel mask (both members take the same
`mc_mask` input, as the manifest requires of ensemble members).

## Per-scanner normalisation

The reference keeps separate BatchNorm statistics per scanner source. Here the same idea sits in the
declared preprocessing (`preprocessing.intensityByManufacturer`, docs/model-packages.md): the input is
standardised with the mean and SD of each known profile's training phantoms, chosen by the series' DICOM
Manufacturer (the key it contains, case-insensitive); any other Manufacturer gets a z-score over the volume
(`intensity`). The provenance names the recipe used (`intensityManufacturer`).

| Manufacturer | input |
|---|---|
{spec_rows}
| any other | z-score over the volume |

## Training recipe

- Dice + 0.5 × cross-entropy (the reference's loss), AdamW lr 2e-3, weight decay 1e-4, 50 warm-up steps
  then cosine decay; batch {tr['small']['batch']} whole B-scans, B-scans with fluid drawn 3 times out of 4
  (the reference trains on fluid slices), random left-right flips, intensity ×U(0.9, 1.1) + U(−0.1, 0.1).
- Debian PyTorch 1.13 on CPU, 1 thread each, both runs at once on a 2-core machine shared with other jobs,
  seed 1; the checkpoint with the best mean fluid Dice on the validation phantoms is exported (checkpoint
  steps: small {v['small']['checkpointStep']}, large {v['large']['checkpointStep']}).
- Segments (from `train.log`; a resume continues the cosine schedule of its own length):
  small: {segs('small')}; large: {segs('large')}. With the reference's unweighted loss each member had
  left one class at Dice 0 after its first segments (small: PED; large: IRF; the other classes learnt), so
  each was continued with cross-entropy weights on the missing class(es), which brought them to the numbers
  below.
- No ImageNet pretraining, no phase A/B schedule, no seed ensembles: a demonstration budget of about half
  an hour of wall time per model ({tr['small']['wallMinutes']} and {tr['large']['wallMinutes']} min,
  validations included).

## Validation (held-out phantoms)

{v['pooling']}; the EdgeSeg pipeline reproduces it (one 256 × 256 window per B-scan):
`tests/cli/oct_cli_test.ts` checks `deno task eval` against these numbers on one phantom.

| model | IRF | SRF | PED | mean fluid |
|---|---|---|---|---|
{chr(10).join(rows)}

Per phantom (small model):

| phantom | IRF | SRF | PED |
|---|---|---|---|
{chr(10).join(per)}

INT8 (weight-only, per output channel, convolutions only; the transformer's MatMuls stay float32): {int8_txt}.

## Uncertainty and triage

- MC dropout: the channel mask `mc_mask` (p = {mc['rate']}, the reference's rate) multiplies the last
  decoder features; `--uncertainty mc:N`.
- Ensemble: `--uncertainty ensemble` runs both members and maps their disagreement; `mc:N+ensemble` combines
  both, as the reference's dual uncertainty does.
- UCUS (docs/triage.md): all three fluids; reference volume {t['referenceVolumeMl'] * 1000:g} mm³; fluid
  within {t['centre']['radiusMm']} mm of the scan's centre A-scan (the ETDRS central subfield of a
  fovea-centred macular cube; the phantom's fovea is at the centre) counts {t['centre']['weight']}×; boundary
  weight {t['boundaryWeight']}, uncertainty discount {t['uncertaintyDiscount']}; Review ≥
  {t['thresholds']['review']}, Urgent ≥ {t['thresholds']['urgent']}. These values were chosen for the
  demonstration, not calibrated against clinical urgency.

## Parity

`tests/inference/oct_fluid_test.ts` runs both members on onnxruntime-node and onnxruntime-web WASM on the
input recorded at export (x[i] = sin(0.001 i)) with the all-ones and a seeded mask, and compares every
{v['parity']['sampleStride']}th logit with PyTorch's (validation.json `parity`, `parityMembers`): tolerance
1e-4. `node models/training/check_onnx.mjs models/{man['id']}` checks sha256, names, shapes and sums.{audit_txt}

## Files

{files_table(man)}

## Known limits

- Synthetic data only: the phantom's layers, speckle and fluid shapes are simple and regular; real scans
  (shadowing, motion, hyper-reflective foci, drusen, other pathologies, other scan patterns) are untested.
- The per-scanner recipes are statistics of the phantom profiles, not of real devices.
- 256 × 256 B-scans only (the position encoding fixes the token count); other sizes are padded or tiled.
- About half an hour of one shared CPU thread per model; the numbers are from 8 validation phantoms that
  also selected the checkpoint (and that showed which class needed the weighted loss), so they are
  optimistic even for phantoms.

## Reproduce

```sh
/usr/bin/python3 models/training/oct.py data && /usr/bin/python3 models/training/oct.py stats
/usr/bin/python3 models/training/oct.py train --size small --steps 800 --minutes 15 --val-every 200
/usr/bin/python3 models/training/oct.py train --size small --resume --steps 1350 --minutes 10.5 --val-every 150
/usr/bin/python3 models/training/oct.py train --size small --resume --steps 2400 --minutes 7 --val-every 100 --ce-weights 1 1 1 8
/usr/bin/python3 models/training/oct.py train --size large --steps 500 --minutes 15 --val-every 125
/usr/bin/python3 models/training/oct.py train --size large --resume --steps 850 --minutes 10 --val-every 175
/usr/bin/python3 models/training/oct.py train --size large --resume --steps 1400 --minutes 8 --val-every 75 --ce-weights 1 8 1 4
/usr/bin/python3 models/training/oct.py export
deno task package <export>/oct-fluid-demo.onnx --id oct-fluid-demo --manifest <export>/draft.json --out models/oct-fluid-demo
cp <export>/validation.json models/oct-fluid-demo/ && /usr/bin/python3 models/training/cards.py oct-fluid-demo
```
"""




def history(pid):
    if not os.path.exists(os.path.join(C.MODELS, pid, "HISTORY.md")):
        return ""
    return ("\n\nMeasurements of earlier versions and weights, recorded when they were made and not regenerated "
            "by these scripts, are in `HISTORY.md`.")
# Published numbers of the reference designs (issue #17), as their authors report them; not re-measured.
REFERENCES = {
    "mae-vit": ("reference 001 (MAE-pretrained ViT for DRIVE vessels)",
                "F1 0.7519 on its own validation split (ViT-B width 768, 8 blocks, patch 16 on 512×512 resized "
                "images, 58.8 M parameters; 200 epochs of MAE pretraining, then 111 epochs of fine-tuning to "
                "the best F1 with a five-term loss; 5.5 hours of training, hardware not stated)"),
    "deeplabv3": ("reference 003 (DeepLabV3 on DRIVE)",
                  "best validation mIoU 0.4693 (ResNet50, 512²), 0.5115 (ResNet50, 768²), 0.4635 (ResNet101, "
                  "512²), 0.4869 (ResNet101, 640²): ImageNet-pretrained torchvision models fine-tuned 100 epochs, "
                  "batch 2, on an RTX 3080, 4 validation images; the text does not define its mIoU (classes, "
                  "FOV or not), so it compares with ours only loosely"),
}

FAMILY_MODEL = {
    "deeplabv3": """DeepLabV3 (Chen et al. 2017) at the published layout, widths shrunk for CPU training: a ResNet
backbone (7×7/2 stem, 3×3/2 max pool, 4 stages of 2 basic residual blocks, 16-32-64-128 channels; ResNet50
has bottleneck stages of 256-2048) at **output stride 8** (stage 2 strides; stages 3 and 4 replace their
strides by dilation 2 and 4), **ASPP** (a 1×1 branch, three 3×3 atrous branches at rates 6/12/18, an
image-pooling branch — global mean, 1×1 conv, broadcast back —, concatenated and projected to 64 channels
by a 1×1 conv), a 3×3 head conv, the MC-dropout channel mask (64 channels, p = {rate}) and a 1×1
classifier with **2 classes** (background, vessel; softmax), upsampled bilinearly ×8 to the input size.
The rates are the paper's output-stride-16 ones: the 256² training crops give 32×32 feature maps, on which
the OS-8 rates 12/24/36 would mostly read padding. No ImageNet weights (none can be downloaded here):
trained from scratch. {params:,} parameters.""",
    "mae-vit": """A ViT encoder (Dosovitskiy et al. 2021) on a **fixed 128×128 window**: patch 8 (a 16×16 grid
of 256 tokens), width 128, 6 pre-norm blocks, 4 heads, MLP ratio 4, fixed 2D sine-cosine position
embeddings (the reference: width 768, 8 blocks, patch 16 on 512²). **MAE pretraining** (He et al. 2022):
75 % of the patches are masked at random, the encoder sees the rest, a light decoder (width 64, 2 blocks)
predicts the pixels of every patch, and the loss is the MSE on the masked patches against per-patch
normalised pixels; the DRIVE training images (21–36) are used without their labels. **Fine-tuning**: the
pretrained encoder plus a progressive-upsampling CNN decoder as in the reference (4 conv-BN-ReLU blocks,
×2 bilinear upsampling three times from the 1/8 token grid to full resolution), with two UNETR-style
convolutional skips from the input (full and half resolution, 16 and 32 channels) that the reference's
decoder does not have, added because a 1/8 grid alone loses the 1–2 pixel capillaries; then the MC-dropout
channel mask (16 channels, p = {rate}) and a 1×1 head with one sigmoid output. The ONNX graph takes only
the 128×128 window (a ViT has a fixed token count): the manifest declares it and EdgeSeg's sliding window
(25 % overlap, Gaussian blending) covers the photograph. {params:,} parameters.""",
}

FAMILY_RECIPE = {
    "deeplabv3": "Random 256×256 crops, batch 6; cross-entropy + soft Dice (both classes); AdamW lr 2e-3",
    "mae-vit": "MAE: random 128×128 crops, batch 16, AdamW lr 1.5e-3, weight decay 0.05. Fine-tuning: random "
               "128×128 crops, batch 8; BCE + soft Dice (the reference: a five-term loss with Tversky and "
               "thin-vessel weighting); AdamW lr 5e-4",
}


def _train_line(t, key, what):
    e = t.get(key)
    if not e:
        return ""
    loss = ""
    if e.get("lastLoss") is not None:
        loss = "; running loss %.3f at step 25, %.3f at the end" % (e["firstLoss"], e["lastLoss"])
    return "  - %s: %d steps in %.1f minutes of wall-clock time (%d session(s), %s thread(s); validation " \
           "included%s).\n" % (what, e["steps"], e["minutes"], e.get("sessions", 1), e["threads"], loss)


def deno_eval(v):
    e = v.get("denoEval")
    if not e:
        return ""
    m = e["mean"]
    return ("The package itself, through EdgeSeg's pipeline (`deno task eval --model <id> --input <images "
            "37–40> --reference <1st_manual> --fov <masks> --device cpu`, onnxruntime-web WASM; per-image "
            "values averaged, so F1 is the mean image Dice; AUC from probabilities quantised to 1/255): F1 "
            "%s, IoU %s, AUC %s, precision %s, recall %s, specificity %s.\n\n"
            % (f4(m["dice"]), f4(m["iou"]), f4(m["auc"]), f4(m["precision"]), f4(m["recall"]), f4(m["specificity"])))


def drive_int8(fam, v):
    """The INT8 section of a DRIVE family's card, from validation.json "int8" (drive_families.py int8)."""
    q = v.get("int8")
    if not q:
        return ""
    cov = q["quantised"]
    ops = ", ".join("%s: %d weights, %s parameters" % (op, e["weights"], "{:,}".format(e["params"]))
                    for op, e in sorted(cov["byOp"].items()))
    rows = "\n".join("| %s | %s | %s | %s | %s | %s |" % (name, f4(m["dice"]), f4(m["iou"]), f4(m["auc"]),
                                                      f4(m["precision"]), f4(m["recall"]))
                     for name, m in (("fp32 (main model)", q["meanFp32"]), ("int8 (`%s`)" % q["file"], q["meanInt8"])))
    what = ("every Conv weight" if fam == "deeplabv3" else
            "every Conv weight and every MatMul weight (the transformer's QKV, projection and MLP matrices, one "
            "scale per output column)")
    probe = ""
    if "probeMaxAbsDiffVsFp32" in q:
        probe = (" On the export's probe the int8 logits differ from fp32 by at most %.3f (WASM); WebGPU runs the "
                 "int8 file as WASM does (within 1e-3, `tests/inference/drive_families_test.ts`)."
                 % q["probeMaxAbsDiffVsFp32"])
    return f"""## INT8 variant

`{q['file']}` (manifest `variants`, id `int8`; `deno task segment|eval --variant int8`) is weight-only INT8
(`drive_families.py int8 {fam}`, `common.quantize_int8`): {what} is stored as int8 with one symmetric scale
per output channel and a `DequantizeLinear` in front of the float op, so activations stay float32.
Quantised: {ops}; {100 * cov['fraction']:.1f} % of the {"{:,}".format(cov['ofParams'])} parameters (biases
and {'layer ' if fam == 'mae-vit' else ''}norms stay float32). File size
{cov['bytesFp32'] / 1e6:.2f} MB → {cov['bytesInt8'] / 1e6:.2f} MB.

Measured by `deno task eval` on images 37–40 ({q['provider'].upper()}, the viewer's provider; per-image
values averaged):

| model | F1 (mean image Dice) | IoU | AUC | precision | recall |
|---|---|---|---|---|---|
{rows}

INT8 − fp32 F1: {q['f1Difference']:+.5f}: {'kept' if q['kept'] else 'not shipped'} (a variant ships only within
0.01 of fp32).{probe}

"""


def drive_family(man, v, ev=None):
    fam = v["family"]
    fp = v["fp32"]
    rv_path = os.path.join(C.MODELS, "retina-vessels", "validation.json")
    rv = json.load(open(rv_path))["fp32"] if os.path.exists(rv_path) else {}
    ref_name, ref_text = REFERENCES[fam]
    sp = man["spatial"]
    win = "×".join(str(w) for w in sp["window"])
    t = v.get("training", {})
    audit = v.get("audit", {})
    pm = v.get("parityMeasured", {})
    audit_rows = "\n".join(
        "| %s | %s | %s |" % (p, "ok" if a.get("ok") else ("skipped: " + a["skipped"] if a.get("skipped") else "FAILED"),
                             "reference" if p == "native" else ("%.2e" % a["maxAbsDiff"] if "maxAbsDiff" in a else "n/a"))
        for p, a in audit.items())
    return f"""# Model card: {man['name']} (`{man['id']}` {man['version']})

{man['description']}

One of the reference families of issue #17, rebuilt in PyTorch (`drive_families.py {fam}` in
`models/training/`), exported to ONNX (opset 17) and packaged by `deno task package`. Compare with `retina-vessels`,
the project's own DRIVE model, trained on the same split with the same input.

## Data and terms

{DRIVE_TERMS}

## Model

{FAMILY_MODEL[fam].format(rate=man['uncertainty']['mcDropout']['rate'], params=v['params'])}

Input (declared in the manifest, so the viewer reproduces it exactly): the **green channel** of the RGB
photograph (`channels: [1]`), **z-scored over the whole image** (`zscore`, mask "all") — the same recipe
as `retina-vessels`. Inference: {win} windows, {int(sp['overlap'] * 100)} % overlap, Gaussian blending;
vessel where the probability is ≥ 0.5{' (the argmax of the two classes)' if man['activation'] == 'softmax' else ''}.

## Training recipe

- Split (fixed, as `retina-vessels`): train = images {v['split']['train'][0]}–{v['split']['train'][-1]} (16), validation = images {', '.join(str(i) for i in v['split']['validation'])} (4).
- {FAMILY_RECIPE[fam]}, weight decay 1e-4 for the supervised stage, 50 warm-up steps then cosine decay.
  Crops are centred inside the FOV 90 % of the time; random 90° rotations and flips, z-score contrast
  ×U(0.85, 1.15) and offset U(−0.15, 0.15) (as `retina-vessels`).
- Debian PyTorch 1.13 on a shared 2-core CPU machine, seed 1:
{_train_line(t, 'pretrain', 'MAE pretraining (no labels)')}{_train_line(t, 'train', 'supervised training' if fam == 'deeplabv3' else 'fine-tuning')}- Validation every 100 steps; the checkpoint with the best validation F1 is exported: step {v['checkpointStep']}.
- This is a very short CPU budget next to the references' GPU runs (below): read the numbers as what this
  design reaches in that budget, not as its ceiling.

## Validation (own split, images {', '.join(str(i) for i in v['split']['validation'])})

Computed by `drive_families.py validate {fam}` with the manifest's sliding window: pixels **inside the FOV
mask only**, all FOV pixels of the 4 validation images pooled (DRIVE convention, as `retina-vessels`);
F1 = pixel Dice at 0.5; AUC = ROC area of the pooled vessel probabilities (rank-sum formula); mIoU = mean
of the vessel IoU and the background IoU inside the FOV.

| model | F1 (Dice) | AUC | mIoU | vessel IoU | sensitivity | specificity | precision | accuracy |
|---|---|---|---|---|---|---|---|---|
| `{man['id']}` (this package) | {f4(fp['f1'])} | {f4(fp['auc'])} | {f4(fp['mIoU'])} | {f4(fp['iouVessel'])} | {f4(fp['sensitivity'])} | {f4(fp['specificity'])} | {f4(fp['precision'])} | {f4(fp['accuracy'])} |
| `retina-vessels` (attention residual U-Net, same split) | {f4(rv.get('f1'))} | {f4(rv.get('auc'))} | n/a | n/a | {f4(rv.get('sensitivity'))} | {f4(rv.get('specificity'))} | n/a | {f4(rv.get('accuracy'))} |

Mean image Dice: {f4(fp['meanImageDice'])}. `retina-vessels`' row is its own `validation.json` (fp32,
as exported; it records no IoU).

{deno_eval(v)}Published numbers of {ref_name}: {ref_text}. Their splits and protocols are their own, so
these are reference points, not a head-to-head comparison.

{drive_int8(fam, v)}
## Runs on (the package tool's op audit)

`deno task package` ran one probe window on each provider; maximum absolute difference of the output vs
onnxruntime-node:

| provider | result | max abs diff vs native |
|---|---|---|
{audit_rows}

WebGPU here is Chromium's software adapter (SwiftShader) in headless mode; `providers` in the manifest
lists what passed. Parity with PyTorch (the outputs recorded at export on the probe x[i] = sin(0.001 i),
{'×'.join(str(d) for d in v['parity']['shape'])}, mask of ones): onnxruntime-node
{('max abs diff %.2e on %d sampled outputs' % (pm['sampleDiff'], len(v['parity']['sample']['values']))) if pm.get('sampleDiff') is not None else 'n/a'}
(`check_onnx.mjs`, limit 1e-4); onnxruntime-web WASM (≤ 1e-4) and WebGPU (≤ 1e-3) are asserted by
`tests/inference/drive_families_test.ts`.

## Known limits

- Trained on 16 images from one camera (Canon CR5, 45° FOV) and one screening population, for minutes on
  one CPU thread; other cameras, resolutions (the net sees pixels, not millimetres) and pathologies are
  untested.
- The validation split has only 4 images and the checkpoint was selected on it, so the numbers are
  optimistic.
- {'' if fam == 'deeplabv3' else 'No run without MAE pretraining was made, so how much the pretraining adds here is not measured; its loss (MSE against normalised pixels, 1.0 = predicting each patch mean) fell only a little in this budget (see the recipe). '}{'Output stride 8 with ×8 bilinear upsampling blurs 1–2 pixel capillaries: the design is made for large regions, which is why it trails the U-Net on thin vessels.' if fam == 'deeplabv3' else 'The fixed 128×128 window means many windows per photograph (slower than a fully convolutional net); MAE pretraining saw only the 16 training images for a few minutes, far from the reference 200 epochs.'}
- {'No ensemble member.' if v.get('int8', {}).get('kept') else 'No INT8 variant and no ensemble member.'}
""" + COMMON_TAIL.split("## Files")[0].replace("last decoder features", "features before the 1×1 classifier").format(
        rate=man['uncertainty']['mcDropout']['rate']) + """## Files

{files}

`package-report.json` is the package tool's report (op audit, rewrites, sha256).

## Reproduce

See `models/training/README.md` ("Reference families on DRIVE"). `node models/training/check_onnx.mjs
models/{id}` checks the ONNX file against the manifest (sha256, names, shapes) and against the PyTorch
outputs recorded at export.
""".format(files=files_table(man), id=man["id"])


RENDER = {"retina-vessels": retina, "ct-lung-infection": ct, "ct-lung-infection-3class": ct, "la-mri-3d": la,
          "oct-fluid-demo": oct_fluid, "retina-deeplabv3": drive_family, "retina-mae-vit": drive_family}


def main():
    ids = sys.argv[1:] or list(RENDER)
    for pid in ids:
        pkg = os.path.join(C.MODELS, pid)
        if not os.path.exists(os.path.join(pkg, "validation.json")):
            print("skip", pid, "(not exported)")
            continue
        man = json.load(open(os.path.join(pkg, "manifest.json")))
        val = json.load(open(os.path.join(pkg, "validation.json")))
        ev_path = os.path.join(pkg, "eval.json")
        ev = json.load(open(ev_path)) if os.path.exists(ev_path) else None
        tmp = os.path.join(pkg, ".MODEL_CARD.md.tmp")
        with open(tmp, "w") as f:
            f.write(RENDER[pid](man, val, ev))
        os.replace(tmp, os.path.join(pkg, "MODEL_CARD.md"))
        print("wrote", os.path.join("models", pid, "MODEL_CARD.md"))


if __name__ == "__main__":
    main()
