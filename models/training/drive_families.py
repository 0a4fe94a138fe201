#!/usr/bin/python3
"""Two reference families on DRIVE (issue #17): DeepLabV3 (ASPP) and an MAE-pretrained ViT.

    /usr/bin/python3 models/training/drive_families.py train deeplabv3 [--resume] [--minutes 25]
    /usr/bin/python3 models/training/drive_families.py pretrain mae-vit [--resume] [--minutes 8]
    /usr/bin/python3 models/training/drive_families.py train mae-vit [--resume] [--minutes 17]
    /usr/bin/python3 models/training/drive_families.py validate deeplabv3|mae-vit
    /usr/bin/python3 models/training/drive_families.py export deeplabv3|mae-vit   # ONNX, draft manifest
    deno task package models/training/exports/<id>/model.onnx --id <id> \
        --manifest models/training/exports/<id>/draft-manifest.json --out models/<id>
    /usr/bin/python3 models/training/drive_families.py finish deeplabv3|mae-vit   # validation.json in

Same data, split and input as retina-vessels (retina.py): images 21-36 train, 37-40 validation; the
green channel z-scored over the whole image (manifest `channels: [1]`, `zscore` mask "all").

* deeplabv3 (reference 003, DeepLabV3 ResNet50/101 on DRIVE): a shrunk ResNet (basic blocks,
  4 stages 16-128 channels) with the DeepLabV3 output stride 8 (stages 3 and 4 dilated 2 and 4 instead
  of strided), ASPP (1x1, three 3x3 atrous convolutions, image pooling), a 3x3 head and a 1x1
  classifier with 2 classes (background, vessel; softmax), bilinear upsampling to the input size.
* mae-vit (reference 001, MAE-pretrained ViT for DRIVE vessels): a ViT encoder (patch 8, 128 wide,
  6 blocks, 4 heads) on a fixed 128x128 window, first trained as a masked autoencoder (75 % random
  patch masking, normalised-pixel loss on the masked patches) on the training images without labels,
  then fine-tuned with a progressive-upsampling CNN decoder (4 conv blocks, x8 in three x2 stages)
  plus UNETR-style conv skips from the input (full and half resolution) for thin vessels; 1 channel,
  sigmoid. The ONNX graph takes the fixed window only (fixed token count); the pipeline's sliding
  window covers the image.

Both take the project's MC-dropout design: a channel mask (`mc_mask`) multiplies the features just
before the 1x1 classifier. Loss: cross-entropy (or BCE) + soft Dice. Validation: F1 and AUC inside the
FOV mask at threshold 0.5 (pooled over images 37-40, as retina.py) and mIoU (mean of vessel and
background IoU inside the FOV) for comparison with reference 003.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402
import retina as R  # noqa: E402

FAMILIES = ("deeplabv3", "mae-vit")
DROP = 0.2


# ----------------------------------------------------------------------------------------------
# DeepLabV3 (Chen et al. 2017) with a shrunk ResNet backbone


class BasicBlock(nn.Module):
    """ResNet basic block with optional dilation (DeepLab replaces the last strides by dilation)."""

    def __init__(self, cin, cout, stride=1, dilation=1):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.n1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, padding=dilation, dilation=dilation, bias=False)
        self.n2 = nn.BatchNorm2d(cout)
        self.skip = None
        if cin != cout or stride != 1:
            self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.n1(self.c1(x)))
        y = self.n2(self.c2(y))
        return F.relu(y + (x if self.skip is None else self.skip(x)))


def conv_bn_relu(cin, cout, k=3, dilation=1, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride=stride, padding=dilation * (k // 2), dilation=dilation,
                                   bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling (DeepLabV3): 1x1, three 3x3 atrous rates, image pooling; concat,
    1x1 projection."""

    def __init__(self, cin, cout, rates):
        super().__init__()
        self.branches = nn.ModuleList([conv_bn_relu(cin, cout, 1)] +
                                      [conv_bn_relu(cin, cout, 3, dilation=r) for r in rates])
        self.pool = conv_bn_relu(cin, cout, 1)
        self.project = conv_bn_relu(cout * (len(rates) + 2), cout, 1)

    def forward(self, x):
        outs = [b(x) for b in self.branches]
        p = self.pool(x.mean(dim=(2, 3), keepdim=True))
        outs.append(p.expand(-1, -1, x.shape[2], x.shape[3]))
        return self.project(torch.cat(outs, dim=1))


