#!/usr/bin/python3
"""retina-vessels: DRIVE fundus vessel segmentation (attention residual U-Net, 2D).

    /usr/bin/python3 models/training/retina.py train [--resume] [--minutes 40] [--seed 1]
    /usr/bin/python3 models/training/retina.py validate [--seed 1]
    /usr/bin/python3 models/training/retina.py export            # package models/retina-vessels/

Input: the green channel of the RGB photograph, z-scored over the whole image (manifest preprocessing
`channels: [1]`, `zscore` mask "all"), so the viewer reproduces it exactly. Split: images 21-36 train,
37-40 validation (fixed).
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402

NAME = "retina-vessels"
TRAIN_IDS = list(range(21, 37))
VAL_IDS = list(range(37, 41))
BASE, DEPTH, DROP = 16, 3, 0.2
WINDOW = [256, 256]  # the export's example input and the parity probe
VERSION = "1.3.0"
# the manifest fields every DRIVE-trained package shares (also drive_families.py)
DRIVE_INTENDED_USE = "Research and education only. Not a medical device; not for diagnosis or treatment."
DRIVE_LICENSE = ("Weights: research and education use only (derived from DRIVE, whose terms forbid commercial "
                 "use and redistribution of the data).")
DRIVE_CITATION = ("J.J. Staal, M.D. Abramoff, M. Niemeijer, M.A. Viergever, B. van Ginneken, Ridge-based vessel "
                  "segmentation in color images of the retina, IEEE TMI 23(4):501-509, 2004.")
FUNDUS_CONSTRAINTS = {"modalities": ["OP", "XC", "OT"], "bodyParts": ["EYE"], "channels": 3}
PATCH, BATCH = 128, 8
PAD_VALUE = 0.0
DRIVE = os.path.join(C.DATA, "drive", "training")


def load_case(i):
    img = np.asarray(Image.open(os.path.join(DRIVE, "images", "%02d_training.tif" % i)).convert("RGB"))
    lab = np.asarray(Image.open(os.path.join(DRIVE, "1st_manual", "%02d_manual1.gif" % i))) > 0
    fov = np.asarray(Image.open(os.path.join(DRIVE, "mask", "%02d_training_mask.gif" % i))) > 0
    return img, lab, fov


def preprocess(img_rgb):
    """Exactly the manifest's preprocessing: channel 1 (green), z-score over all pixels."""
    g = img_rgb[..., 1].astype(np.float32)
    return ((g - g.mean()) / max(g.std(), 1e-6))[None]


def build(seed=1):
    C.seed_all(seed)
    return C.AttnResUNet(2, 1, 1, base=BASE, depth=DEPTH, drop=DROP)


def predict_prob(model, x):
    """x: np [1, H, W] preprocessed → vessel probability [H, W], as the package runs it (manifest
    `window: [-1, -1]`): one window over the whole photograph, padded to a multiple of 2^DEPTH."""
    model.eval()
    return C.sliding_window(lambda t: torch.sigmoid(model(t)), x, list(x.shape[1:]), 0, PAD_VALUE,
                            pad_multiple=2 ** DEPTH)[0]


def sweep(model, cases, thresholds=np.round(np.arange(0.3, 0.81, 0.05), 2)):
    """F1 pooled over the FOV pixels and mean image Dice at each threshold, one inference per image."""
    probs = {i: predict_prob(model, x) for i, (x, _, _) in cases.items()}
    rows = []
    for t in thresholds:
        r = evaluate(model, cases, float(t), probs)
        rows.append({"threshold": float(t), "f1": round(r["f1"], 4), "meanImageDice": round(r["meanImageDice"], 4)})
    return rows


def evaluate(model, cases, threshold=0.5, probs=None):
    """DRIVE convention: pixels inside the FOV mask only, pooled over all validation images."""
    scores, gts, per_image = [], [], []
    for i, (x, lab, fov) in cases.items():
        p = probs[i] if probs is not None else predict_prob(model, x)
        scores.append(p[fov])
        gts.append(lab[fov])
        per_image.append(C.dice(p >= threshold, lab, fov))
    s, g = np.concatenate(scores), np.concatenate(gts)
    tp, fp, fn, tn = C.binary_stats(s >= threshold, g)
    return {"f1": 2 * tp / (2 * tp + fp + fn), "auc": C.auc_roc(s, g), "sensitivity": tp / (tp + fn),
            "specificity": tn / (tn + fp), "accuracy": (tp + tn) / (tp + tn + fp + fn),
            "meanImageDice": float(np.mean(per_image)), "images": list(cases.keys())}


