"""Shared parts of EdgeSeg's model training: attention residual U-Nets (2D and 3D), MC-dropout mask,
ONNX export, weight-only per-channel INT8, manifest writing, checkpoint/resume, sliding-window
inference that mirrors the package's manifest, and the validation metrics.

Runs with Debian's PyTorch 1.13 (/usr/bin/python3). No network, no GPU assumed.
"""
import hashlib
import json
import math
import os
import random
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OPSET = 17
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
DATA = os.path.normpath(os.path.join(ROOT, "..", "shared", "data"))
MODELS = os.path.join(ROOT, "models")
CKPT_DIR = os.path.join(HERE, "checkpoints")
RUNS_DIR = os.path.join(HERE, "runs")


def seed_all(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------------------------
# network blocks; `dims` is 2 or 3


def _conv(dims):
    return nn.Conv2d if dims == 2 else nn.Conv3d


def _norm(dims):
    # BatchNorm folds into the convolution at export (eval mode), so the ONNX graph is Conv/Relu only.
    return nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d


class ResBlock(nn.Module):
    """conv-norm-relu-conv-norm plus a (projected) identity, then relu (He et al. residual unit)."""

    def __init__(self, dims, cin, cout, stride=1):
        super().__init__()
        Conv, Norm = _conv(dims), _norm(dims)
        self.c1 = Conv(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.n1 = Norm(cout)
        self.c2 = Conv(cout, cout, 3, padding=1, bias=False)
        self.n2 = Norm(cout)
        self.skip = None
        if cin != cout or stride != 1:
            self.skip = nn.Sequential(Conv(cin, cout, 1, stride=stride, bias=False), Norm(cout))

    def forward(self, x):
        y = F.relu(self.n1(self.c1(x)))
        y = self.n2(self.c2(y))
        s = x if self.skip is None else self.skip(x)
        return F.relu(y + s)


class AttentionGate(nn.Module):
    """Additive attention gate (Oktay et al. 2018): alpha = sigmoid(psi(relu(Wx x + Wg g))), out = x * alpha.
    The gating signal is upsampled to the skip's resolution first, so no strided 1x1 is needed."""

    def __init__(self, dims, cx, cg, cint):
        super().__init__()
        Conv, Norm = _conv(dims), _norm(dims)
        self.wx = nn.Sequential(Conv(cx, cint, 1, bias=False), Norm(cint))
        self.wg = nn.Sequential(Conv(cg, cint, 1, bias=False), Norm(cint))
        self.psi = nn.Sequential(Conv(cint, 1, 1), Norm(1))

    def forward(self, x, g):
        a = torch.sigmoid(self.psi(F.relu(self.wx(x) + self.wg(g))))
        return x * a


class AttnResUNet(nn.Module):
    """Attention residual U-Net for 2D images or 3D patches.

    Down: strided residual blocks (no MaxPool: MaxPool3d fails on the JSEP WebGPU EP).
    Up: (bi/tri)linear Resize ×2 then a 3×3 conv (no ConvTranspose: ConvTranspose3d fails on WebGPU).
    MC dropout: the last decoder features are multiplied by a channel mask [B, C, 1, 1(, 1)] that the
    caller supplies at inference (values 0 or 1/(1-p)); in training the same shape is drawn here.
    """

    def __init__(self, dims, cin, cout, base=16, depth=4, drop=0.2, max_ch=256):
        super().__init__()
        self.dims, self.drop, self.depth = dims, drop, depth
        Conv, Norm = _conv(dims), _norm(dims)
        ch = [min(base * 2 ** i, max_ch) for i in range(depth + 1)]
        self.ch = ch
        self.stem = ResBlock(dims, cin, ch[0])
        self.down = nn.ModuleList([ResBlock(dims, ch[i], ch[i + 1], stride=2) for i in range(depth)])
        self.upconv = nn.ModuleList()
        self.gates = nn.ModuleList()
        self.dec = nn.ModuleList()
        for i in reversed(range(depth)):
            self.upconv.append(nn.Sequential(Conv(ch[i + 1], ch[i], 3, padding=1, bias=False), Norm(ch[i]),
                                             nn.ReLU(inplace=True)))
            self.gates.append(AttentionGate(dims, ch[i], ch[i], max(ch[i] // 2, 4)))
            self.dec.append(ResBlock(dims, 2 * ch[i], ch[i]))
        self.head = Conv(ch[0], cout, 1)
        self.mode = "bilinear" if dims == 2 else "trilinear"

    @property
    def mask_channels(self):
        return self.ch[0]

    def mask_shape(self, batch=1):
        return [batch, self.ch[0]] + [1] * self.dims

    def forward(self, x, mc_mask=None):
        skips = []
        h = self.stem(x)
        for d in self.down:
            skips.append(h)
            h = d(h)
        for up, gate, dec in zip(self.upconv, self.gates, self.dec):
            s = skips.pop()
            h = up(F.interpolate(h, scale_factor=2.0, mode=self.mode, align_corners=False))
            h = dec(torch.cat([gate(s, h), h], dim=1))
        if mc_mask is None:
            if self.training and self.drop > 0:
                keep = (torch.rand(self.mask_shape(h.shape[0]), device=h.device) >= self.drop).float()
                h = h * keep / (1.0 - self.drop)
        else:
            h = h * mc_mask
        return self.head(h)


def count_params(model):
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------------------------
# MC dropout masks, bit-identical to the TypeScript side (mulberry32 PRNG)


def mulberry32(seed):
    state = [seed & 0xFFFFFFFF]

    def imul(a, b):
        return ((a & 0xFFFFFFFF) * (b & 0xFFFFFFFF)) & 0xFFFFFFFF

    def nxt():
        state[0] = (state[0] + 0x6D2B79F5) & 0xFFFFFFFF
        s = state[0]
        t = imul(s ^ (s >> 15), 1 | s)
        t = ((t + imul(t ^ (t >> 7), 61 | t)) & 0xFFFFFFFF) ^ t
        return ((t ^ (t >> 14)) & 0xFFFFFFFF) / 4294967296.0

    return nxt


def dropout_mask(seed, channels, rate, dims):
    r = mulberry32(seed)
    m = np.array([0.0 if r() < rate else 1.0 / (1.0 - rate) for _ in range(channels)], np.float32)
    return torch.from_numpy(m).reshape([1, channels] + [1] * dims)


# ----------------------------------------------------------------------------------------------
# checkpoints


class Checkpointer:
    """Saves model + optimiser + step + RNG states atomically; `--resume` continues from the last one."""

    def __init__(self, name):
        os.makedirs(CKPT_DIR, exist_ok=True)
        self.path = os.path.join(CKPT_DIR, name + ".pt")
        self.best_path = os.path.join(CKPT_DIR, name + ".best.pt")

    def save(self, model, opt, step, extra=None, best=False):
        state = {"model": model.state_dict(), "opt": opt.state_dict() if opt else None, "step": step,
                 "extra": extra or {}, "torch_rng": torch.get_rng_state(), "np_rng": np.random.get_state(),
                 "py_rng": random.getstate()}
        path = self.best_path if best else self.path
        tmp = path + ".tmp"
        torch.save(state, tmp)
        os.replace(tmp, path)

    def load(self, model, opt=None, best=False):
        path = self.best_path if best else self.path
        if not os.path.exists(path):
            return None
        state = torch.load(path, map_location="cpu")
        model.load_state_dict(state["model"])
        if opt is not None and state.get("opt"):
            opt.load_state_dict(state["opt"])
        torch.set_rng_state(state["torch_rng"])
        np.random.set_state(state["np_rng"])
        random.setstate(state["py_rng"])
        return state


def load_checkpoint(model, name, which="best"):
    """`model` with the weights of run `name`'s best (or last) checkpoint, in eval mode, and the
    checkpoint's state; a SystemExit naming the run when there is none (train first)."""
    st = Checkpointer(name).load(model, best=(which == "best"))
    if st is None:
        raise SystemExit("no checkpoint for %s (train first)" % name)
    return model.eval(), st


class Logger:
    def __init__(self, name):
        d = os.path.join(RUNS_DIR, name)
        os.makedirs(d, exist_ok=True)
        self.f = open(os.path.join(d, "train.log"), "a")

    def __call__(self, *parts):
        line = time.strftime("%H:%M:%S ") + " ".join(str(p) for p in parts)
        print(line, flush=True)
        self.f.write(line + "\n")
        self.f.flush()


def affine_patch_2d(img, lab, centre, patch, angle, scale, fill=0.0):
    """A patch x patch resampling of a 2D image (bilinear) and its label map (nearest) around `centre`
    (row, column), rotated by `angle` radians and zoomed by `scale` (> 1 enlarges), `fill` outside the
    image: the spatial half of nnU-Net-style augmentation in one `grid_sample`."""
    h, w = img.shape
    cy, cx = centre
    half = patch / 2.0 / scale
    ca, sa = math.cos(angle), math.sin(angle)
    # output (u, v) in -1..1 of the patch → input in the image's normalised coordinates (align_corners=False)
    theta = torch.tensor([[[ca * half * 2 / w, -sa * half * 2 / w, (2 * cx + 1) / w - 1],
                           [sa * half * 2 / h, ca * half * 2 / h, (2 * cy + 1) / h - 1]]], dtype=torch.float32)
    grid = F.affine_grid(theta, [1, 1, patch, patch], align_corners=False)
    ti = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32) - fill)[None, None]  # zeros outside = fill
    tl = torch.from_numpy(np.ascontiguousarray(lab, dtype=np.float32))[None, None]
    px = F.grid_sample(ti, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0, 0].numpy() + fill
    pl = F.grid_sample(tl, grid, mode="nearest", padding_mode="zeros", align_corners=False)[0, 0].numpy()
    return px, pl


def intensity_augment(px, rng, gamma_p=0.3, blur_p=0.2, noise_p=0.3, noise_sigma=0.03, contrast=0.15,
                      brightness=0.05, unit_range=False):
    """nnU-Net-style intensity augmentation of one patch: Gaussian blur, gamma 0.7-1.5 (on the min-max scaled
    patch, or with `unit_range` on the patch clipped to 0..1, e.g. a CT window), contrast
    x U(1 - contrast, 1 + contrast) and brightness + U(-b, b), Gaussian noise."""
    if rng.rand() < blur_p:
        from scipy import ndimage
        px = ndimage.gaussian_filter(px, rng.uniform(0.5, 1.0))
    if rng.rand() < gamma_p:
        if unit_range:
            px = np.clip(px, 0, 1) ** rng.uniform(0.7, 1.5)
        else:
            lo, hi = float(px.min()), float(px.max())
            px = ((px - lo) / max(hi - lo, 1e-6)) ** rng.uniform(0.7, 1.5) * (hi - lo) + lo
    px = px * rng.uniform(1 - contrast, 1 + contrast) + rng.uniform(-brightness, brightness)
    if rng.rand() < noise_p:
        px = px + rng.normal(0, rng.uniform(0, noise_sigma), px.shape)
    return px


def log_summary(name):
    """How long run `name` trained, read from its train.log: steps reached, wall-clock minutes (each session
    from its `params` line to its last line, validations included), threads, sessions (resumes + 1), the
    highest learning rate logged (the schedule's peak) and the first and last logged running loss. None when the log is absent (the logs are not in the repository)."""
    path = os.path.join(RUNS_DIR, name, "train.log")
    if not os.path.exists(path):
        return None
    secs, first, prev, last_step, threads, sessions, losses, peak_lr = 0, None, None, 0, None, 0, [], 0.0
    for line in open(path):
        parts = line.split()
        if not parts:
            continue
        hh, mm, ss = (int(v) for v in parts[0].split(":"))
        t = hh * 3600 + mm * 60 + ss
        if "params" in parts and "threads" in parts:
            if first is not None:
                secs += (prev - first) % 86400
            first, sessions = t, sessions + 1
            threads = int(parts[parts.index("threads") + 1])
        prev = t
        if len(parts) > 2 and parts[1] in ("step", "stopped") and parts[2].isdigit():
            last_step = int(parts[2])
        if len(parts) > 4 and parts[1] == "step" and parts[3] == "loss":
            losses.append(float(parts[4]))
        if "lr" in parts[:-1]:
            peak_lr = max(peak_lr, float(parts[parts.index("lr") + 1]))
        if parts[1:3] == ["stopped", "at"]:
            last_step = int(parts[4])
    if first is not None:
        secs += (prev - first) % 86400
    return {"steps": last_step, "minutes": round(secs / 60, 1), "threads": threads, "sessions": sessions,
            "peakLr": peak_lr or None, "firstLoss": losses[0] if losses else None,
            "lastLoss": losses[-1] if losses else None}


def fine_tune_history(pkg, entry):
    """The package's fine-tunes, oldest first: those recorded in its current validation.json (`fineTunes`, or
    the single `fineTune` that exports before this list wrote) with `entry` replacing any of its version.
    `entry` names the version, run, augmentation and exported step; the run's `log_summary` is added here."""
    entry = {**entry, "training": log_summary(entry["run"])}
    path = os.path.join(pkg, "validation.json")
    old = json.load(open(path)) if os.path.exists(path) else {}
    hist = list(old.get("fineTunes") or [])
    if not hist and old.get("fineTune"):
        ft = old["fineTune"]
        man = os.path.join(pkg, "manifest.json")
        version = ft.get("version") or (json.load(open(man))["version"] if os.path.exists(man) else None)
        hist = [{"version": version, "run": ft["run"], "aug": ft.get("aug"),
                 "checkpointStep": old.get("checkpointStep"), "training": ft.get("training")}]
    return [h for h in hist if h.get("version") != entry["version"]] + [entry]


# ----------------------------------------------------------------------------------------------
# losses


def soft_dice_loss(prob, target, eps=1.0):
    """prob, target: [B, C, ...] in 0..1; mean over channels of 1 - Dice (batch pooled)."""
    dims = [0] + list(range(2, prob.dim()))
    inter = (prob * target).sum(dims)
    den = prob.sum(dims) + target.sum(dims)
    return (1 - (2 * inter + eps) / (den + eps)).mean()


# ----------------------------------------------------------------------------------------------
# sliding-window inference as the manifest describes it (Gaussian blending, sigma = window/8)


def gaussian_weight(window, sigma_scale=0.125):
    axes = []
    for w in window:
        c = (w - 1) / 2.0
        s = w * sigma_scale
        x = np.arange(w, dtype=np.float64)
        axes.append(np.exp(-((x - c) ** 2) / (2 * s * s)))
    g = axes[0]
    for a in axes[1:]:
        g = np.multiply.outer(g, a)
    g = (g / g.max()).astype(np.float32)
    # as src/segmentation/windows.ts gaussianImportance (nnU-Net): only zeros are lifted, to the smallest
    # positive weight (MONAI's 1e-3 floor would weigh window corners differently from the pipeline)
    positive = g[g > 0]
    return np.where(g > 0, g, positive.min() if positive.size else 1.0).astype(np.float32)


def _starts(size, win, overlap):
    # MONAI / src/segmentation/windows.ts axisStarts: step = floor(win * (1 - overlap)), last window flush
    if size <= win:
        return [0]
    step = max(1, int(math.floor(win * (1 - overlap))))
    n = int(math.ceil((size - win) / step)) + 1
    return sorted(set(min(i * step, size - win) for i in range(n)))


def sliding_window(predict, image, window, overlap, pad_value=0.0, pad_multiple=16, activation=None):
    """Mirrors the EdgeSeg pipeline (src/segmentation/windows.ts): the window is rounded up to
    pad_multiple, axes shorter than the window are padded symmetrically (floor before) with pad_value,
    windows are blended with a Gaussian (sigma = window/8). The pipeline blends the model's raw outputs
    (logits) and applies the activation after blending (nnU-Net); pass `predict` = the model and
    `activation` (tensor [K, ...] → tensor) to do the same — blending probabilities instead differs
    where overlapping windows disagree.
    image: np [C, *spatial] in array order, window in the same order; predict: tensor → tensor of
    per-class values. Returns np [K, *spatial]."""
    spatial = image.shape[1:]
    win = [int(math.ceil(w / pad_multiple) * pad_multiple) for w in window]
    padded = [max(s, w) for s, w in zip(spatial, win)]
    before = [(p - s) // 2 for s, p in zip(spatial, padded)]
    pad = [(0, 0)] + [(b, p - s - b) for s, p, b in zip(spatial, padded, before)]
    img = np.pad(image, pad, constant_values=pad_value) if any(sum(p) for p in pad) else image
    weight = gaussian_weight(win)
    out = None
    norm = np.zeros(padded, np.float32)
    grids = np.meshgrid(*[_starts(p, w, overlap) for p, w in zip(padded, win)], indexing="ij")
    for start in zip(*[g.ravel() for g in grids]):
        sl = tuple(slice(s, s + w) for s, w in zip(start, win))
        x = torch.from_numpy(np.ascontiguousarray(img[(slice(None),) + sl]))[None]
        with torch.no_grad():
            y = predict(x)[0].numpy()
        if out is None:
            out = np.zeros((y.shape[0],) + tuple(padded), np.float32)
        out[(slice(None),) + sl] += y * weight
        norm[sl] += weight
    out /= norm
    out = out[(slice(None),) + tuple(slice(b, b + s) for b, s in zip(before, spatial))]
    if activation is not None:
        out = activation(torch.from_numpy(np.ascontiguousarray(out))).numpy()
    return out


# ----------------------------------------------------------------------------------------------
# metrics


def binary_stats(pred, gt, mask=None):
    pred, gt = pred.astype(bool), gt.astype(bool)
    if mask is not None:
        pred, gt = pred[mask], gt[mask]
    tp = float(np.sum(pred & gt))
    fp = float(np.sum(pred & ~gt))
    fn = float(np.sum(~pred & gt))
    tn = float(np.sum(~pred & ~gt))
    return tp, fp, fn, tn


def dice(pred, gt, mask=None):
    tp, fp, fn, _ = binary_stats(pred, gt, mask)
    return 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)


def auc_roc(score, gt):
    """Area under the ROC curve by the rank-sum (Mann-Whitney U) formula, ties averaged."""
    from scipy.stats import rankdata
    score = np.asarray(score, np.float64).ravel()
    gt = np.asarray(gt, bool).ravel()
    n_pos, n_neg = gt.sum(), (~gt).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[gt].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def surface_distances(pred, gt, spacing):
    """Symmetric surface distances (mm) between the boundaries of two binary volumes."""
    from scipy import ndimage
    pred, gt = pred.astype(bool), gt.astype(bool)
    if not pred.any() or not gt.any():
        return None
    st = ndimage.generate_binary_structure(pred.ndim, 1)
    bp = pred ^ ndimage.binary_erosion(pred, st, border_value=0)
    bg = gt ^ ndimage.binary_erosion(gt, st, border_value=0)
    dg = ndimage.distance_transform_edt(~bg, sampling=spacing)
    dp = ndimage.distance_transform_edt(~bp, sampling=spacing)
    return np.concatenate([dg[bp], dp[bg]])


def hd95_assd(pred, gt, spacing):
    d = surface_distances(pred, gt, spacing)
    if d is None:
        return float("nan"), float("nan")
    return float(np.percentile(d, 95)), float(d.mean())


# ----------------------------------------------------------------------------------------------
# ONNX export, INT8, manifest


def export_onnx(model, path, cin, example_spatial, dims):
    import onnx
    model = model.eval()
    x = torch.randn([1, cin] + list(example_spatial))
    m = torch.ones(model.mask_shape(1))
    sp = ["height", "width"] if dims == 2 else ["depth", "height", "width"]
    dyn = {"input": {0: "batch", **{i + 2: n for i, n in enumerate(sp)}},
           "mc_mask": {0: "batch"},
           "logits": {0: "batch", **{i + 2: n for i, n in enumerate(sp)}}}
    torch.onnx.export(model, (x, m), path, opset_version=OPSET, input_names=["input", "mc_mask"],
                      output_names=["logits"], dynamic_axes=dyn, do_constant_folding=True)
    mo = onnx.load(path)
    onnx.checker.check_model(mo, full_check=True)
    return path


def quantize_int8(src, dst, matmul=False):
    """Weight-only INT8: every Conv weight becomes an int8 initializer + per-output-channel symmetric
    DequantizeLinear (axis 0). Per-tensor scales give wrong results on the JSEP WebGPU EP. With `matmul`,
    every 2-D MatMul weight (the constant right operand, [in, out]) too, one scale per output column
    (axis 1): a transformer keeps most of its parameters there. Returns the number of weights quantised."""
    import onnx
    from onnx import helper, numpy_helper, TensorProto
    m = onnx.load(src)
    g = m.graph
    inits = {i.name: i for i in g.initializer}
    targets = {n.input[1]: 0 for n in g.node if n.op_type == "Conv" and n.input[1] in inits}
    if matmul:
        for n in g.node:
            if n.op_type == "MatMul" and n.input[1] in inits and len(inits[n.input[1]].dims) == 2:
                targets.setdefault(n.input[1], 1)
    new_nodes = []
    for name in sorted(targets):
        axis = targets[name]
        w = numpy_helper.to_array(inits[name]).astype(np.float32)
        flat = np.abs(np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)).max(axis=1)
        scale = np.where(flat > 0, flat / 127.0, 1.0).astype(np.float32)
        shape = [1] * w.ndim
        shape[axis] = -1
        q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
        g.initializer.remove(inits[name])
        g.initializer.extend([numpy_helper.from_array(q, name + "_q"),
                              numpy_helper.from_array(scale, name + "_scale"),
                              numpy_helper.from_array(np.zeros(w.shape[axis], np.int8), name + "_zp")])
        new_nodes.append(helper.make_node("DequantizeLinear", [name + "_q", name + "_scale", name + "_zp"], [name],
                                          axis=axis, name=name + "_dq"))
    nodes = list(g.node)
    del g.node[:]
    g.node.extend(new_nodes + nodes)
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, dst)
    return len(new_nodes)


def fake_quantize_(model):
    """Replace each conv weight by its int8 per-channel round trip: what ORT computes from the int8 file
    (DequantizeLinear, then the float conv). BN must already be folded for exactness, so this is applied
    to a BN-folded copy (see fold_bn)."""
    for mod in model.modules():
        if isinstance(mod, (nn.Conv2d, nn.Conv3d)):
            w = mod.weight.data
            flat = w.abs().reshape(w.shape[0], -1).max(dim=1).values
            scale = torch.where(flat > 0, flat / 127.0, torch.ones_like(flat)).reshape([-1] + [1] * (w.dim() - 1))
            mod.weight.data = torch.clamp(torch.round(w / scale), -127, 127) * scale
    return model


def fold_bn(model):
    """Fold every BatchNorm that directly follows a Conv (as the ONNX exporter does), in a deep copy."""
    import copy
    m = copy.deepcopy(model).eval()

    def fold(conv, bn):
        w = conv.weight.data
        b = conv.bias.data if conv.bias is not None else torch.zeros(w.shape[0])
        s = bn.weight.data / torch.sqrt(bn.running_var + bn.eps)
        conv.weight.data = w * s.reshape([-1] + [1] * (w.dim() - 1))
        conv.bias = nn.Parameter(b * s + bn.bias.data - bn.running_mean * s)

    ident = nn.Identity()
    for mod in m.modules():
        if isinstance(mod, ResBlock):
            fold(mod.c1, mod.n1); mod.n1 = nn.Identity()
            fold(mod.c2, mod.n2); mod.n2 = nn.Identity()
            if mod.skip is not None:
                fold(mod.skip[0], mod.skip[1]); mod.skip[1] = nn.Identity()
        elif isinstance(mod, AttentionGate):
            for seq in (mod.wx, mod.wg, mod.psi):
                fold(seq[0], seq[1]); seq[1] = nn.Identity()
        elif isinstance(mod, AttnResUNet):
            for seq in mod.upconv:
                fold(seq[0], seq[1]); seq[1] = nn.Identity()
    del ident
    return m


def _conv_bn_pairs(model):
    """Each Conv that a BatchNorm directly follows, mapped to that BatchNorm (the pairs fold_bn folds)."""
    pairs = {}
    for mod in model.modules():
        if isinstance(mod, ResBlock):
            pairs[mod.c1] = mod.n1
            pairs[mod.c2] = mod.n2
            if mod.skip is not None:
                pairs[mod.skip[0]] = mod.skip[1]
        elif isinstance(mod, AttentionGate):
            for seq in (mod.wx, mod.wg, mod.psi):
                pairs[seq[0]] = seq[1]
        elif isinstance(mod, AttnResUNet):
            for seq in mod.upconv:
                pairs[seq[0]] = seq[1]
    return pairs


def warm_start_from_onnx(model, onnx_path, cin):
    """Loads a shipped package's weights into a freshly built net, so training can go on from the
    package when no checkpoint is at hand (checkpoints are not in the repository).

    The exporter folded every BatchNorm into its Conv, so the ONNX file holds folded weights and biases
    only. They are mapped onto the net's convolutions in call order (the ONNX Conv nodes are in trace
    order), and each BatchNorm after a conv becomes the identity plus the folded bias (weight 1, mean 0,
    variance 1 - eps, bias = folded bias): the net then computes exactly what the ONNX file does, as
    long as the BatchNorms stay in eval mode (train with `freeze_bn=True`)."""
    import onnx
    from onnx import numpy_helper
    g = onnx.load(onnx_path).graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    nodes = [n for n in g.node if n.op_type == "Conv"]
    order = []
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))]
    hooks = [m.register_forward_hook(lambda mod, _i, _o: order.append(mod)) for m in convs]
    size = 2 ** model.depth * 2
    with torch.no_grad():
        model.eval()(torch.zeros([1, cin] + [size] * model.dims), torch.ones(model.mask_shape(1)))
    for h in hooks:
        h.remove()
    if len(order) != len(nodes):
        raise ValueError("%s has %d Conv nodes, the net calls %d convolutions: not this architecture"
                         % (onnx_path, len(nodes), len(order)))
    pairs = _conv_bn_pairs(model)
    for mod, node in zip(order, nodes):
        w = inits[node.input[1]]
        b = inits[node.input[2]] if len(node.input) > 2 else np.zeros(w.shape[0], np.float32)
        if tuple(w.shape) != tuple(mod.weight.shape):
            raise ValueError("%s: Conv weight %s has shape %s, the net expects %s"
                             % (onnx_path, node.input[1], w.shape, tuple(mod.weight.shape)))
        mod.weight.data = torch.from_numpy(w.copy())
        bn = pairs.get(mod)
        if bn is not None:
            # the folded bias already holds the conv's own bias (attention gates' psi conv has one)
            if mod.bias is not None:
                mod.bias.data.zero_()
            bn.weight.data.fill_(1.0)
            bn.bias.data = torch.from_numpy(b.copy())
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)
        else:
            mod.bias.data = torch.from_numpy(b.copy())
    return model


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(pkg_dir, manifest):
    """Fills `files` with sha256 + bytes of every .onnx in the package and writes manifest.json."""
    files = {}
    for name in sorted(os.listdir(pkg_dir)):
        if name.endswith(".onnx"):
            p = os.path.join(pkg_dir, name)
            files[name] = {"sha256": sha256_file(p), "bytes": os.path.getsize(p)}
    manifest["files"] = files
    with open(os.path.join(pkg_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    return manifest


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def code(value, meaning, scheme="SCT"):
    return {"value": value, "scheme": scheme, "meaning": meaning}


ANATOMICAL_STRUCTURE = code("91723000", "Anatomical Structure")
MORPH_ALTERED = code("49755003", "Morphologically Altered Structure")


# ----------------------------------------------------------------------------------------------
# training loop with time budget, checkpoint every few minutes, resume


def lr_at(step, total, base_lr, warmup=50):
    if step < warmup:
        return base_lr * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return base_lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * t)))