class DeepLabV3(nn.Module):
    """ResNet (7x7/2 stem, 3x3/2 max pool, 4 stages of 2 basic blocks) at output stride 8: stage 2 strides,
    stages 3 and 4 are dilated 2 and 4 (the DeepLabV3 OS-8 layout). Widths 16-128 (ResNet50: 256-2048);
    ASPP rates 6/12/18 (the paper's OS-16 rates: the training crops give 32x32 feature maps, on which the
    OS-8 rates 12/24/36 would mostly read padding)."""

    def __init__(self, cin=1, classes=2, widths=(16, 32, 64, 128), aspp=64, rates=(6, 12, 18), drop=DROP):
        super().__init__()
        self.drop = drop
        self.stem = conv_bn_relu(cin, widths[0], 7, stride=2)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        cfg = [(widths[0], 1, 1), (widths[1], 2, 1), (widths[2], 1, 2), (widths[3], 1, 4)]
        layers, c = [], widths[0]
        for w, s, d in cfg:
            layers.append(nn.Sequential(BasicBlock(c, w, stride=s, dilation=d), BasicBlock(w, w, dilation=d)))
            c = w
        self.layers = nn.ModuleList(layers)
        self.aspp = ASPP(c, aspp, rates)
        self.head = conv_bn_relu(aspp, aspp, 3)
        self.classifier = nn.Conv2d(aspp, classes, 1)
        self.mask_channels = aspp

    def mask_shape(self, batch=1):
        return [batch, self.mask_channels, 1, 1]

    def forward(self, x, mc_mask=None):
        size = x.shape[2:]
        h = self.pool(self.stem(x))
        for layer in self.layers:
            h = layer(h)
        h = self.head(self.aspp(h))
        h = apply_mc_mask(h, mc_mask, self.drop, self.training, self.mask_channels)
        return F.interpolate(self.classifier(h), size=size, mode="bilinear", align_corners=False)


def apply_mc_mask(h, mc_mask, drop, training, channels):
    if mc_mask is None:
        if training and drop > 0:
            keep = (torch.rand([h.shape[0], channels, 1, 1], device=h.device) >= drop).float()
            return h * keep / (1.0 - drop)
        return h
    return h * mc_mask


# ----------------------------------------------------------------------------------------------
# ViT encoder, MAE pretraining head, segmentation decoder


