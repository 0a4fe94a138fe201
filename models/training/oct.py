#!/usr/bin/python3
"""oct-fluid-demo: retinal fluid (IRF / SRF / PED) in OCT B-scans, on *synthetic* phantoms only.

    /usr/bin/python3 models/training/oct.py data [--out DIR]                 # phantoms via `deno task phantom-oct`
    /usr/bin/python3 models/training/oct.py stats                            # per-Manufacturer intensity statistics
    /usr/bin/python3 models/training/oct.py train --size small|large [--resume] [--minutes 13]
    /usr/bin/python3 models/training/oct.py validate --size small|large
    /usr/bin/python3 models/training/oct.py export                           # ONNX drafts for `deno task package`

A TransUNet-style net after the OCT reference design (shared/reference/000_*): a CNN encoder of
(Fused-)MBConv stages (EfficientNetV2-like, widths shrunk), a transformer bottleneck (2 layers of
multi-head self-attention over the 8×8 bottleneck tokens of a 256×256 B-scan (stride 32), learnable position
encoding, written with plain MatMul/Softmax so it runs in onnxruntime-web), an attention-gate decoder
(4 levels), the MC-dropout channel mask before the 4-class head (background, IRF, SRF, PED). Two sizes,
"small" (V2S-like) and "large" (V2L-like); the large one is the package's ensemble member.

The token count is fixed (256 tokens, the learnt position encoding), so the ONNX input is fixed at
256×256 and the manifest declares that window; the batch axis stays dynamic.

Per-scanner normalisation: the reference keeps separate BatchNorm statistics per scanner source. Here
the input is standardised with per-Manufacturer statistics measured on the training phantoms
(manifest `preprocessing.intensityByManufacturer`, a `scale` spec per Manufacturer); any other
Manufacturer gets a z-score over the volume. Training applies exactly that recipe.

No OCT data set is reachable here: the data are phantoms from `deno task phantom-oct` (several seeds,
all four scanner profiles, both eyes); seeds 101-108 are held out for validation. The weights are a
demonstration, not a clinical model.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402

NAME = "oct-fluid-demo"
WINDOW = [256, 256]
STRIDE = 32
DROP = 0.3  # the reference's MC dropout rate
CLASSES = ["background", "IRF", "SRF", "PED"]
MASK_CH = 8  # channels of the MC-dropout mask, the same for both sizes (one manifest input)
TRAIN_SEEDS = list(range(1, 25))
VAL_SEEDS = list(range(101, 109))
MANUFACTURERS = ["Heidelberg Engineering", "Carl Zeiss Meditec", "Topcon", "EdgeSeg"]
# The profiles the net knows by name; "EdgeSeg" (the generic phantom profile) stands for an unknown
# scanner and goes through the default z-score.
KNOWN = MANUFACTURERS[:3]
MAIN, LARGE, INT8 = NAME + ".onnx", NAME + ".large.onnx", NAME + ".int8.onnx"
# UCUS (docs/triage.md) for the demonstration: all three fluids; the phantoms hold 0.28-0.43 mm³ of fluid,
# so 0.5 mm³ saturates the volume score just above them; fluid within 0.5 mm of the scan's centre A-scan
# (the ETDRS central subfield of a fovea-centred macular cube: axes i and k, all depths) counts twice.
# Chosen for the demonstration, not calibrated against clinical urgency.
TRIAGE = {"labels": [1, 2, 3], "referenceVolumeMl": 0.0005, "boundaryWeight": 0.5, "uncertaintyDiscount": 0.5,
          "thresholds": {"review": 0.3, "urgent": 0.7},
          "centre": {"radiusMm": 0.5, "weight": 2, "axes": [0, 2]}}
DATA_DIR = os.environ.get("EDGESEG_OCT_DATA", os.path.join(tempfile.gettempdir(), "edgeseg-oct-phantoms"))
STATS_PATH = os.path.join(C.HERE, "oct_intensity.json")

SIZES = {
    # encoder widths s1..s4 + bottleneck, transformer width, heads (the reference: V2S 24/48/64/160/256,
    # d 256, 16 heads; V2L 32/64/96/192/640, d 512, 16 heads; shrunk for 1-thread CPU training)
    "small": {"ch": [8, 16, 24, 40, 64], "d": 64, "heads": 8, "mlp": 2},
    "large": {"ch": [12, 24, 40, 64, 96], "d": 128, "heads": 16, "mlp": 2},
}


def manufacturer_of(seed):
    return MANUFACTURERS[seed % 4]


def eye_of(seed):
    return "L" if seed % 3 == 0 else "R"


# ----------------------------------------------------------------------------------------------
# data


def cmd_data(args):
    """Writes the phantoms (DICOM OPT + NIfTI truth) with the project's own generator."""
    out = args.out or DATA_DIR
    os.makedirs(out, exist_ok=True)
    for s in TRAIN_SEEDS + VAL_SEEDS:
        dcm = os.path.join(out, "s%d.dcm" % s)
        if os.path.exists(dcm):
            continue
        subprocess.run(["node_modules/.bin/deno", "task", "-q", "phantom-oct", "--out", dcm, "--labels",
                        os.path.join(out, "s%d.nii.gz" % s), "--seed", str(s), "--frames", "25",
                        "--eye", eye_of(s), "--manufacturer", manufacturer_of(s)], cwd=C.ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    print("phantoms in", out)


def load_case(seed):
    """(uint8 [frames, rows, cols], labels [frames, rows, cols], Manufacturer)."""
    import nibabel as nib
    import pydicom
    d = pydicom.dcmread(os.path.join(DATA_DIR, "s%d.dcm" % seed))
    img = d.pixel_array
    # the NIfTI truth is on the phantom's grid, array order (x = column, y = row, z = frame)
    lab = np.asarray(nib.load(os.path.join(DATA_DIR, "s%d.nii.gz" % seed)).dataobj).transpose(2, 1, 0)
    if lab.shape != img.shape:
        raise ValueError("s%d: truth %s does not match the image %s" % (seed, lab.shape, img.shape))
    return img, lab.astype(np.int64), str(d.Manufacturer)


def intensity_specs():
    """The manifest's per-Manufacturer recipe: { Manufacturer: {kind: scale, scale, offset} }."""
    if not os.path.exists(STATS_PATH):
        raise SystemExit("run `oct.py stats` first")
    return json.load(open(STATS_PATH))


def cmd_stats(_args):
    """Mean and standard deviation of each known scanner profile's grey values over its training
    phantoms → a fixed standardisation per Manufacturer (x − mean) / std = x · (1/std) − mean/std."""
    specs = {}
    for m in KNOWN:
        vals = [load_case(s)[0].astype(np.float64) for s in TRAIN_SEEDS if manufacturer_of(s) == m]
        v = np.concatenate([a.ravel() for a in vals])
        mean, std = float(v.mean()), float(v.std())
        specs[m] = {"kind": "scale", "scale": round(1.0 / std, 6), "offset": round(-mean / std, 6)}
    C.write_json(STATS_PATH, specs)
    print(json.dumps(specs, indent=2))


def spec_for(manufacturer, specs):
    """Mirrors src/segmentation/preprocess.ts intensityFor: the key the Manufacturer contains
    (case-insensitive, longest key wins), else the default z-score."""
    m = manufacturer.strip().lower()
    keys = [k for k in specs if k.strip().lower() in m] if m else []
    if keys:
        return specs[max(keys, key=lambda k: len(k.strip()))]
    return {"kind": "zscore", "mask": "all"}


def normalise(img, manufacturer, specs):
    x = img.astype(np.float32)
    s = spec_for(manufacturer, specs)
    if s["kind"] == "scale":
        return x * np.float32(s["scale"]) + np.float32(s["offset"])
    return (x - x.mean()) / max(float(x.std()), 1e-6)


# ----------------------------------------------------------------------------------------------
# network


class ConvBN(nn.Sequential):
    """conv → BatchNorm (→ SiLU): the unit the exporter folds into one Conv."""

    def __init__(self, cin, cout, k=3, stride=1, groups=1, act=True):
        layers = [nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False),
                  nn.BatchNorm2d(cout)]
        if act:
            layers.append(nn.SiLU())
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    def __init__(self, c, cse):
        super().__init__()
        self.fc1 = nn.Conv2d(c, cse, 1)
        self.fc2 = nn.Conv2d(cse, c, 1)

    def forward(self, x):
        s = x.mean(dim=(2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(F.silu(self.fc1(s))))


class FusedMBConv(nn.Module):
    """EfficientNetV2's early-stage block: 3×3 expand conv (strided) → 1×1 project, residual when shapes match."""

    def __init__(self, cin, cout, stride=1, expand=2):
        super().__init__()
        mid = cin * expand
        self.expand = ConvBN(cin, mid, 3, stride)
        self.project = ConvBN(mid, cout, 1, act=False)
        self.res = stride == 1 and cin == cout

    def forward(self, x):
        y = self.project(self.expand(x))
        return x + y if self.res else y


class MBConv(nn.Module):
    """EfficientNetV2's later-stage block: 1×1 expand → 3×3 depthwise (strided) → squeeze-excite → 1×1 project."""

    def __init__(self, cin, cout, stride=1, expand=4):
        super().__init__()
        mid = cin * expand
        self.expand = ConvBN(cin, mid, 1)
        self.dw = ConvBN(mid, mid, 3, stride, groups=mid)
        self.se = SqueezeExcite(mid, max(4, cin // 4))
        self.project = ConvBN(mid, cout, 1, act=False)
        self.res = stride == 1 and cin == cout

    def forward(self, x):
        y = self.project(self.se(self.dw(self.expand(x))))
        return x + y if self.res else y


class SelfAttention(nn.Module):
    """Multi-head self-attention as plain MatMul/Softmax (no fused attention op), so the ONNX graph runs
    on onnxruntime-web's WASM and WebGPU kernels. Token count and width are fixed; batch stays free."""

    def __init__(self, d, heads):
        super().__init__()
        self.h, self.dh = heads, d // heads
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)

    def forward(self, x):
        t = x.shape[1]
        qkv = self.qkv(x).reshape(-1, t, 3, self.h, self.dh).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        a = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * (self.dh ** -0.5), dim=-1)
        y = torch.matmul(a, v).permute(0, 2, 1, 3).reshape(-1, t, self.h * self.dh)
        return self.out(y)


class TransformerLayer(nn.Module):
    """Pre-norm encoder layer: x + MHA(LN(x)); x + MLP(LN(x))."""

    def __init__(self, d, heads, mlp):
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.attn = SelfAttention(d, heads)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, mlp * d), nn.GELU(), nn.Linear(mlp * d, d))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GatedUp(nn.Module):
    """One decoder level: bilinear ×2 + conv, an additive attention gate on the skip (Oktay et al.),
    concatenation, two convs."""

    def __init__(self, cin, cskip, cout):
        super().__init__()
        self.up = ConvBN(cin, cout, 3)
        self.gate = C.AttentionGate(2, cskip, cout, max(cskip // 2, 4))
        self.fuse = nn.Sequential(ConvBN(cskip + cout, cout, 3), ConvBN(cout, cout, 3))

    def forward(self, x, skip):
        g = self.up(F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False))
        return self.fuse(torch.cat([self.gate(skip, g), g], dim=1))


class OctTransUNet(nn.Module):
    def __init__(self, size="small", classes=4, drop=DROP, tokens=(WINDOW[1] // STRIDE, WINDOW[0] // STRIDE)):
        super().__init__()
        cfg = SIZES[size]
        ch, d = cfg["ch"], cfg["d"]
        self.size, self.ch, self.drop, self.dims = size, ch, drop, 2
        self.tokens = tokens
        # EfficientNetV2's stride-2 stem: the encoder and decoder work at 1/2 resolution and the logits
        # are upsampled ×2 (bilinear), as in TransUNet's last decoder step; cheap enough for CPU training
        self.stem = ConvBN(1, ch[0], 3, stride=2)
        self.s1 = FusedMBConv(ch[0], ch[0], 1, expand=1)
        self.s2 = nn.Sequential(FusedMBConv(ch[0], ch[1], 2), FusedMBConv(ch[1], ch[1], 1))
        self.s3 = nn.Sequential(FusedMBConv(ch[1], ch[2], 2), FusedMBConv(ch[2], ch[2], 1))
        self.s4 = nn.Sequential(MBConv(ch[2], ch[3], 2), MBConv(ch[3], ch[3], 1))
        self.s5 = nn.Sequential(MBConv(ch[3], ch[4], 2), MBConv(ch[4], ch[4], 1))
        self.proj_in = nn.Conv2d(ch[4], d, 1)
        n = tokens[0] * tokens[1]
        self.pos = nn.Parameter(torch.randn(1, n, d) * 0.02)
        self.layers = nn.ModuleList([TransformerLayer(d, cfg["heads"], cfg["mlp"]) for _ in range(2)])
        self.ln = nn.LayerNorm(d)
        self.proj_out = ConvBN(d, ch[4], 1)
        self.dec = nn.ModuleList([GatedUp(ch[4], ch[3], ch[3]), GatedUp(ch[3], ch[2], ch[2]),
                                  GatedUp(ch[2], ch[1], ch[1]), GatedUp(ch[1], ch[0], ch[0])])
        # Ensemble members share the manifest's inputs, the MC mask included: a 1×1 projection brings a
        # wider last decoder level to the shared mask width.
        self.mask_ch = MASK_CH
        self.to_mask = ConvBN(ch[0], MASK_CH, 1) if ch[0] != MASK_CH else nn.Identity()
        self.head = nn.Conv2d(MASK_CH, classes, 1)

    @property
    def mask_channels(self):
        return self.mask_ch

    def mask_shape(self, batch=1):
        return [batch, self.mask_ch, 1, 1]

    def forward(self, x, mc_mask=None):
        s1 = self.s1(self.stem(x))
        s2 = self.s2(s1)
        s3 = self.s3(s2)
        s4 = self.s4(s3)
        b = self.proj_in(self.s5(s4))
        th, tw = self.tokens
        t = b.flatten(2).transpose(1, 2) + self.pos
        for layer in self.layers:
            t = layer(t)
        b = self.proj_out(self.ln(t).transpose(1, 2).reshape(-1, t.shape[2], th, tw))
        h = b
        for up, skip in zip(self.dec, (s4, s3, s2, s1)):
            h = up(h, skip)
        h = self.to_mask(h)
        if mc_mask is None:
            if self.training and self.drop > 0:
                keep = (torch.rand(self.mask_shape(h.shape[0])) >= self.drop).float()
                h = h * keep / (1.0 - self.drop)
        else:
            h = h * mc_mask
        # the head is a 1×1 conv, so upsampling its logits equals upsampling the features first
        return F.interpolate(self.head(h), scale_factor=2.0, mode="bilinear", align_corners=False)


def build(size, seed=1):
    C.seed_all(seed)
    return OctTransUNet(size)


def fold_bn(model):
    """Every BatchNorm folded into the Conv before it (the exporter does the same), in a copy: the
    arithmetic of the ONNX file, for INT8 fake quantisation."""
    m = C.fold_bn(model)  # the common AttentionGate's conv/BN pairs
    for mod in m.modules():
        if isinstance(mod, ConvBN):
            conv, bn = mod[0], mod[1]
            s = bn.weight.data / torch.sqrt(bn.running_var + bn.eps)
            conv.weight.data = conv.weight.data * s.reshape(-1, 1, 1, 1)
            conv.bias = nn.Parameter(bn.bias.data - bn.running_mean * s)
            mod[1] = nn.Identity()
    return m


# ----------------------------------------------------------------------------------------------
# training and validation


def dice_ce_loss(logits, y, ce_weights=None):
    """The reference's loss: soft Dice (over the four classes, batch pooled) + 0.5 × cross-entropy
    (optionally class-weighted: `--ce-weights`)."""
    prob = torch.softmax(logits, 1)
    onehot = F.one_hot(y, len(CLASSES)).permute(0, 3, 1, 2).float()
    return C.soft_dice_loss(prob, onehot) + 0.5 * F.cross_entropy(logits, y, weight=ce_weights)


def load_split(seeds, specs):
    out = []
    for s in seeds:
        img, lab, man = load_case(s)
        out.append((normalise(img, man, specs), lab, man, s))
    return out


def predict_labels(model, x, mask=None, batch=5):
    """x: [frames, H, W] normalised → softmax probabilities [frames, 4, H, W] (one 256×256 window per
    B-scan, exactly the pipeline's single window)."""
    model.eval()
    outs = []
    with torch.no_grad():
        for i in range(0, x.shape[0], batch):
            t = torch.from_numpy(np.ascontiguousarray(x[i:i + batch]))[:, None]
            m = None if mask is None else mask.expand(t.shape[0], -1, -1, -1)
            outs.append(torch.softmax(model(t, m), 1).numpy())
    return np.concatenate(outs)


def evaluate(models, cases):
    """Per-class Dice pooled over all validation phantoms (every B-scan); with several models, the mean
    of their probabilities (the package's ensemble)."""
    stats = np.zeros((len(CLASSES), 3))
    per_case = {}
    for x, lab, man, seed in cases:
        p = sum(predict_labels(m, x) for m in models) / len(models)
        pred = p.argmax(1)
        ds = {}
        for c in range(1, len(CLASSES)):
            tp, fp, fn, _ = C.binary_stats(pred == c, lab == c)
            stats[c] += (tp, fp, fn)
            ds[CLASSES[c]] = round(2 * tp / max(1.0, 2 * tp + fp + fn), 4)
        per_case["s%d (%s)" % (seed, man)] = ds
    dice = {CLASSES[c]: round(float(2 * stats[c, 0] / max(1.0, 2 * stats[c, 0] + stats[c, 1] + stats[c, 2])), 4)
            for c in range(1, len(CLASSES))}
    mean = round(float(np.mean(list(dice.values()))), 4)
    return {"dice": dice, "meanFluidDice": mean, "perPhantom": per_case}


def run_name(size):
    return "%s-%s" % (NAME, size)


def train(args):
    torch.set_num_threads(args.threads)
    specs = intensity_specs()
    model = build(args.size, args.seed)
    data = load_split(TRAIN_SEEDS, specs)
    vcases = load_split(VAL_SEEDS, specs)
    # B-scans with fluid are drawn 3 times out of 4 (the reference trains on fluid slices only)
    fluid = [(i, k) for i, (_, lab, _, _) in enumerate(data) for k in range(lab.shape[0]) if lab[k].any()]
    everything = [(i, k) for i, (x, _, _, _) in enumerate(data) for k in range(x.shape[0])]
    rng = np.random.RandomState(args.seed)

    def sample():
        xs, ys = [], []
        for _ in range(args.batch):
            pool = fluid if rng.rand() < 0.75 else everything
            i, k = pool[rng.randint(len(pool))]
            x, y = data[i][0][k], data[i][1][k]
            if rng.rand() < 0.5:  # a left eye is a mirrored right eye
                x, y = x[:, ::-1], y[:, ::-1]
            x = x * rng.uniform(0.9, 1.1) + rng.uniform(-0.1, 0.1)
            xs.append(np.ascontiguousarray(x, np.float32))
            ys.append(np.ascontiguousarray(y))
        return torch.from_numpy(np.stack(xs)[:, None]), torch.from_numpy(np.stack(ys))

    def validate(m):
        info = evaluate([m], vcases)
        return info["meanFluidDice"], {"dice": info["dice"], "mean": info["meanFluidDice"]}

    weights = None
    if args.ce_weights:
        weights = torch.tensor(args.ce_weights, dtype=torch.float32)
        C.Logger(run_name(args.size))("cross-entropy class weights", args.ce_weights)
    C.train_loop(run_name(args.size), model, sample, lambda lg, y: dice_ce_loss(lg, y, weights), args.steps,
                 args.lr, args.resume, args.minutes, validate, val_every=args.val_every)


def load_trained(size, which="best"):
    return C.load_checkpoint(build(size), run_name(size), which)


def cmd_validate(args):
    model, st = load_trained(args.size, args.which)
    print(json.dumps({"step": st["step"], **evaluate([model], load_split(VAL_SEEDS, intensity_specs()))}, indent=2))


def run_summary(size, args):
    """Steps and wall time of the run from its train.log (every segment, resumes included)."""
    path = os.path.join(C.RUNS_DIR, run_name(size), "train.log")
    lines = open(path).read().splitlines() if os.path.exists(path) else []
    secs, prev, steps = 0, None, 0
    segments, start, weights = [], 0, None
    for ln in lines:
        h, m, sec = (int(t) for t in ln[:8].split(":"))
        t = h * 3600 + m * 60 + sec
        if "params" in ln or "resumed" in ln or "class weights" in ln:
            prev = t
        elif prev is not None:
            secs += (t - prev) % 86400
            prev = t
        if " step " in ln and "s/step" in ln:
            steps = int(ln.split(" step ")[1].split()[0])
        if "stopped at step" in ln:
            steps = int(ln.split("stopped at step")[1].split()[0])
            segments[-1]["to"] = steps
        if "total_steps" in ln:
            segments.append({"from": start, "schedule": int(ln.split("total_steps")[1].split()[0]),
                             "ceWeights": weights})
            start, weights = 0, None
        if "resumed at step" in ln:
            start = int(ln.split("resumed at step")[1].split()[0])
        if "class weights" in ln:
            weights = json.loads(ln.split("class weights", 1)[1])
    cfg = SIZES[size]
    # wall time includes the periodic validations; the machine's two cores were shared with other jobs
    return {"steps": steps, "segments": segments, "wallMinutes": round(secs / 60, 1), "secondsPerStep": round(secs / max(1, steps), 2),
            "batch": args.batch, "threads": 1, "widths": cfg["ch"], "dModel": cfg["d"], "heads": cfg["heads"]}


def export_onnx(model, path):
    """Opset 17, BatchNorm folded (eval mode), dynamic batch, fixed 256×256 (the position encoding's
    token count)."""
    import onnx
    model = model.eval()
    x = torch.randn([1, 1, WINDOW[1], WINDOW[0]])
    m = torch.ones(model.mask_shape(1))
    dyn = {"input": {0: "batch"}, "mc_mask": {0: "batch"}, "logits": {0: "batch"}}
    torch.onnx.export(model, (x, m), path, opset_version=C.OPSET, input_names=["input", "mc_mask"],
                      output_names=["logits"], dynamic_axes=dyn, do_constant_folding=True)
    onnx.checker.check_model(onnx.load(path), full_check=True)
    return path


def cmd_export(args):
    """Writes <out>/model.onnx (small), model.large.onnx, model.int8.onnx (if kept), the draft manifest
    and validation.json; `deno task package` then builds the package from them."""
    torch.set_num_threads(args.threads)
    out = args.out
    os.makedirs(out, exist_ok=True)
    specs = intensity_specs()
    vc = load_split(VAL_SEEDS, specs)
    small, st_s = load_trained("small", args.which)
    large, st_l = load_trained("large", args.which)
    ev_s, ev_l = evaluate([small], vc), evaluate([large], vc)
    ev_e = evaluate([small, large], vc)
    q_small = C.fake_quantize_(fold_bn(small))
    ev_q = evaluate([q_small], vc)
    int8_kept = all(abs(ev_q["dice"][c] - ev_s["dice"][c]) <= 0.01 for c in CLASSES[1:])
    export_onnx(small, os.path.join(out, MAIN))
    export_onnx(large, os.path.join(out, LARGE))
    n_q = 0
    if int8_kept:
        n_q = C.quantize_int8(os.path.join(out, MAIN), os.path.join(out, INT8))
    metrics = {
        "training": {size: run_summary(size, args) for size in SIZES},
        "data": "synthetic OCT phantoms (deno task phantom-oct, 25 B-scans of 256x256 each)",
        "split": {"train": ["seed %d (%s)" % (s, manufacturer_of(s)) for s in TRAIN_SEEDS],
                  "validation": ["seed %d (%s)" % (s, manufacturer_of(s)) for s in VAL_SEEDS]},
        "pooling": "per-class Dice over all voxels of all validation phantoms (argmax of the softmax)",
        "small": {"file": MAIN, "checkpointStep": st_s["step"], "params": C.count_params(small), **ev_s},
        "large": {"file": LARGE, "checkpointStep": st_l["step"], "params": C.count_params(large),
                  **ev_l},
        "ensemble": {"members": [MAIN, LARGE], "combination": "mean of probabilities",
                     **ev_e},
        "int8": {"file": INT8 if int8_kept else None, "kept": int8_kept, "quantisedConvs": n_q,
                 "rule": "kept when every class's Dice is within 0.01 of fp32", **ev_q},
        "intensityByManufacturer": specs,
        "parity": parity(small),
        "parityMembers": {LARGE: parity(large)},
    }
    C.write_json(os.path.join(out, "validation.json"), metrics)
    C.write_json(os.path.join(out, "draft.json"), draft_manifest(small, specs, int8_kept))
    print("next: deno task package %s --id %s --manifest %s --out models/%s --no-webgpu, then copy %s there"
          % (os.path.join(out, MAIN), NAME, os.path.join(out, "draft.json"), NAME,
             os.path.join(out, "validation.json")))
    print(json.dumps({k: v for k, v in metrics.items() if k not in ("parity", "parityMembers", "split")},
                     indent=2))


PARITY_STRIDE = 257


def parity(net):
    """common.parity_reference (what check_onnx.mjs reads) plus every 257th output value for both
    masks, which tests/inference/oct_fluid_test.ts compares with onnxruntime-node and WASM (≤ 1e-4)."""
    ref = C.parity_reference(net, 1, [WINDOW[1], WINDOW[0]], DROP)
    x = C.parity_input(1, [WINDOW[1], WINDOW[0]])
    with torch.no_grad():
        for key, mask in (("ones", torch.ones(net.mask_shape(1))),
                          ("seeded", C.dropout_mask(ref["maskSeed"], net.mask_channels, DROP, 2))):
            y = net.eval()(x, mask).numpy().ravel()
            ref[key]["sample"] = [float(v) for v in y[::PARITY_STRIDE]]
    ref["sampleStride"] = PARITY_STRIDE
    return ref


def draft_manifest(model, specs, int8_kept):
    """What the graph cannot tell `deno task package`: intensity recipe, window, labels, triage, card text."""
    # IRF, SRF and PED have no code in the tables EdgeSeg carries: the project's local scheme, exactly as
    # the phantom's ground truth SEG codes them (src/dicom/oct_phantom.ts octPhantomSegments)
    morph = C.MORPH_ALTERED
    local = lambda v, meaning: C.code(v, meaning, "99EDGESEG")  # noqa: E731
    labels = [
        {"value": 1, "name": "IRF", "channel": 1, "category": morph, "type": local("IRF", "Intraretinal fluid"),
         "color": [80, 200, 255]},
        {"value": 2, "name": "SRF", "channel": 2, "category": morph, "type": local("SRF", "Subretinal fluid"),
         "color": [255, 210, 60]},
        {"value": 3, "name": "PED", "channel": 3, "category": morph,
         "type": local("PED", "Pigment epithelial detachment"), "color": [240, 80, 160]},
    ]
    m = {
        "schemaVersion": 1,
        "id": NAME,
        "name": "OCT fluid (IRF / SRF / PED), demonstration weights",
        "version": "0.1.0",
        "task": "segmentation",
        "description": "TransUNet-style net (MBConv encoder, 2-layer transformer bottleneck, attention-gate "
                       "decoder) segmenting intraretinal fluid, subretinal fluid and pigment epithelial "
                       "detachment in OCT B-scans; trained on synthetic phantoms only.",
        "intendedUse": "Demonstration of the pipeline only. Trained on synthetic phantoms, never on patient "
                       "data: not a clinical model, not a medical device; not for diagnosis or treatment.",
        "license": "MIT (weights trained by EdgeSeg on its own synthetic phantoms)",
        "authors": ["EdgeSeg"],
        "citations": [
            "J. Chen et al., TransUNet: Transformers Make Strong Encoders for Medical Image Segmentation, "
            "arXiv:2102.04306, 2021.",
            "O. Oktay et al., Attention U-Net: Learning Where to Look for the Pancreas, MIDL 2018.",
            "M. Tan, Q. Le, EfficientNetV2: Smaller Models and Faster Training, ICML 2021.",
            "H. Bogunovic et al., RETOUCH: The Retinal OCT Fluid Detection and Segmentation Benchmark and "
            "Challenge, IEEE TMI 38(8):1858-1874, 2019.",
        ],
        "constraints": {"modalities": ["OPT"], "bodyParts": ["EYE"], "channels": 1},
        "inputs": [{"name": "input", "dtype": "float32", "shape": ["batch", 1, WINDOW[1], WINDOW[0]]},
                   {"name": "mc_mask", "dtype": "float32", "shape": ["batch", model.mask_channels, 1, 1]}],
        "outputs": [{"name": "logits", "dtype": "float32", "shape": ["batch", 4, WINDOW[1], WINDOW[0]]}],
        "activation": "softmax",
        "preprocessing": {"intensity": {"kind": "zscore", "mask": "all"},
                          "intensityByManufacturer": specs,
                          "padMultiple": STRIDE, "padValue": 0},
        "spatial": {"mode": "slice2d", "window": WINDOW, "overlap": 0.25, "blending": "gaussian",
                    "sigmaScale": 0.125, "batch": 1},
        "labels": labels,
        "uncertainty": {"mcDropout": {"input": "mc_mask", "shape": model.mask_shape(1), "rate": DROP,
                                      "defaultPasses": 8},
                        "ensemble": {"members": [LARGE]}},
        "triage": TRIAGE,
    }
    if int8_kept:
        m["variants"] = [{"id": "int8", "file": INT8, "precision": "int8",
                          "description": "weight-only per-channel INT8 convolutions (DequantizeLinear + float "
                                         "Conv); transformer MatMuls stay float32"}]
    return m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["data", "stats", "train", "validate", "export"])
    ap.add_argument("--size", choices=list(SIZES), default="small")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--minutes", type=float, default=13)
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--batch", type=int, default=3)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--val-every", type=int, default=100)
    ap.add_argument("--which", choices=["best", "last"], default="best")
    ap.add_argument("--ce-weights", type=float, nargs=4, default=None,
                    help="cross-entropy weights of background, IRF, SRF, PED (e.g. to revive a class the run "
                         "has not learnt)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.cmd == "export" and not args.out:
        args.out = os.path.join(tempfile.gettempdir(), "edgeseg-oct-export")
    {"data": cmd_data, "stats": cmd_stats, "train": train, "validate": cmd_validate, "export": cmd_export}[
        args.cmd](args)


if __name__ == "__main__":
    main()
