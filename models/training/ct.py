#!/usr/bin/python3
"""ct-lung-infection: COVID-19 lung infection on chest CT slices (attention residual U-Net, 2D).

    /usr/bin/python3 models/training/ct.py train [--resume] [--minutes 35] [--seed 1]
    /usr/bin/python3 models/training/ct.py validate
    /usr/bin/python3 models/training/ct.py export   # models/ct-lung-infection (binary) and
                                                    # models/ct-lung-infection-3class (GGO / consolidation)

One network is trained with three classes (background, ground-glass opacity, consolidation). The binary
package's ONNX is the same network with the two lesion logits merged by log-sum-exp, so its softmax gives
exactly p(infection) = p(GGO) + p(consolidation).

Input mapping (the package must see in the viewer what the net saw in training): the COVID-SemiSeg
slices are 8-bit images that were windowed before publication; we estimated that window from their
histogram (aerated lung parenchyma ~ -850 HU peaks at grey 44-49, chest-wall soft tissue ~ -20 HU at
grey 208-212) as [-1100, 200] HU, i.e. centre -450, width 1300. Training feeds grey/255; the manifest
declares `window` centre -450 width 1300 → [0, 1], which is the same number for a DICOM CT in HU.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402

NAME = "ct-lung-infection"
NAME3 = "ct-lung-infection-3class"
CT = os.path.join(C.DATA, "covid-ct", "MultiClassInfection-Train")
WINDOW_CENTER, WINDOW_WIDTH = -450.0, 1300.0
BASE, DEPTH, DROP = 16, 4, 0.2
WINDOW, OVERLAP = [256, 256], 0.5
PATCH, BATCH = 160, 6
AIR = 20.0 / 255.0  # -1000 HU through the window: value used to pad (outside the body is air)
VAL_COUNT = 10
# 1.1.0: fine-tuned with hard negatives (non-COVID lung slices); 1.2.0: one window per slice over the lung
# region's box (cropToRoi); 1.3.0: a second, longer hard-negative fine-tune (issue #19); 1.4.0: heavy augmentation
VERSION = "1.4.0"
# hard negatives: the shared non-COVID CT (chest to pelvis, no lung infection). Its lung-level slices are
# split into interleaved blocks of NEG_BLOCK slices: even blocks train, odd blocks are held out.
NEG_SERIES = os.path.join(C.DATA, "dicom", "ct-abdomen", "raw")
NEG_BLOCK = 8
# the manifest's region of interest (src/segmentation/roi.ts), with roi.ts's default opening
ROI = {"bodyHu": -500.0, "airHu": -400.0, "openingMm": 3.0, "minComponentMl": 200.0, "marginMm": 10.0,
       "croppedBorderFraction": 0.3}


def slice_ids():
    ids = sorted(int(f[:-4]) for f in os.listdir(os.path.join(CT, "Imgs")) if f.endswith(".jpg"))
    # validation = the 10 highest MedSeg slice indices: a contiguous block, so neighbouring slices
    # of one patient are less likely to sit on both sides of the split
    return ids[:-VAL_COUNT], ids[-VAL_COUNT:]


def load_case(k):
    img = np.asarray(Image.open(os.path.join(CT, "Imgs", "%d.jpg" % k)).convert("L")).astype(np.float32) / 255.0
    gt = np.asarray(Image.open(os.path.join(CT, "GT", "%d.png" % k))).astype(np.int64)
    return img, gt


def build(seed=1):
    C.seed_all(seed)
    return C.AttnResUNet(2, 1, 3, base=BASE, depth=DEPTH, drop=DROP)


class BinaryHead(nn.Module):
    """[bg, GGO, consolidation] logits → [bg, infection] logits, infection = logsumexp(GGO, consolidation)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    @property
    def mask_channels(self):
        return self.net.mask_channels

    def mask_shape(self, batch=1):
        return self.net.mask_shape(batch)

    def forward(self, x, mc_mask=None):
        y = self.net(x, mc_mask)
        a, b = y[:, 1:2], y[:, 2:3]
        m = torch.maximum(a, b)
        return torch.cat([y[:, 0:1], m + torch.log(torch.exp(a - m) + torch.exp(b - m))], dim=1)