def sincos_pos_embed(dim, grid):
    """Fixed 2D sine-cosine position embedding (MAE): half the channels encode rows, half columns."""
    def one(d, pos):
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
        out = np.outer(pos.ravel(), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)
    gy, gx = np.meshgrid(np.arange(grid, dtype=np.float64), np.arange(grid, dtype=np.float64), indexing="ij")
    emb = np.concatenate([one(dim // 2, gy), one(dim // 2, gx)], axis=1)
    return torch.from_numpy(emb.astype(np.float32))[None]


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        a = torch.softmax((q * self.scale) @ k.transpose(-2, -1), dim=-1)
        return self.proj((a @ v).transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    """Pre-norm transformer block (ViT): x + attn(LN(x)), x + MLP(LN(x)), MLP ratio 4, GELU."""

    def __init__(self, dim, heads):
        super().__init__()
        self.n1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.n2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * 4), nn.GELU(), nn.Linear(dim * 4, dim))

    def forward(self, x):
        x = x + self.attn(self.n1(x))
        return x + self.mlp(self.n2(x))


class ViTEncoder(nn.Module):
    def __init__(self, size=128, patch=8, dim=128, depth=6, heads=4, cin=1):
        super().__init__()
        self.size, self.patch, self.dim, self.grid = size, patch, dim, size // patch
        self.embed = nn.Conv2d(cin, dim, patch, stride=patch)
        self.register_buffer("pos", sincos_pos_embed(dim, self.grid), persistent=False)
        self.blocks = nn.ModuleList([Block(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def tokens(self, x):
        return self.embed(x).flatten(2).transpose(1, 2) + self.pos

    def forward(self, x):
        h = self.tokens(x)
        for b in self.blocks:
            h = b(h)
        return self.norm(h)


class MAE(nn.Module):
    """Masked autoencoder (He et al. 2022): the encoder sees the visible 25 % of the patches; a light
    decoder (64 wide, 2 blocks) fills in mask tokens and predicts the pixels of every patch; the loss
    is the MSE on the masked patches against per-patch normalised pixels."""

    def __init__(self, enc, dec_dim=64, dec_depth=2, heads=4, ratio=0.75):
        super().__init__()
        self.enc, self.ratio = enc, ratio
        self.dec_embed = nn.Linear(enc.dim, dec_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dec_dim))
        nn.init.normal_(self.mask_token, std=0.02)
        self.register_buffer("dec_pos", sincos_pos_embed(dec_dim, enc.grid), persistent=False)
        self.dec = nn.ModuleList([Block(dec_dim, heads) for _ in range(dec_depth)])
        self.dec_norm = nn.LayerNorm(dec_dim, eps=1e-6)
        self.pred = nn.Linear(dec_dim, enc.patch * enc.patch)

    def patchify(self, x):
        b, p, g = x.shape[0], self.enc.patch, self.enc.grid
        return x.reshape(b, 1, g, p, g, p).permute(0, 2, 4, 3, 5, 1).reshape(b, g * g, p * p)

    def forward(self, x):
        e = self.enc
        t = e.tokens(x)
        b, n, d = t.shape
        keep = int(round(n * (1 - self.ratio)))
        order = torch.argsort(torch.rand(b, n), dim=1)
        restore = torch.argsort(order, dim=1)
        vis = torch.gather(t, 1, order[:, :keep, None].expand(-1, -1, d))
        for blk in e.blocks:
            vis = blk(vis)
        vis = self.dec_embed(e.norm(vis))
        full = torch.cat([vis, self.mask_token.expand(b, n - keep, -1)], dim=1)
        full = torch.gather(full, 1, restore[:, :, None].expand(-1, -1, full.shape[2])) + self.dec_pos
        for blk in self.dec:
            full = blk(full)
        pred = self.pred(self.dec_norm(full))
        target = self.patchify(x)
        target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
        masked = torch.ones(b, n)
        masked[:, :keep] = 0
        masked = torch.gather(masked, 1, restore)
        return (((pred - target) ** 2).mean(-1) * masked).sum() / masked.sum()


class MAEViTSeg(nn.Module):
    """ViT encoder + progressive-upsampling CNN decoder (x2 three times from the 1/8 token grid, one conv
    block per scale) with UNETR-style conv skips from the input at full and half resolution."""

    def __init__(self, size=128, patch=8, dim=128, depth=6, heads=4, drop=DROP):
        super().__init__()
        self.drop, self.size = drop, size
        self.enc = ViTEncoder(size, patch, dim, depth, heads)
        self.s1 = conv_bn_relu(1, 16)
        self.s2 = conv_bn_relu(16, 32, stride=2)
        self.d8 = conv_bn_relu(dim, 64)
        self.d4 = conv_bn_relu(64, 48)
        self.d2 = conv_bn_relu(48 + 32, 32)
        self.d1 = conv_bn_relu(32 + 16, 16)
        self.head = nn.Conv2d(16, 1, 1)
        self.mask_channels = 16

    def mask_shape(self, batch=1):
        return [batch, self.mask_channels, 1, 1]

    def forward(self, x, mc_mask=None):
        g = self.enc.grid
        t = self.enc(x)
        h = t.transpose(1, 2).reshape(x.shape[0], self.enc.dim, g, g)
        s1 = self.s1(x)
        s2 = self.s2(s1)
        h = self.d8(h)
        h = self.d4(F.interpolate(h, scale_factor=2.0, mode="bilinear", align_corners=False))
        h = self.d2(torch.cat([F.interpolate(h, scale_factor=2.0, mode="bilinear", align_corners=False), s2], 1))
        h = self.d1(torch.cat([F.interpolate(h, scale_factor=2.0, mode="bilinear", align_corners=False), s1], 1))
        h = apply_mc_mask(h, mc_mask, self.drop, self.training, self.mask_channels)
        return self.head(h)


# ----------------------------------------------------------------------------------------------
# per-family settings


SPEC = {
    "deeplabv3": {"id": "retina-deeplabv3", "window": [256, 256], "overlap": 0.25, "patch": 256, "batch": 6,
                  "classes": 2, "activation": "softmax", "padMultiple": 8},
    "mae-vit": {"id": "retina-mae-vit", "window": [128, 128], "overlap": 0.25, "patch": 128, "batch": 8,
                "classes": 1, "activation": "sigmoid", "padMultiple": 8},
}


def build(family, seed=1):
    C.seed_all(seed)
    return DeepLabV3() if family == "deeplabv3" else MAEViTSeg()


def vessel_prob_fn(family, model):
    if family == "deeplabv3":
        return lambda t: torch.softmax(model(t), dim=1)[:, 1:2]
    return lambda t: torch.sigmoid(model(t))


def evaluate(family, model, cases, threshold=0.5):
    """retina.evaluate's pooled F1/AUC inside the FOV, plus mIoU (vessel and background IoU, mean)."""
    s = SPEC[family]
    model.eval()
    scores, gts, per_image = [], [], []
    for _i, (x, lab, fov) in cases.items():
        p = C.sliding_window(vessel_prob_fn(family, model), x, s["window"], s["overlap"], R.PAD_VALUE,
                             s["padMultiple"])[0]
        scores.append(p[fov])
        gts.append(lab[fov])
        per_image.append(C.dice(p >= threshold, lab, fov))
    sc, g = np.concatenate(scores), np.concatenate(gts)
    tp, fp, fn, tn = C.binary_stats(sc >= threshold, g)
    iou_v, iou_b = tp / (tp + fp + fn), tn / (tn + fp + fn)
    return {"f1": 2 * tp / (2 * tp + fp + fn), "auc": C.auc_roc(sc, g), "sensitivity": tp / (tp + fn),
            "specificity": tn / (tn + fp), "precision": tp / max(tp + fp, 1.0),
            "accuracy": (tp + tn) / (tp + tn + fp + fn), "iouVessel": iou_v, "iouBackground": iou_b,
            "mIoU": (iou_v + iou_b) / 2, "meanImageDice": float(np.mean(per_image)), "images": list(cases.keys())}


def load_train():
    data = []
    for i in R.TRAIN_IDS:
        img, lab, fov = R.load_case(i)
        data.append((R.preprocess(img)[0], lab.astype(np.float32), fov))
    return data


def run_name(family):
    return SPEC[family]["id"]


def train(args):
    torch.set_num_threads(args.threads)
    fam = args.family
    s = SPEC[fam]
    model = build(fam, args.seed)
    if fam == "mae-vit" and not args.resume:
        st = C.Checkpointer(run_name(fam) + "-mae").load(MAE(model.enc))
        if st is None:
            raise SystemExit("no MAE checkpoint: run `pretrain mae-vit` first")
        print("encoder from MAE pretraining, step", st["step"])
    data = load_train()
    vcases = R.val_cases()
    rng = np.random.RandomState(args.seed)
    sample = R.crop_sampler(data, rng, s["patch"], s["batch"])

    def loss_fn(logits, y):
        if fam == "deeplabv3":
            target = torch.cat([1 - y, y], dim=1)
            return F.cross_entropy(logits, y[:, 0].long()) + C.soft_dice_loss(torch.softmax(logits, 1), target)
        return F.binary_cross_entropy_with_logits(logits, y) + C.soft_dice_loss(torch.sigmoid(logits), y)

    def validate(m):
        info = evaluate(fam, m, vcases)
        return info["f1"], {k: (round(v, 4) if isinstance(v, float) else v) for k, v in info.items()}

    C.train_loop(run_name(fam), model, sample, loss_fn, args.steps, args.lr, args.resume, args.minutes,
                 validate, val_every=args.val_every)


def pretrain(args):
    """MAE pretraining on the 16 training images (no labels): random 128x128 crops anywhere in the image."""
    torch.set_num_threads(args.threads)
    if args.family != "mae-vit":
        raise SystemExit("only mae-vit is pretrained")
    model = build("mae-vit", args.seed)
    mae = MAE(model.enc)
    data = load_train()
    rng = np.random.RandomState(args.seed + 100)
    crops = R.crop_sampler(data, rng, SPEC["mae-vit"]["patch"], 16)

    def sample():
        x, _ = crops()
        return x, None

    C.train_loop(run_name("mae-vit") + "-mae", mae, lambda: sample(), lambda loss, _y: loss, args.steps, args.lr,
                 args.resume, args.minutes, None, weight_decay=0.05)


def load_trained(family, which="best"):
    return C.load_checkpoint(build(family), run_name(family), which)


def cmd_validate(args):
    model, st = load_trained(args.family, args.which)
    print(json.dumps({"step": st["step"], **evaluate(args.family, model, R.val_cases())}, indent=2))


def export_onnx(family, model, path):
    """opset 17 as common.export_onnx; deeplabv3 has dynamic height/width, mae-vit a fixed window."""
    import onnx
    s = SPEC[family]
    model = model.eval()
    x = torch.randn([1, 1] + s["window"])
    m = torch.ones(model.mask_shape(1))
    dyn = {"input": {0: "batch"}, "mc_mask": {0: "batch"}, "logits": {0: "batch"}}
    if family == "deeplabv3":
        dyn = {"input": {0: "batch", 2: "height", 3: "width"}, "mc_mask": {0: "batch"},
               "logits": {0: "batch", 2: "height", 3: "width"}}
    torch.onnx.export(model, (x, m), path, opset_version=C.OPSET, input_names=["input", "mc_mask"],
                      output_names=["logits"], dynamic_axes=dyn, do_constant_folding=True)
    onnx.checker.check_model(onnx.load(path), full_check=True)


CITATIONS = {
    "deeplabv3": [
        "L.-C. Chen, G. Papandreou, F. Schroff, H. Adam, Rethinking Atrous Convolution for Semantic Image "
        "Segmentation, arXiv:1706.05587, 2017.",
        "K. He, X. Zhang, S. Ren, J. Sun, Deep Residual Learning for Image Recognition, CVPR 2016.",
    ],
    "mae-vit": [
        "K. He, X. Chen, S. Xie, Y. Li, P. Dollar, R. Girshick, Masked Autoencoders Are Scalable Vision "
        "Learners, CVPR 2022.",
        "A. Dosovitskiy et al., An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale, "
        "ICLR 2021.",
        "A. Hatamizadeh et al., UNETR: Transformers for 3D Medical Image Segmentation, WACV 2022.",
    ],
}

DESCRIPTIONS = {
    "deeplabv3": ("Retinal vessels, DeepLabV3 (fundus photograph)",
                  "DeepLabV3 (ASPP, output stride 8) on a shrunk ResNet, segmenting retinal blood vessels in "
                  "colour fundus photographs; trained from scratch on DRIVE (16 training images)."),
    "mae-vit": ("Retinal vessels, MAE-pretrained ViT (fundus photograph)",
                "Vision transformer (patch 8, 128x128 window) pretrained as a masked autoencoder on the DRIVE "
                "training images, fine-tuned with a progressive-upsampling decoder to segment retinal vessels."),
}


def draft_manifest(family, model):
    """The manifest handed to `deno task package --manifest` (the tool adds files and audits)."""
    s = SPEC[family]
    name, desc = DESCRIPTIONS[family]
    spatial_in = ["height", "width"] if family == "deeplabv3" else s["window"]
    vessel = {"value": 1, "name": "Retinal vessels", "channel": 1 if family == "deeplabv3" else 0,
              "category": C.ANATOMICAL_STRUCTURE, "type": C.code("59820001", "Blood vessel"),
              "color": [40, 160, 220] if family == "deeplabv3" else [60, 200, 90]}
    if family == "mae-vit":
        vessel["threshold"] = 0.5  # softmax labels take the argmax (the same as p >= 0.5 with 2 classes)
    return {
        "schemaVersion": 1,
        "id": s["id"],
        "name": name,
        "version": "1.0.0",
        "task": "segmentation",
        "description": desc,
        "intendedUse": R.DRIVE_INTENDED_USE,
        "license": R.DRIVE_LICENSE,
        "authors": ["EdgeSeg"],
        "citations": [R.DRIVE_CITATION] + CITATIONS[family],
        "constraints": dict(R.FUNDUS_CONSTRAINTS),
        "inputs": [{"name": "input", "dtype": "float32", "shape": ["batch", 1] + spatial_in},
                   {"name": "mc_mask", "dtype": "float32", "shape": ["batch", model.mask_channels, 1, 1]}],
        "outputs": [{"name": "logits", "dtype": "float32", "shape": ["batch", s["classes"]] + spatial_in}],
        "activation": s["activation"],
        "preprocessing": {"channels": [1], "intensity": {"kind": "zscore", "mask": "all"},
                          "padMultiple": s["padMultiple"], "padValue": R.PAD_VALUE},
        "spatial": {"mode": "image2d", "window": s["window"], "overlap": s["overlap"], "blending": "gaussian",
                    "sigmaScale": 0.125, "batch": 1},
        "labels": [vessel],
        "uncertainty": {"mcDropout": {"input": "mc_mask", "shape": model.mask_shape(1), "rate": DROP,
                                      "defaultPasses": 8},
                        "tta": {"flips": [[0], [1]]}},
    }


def export_dir(family):
    return os.path.join(C.HERE, "exports", SPEC[family]["id"])


def parity_with_sample(model, window, values=512):
    """common.parity_reference (sum, absMax, first values for the all-ones and the seeded mask) plus
    every k-th output value for the all-ones mask, so a test can bound the maximum difference."""
    ref = C.parity_reference(model, 1, window, DROP)
    with torch.no_grad():
        y = model.eval()(C.parity_input(1, window), torch.ones(model.mask_shape(1))).numpy().ravel()
    stride = max(1, y.size // values)
    ref["sample"] = {"stride": stride, "values": [float(v) for v in y[::stride]]}
    return ref


def cmd_export(args):
    """Writes exports/<id>/: model.onnx, draft-manifest.json, validation.json. Then:
    `deno task package exports/<id>/model.onnx --id <id> --manifest exports/<id>/draft-manifest.json
    --out models/<id>` builds the package, and `finish <family>` puts validation.json in it."""
    fam = args.family
    s = SPEC[fam]
    out = args.out or export_dir(fam)
    os.makedirs(out, exist_ok=True)
    model, st = load_trained(fam, args.which)
    fp32 = evaluate(fam, model, R.val_cases())
    onnx_path = os.path.join(out, "model.onnx")
    export_onnx(fam, model, onnx_path)
    metrics = {"family": fam, "split": {"train": R.TRAIN_IDS, "validation": R.VAL_IDS},
               "checkpointStep": st["step"], "fp32": fp32, "parity": parity_with_sample(model, s["window"]),
               "params": C.count_params(model), "training": training_summary(fam)}
    C.write_json(os.path.join(out, "validation.json"), metrics)
    C.write_json(os.path.join(out, "draft-manifest.json"), draft_manifest(fam, model))
    print(json.dumps({k: metrics[k] for k in ("checkpointStep", "fp32", "params", "training")}, indent=2))
    print("onnx:", os.path.relpath(onnx_path, C.ROOT), "%.1f MB" % (os.path.getsize(onnx_path) / 1e6))


def cmd_finish(args):
    """validation.json into the package the tool wrote, with the tool's op audit (package-report.json)
    and a check that the package holds the exported graph (same sha256)."""
    fam = args.family
    out = args.out or export_dir(fam)
    pkg = os.path.join(C.MODELS, SPEC[fam]["id"])
    report = json.load(open(os.path.join(pkg, "package-report.json")))
    if report["sha256"] != C.sha256_file(os.path.join(out, "model.onnx")):
        raise SystemExit("%s holds another graph than %s/model.onnx (rewritten? re-run the tool)" % (pkg, out))
    metrics = json.load(open(os.path.join(out, "validation.json")))
    metrics["training"] = training_summary(fam)  # the logs again (the export may predate a finished log)
    metrics["audit"] = {r["provider"]: {k: r[k] for k in ("ok", "maxAbsDiff", "skipped") if k in r}
                        for r in report["audit"]}
    metrics["providers"] = report.get("providers")
    C.write_json(os.path.join(pkg, "validation.json"), metrics)
    # onnxruntime-node vs the PyTorch outputs just recorded (check_onnx.mjs fails above 1e-4)
    import subprocess
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "check.json")
        subprocess.run(["node", os.path.join(C.HERE, "check_onnx.mjs"), "--json", path, pkg], check=True, cwd=C.ROOT)
        checked = json.load(open(path))
    metrics["parityMeasured"] = {"runtime": checked["runtime"], **checked["measured"][SPEC[fam]["id"]][report["file"]]}
    if args.eval:
        # `deno task eval --json` of the package on images 37-40 (the viewer's code path, WASM)
        ev = json.load(open(args.eval))
        if ev["model"]["id"] != SPEC[fam]["id"] or ev["model"].get("sha256") != report["sha256"]:
            raise SystemExit("%s is not an eval of this package" % args.eval)
        metrics["denoEval"] = {"cases": [c["case"] for c in ev["cases"]], "mean": ev["mean"],
                               "uncertainty": ev["uncertainty"], "definitions": ev["definitions"]}
    C.write_json(os.path.join(pkg, "validation.json"), metrics)
    print(json.dumps({"audit": metrics["audit"], "parityMeasured": metrics["parityMeasured"]}, indent=2))


INT8_TOLERANCE = 0.01  # a variant ships only if its mean image F1 on images 37-40 is within this of fp32
INT8_DESCRIPTIONS = {
    "deeplabv3": "weight-only per-channel INT8 (DequantizeLinear + float Conv)",
    "mae-vit": "weight-only per-channel INT8 of the Conv and MatMul weights (DequantizeLinear + float Conv/MatMul)",
}


def int8_file(family):
    return SPEC[family]["id"] + ".int8.onnx"


def int8_coverage(fp32_path, int8_path):
    """What the INT8 file quantised, read back from it: the weights behind each DequantizeLinear by the op that
    consumes them, their parameter count against the fp32 graph's, and both file sizes."""
    import onnx
    from onnx import numpy_helper
    fp = onnx.load(fp32_path)
    total = sum(int(np.prod(i.dims)) for i in fp.graph.initializer)
    q = onnx.load(int8_path)
    inits = {i.name: i for i in q.graph.initializer}
    consumers = {}
    for n in q.graph.node:
        for i in n.input:
            consumers.setdefault(i, set()).add(n.op_type)
    by_op = {}
    for n in q.graph.node:
        if n.op_type != "DequantizeLinear":
            continue
        w = inits[n.input[0]]
        assert numpy_helper.to_array(w).dtype == np.int8, n.name
        for op in sorted(consumers.get(n.output[0], {"?"})):
            e = by_op.setdefault(op, {"weights": 0, "params": 0})
            e["weights"] += 1
            e["params"] += int(np.prod(w.dims))
    quantised = sum(e["params"] for e in by_op.values())
    return {"byOp": by_op, "params": quantised, "ofParams": total, "fraction": quantised / total,
            "bytesFp32": os.path.getsize(fp32_path), "bytesInt8": os.path.getsize(int8_path)}


def cmd_int8(args):
    """Weight-only INT8 of the packaged graph (common.quantize_int8): models/<id>/<id>.int8.onnx from the
    package's fp32 file; Conv weights per output channel, and for mae-vit the MatMul weights per output column
    (the ViT keeps 88 % of its parameters in MatMuls). Without --eval it writes the file, declares it as the
    manifest's `int8` variant (so `deno task eval --variant int8` can load it; `files` gets its sha256) and
    prints what was quantised. With --eval <int8 eval.json> --eval-fp32 <fp32 eval.json> (`deno task eval`
    of the package on images 37-40, with `--variant int8` and without) it records validation.json "int8" and
    keeps the variant only if the mean image F1 is within INT8_TOLERANCE of fp32; otherwise the file and its
    variant entry are removed."""
    fam = args.family
    pid = SPEC[fam]["id"]
    pkg = os.path.join(C.MODELS, pid)
    man_path = os.path.join(pkg, "manifest.json")
    man = json.load(open(man_path))
    src, dst = os.path.join(pkg, man["model"]), os.path.join(pkg, int8_file(fam))
    if not args.eval:
        n = C.quantize_int8(src, dst, matmul=(fam == "mae-vit"))
        declare_int8(fam, man, True)
        print(json.dumps({"file": os.path.relpath(dst, C.ROOT), "weights": n, **int8_coverage(src, dst)}, indent=2))
        return
    if not args.eval_fp32:
        raise SystemExit("--eval needs --eval-fp32 (the same eval of the main model)")
    evals = {}
    for key, path, sha in (("fp32", args.eval_fp32, man["files"][man["model"]]["sha256"]),
                           ("int8", args.eval, C.sha256_file(dst))):
        ev = json.load(open(path))
        if ev["model"]["id"] != pid or ev["model"].get("sha256") != sha:
            raise SystemExit("%s is not an eval of %s's %s file" % (path, pid, key))
        if sorted(str(c["case"]) for c in ev["cases"]) != [str(i) for i in R.VAL_IDS]:
            raise SystemExit("%s does not score the validation images %s" % (path, R.VAL_IDS))
        evals[key] = ev
    f1 = {k: evals[k]["mean"]["dice"] for k in evals}
    kept = abs(f1["int8"] - f1["fp32"]) <= INT8_TOLERANCE
    metrics = json.load(open(os.path.join(pkg, "validation.json")))
    metrics["int8"] = {
        "file": int8_file(fam), "kept": kept,
        "rule": "kept when |mean image F1 (int8) - mean image F1 (fp32)| <= %g on images %s, both measured by "
                "deno task eval on the same provider" % (INT8_TOLERANCE, "-".join(str(i) for i in (R.VAL_IDS[0], R.VAL_IDS[-1]))),
        "provider": evals["int8"]["model"]["provider"],
        "f1Fp32": f1["fp32"], "f1Int8": f1["int8"], "f1Difference": f1["int8"] - f1["fp32"],
        "meanFp32": evals["fp32"]["mean"], "meanInt8": evals["int8"]["mean"],
        "quantised": int8_coverage(src, dst),
    }
    if args.parity_diff is not None:
        metrics["int8"]["probeMaxAbsDiffVsFp32"] = args.parity_diff
    C.write_json(os.path.join(pkg, "validation.json"), metrics)
    if not kept:
        os.remove(dst)
    declare_int8(fam, man, kept)
    print(json.dumps(metrics["int8"], indent=2))


def declare_int8(family, man, present):
    """The manifest with (or without) the `int8` variant, declared before `files`; `files` is rewritten
    from the .onnx files in the package (common.write_manifest)."""
    variants = [v for v in man.get("variants", []) if v["id"] != "int8"]
    if present:
        variants.append({"id": "int8", "file": int8_file(family), "precision": "int8",
                         "description": INT8_DESCRIPTIONS[family]})
    ordered = {}
    for k, v in man.items():
        if k == "files" and variants:
            ordered["variants"] = variants
        if k != "variants":
            ordered[k] = v
    C.write_manifest(os.path.join(C.MODELS, SPEC[family]["id"]), ordered)


def training_summary(family):
    """Steps, wall-clock minutes and running losses of the pre-training and training runs (C.log_summary)."""
    out = {}
    for key, name in (("pretrain", run_name(family) + "-mae"), ("train", run_name(family))):
        summary = C.log_summary(name)
        if summary is not None:
            out[key] = summary
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["train", "pretrain", "validate", "export", "finish", "int8"])
    ap.add_argument("family", choices=FAMILIES)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--minutes", type=float, default=25)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--val-every", type=int, default=100)
    ap.add_argument("--which", choices=["best", "last"], default="best")
    ap.add_argument("--out", default=None, help="export folder (default models/training/exports/<id>)")
    ap.add_argument("--eval", default=None, help="finish: a `deno task eval --json` file of the package to record; "
                                                 "int8: the eval of the int8 variant")
    ap.add_argument("--eval-fp32", default=None, help="int8: the same eval of the main model")
    ap.add_argument("--parity-diff", type=float, default=None,
                    help="int8: max abs difference int8 vs fp32 on the export's probe, to record")
    args = ap.parse_args()
    if args.lr is None:
        args.lr = {"deeplabv3": 2e-3, "mae-vit": 5e-4}[args.family] if args.cmd == "train" else 1.5e-3
    {"train": train, "pretrain": pretrain, "validate": cmd_validate, "export": cmd_export,
     "finish": cmd_finish, "int8": cmd_int8}[args.cmd](args)


if __name__ == "__main__":
    main()
