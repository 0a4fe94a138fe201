#!/usr/bin/python3
"""la-mri-3d: left atrium in LGE cardiac MRI (3D attention residual U-Net, sliding-window patches).

    /usr/bin/python3 models/training/la.py train [--resume] [--minutes 40] [--seed 1]
    /usr/bin/python3 models/training/la.py validate
    /usr/bin/python3 models/training/la.py export          # package models/la-mri-3d/

CPU budget choice: the net runs at 1.25 mm isotropic (the data are 0.625 mm), which the manifest
declares as `targetSpacingMm`, so the viewer resamples the same way. Validation resamples the
probabilities back to the original 0.625 mm grid and scores there (Dice, HD95 and ASSD in mm).
Volumes are z-scored per volume (manifest `zscore` over all voxels), as the data already are.
Arrays are (z, y, x) = ONNX (D, H, W); the manifest window is [x, y, z].
Split: the 16 cases sorted by id; the last 3 are validation.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402

NAME = "la-mri-3d"
LA = os.path.join(C.DATA, "la-mri")
SRC_MM, NET_MM = 0.625, 1.25
BASE, DEPTH, DROP = 12, 3, 0.2
PATCH = (32, 64, 64)  # z, y, x
WINDOW_XYZ = [64, 64, 32]
OVERLAP = 0.5
BATCH = 2
VAL_COUNT = 3
VERSION = "1.2.0"


def set_patch(patch=None, batch=None):
    """The training patch (z, y, x), which is also the manifest's sliding window, and the batch size."""
    global PATCH, WINDOW_XYZ, BATCH
    if patch:
        if any(p % 2 ** DEPTH for p in patch):
            raise SystemExit("--patch: each size must be a multiple of %d, got %s" % (2 ** DEPTH, patch))
        PATCH, WINDOW_XYZ = tuple(patch), list(patch)[::-1]
    if batch:
        BATCH = batch


def case_ids():
    ids = sorted(f[:-len("_image.nii.gz")] for f in os.listdir(LA) if f.endswith("_image.nii.gz"))
    return ids[:-VAL_COUNT], ids[-VAL_COUNT:]


def zscore(v):
    return ((v - v.mean()) / max(v.std(), 1e-6)).astype(np.float32)


def resample(vol, factor, order=1):
    """Linear resampling by `factor` per axis with corner-aligned half-voxel centres (like trilinear
    interpolate with align_corners=False)."""
    t = torch.from_numpy(np.ascontiguousarray(vol, dtype=np.float32))[None, None]
    size = [max(1, int(round(s * factor))) for s in vol.shape]
    mode = "trilinear" if order == 1 else "nearest"
    kw = {"align_corners": False} if order == 1 else {}
    return F.interpolate(t, size=size, mode=mode, **kw)[0, 0].numpy()


def load_case(cid):
    import nibabel as nib
    img = nib.load(os.path.join(LA, cid + "_image.nii.gz")).get_fdata(dtype=np.float32)
    lab = np.asarray(nib.load(os.path.join(LA, cid + "_label.nii.gz")).dataobj) > 0
    img, lab = img.transpose(2, 1, 0), lab.transpose(2, 1, 0)  # (x, y, z) → (z, y, x)
    return img, lab


def net_input(img):
    """What the pipeline does: z-score over all voxels, then linear resampling to 1.25 mm."""
    return resample(zscore(img), SRC_MM / NET_MM)


def build(seed=1):
    C.seed_all(seed)
    return C.AttnResUNet(3, 1, 2, base=BASE, depth=DEPTH, drop=DROP)


def predict_prob(model, img):
    """Probability of LA on the original grid."""
    model.eval()
    x = net_input(img)
    win_zyx = WINDOW_XYZ[::-1]
    # logits blended, softmax after, as the pipeline does
    p = C.sliding_window(model, x[None], win_zyx, OVERLAP, 0.0, activation=lambda t: torch.softmax(t, dim=0))[1]
    t = torch.from_numpy(p)[None, None]
    return F.interpolate(t, size=img.shape, mode="trilinear", align_corners=False)[0, 0].numpy()


def largest_component(mask):
    from scipy import ndimage
    lab, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = ndimage.sum(mask, lab, range(1, n + 1))
    return lab == (1 + int(np.argmax(sizes)))