def predict(model, img):
    """One window spanning the slice (padded to a multiple of 16), as the package runs: its `-1` window
    over the lung region's box, which on these body-cropped slices is the whole slice."""
    model.eval()
    return C.sliding_window(lambda t: torch.softmax(model(t), dim=1), img[None], list(img.shape), 0, AIR)


def dice_or_none(pred, gt):
    if not gt.any() and not pred.any():
        return None  # class absent and not predicted: no Dice defined; skipped in the mean
    return C.dice(pred, gt)


def evaluate(model, cases, binary=True):
    """Per-slice Dice at the slice's own size, then the mean over slices (Inf-Net's 'mean Dice'). Infection is
    the binary package's decision, p(GGO) + p(consolidation) > p(background) (its 2-class softmax), or with
    `binary=False` the 3-class package's labelmap, argmax not background; GGO and consolidation are the
    3-class argmax either way."""
    inf, ggo, con, sens, spec = [], [], [], [], []
    for k, (img, gt) in cases.items():
        p = predict(model, img)
        lab = p.argmax(0)
        pi, gi = (p[1] + p[2] > p[0]) if binary else lab > 0, gt > 0
        inf.append(C.dice(pi, gi))
        tp, fp, fn, tn = C.binary_stats(pi, gi)
        sens.append(tp / max(tp + fn, 1))
        spec.append(tn / max(tn + fp, 1))
        for cls, acc in ((1, ggo), (2, con)):
            d = dice_or_none(lab == cls, gt == cls)
            if d is not None:
                acc.append(d)
    return {"infectionDice": float(np.mean(inf)), "infectionSensitivity": float(np.mean(sens)),
            "infectionSpecificity": float(np.mean(spec)), "ggoDice": float(np.mean(ggo)),
            "consolidationDice": float(np.mean(con)), "slices": list(cases.keys()),
            "perSliceInfectionDice": [round(float(d), 4) for d in inf]}


def val_cases():
    return {k: load_case(k) for k in slice_ids()[1]}


def run_name(seed):
    return NAME if seed == 1 else "%s-seed%d" % (NAME, seed)