def val_cases():
    out = {}
    for i in VAL_IDS:
        img, lab, fov = load_case(i)
        out[i] = (preprocess(img), lab, fov)
    return out


def crop_sampler(data, rng, patch, batch):
    """Random crops centred in the FOV (10 % anywhere), rotations by 90 degrees, flips, and the
    contrast/brightness jitter in z-score units (robustness to other cameras and exposure). Shared with
    the DRIVE reference families (drive_families.py)."""
    def sample():
        xs, ys = [], []
        for _ in range(batch):
            x, y, fov = data[rng.randint(len(data))]
            h, w = x.shape
            while True:
                r, c = rng.randint(h - patch + 1), rng.randint(w - patch + 1)
                if fov[r + patch // 2, c + patch // 2] or rng.rand() < 0.1:
                    break
            px, py = x[r:r + patch, c:c + patch], y[r:r + patch, c:c + patch]
            k = rng.randint(4)
            px, py = np.rot90(px, k), np.rot90(py, k)
            if rng.rand() < 0.5:
                px, py = px[:, ::-1], py[:, ::-1]
            px = px * rng.uniform(0.85, 1.15) + rng.uniform(-0.15, 0.15)
            xs.append(np.ascontiguousarray(px))
            ys.append(np.ascontiguousarray(py))
        return torch.from_numpy(np.stack(xs)[:, None]), torch.from_numpy(np.stack(ys)[:, None])
    return sample


def heavy_sampler(data, rng, patch, batch):
    """nnU-Net-style augmentation (`--aug heavy`): crops centred in the FOV (10 % anywhere) resampled by one
    affine (any rotation, scale x U(0.85, 1.15); the photograph's dark corner value outside it), flips, then
    blur, gamma, contrast/brightness jitter as the basic sampler's and Gaussian noise up to 0.1 z-score
    units (common.intensity_augment)."""
    def sample():
        xs, ys = [], []
        for _ in range(batch):
            x, y, fov = data[rng.randint(len(data))]
            h, w = x.shape
            while True:
                r, c = rng.randint(h), rng.randint(w)
                if fov[r, c] or rng.rand() < 0.1:
                    break
            px, py = C.affine_patch_2d(x, y, (r, c), patch, rng.uniform(0, 2 * np.pi), rng.uniform(0.85, 1.15),
                                       fill=float(x[0, 0]))
            if rng.rand() < 0.5:
                px, py = px[:, ::-1], py[:, ::-1]
            px = C.intensity_augment(px, rng, blur_p=0.1, noise_sigma=0.1, brightness=0.15)
            xs.append(np.ascontiguousarray(px, dtype=np.float32))
            ys.append(np.ascontiguousarray(py, dtype=np.float32))
        return torch.from_numpy(np.stack(xs)[:, None]), torch.from_numpy(np.stack(ys)[:, None])
    return sample


def train(args):
    torch.set_num_threads(args.threads)
    model = build(args.seed)
    if args.init_onnx:
        C.warm_start_from_onnx(model, package_member(args.seed) if args.init_onnx == "package" else args.init_onnx, 1)
    data = []
    for i in TRAIN_IDS:
        img, lab, fov = load_case(i)
        data.append((preprocess(img)[0], lab.astype(np.float32), fov))
    vcases = val_cases()
    rng = np.random.RandomState(args.seed)

    sample = (heavy_sampler if args.aug == "heavy" else crop_sampler)(data, rng, PATCH, BATCH)

    def loss_fn(logits, y):
        return F.binary_cross_entropy_with_logits(logits, y) + C.soft_dice_loss(torch.sigmoid(logits), y)

    def validate(m):
        info = evaluate(m, vcases)
        return info["f1"], {k: (round(v, 4) if isinstance(v, float) else v) for k, v in info.items()}

    C.train_loop(args.name or run_name(args.seed), model, sample, loss_fn, args.steps, args.lr, args.resume, args.minutes,
                 validate, val_every=args.val_every, freeze_bn=bool(args.init_onnx))


def package_member(seed):
    """The shipped ONNX file of this seed's net (seed 1 is model.onnx)."""
    return os.path.join(C.MODELS, NAME, "model.onnx" if seed == 1 else "model.seed%d.onnx" % seed)


def run_name(seed):
    return NAME if seed == 1 else "%s-seed%d" % (NAME, seed)


def load_trained(seed=1, which="best", from_package=False, name=None):
    """The net of `seed` from its checkpoint, or with `from_package` from the package's shipped file
    (no checkpoint needed; its step is the one recorded in validation.json)."""
    model = build(seed)
    if from_package:
        if not os.path.exists(package_member(seed)):
            raise SystemExit("no shipped file for seed %d" % seed)
        C.warm_start_from_onnx(model, package_member(seed), 1)
        prev = _previous_validation()
        step = prev.get("checkpointStep") if seed == 1 else \
            prev.get("ensembleMembers", {}).get("model.seed%d.onnx" % seed, {}).get("step")
        return model.eval(), {"step": step}
    return C.load_checkpoint(model, name or run_name(seed), which)


def _previous_validation():
    path = os.path.join(C.MODELS, NAME, "validation.json")
    return json.load(open(path)) if os.path.exists(path) else {}


def cmd_validate(args):
    model, st = load_trained(args.seed, args.which, args.from_package, args.name)
    vc = val_cases()
    if args.sweep:
        print(json.dumps({"step": st["step"], "sweep": sweep(model, vc)}, indent=2))
        return
    print(json.dumps({"step": st["step"], **evaluate(model, vc, args.threshold)}, indent=2))


def cmd_export(args):
    pkg = os.path.join(C.MODELS, NAME)
    os.makedirs(pkg, exist_ok=True)
    model, st = load_trained(1, args.which, args.from_package, args.name)
    previous = _previous_validation()
    vc = val_cases()
    fp32 = evaluate(model, vc, args.threshold)
    int8 = evaluate(C.fake_quantize_(C.fold_bn(model)), vc, args.threshold)
    C.export_onnx(model, os.path.join(pkg, "model.onnx"), 1, WINDOW, 2)
    n = C.quantize_int8(os.path.join(pkg, "model.onnx"), os.path.join(pkg, "model.int8.onnx"))
    members, member_metrics = [], {}
    runs = dict(zip(args.ensemble, args.member_runs or []))
    for seed in args.ensemble:
        fname = "model.seed%d.onnx" % seed
        try:
            m2, st2 = load_trained(seed, args.which, args.from_package, runs.get(seed))
        except SystemExit:
            # No checkpoint here (they are not in the repository): keep the shipped member as it is.
            if os.path.exists(package_member(seed)):
                members.append(fname)
                member_metrics[fname] = previous.get("ensembleMembers", {}).get(fname, {})
            continue
        C.export_onnx(m2, os.path.join(pkg, fname), 1, WINDOW, 2)
        members.append(fname)
        shipped = previous.get("ensembleMembers", {}).get(fname, {})  # its run and training, when re-exported
        member_metrics[fname] = {"step": st2["step"], **evaluate(m2, vc, args.threshold),
                                 **({"run": runs[seed], "training": C.log_summary(runs[seed])} if seed in runs else
                                    {k: shipped[k] for k in ("run", "training") if k in shipped})}
    for stale in set(f for f in os.listdir(pkg) if f.startswith("model.seed")) - set(members):
        os.remove(os.path.join(pkg, stale))  # a member this export no longer names
    metrics = {"split": {"train": TRAIN_IDS, "validation": VAL_IDS}, "checkpointStep": st["step"],
               "threshold": args.threshold, "thresholdSweep": sweep(model, vc), "fp32": fp32, "int8": int8, "int8QuantisedConvs": n,
               "parity": C.parity_reference(model, 1, WINDOW, DROP), "ensembleMembers": member_metrics,
               "params": C.count_params(model),
               **({"scratchRun": {"version": VERSION, "run": args.name, "seed": args.seed, "aug": args.aug,
                                  "checkpointStep": st["step"], "training": C.log_summary(args.name)}}
                  if args.scratch else
                  {"fineTunes": C.fine_tune_history(pkg, {
                      "version": VERSION, "run": args.name, "aug": args.aug, "checkpointStep": st["step"]})} if args.name else
                  {k: previous[k] for k in ("fineTunes", "scratchRun") if k in previous})}
    C.write_json(os.path.join(pkg, "validation.json"), metrics)
    manifest = {
        "schemaVersion": 1,
        "id": NAME,
        "name": "Retinal vessels (fundus photograph)",
        "version": VERSION,
        "task": "segmentation",
        "description": "Attention residual U-Net (2D) segmenting retinal blood vessels in colour fundus "
                       "photographs, trained on DRIVE (16 training images).",
        "intendedUse": DRIVE_INTENDED_USE,
        "license": DRIVE_LICENSE,
        "authors": ["EdgeSeg"],
        "citations": [DRIVE_CITATION,
                      "O. Oktay et al., Attention U-Net: Learning Where to Look for the Pancreas, MIDL 2018."],
        "constraints": dict(FUNDUS_CONSTRAINTS),
        "model": "model.onnx",
        "inputs": [{"name": "input", "dtype": "float32", "shape": ["batch", 1, "height", "width"]},
                   {"name": "mc_mask", "dtype": "float32", "shape": ["batch", model.mask_channels, 1, 1]}],
        "outputs": [{"name": "logits", "dtype": "float32", "shape": ["batch", 1, "height", "width"]}],
        "activation": "sigmoid",
        "preprocessing": {"channels": [1], "intensity": {"kind": "zscore", "mask": "all"},
                          "padMultiple": 2 ** DEPTH, "padValue": PAD_VALUE},
        "spatial": {"mode": "image2d", "window": [-1, -1], "overlap": 0, "blending": "gaussian",
                    "sigmaScale": 0.125, "batch": 1},
        "labels": [{"value": 1, "name": "Retinal vessels", "channel": 0,
                    "category": C.ANATOMICAL_STRUCTURE, "type": C.code("59820001", "Blood vessel"),
                    "color": [220, 40, 40], "threshold": args.threshold}],
        "uncertainty": {"mcDropout": {"input": "mc_mask", "shape": model.mask_shape(1), "rate": DROP,
                                      "defaultPasses": 8},
                        "tta": {"flips": [[0], [1]]}},
        "variants": [{"id": "int8", "file": "model.int8.onnx", "precision": "int8",
                      "description": "weight-only per-channel INT8 (DequantizeLinear + float Conv)"}],
    }
    if members:
        manifest["uncertainty"]["ensemble"] = {"members": members}
    C.write_manifest(pkg, manifest)
    print(json.dumps(metrics, indent=2))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["train", "validate", "export"])
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--minutes", type=float, default=40)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--val-every", type=int, default=250)
    ap.add_argument("--which", choices=["best", "last"], default="best")
    ap.add_argument("--ensemble", type=int, nargs="*", default=[4],
                    help="export: the seeds of the ensemble members, model.seedN.onnx (1.3.0 ships seed 4; "
                         "1.0.0-1.2.0 shipped seed 2)")
    ap.add_argument("--member-runs", nargs="*", default=None,
                    help="export: the run name of each --ensemble seed, in order (default: retina-vessels-seedN)")
    ap.add_argument("--scratch", action="store_true",
                    help="export: the --name run trained from random weights (`train --seed S --name R` without "
                         "--init-onnx), not a fine-tune of the package; pass its --seed")
    ap.add_argument("--threshold", type=float, default=0.5,
                    help="vessel probability threshold for validate/export (the manifest's labels[0].threshold); "
                         "choose it with `validate --sweep` on the validation images")
    ap.add_argument("--sweep", action="store_true", help="validate: F1 and mean image Dice at thresholds 0.30-0.80")
    ap.add_argument("--from-package", action="store_true",
                    help="validate/export the shipped weights (model.onnx, model.seed<N>.onnx) instead of a "
                         "checkpoint, e.g. to re-export them with another --threshold")
    ap.add_argument("--name", default=None, help="run / checkpoint name (default: the package id, -seedN)")
    ap.add_argument("--aug", choices=["basic", "heavy"], default="basic",
                    help="train: 'heavy' adds any rotation, scaling, gamma, blur and noise (heavy_sampler)")
    ap.add_argument("--init-onnx", default=None,
                    help="start from ONNX weights instead of random ones ('package': the shipped file of --seed); "
                         "BatchNorms stay frozen (pass it again with --resume)")
    args = ap.parse_args()
    {"train": train, "validate": cmd_validate, "export": cmd_export}[args.cmd](args)


if __name__ == "__main__":
    main()