def evaluate(model, cases, threshold=0.5, probs=None):
    """Dice, HD95, ASSD per case on the original grid; `probs` (case -> probability) skips inference."""
    out = {}
    for cid, (img, lab) in cases.items():
        p = probs[cid] if probs is not None else predict_prob(model, img)
        pred = largest_component(p >= threshold)
        hd, asd = C.hd95_assd(pred, lab, (SRC_MM,) * 3)
        out[cid] = {"dice": C.dice(pred, lab), "hd95Mm": hd, "assdMm": asd}
    mean = {k: float(np.mean([v[k] for v in out.values()])) for k in ("dice", "hd95Mm", "assdMm")}
    return {**mean, "cases": out}


def val_cases():
    return {cid: load_case(cid) for cid in case_ids()[1]}


def run_name(seed):
    return NAME if seed == 1 else "%s-seed%d" % (NAME, seed)


def train(args):
    torch.set_num_threads(args.threads)
    model = build(args.seed)
    if args.init_onnx:
        # the seed-1 package is the only one shipped for this model
        src = os.path.join(C.MODELS, NAME, "model.onnx") if args.init_onnx == "package" else args.init_onnx
        C.warm_start_from_onnx(model, src, 1)
    data = []
    for cid in case_ids()[0]:
        img, lab = load_case(cid)
        x = net_input(img)
        y = resample(lab.astype(np.float32), SRC_MM / NET_MM) >= 0.5
        pad = [(0, max(0, p - s)) for p, s in zip(PATCH, x.shape)]
        data.append((np.pad(x, pad), np.pad(y, pad)))
    vcases = val_cases()
    rng = np.random.RandomState(args.seed)

    def sample():
        if args.aug == "heavy":
            return sample_heavy(data, rng)
        xs, ys = [], []
        for _ in range(BATCH):
            x, y = data[rng.randint(len(data))]
            # two of three patches centred near the atrium (class balance), the rest anywhere
            if rng.rand() < 0.67:
                fg = np.argwhere(y)
                c = fg[rng.randint(len(fg))]
                st = [int(np.clip(ci - p // 2 + rng.randint(-p // 4, p // 4 + 1), 0, s - p))
                      for ci, p, s in zip(c, PATCH, x.shape)]
            else:
                st = [rng.randint(s - p + 1) for p, s in zip(PATCH, x.shape)]
            sl = tuple(slice(a, a + p) for a, p in zip(st, PATCH))
            px, py = x[sl], y[sl]
            for ax in (1, 2):
                if rng.rand() < 0.5:
                    px, py = np.flip(px, ax), np.flip(py, ax)
            px = px * rng.uniform(0.9, 1.1) + rng.uniform(-0.1, 0.1)
            xs.append(np.ascontiguousarray(px, dtype=np.float32))
            ys.append(np.ascontiguousarray(py).astype(np.int64))
        return torch.from_numpy(np.stack(xs)[:, None]), torch.from_numpy(np.stack(ys))

    def loss_fn(logits, y):
        p = torch.softmax(logits, dim=1)[:, 1:2]
        return F.cross_entropy(logits, y) + C.soft_dice_loss(p, y[:, None].float())

    def validate(m):
        info = evaluate(m, vcases)
        return info["dice"], {"dice": round(info["dice"], 4), "hd95Mm": round(info["hd95Mm"], 2),
                              "assdMm": round(info["assdMm"], 2)}

    C.train_loop(args.name or run_name(args.seed), model, sample, loss_fn, args.steps, args.lr, args.resume, args.minutes,
                 validate, val_every=args.val_every, freeze_bn=bool(args.init_onnx))


def sample_heavy(data, rng):
    """nnU-Net-style spatial and intensity augmentation: a crop 1.5x the patch in-plane (so the rotated,
    scaled patch has no empty corners) resampled by one affine (rotation about the slice axis within
    +-20 degrees, isotropic scale 0.85-1.2), flips in-plane, then gamma 0.7-1.5 on the min-max-scaled patch,
    contrast/brightness jitter and Gaussian noise (sigma up to 0.1 z-score units). Two of three patches
    are centred near the atrium, as in the basic sampler."""
    big = (PATCH[0], int(PATCH[1] * 1.5), int(PATCH[2] * 1.5))
    xs, ys = [], []
    for _ in range(BATCH):
        x, y = data[rng.randint(len(data))]
        if rng.rand() < 0.67:
            fg = np.argwhere(y)
            c = fg[rng.randint(len(fg))] + np.array([rng.randint(-p // 4, p // 4 + 1) for p in PATCH])
        else:
            c = np.array([rng.randint(s) for s in x.shape])
        st = [int(ci) - b // 2 for ci, b in zip(c, big)]
        pad = [(max(0, -a), max(0, a + b - s)) for a, b, s in zip(st, big, x.shape)]
        xp, yp = np.pad(x, pad), np.pad(y.astype(np.float32), pad)
        sl = tuple(slice(a + lo, a + lo + b) for a, (lo, _), b in zip(st, pad, big))
        px = torch.from_numpy(np.ascontiguousarray(xp[sl]))[None, None]
        py = torch.from_numpy(np.ascontiguousarray(yp[sl]))[None, None]
        ang, sc = np.deg2rad(rng.uniform(-20, 20)), rng.uniform(0.85, 1.2)
        k = [PATCH[2] / big[2], PATCH[1] / big[1]]  # output patch as a fraction of the crop (x, y)
        ca, sa = np.cos(ang) / sc, np.sin(ang) / sc
        theta = torch.tensor([[[ca * k[0], -sa * k[1], 0, 0], [sa * k[0], ca * k[1], 0, 0], [0, 0, 1, 0]]],
                             dtype=torch.float32)
        grid = F.affine_grid(theta, [1, 1] + list(PATCH), align_corners=False)
        gx = F.grid_sample(px, grid, mode="bilinear", padding_mode="border", align_corners=False)[0, 0]
        gy = F.grid_sample(py, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0, 0] >= 0.5
        gx, gy = gx.numpy(), gy.numpy()
        for ax in (1, 2):
            if rng.rand() < 0.5:
                gx, gy = np.flip(gx, ax), np.flip(gy, ax)
        if rng.rand() < 0.3:
            lo, hi = gx.min(), gx.max()
            gx = ((gx - lo) / max(hi - lo, 1e-6)) ** rng.uniform(0.7, 1.5) * (hi - lo) + lo
        gx = gx * rng.uniform(0.85, 1.15) + rng.uniform(-0.15, 0.15)
        if rng.rand() < 0.3:
            gx = gx + rng.normal(0, rng.uniform(0, 0.1), gx.shape)
        xs.append(np.ascontiguousarray(gx, dtype=np.float32))
        ys.append(np.ascontiguousarray(gy).astype(np.int64))
    return torch.from_numpy(np.stack(xs)[:, None]), torch.from_numpy(np.stack(ys))


def load_trained(seed=1, which="best", name=None):
    return C.load_checkpoint(build(seed), name or run_name(seed), which)


def cmd_validate(args):
    model, st = load_trained(args.seed, args.which, args.name)
    vc = val_cases()
    if not args.sweep:
        print(json.dumps({"step": st["step"], **evaluate(model, vc, args.threshold)}, indent=2))
        return
    # mean case Dice after the largest component at each threshold (the manifest's decision and
    # post-processing), on the validation cases
    print(json.dumps({"step": st["step"], "sweep": sweep(model, vc)}, indent=2))


def sweep(model, cases):
    """Mean case Dice (HD95, ASSD) after the largest component at thresholds 0.30-0.80: the manifest's
    decision and post-processing, one inference per case."""
    probs = {cid: predict_prob(model, img) for cid, (img, _) in cases.items()}
    return [{"threshold": float(t), **{k: round(v, 4) for k, v in evaluate(model, cases, float(t), probs).items()
                                       if k != "cases"}}
            for t in np.round(np.arange(0.3, 0.81, 0.05), 2)]


def cmd_export(args):
    pkg = os.path.join(C.MODELS, NAME)
    os.makedirs(pkg, exist_ok=True)
    model, st = load_trained(1, args.which, args.name)
    vc = val_cases()
    fp32 = evaluate(model, vc, args.threshold)
    int8 = evaluate(C.fake_quantize_(C.fold_bn(model)), vc, args.threshold)
    C.export_onnx(model, os.path.join(pkg, "model.onnx"), 1, PATCH, 3)
    n = C.quantize_int8(os.path.join(pkg, "model.onnx"), os.path.join(pkg, "model.int8.onnx"))
    train_ids, val_ids = case_ids()
    metrics = {"split": {"train": train_ids, "validation": val_ids}, "checkpointStep": st["step"],
               "threshold": args.threshold, "thresholdSweep": sweep(model, vc),
               "patch": list(PATCH), "batch": BATCH,
               "fineTunes": C.fine_tune_history(pkg, {"version": VERSION, "run": args.name, "aug": args.aug,
                                                      "checkpointStep": st["step"], "patch": list(PATCH),
                                                      "batch": BATCH}) if args.name else [],
               "fp32": fp32, "int8": int8, "int8QuantisedConvs": n,
               "parity": C.parity_reference(model, 1, PATCH, DROP), "params": C.count_params(model)}
    C.write_json(os.path.join(pkg, "validation.json"), metrics)
    manifest = {
        "schemaVersion": 1,
        "id": NAME,
        "name": "Left atrium (LGE cardiac MRI, 3D)",
        "version": VERSION,
        "task": "segmentation",
        "description": "3D attention residual U-Net (strided-conv down, trilinear Resize + Conv up) segmenting "
                       "the left atrial cavity in late-gadolinium-enhanced cardiac MRI, run on 1.25 mm patches "
                       "with a sliding window.",
        "intendedUse": "Research only. Not a medical device; not for diagnosis or treatment planning.",
        "license": "Weights: research use with citation (derived from the 2018 Atrial Segmentation Challenge data).",
        "authors": ["EdgeSeg"],
        "citations": [
            "Z. Xiong et al., A global benchmark of algorithms for segmenting the left atrium from late "
            "gadolinium-enhanced cardiac magnetic resonance imaging, Medical Image Analysis 67:101832, 2021.",
            "L. Yu et al., Uncertainty-aware Self-ensembling Model for Semi-supervised 3D Left Atrium "
            "Segmentation, MICCAI 2019.",
            "O. Oktay et al., Attention U-Net: Learning Where to Look for the Pancreas, MIDL 2018.",
        ],
        "constraints": {"modalities": ["MR"], "bodyParts": ["HEART"], "channels": 1, "minSlices": 16},
        "model": "model.onnx",
        "inputs": [{"name": "input", "dtype": "float32", "shape": ["batch", 1, "depth", "height", "width"]},
                   {"name": "mc_mask", "dtype": "float32", "shape": ["batch", model.mask_channels, 1, 1, 1]}],
        "outputs": [{"name": "logits", "dtype": "float32", "shape": ["batch", 2, "depth", "height", "width"]}],
        "activation": "softmax",
        "preprocessing": {"intensity": {"kind": "zscore", "mask": "all"},
                          "targetSpacingMm": [NET_MM, NET_MM, NET_MM],
                          "padMultiple": 2 ** DEPTH, "padValue": 0},
        "spatial": {"mode": "patch3d", "window": WINDOW_XYZ, "overlap": OVERLAP, "blending": "gaussian",
                    "sigmaScale": 0.125, "batch": 1},
        "labels": [{"value": 1, "name": "Left atrium", "channel": 1, "category": C.ANATOMICAL_STRUCTURE,
                    "type": C.code("82471001", "Left atrium"), "color": [200, 80, 200],
                    **({"threshold": args.threshold} if args.threshold != 0.5 else {})}],
        "postprocessing": {"largestComponent": [1]},
        "uncertainty": {"mcDropout": {"input": "mc_mask", "shape": model.mask_shape(1), "rate": DROP,
                                      "defaultPasses": 6},
                        "tta": {"flips": [[0], [1]]}},
        "variants": [{"id": "int8", "file": "model.int8.onnx", "precision": "int8",
                      "description": "weight-only per-channel INT8 (DequantizeLinear + float Conv)"}],
    }
    C.write_manifest(pkg, manifest)
    print(json.dumps(metrics, indent=2))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["train", "validate", "export"])
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--minutes", type=float, default=40)
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--val-every", type=int, default=150)
    ap.add_argument("--which", choices=["best", "last"], default="best")
    ap.add_argument("--threshold", type=float, default=0.5,
                    help="LA probability threshold for validate/export (the manifest's labels[0].threshold; 0.5 "
                         "= argmax); choose it with `validate --sweep` on the validation cases")
    ap.add_argument("--sweep", action="store_true", help="validate: mean Dice at thresholds 0.30-0.80")
    ap.add_argument("--name", default=None, help="run / checkpoint name (default: the package id)")
    ap.add_argument("--aug", choices=["basic", "heavy"], default="basic",
                    help="basic: flips and intensity jitter (the shipped runs); heavy: also nnU-Net-style in-plane "
                         "rotation, scaling, gamma and noise (sample_heavy)")
    ap.add_argument("--init-onnx", default=None,
                    help="start from ONNX weights instead of random ones ('package': the shipped model.onnx); "
                         "BatchNorms stay frozen (pass it again with --resume)")
    ap.add_argument("--patch", type=int, nargs=3, default=None, metavar=("Z", "Y", "X"),
                    help="training patch and manifest window in voxels at 1.25 mm, (z, y, x), multiples of 8 "
                         "(default %s); pass the same value to validate and export" % (PATCH,))
    ap.add_argument("--batch", type=int, default=None, help="patches per step (default %d)" % BATCH)
    args = ap.parse_args()
    set_patch(args.patch, args.batch)
    {"train": train, "validate": cmd_validate, "export": cmd_export}[args.cmd](args)


if __name__ == "__main__":
    main()