def train(args):
    torch.set_num_threads(args.threads)
    model = build(args.seed)
    if args.init_onnx:
        # the seed-1 package is the only one shipped for this model
        src = os.path.join(C.MODELS, NAME3, "model.onnx") if args.init_onnx == "package" else args.init_onnx
        C.warm_start_from_onnx(model, src, 1)
    data = [load_case(k) for k in slice_ids()[0]]
    vcases = val_cases()
    rng = np.random.RandomState(args.seed)
    n_neg = args.neg_per_batch
    neg = negative_split() if n_neg else None
    if neg is not None:
        print("hard negatives: %d lung-level slices, train %d, held out %d" % (
            len(neg["lung"]), len(neg["train"]), len(neg["heldout"])), flush=True)
        # crop centres: pixels of the region of interest on the training half
        centres = [(k, np.argwhere(neg["roi"][k])) for k in neg["train"]]

    def sample_negative():
        k, pts = centres[rng.randint(len(centres))]
        img = neg["img"][k]
        cy, cx = pts[rng.randint(len(pts))]
        s = rng.uniform(0.85, 1.15)  # the pipeline feeds native pixels; a little scale jitter
        half = int(round(PATCH / s / 2))
        padded = np.pad(img, half, constant_values=AIR)
        win = padded[cy:cy + 2 * half, cx:cx + 2 * half]
        px = F.interpolate(torch.from_numpy(np.ascontiguousarray(win))[None, None], size=(PATCH, PATCH),
                           mode="bilinear", align_corners=False)[0, 0].numpy()
        if rng.rand() < 0.5:
            px = px[:, ::-1]
        px = np.clip(px * rng.uniform(0.9, 1.1) + rng.uniform(-0.05, 0.05), 0, 1)
        return np.ascontiguousarray(px, dtype=np.float32), np.zeros((PATCH, PATCH), np.int64)

    def sample():
        xs, ys = [], []
        for _ in range(n_neg):
            px, py = sample_negative()
            xs.append(px)
            ys.append(py)
        for _ in range(BATCH - n_neg):
            img, gt = data[rng.randint(len(data))]
            if args.aug == "heavy":
                px, py = heavy_crop(img, gt, rng)
                xs.append(px)
                ys.append(py)
                continue
            # scale jitter: the slices were cropped and their pixel size is unknown
            s = rng.uniform(0.75, 1.3)
            h, w = img.shape
            nh, nw = max(int(h * s), 32), max(int(w * s), 32)
            ti = torch.from_numpy(img)[None, None]
            tg = torch.from_numpy(gt.astype(np.float32))[None, None]
            ti = F.interpolate(ti, size=(nh, nw), mode="bilinear", align_corners=False)[0, 0].numpy()
            tg = F.interpolate(tg, size=(nh, nw), mode="nearest")[0, 0].numpy().astype(np.int64)
            # pad with air so the net also sees the outside of the body, as in a full DICOM slice
            ph, pw = max(0, PATCH - nh) + 16, max(0, PATCH - nw) + 16
            ti = np.pad(ti, ((ph, ph), (pw, pw)), constant_values=AIR)
            tg = np.pad(tg, ((ph, ph), (pw, pw)))
            r = rng.randint(ti.shape[0] - PATCH + 1)
            c = rng.randint(ti.shape[1] - PATCH + 1)
            px, py = ti[r:r + PATCH, c:c + PATCH], tg[r:r + PATCH, c:c + PATCH]
            if rng.rand() < 0.5:
                px, py = px[:, ::-1], py[:, ::-1]
            # window mismatch robustness: affine intensity jitter around the estimated window
            px = np.clip(px * rng.uniform(0.9, 1.1) + rng.uniform(-0.05, 0.05), 0, 1)
            xs.append(np.ascontiguousarray(px, dtype=np.float32))
            ys.append(np.ascontiguousarray(py))
        return torch.from_numpy(np.stack(xs)[:, None]), torch.from_numpy(np.stack(ys))

    def loss_fn(logits, y):
        ce = F.cross_entropy(logits, y)
        p = torch.softmax(logits, dim=1)
        onehot = F.one_hot(y, 3).permute(0, 3, 1, 2).float()
        inf_p = (p[:, 1] + p[:, 2])[:, None]
        inf_t = (onehot[:, 1] + onehot[:, 2])[:, None]
        return ce + C.soft_dice_loss(inf_p, inf_t) + 0.5 * C.soft_dice_loss(p[:, 1:], onehot[:, 1:])

    def validate(m):
        info = evaluate(m, vcases)
        info.pop("perSliceInfectionDice")
        score = info["infectionDice"]
        if neg is not None:
            t = time.time()
            info["heldoutFpMl"] = false_positive_ml(m, neg, neg["heldout"])
            info["fpSeconds"] = time.time() - t
            # selection: Dice, less 0.01 per 5 mL of false positives on the held-out half
            score -= args.fp_weight * info["heldoutFpMl"]
            info["score"] = score
        return score, {k: (round(v, 4) if isinstance(v, float) else v) for k, v in info.items()}

    C.train_loop(args.name or run_name(args.seed), model, sample, loss_fn, args.steps, args.lr, args.resume, args.minutes,
                 validate, val_every=args.val_every, freeze_bn=bool(args.init_onnx))