def train_loop(name, model, sample_batch, loss_fn, total_steps, base_lr, resume, minutes, validate=None,
               val_every=250, ckpt_minutes=4.0, weight_decay=1e-4, freeze_bn=False):
    """sample_batch() -> (x, y) tensors; loss_fn(logits, y) -> scalar; validate(model) -> (score, dict).
    Stops at total_steps or after `minutes`; always leaves a checkpoint that `resume` continues.
    freeze_bn keeps every BatchNorm in eval mode (fine-tuning from a package, see warm_start_from_onnx)."""
    log = Logger(name)
    ck = Checkpointer(name)
    opt = torch.optim.AdamW(model.parameters(), lr=base_lr, weight_decay=weight_decay)
    step, best = 0, -1.0
    if resume:
        st = ck.load(model, opt)
        if st is not None:
            step, best = st["step"], st["extra"].get("best", -1.0)
            log("resumed at step", step, "best", best)
    log("params", count_params(model), "total_steps", total_steps, "threads", torch.get_num_threads())
    t0 = time.time()
    last_ck = time.time()
    run_loss = None
    while step < total_steps:
        model.train()
        if freeze_bn:
            for mod in model.modules():
                if isinstance(mod, (nn.BatchNorm2d, nn.BatchNorm3d)):
                    mod.eval()
        for gp in opt.param_groups:
            gp["lr"] = lr_at(step, total_steps, base_lr)
        x, y = sample_batch()
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        run_loss = loss.item() if run_loss is None else 0.98 * run_loss + 0.02 * loss.item()
        if step % 25 == 0:
            log("step", step, "loss %.4f" % run_loss, "lr %.2e" % opt.param_groups[0]["lr"],
                "%.2fs/step" % ((time.time() - t0) / max(1, step)))
        done = step >= total_steps or (time.time() - t0) > minutes * 60
        if validate is not None and (step % val_every == 0 or step >= total_steps):
            score, info = validate(model)
            log("val step", step, json.dumps(info))
            if score > best:
                best = score
                ck.save(model, None, step, {"best": best, "val": info}, best=True)
                log("new best", "%.4f" % best)
        if done or time.time() - last_ck > ckpt_minutes * 60:
            ck.save(model, opt, step, {"best": best})
            last_ck = time.time()
        if done:
            break
    ck.save(model, opt, step, {"best": best})
    log("stopped at step", step, "of", total_steps, "best", best)
    return step


def parity_input(cin, spatial):
    n = cin * int(np.prod(spatial))
    return torch.from_numpy(np.sin(np.arange(n, dtype=np.float64) * 0.001).astype(np.float32)).reshape(
        [1, cin] + list(spatial))


def parity_reference(net, cin, spatial, rate, mask_seed=7):
    """Torch outputs for a fixed input (x[i] = sin(0.001 i)), with an all-ones mask and with the
    mulberry32 mask of `mask_seed`; check_onnx.mjs recomputes them with onnxruntime."""
    net = net.eval()
    x = parity_input(cin, spatial)
    dims = len(spatial)
    ref = {"input": "sin(0.001*i)", "shape": [1, cin] + list(spatial), "maskSeed": mask_seed, "rate": rate}
    with torch.no_grad():
        for key, mask in (("ones", torch.ones(net.mask_shape(1))),
                          ("seeded", dropout_mask(mask_seed, net.mask_channels, rate, dims))):
            y = net(x, mask).numpy().ravel()
            ref[key] = {"sum": float(y.astype(np.float64).sum()), "absMax": float(np.abs(y).max()),
                        "first": [float(v) for v in y[:4]], "len": int(y.size)}
    return ref