def heavy_crop(img, gt, rng):
    """nnU-Net-style spatial and intensity augmentation of one training slice: one affine resampling
    (rotation within +-20 degrees, isotropic scale x U(0.75, 1.3) as the basic sampler, air outside the
    slice), a third of the crops centred on infection (foreground oversampling), horizontal flips, then
    blur, gamma, contrast/brightness jitter and noise (common.intensity_augment), clipped to the window's
    0..1."""
    h, w = img.shape
    fg = np.argwhere(gt > 0)
    if len(fg) and rng.rand() < 0.33:
        centre = fg[rng.randint(len(fg))] + rng.randint(-PATCH // 4, PATCH // 4 + 1, 2)
    else:
        centre = (rng.randint(h), rng.randint(w))
    px, py = C.affine_patch_2d(img, gt, centre, PATCH, np.deg2rad(rng.uniform(-20, 20)), rng.uniform(0.75, 1.3),
                               fill=AIR)
    if rng.rand() < 0.5:
        px, py = px[:, ::-1], py[:, ::-1]
    px = C.intensity_augment(px, rng, unit_range=True)
    return (np.ascontiguousarray(np.clip(px, 0, 1), dtype=np.float32),
            np.ascontiguousarray(np.rint(py)).astype(np.int64))


# ----------------------------------------------------------------------------------------------
# hard negatives: a CT series without infection, windowed exactly as the manifest declares


def hu_to_input(hu):
    """The manifest's `window` (centre WINDOW_CENTER, width WINDOW_WIDTH → 0..1), as
    src/segmentation/preprocess.ts computes it: (HU − (c − w/2)) / w, clipped."""
    lo = WINDOW_CENTER - WINDOW_WIDTH / 2
    return np.clip((hu.astype(np.float32) - lo) / WINDOW_WIDTH, 0.0, 1.0).astype(np.float32)


def read_ct_series(folder):
    """HU volume [z, y, x] (HU = stored × RescaleSlope + RescaleIntercept), slices sorted head first by
    ImagePositionPatient, the pixel spacing (dz, dy, dx) in mm and the source file of each slice.
    Compressed pixel data that pydicom 2.3 cannot decode (JPEG-LS) is decompressed with dcmtk's
    dcmdjpls into a temporary folder first."""
    import pydicom
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder) if not f.startswith("."))
    slices = []
    tmp = None
    try:
        for f in files:
            try:
                ds = pydicom.dcmread(f)
            except Exception:
                continue
            if "PixelData" not in ds:
                continue
            try:
                raw = ds.pixel_array
            except Exception:
                if tmp is None:
                    tmp = tempfile.mkdtemp(prefix="ct-neg-")
                out = os.path.join(tmp, os.path.basename(f))
                subprocess.run(["dcmdjpls", f, out], check=True, capture_output=True)
                ds = pydicom.dcmread(out)
                raw = ds.pixel_array
            hu = raw.astype(np.float32) * float(getattr(ds, "RescaleSlope", 1)) + float(
                getattr(ds, "RescaleIntercept", 0))
            slices.append((float(ds.ImagePositionPatient[2]), hu, [float(v) for v in ds.PixelSpacing], f))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    slices.sort(key=lambda t: -t[0])
    z = np.array([t[0] for t in slices])
    dz = float(np.median(np.abs(np.diff(z)))) if len(z) > 1 else 1.0
    dy, dx = slices[0][2]
    return np.stack([t[1] for t in slices]), (dz, dy, dx), [t[3] for t in slices]


def lung_roi(hu, spacing, spec=ROI):
    """Python counterpart of the manifest's `lungs-from-hu` region (src/segmentation/roi.ts, on the full
    grid instead of roi.ts's coarse one): body ≥ bodyHu opened in-plane, largest component per slice
    with its holes filled; air < airHu inside it; 3D components ≥ minComponentMl; grown by a box of
    marginMm; slices whose border is mostly body kept whole."""
    from scipy import ndimage as ndi
    dz, dy, dx = spacing
    body = hu >= spec["bodyHu"]
    r = [int(round(spec["openingMm"] / dy)), int(round(spec["openingMm"] / dx))]
    roi = np.zeros_like(body)
    cropped = np.zeros(len(hu), bool)
    for k in range(len(hu)):
        b = body[k]
        border = np.concatenate([b[0], b[-1], b[1:-1, 0], b[1:-1, -1]])
        cropped[k] = border.mean() > spec["croppedBorderFraction"]
        o = ndi.binary_opening(b, structure=np.ones((2 * r[0] + 1, 2 * r[1] + 1), bool), border_value=1)
        lab, n = ndi.label(o)
        if n == 0:
            continue
        sizes = ndi.sum(o, lab, range(1, n + 1))
        filled = ndi.binary_fill_holes(lab == (1 + int(np.argmax(sizes))))
        roi[k] = filled & (hu[k] < spec["airHu"])
    if spec["minComponentMl"] > 0 and len(hu) > 1:
        lab, n = ndi.label(roi)  # 6-connected in 3D
        if n:
            min_vox = spec["minComponentMl"] * 1000.0 / (dz * dy * dx)
            sizes = ndi.sum(roi, lab, range(1, n + 1))
            keep = np.concatenate([[False], sizes >= min_vox])
            roi = keep[lab]
    m = [int(np.ceil(spec["marginMm"] / s - 1e-9)) for s in (dz, dy, dx)]
    roi = roi.astype(np.uint8)
    for axis, v in enumerate(m):  # a box is separable: one running maximum per axis
        if v > 0:
            roi = ndi.maximum_filter1d(roi, 2 * v + 1, axis=axis, mode="constant")
    roi = roi.astype(bool)
    roi[cropped] = True
    return roi


_NEG = {}


def negative_split(block=NEG_BLOCK):
    """The non-COVID CT's lung-level slices (those the region of interest touches), split into
    interleaved blocks of `block` slices: even blocks → training, odd blocks → held out."""
    if block in _NEG:
        return _NEG[block]
    hu, spacing, files = read_ct_series(NEG_SERIES)
    roi = lung_roi(hu, spacing)
    lung = [k for k in range(len(hu)) if roi[k].any()]
    train_k = [k for i, k in enumerate(lung) if (i // block) % 2 == 0]
    held_k = [k for i, k in enumerate(lung) if (i // block) % 2 == 1]
    _NEG[block] = {"img": hu_to_input(hu), "roi": roi, "spacing": spacing, "files": files, "lung": lung,
                   "train": train_k, "heldout": held_k, "voxelMl": spacing[0] * spacing[1] * spacing[2] / 1000.0}
    return _NEG[block]


def roi_crop_box(mask, pad=16):
    ys, xs = np.nonzero(mask)
    return (max(0, ys.min() - pad), min(mask.shape[0], ys.max() + 1 + pad),
            max(0, xs.min() - pad), min(mask.shape[1], xs.max() + 1 + pad))


def false_positive_ml(model, neg, slices):
    """Infection volume (mL) the model marks inside the region of interest on `slices` of the negative
    CT. Each slice is cropped to its region's bounding box (+16 px) before the sliding window: the
    pipeline runs only the windows touching the region, so the numbers are close to, not identical
    with, `deno task eval --negative`."""
    vox = 0
    for k in slices:
        y0, y1, x0, x1 = roi_crop_box(neg["roi"][k])
        p = predict(model, neg["img"][k, y0:y1, x0:x1])
        vox += int(np.sum((p.argmax(0) > 0) & neg["roi"][k, y0:y1, x0:x1]))
    return vox * neg["voxelMl"]


def load_trained(seed=1, which="best", name=None):
    return C.load_checkpoint(build(seed), name or run_name(seed), which)


def cmd_validate(args):
    model, st = load_trained(args.seed, args.which, args.name)
    print(json.dumps({"step": st["step"], **evaluate(model, val_cases())}, indent=2))


def cmd_negatives(args):
    """The hard-negative split; with --out, copies the held-out slices' DICOM files into that folder (for
    `deno task eval --negative`); with --fp, the false-positive volume of a checkpoint (or of the package
    with --init-onnx package) on the held-out half and on all lung-level slices."""
    torch.set_num_threads(args.threads)
    neg = negative_split()
    info = {"series": os.path.relpath(NEG_SERIES, C.DATA), "slices": len(neg["img"]),
            "spacingMm": neg["spacing"], "lungLevelSlices": len(neg["lung"]), "block": NEG_BLOCK,
            "train": neg["train"], "heldout": neg["heldout"]}
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        for k in neg["heldout"]:
            shutil.copy(neg["files"][k], os.path.join(args.out, os.path.basename(neg["files"][k])))
        info["copied"] = len(neg["heldout"])
    if args.fp:
        if args.init_onnx:
            model = build(1)
            src = os.path.join(C.MODELS, NAME3, "model.onnx") if args.init_onnx == "package" else args.init_onnx
            C.warm_start_from_onnx(model, src, 1)
            model.eval()
        else:
            model, _ = load_trained(args.seed, args.which, args.name)
        info["fpMl"] = {"heldout": false_positive_ml(model, neg, neg["heldout"]),
                        "train": false_positive_ml(model, neg, neg["train"])}
        info["fpMl"]["whole"] = info["fpMl"]["heldout"] + info["fpMl"]["train"]
    print(json.dumps(info, indent=2))


def common_manifest(model, out_channels):
    return {
        "schemaVersion": 1,
        "version": VERSION,
        "task": "segmentation",
        "intendedUse": "Research only. Not a medical device; not for diagnosis, triage or treatment decisions.",
        "license": "Weights: non-commercial research use only (derived from COVID-SemiSeg / MedSeg data, "
                   "which are non-commercial).",
        "authors": ["EdgeSeg"],
        "citations": [
            "D.-P. Fan et al., Inf-Net: Automatic COVID-19 Lung Infection Segmentation From CT Images, "
            "IEEE TMI 39(8):2626-2637, 2020.",
            "MedSeg, COVID-19 CT segmentation dataset, https://medicalsegmentation.com/covid19/.",
            "O. Oktay et al., Attention U-Net: Learning Where to Look for the Pancreas, MIDL 2018.",
        ],
        "constraints": {"modalities": ["CT"], "bodyParts": ["CHEST", "LUNG"], "channels": 1},
        "model": "model.onnx",
        "inputs": [{"name": "input", "dtype": "float32", "shape": ["batch", 1, "height", "width"]},
                   {"name": "mc_mask", "dtype": "float32", "shape": ["batch", model.mask_channels, 1, 1]}],
        "outputs": [{"name": "logits", "dtype": "float32", "shape": ["batch", out_channels, "height", "width"]}],
        "activation": "softmax",
        "preprocessing": {"intensity": {"kind": "window", "center": WINDOW_CENTER, "width": WINDOW_WIDTH,
                                        "outMin": 0, "outMax": 1},
                          "padMultiple": 2 ** DEPTH, "padValue": round(AIR, 6)},
        # the net is fully convolutional: one window spanning the lung region's bounding box per slice
        # (training crops and `validate` use WINDOW; the package's numbers come from `deno task card-eval`)
        "spatial": {"mode": "slice2d", "window": [-1, -1], "overlap": 0, "blending": "gaussian",
                    "sigmaScale": 0.125, "batch": 1, "cropToRoi": True},
        # lungs from HU: windows outside the lungs are skipped and background (docs/model-packages.md)
        "roi": {"kind": "lungs-from-hu", "bodyHu": -500, "airHu": -400, "minComponentMl": 200, "marginMm": 10},
        "uncertainty": {"mcDropout": {"input": "mc_mask", "shape": model.mask_shape(1), "rate": DROP,
                                      "defaultPasses": 8},
                        "tta": {"flips": [[0]]}},
        "variants": [{"id": "int8", "file": "model.int8.onnx", "precision": "int8",
                      "description": "weight-only per-channel INT8 (DequantizeLinear + float Conv)"}],
    }


def cmd_export(args):
    model, st = load_trained(1, args.which, args.name)
    vc = val_cases()
    quantised = C.fake_quantize_(C.fold_bn(model))  # a BN-folded copy
    split = dict(zip(["train", "validation"], slice_ids()))
    lesion = C.MORPH_ALTERED
    for pkg_name, net, channels in ((NAME, BinaryHead(model).eval(), 2), (NAME3, model, 3)):
        # each package's own infection decision (see evaluate)
        fp32, int8 = evaluate(model, vc, channels == 2), evaluate(quantised, vc, channels == 2)
        pkg = os.path.join(C.MODELS, pkg_name)
        os.makedirs(pkg, exist_ok=True)
        C.export_onnx(net, os.path.join(pkg, "model.onnx"), 1, WINDOW, 2)
        man = common_manifest(model, channels)
        static = None
        if channels == 2:
            # the binary package's int8 variant is static QDQ (issue #15): integer kernels in WASM
            import quantize_qdq as QQ
            static = QQ.quantize_ct_file(os.path.join(pkg, "model.onnx"), man, os.path.join(pkg, "model.int8.onnx"))
            man["variants"] = [QQ.STATIC_VARIANT]
            n = static["int8Convs"]
        else:
            n = C.quantize_int8(os.path.join(pkg, "model.onnx"), os.path.join(pkg, "model.int8.onnx"))
        if channels == 2:
            man.update({"id": NAME, "name": "Lung infection (chest CT, COVID-19)",
                        "description": "Attention residual U-Net (2D, slice by slice) segmenting COVID-19 lung "
                                       "infection (ground-glass opacity and consolidation together) on chest CT."})
            man["labels"] = [{"value": 1, "name": "Lung infection", "channel": 1, "category": lesion,
                              "type": C.code("52988006", "Lesion"), "color": [230, 120, 30]}]
            man["triage"] = {"labels": [1], "referenceVolumeMl": 500, "boundaryWeight": 0.2,
                             "uncertaintyDiscount": 0.3, "thresholds": {"review": 0.2, "urgent": 0.6}}
        else:
            man.update({"id": NAME3, "name": "Lung infection, ground-glass / consolidation (chest CT)",
                        "description": "Attention residual U-Net (2D, slice by slice) separating COVID-19 "
                                       "ground-glass opacity from consolidation on chest CT."})
            man["labels"] = [
                {"value": 1, "name": "Ground-glass opacity", "channel": 1, "category": lesion,
                 "type": C.code("52988006", "Lesion"), "color": [240, 200, 60]},
                {"value": 2, "name": "Consolidation", "channel": 2, "category": lesion,
                 "type": C.code("95436008", "Lung consolidation"), "color": [200, 60, 40]}]
        C.write_manifest(pkg, man)
        metrics = {"split": split, "checkpointStep": st["step"], "fp32": fp32, "int8": int8,
                   "parity": C.parity_reference(net, 1, WINDOW, DROP),
                   "int8QuantisedConvs": n, "params": C.count_params(model),
                   **({"int8Static": static} if static else {}),
                   **({"fineTunes": C.fine_tune_history(pkg, {
                       "version": VERSION, "run": args.name, "aug": args.aug, "negPerBatch": args.neg_per_batch,
                       "fpWeight": args.fp_weight, "checkpointStep": st["step"]})} if args.name else {}),
                   "window": {"center": WINDOW_CENTER, "width": WINDOW_WIDTH}}
        C.write_json(os.path.join(pkg, "validation.json"), metrics)
    print(json.dumps({"fp32": fp32, "int8": int8}, indent=2))


def cmd_window(args):
    """Reproduces the window estimate: grey-level histogram peaks of lung parenchyma (grey < 128) and
    chest-wall soft tissue (grey >= 128) over all training slices, fitted to -850 HU and -20 HU."""
    h = np.zeros(256)
    for k in slice_ids()[0] + slice_ids()[1]:
        img = np.asarray(Image.open(os.path.join(CT, "Imgs", "%d.jpg" % k)).convert("L"))
        h += np.bincount(img.ravel(), minlength=256)
    sm = np.convolve(h, np.ones(9) / 9, mode="same")
    g_lung, g_soft = int(np.argmax(sm[:128])), 128 + int(np.argmax(sm[128:250]))
    hu_lung, hu_soft = -850.0, -20.0
    slope = (g_soft - g_lung) / (hu_soft - hu_lung)  # grey levels per HU
    lo = hu_lung - g_lung / slope
    width = 255.0 / slope
    print(json.dumps({"lungPeakGrey": g_lung, "softTissuePeakGrey": g_soft, "fittedLowHU": round(lo),
                      "fittedWidthHU": round(width), "fittedCenterHU": round(lo + width / 2),
                      "declared": {"center": WINDOW_CENTER, "width": WINDOW_WIDTH}}, indent=2))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["train", "validate", "export", "window", "negatives"])
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--minutes", type=float, default=35)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--val-every", type=int, default=100)
    ap.add_argument("--which", choices=["best", "last"], default="best")
    ap.add_argument("--init-onnx", default=None,
                    help="start from ONNX weights instead of random ones ('package': the shipped model.onnx); "
                         "BatchNorms stay frozen (pass it again with --resume)")
    ap.add_argument("--neg-per-batch", type=int, default=0,
                    help="hard-negative crops (non-COVID CT, all background) per batch of %d" % BATCH)
    ap.add_argument("--fp-weight", type=float, default=0.002,
                    help="checkpoint selection: Dice minus this × held-out false-positive mL")
    ap.add_argument("--name", default=None, help="run / checkpoint name (default: the package id)")
    ap.add_argument("--aug", choices=["basic", "heavy"], default="basic",
                    help="train: 'heavy' adds rotation, foreground oversampling, gamma, noise and blur (heavy_crop)")
    ap.add_argument("--out", default=None, help="negatives: copy the held-out slices' DICOM files here")
    ap.add_argument("--fp", action="store_true", help="negatives: measure the false-positive volume")
    args = ap.parse_args()
    {"train": train, "validate": cmd_validate, "export": cmd_export, "window": cmd_window,
     "negatives": cmd_negatives}[args.cmd](args)


if __name__ == "__main__":
    main()
