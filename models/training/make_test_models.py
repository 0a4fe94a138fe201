#!/usr/bin/python3
"""Generates EdgeSeg's tiny, deterministic ONNX test model packages and the benchmark networks.

    /usr/bin/python3 models/training/make_test_models.py                   # tests/fixtures/models/*
    /usr/bin/python3 models/training/make_test_models.py --bench bench/tmp # bench U-Nets (large, ignored)

Needs Debian's PyTorch (1.13) and onnx (1.12). The fixtures are committed because CI has no PyTorch;
re-running this script reproduces them byte for byte on the same torch version.

The tiny models are not trained: their weights are seeded random numbers, plus a hand-set skip path so
the output means something a test can check: class 1 wins where the preprocessed intensity is above 0.5
(the random convolution part is scaled down so it only perturbs that). Every model takes a dropout mask
input (`mask`, [batch, C, 1, 1(, 1)]) so MC dropout is reproducible per caller seed on every execution
provider (ORT removes Dropout nodes; the WebGPU build has no Dropout kernel at all).

3D nets avoid ConvTranspose3d and MaxPool3d, which fail on onnxruntime-web's WebGPU execution providers:
they go down by strided convolution and up by Resize followed by a convolution.
"""
import argparse
import hashlib
import json
import math
import os
import sys

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import helper, numpy_helper, TensorProto

OPSET = 17

TISSUE = {"value": "85756007", "scheme": "SCT", "meaning": "Tissue"}
SOFT_TISSUE = {"value": "87784001", "scheme": "SCT", "meaning": "Soft tissue"}
ANATOMICAL = {"value": "91723000", "scheme": "SCT", "meaning": "Anatomical Structure"}
BLOOD_VESSEL = {"value": "59820001", "scheme": "SCT", "meaning": "Blood vessel"}
RETINA = {"value": "5665001", "scheme": "SCT", "meaning": "Retinal structure"}
BACKGROUND_TYPE = {"value": "85756007", "scheme": "SCT", "meaning": "Tissue"}


# ----------------------------------------------------------------------------------------------
# tiny networks


class Tiny2D(nn.Module):
    """conv → strided conv → Resize up → concat → conv → ×mask → 1×1 head, plus an intensity skip."""

    def __init__(self, cin, cout, feat=4, sigmoid=False):
        super().__init__()
        self.c1 = nn.Conv2d(cin, feat, 3, padding=1)
        self.down = nn.Conv2d(feat, feat, 3, stride=2, padding=1)
        self.c2 = nn.Conv2d(2 * feat, feat, 3, padding=1)
        self.head = nn.Conv2d(feat, cout, 1)
        # skip: mean of the input channels → logits; class 1 above 0.5, class 0 below
        self.skip = nn.Conv2d(cin, cout, 1)
        with torch.no_grad():
            for m in (self.c1, self.down, self.c2, self.head):
                m.weight.mul_(0.5)
            self.head.weight.mul_(0.2)
            self.skip.weight.zero_()
            if sigmoid:
                self.skip.weight[0, :, 0, 0] = 10.0 / cin
                self.skip.bias[:] = -5.0
            else:
                self.skip.weight[1, :, 0, 0] = 10.0 / cin
                self.skip.weight[0, :, 0, 0] = -10.0 / cin
                self.skip.bias[:] = torch.tensor([5.0, -5.0])

    def forward(self, x, mask):
        a = F.relu(self.c1(x))
        b = F.relu(self.down(a))
        up = F.interpolate(b, scale_factor=2.0, mode="nearest")
        c = F.relu(self.c2(torch.cat([a, up], 1)))
        return self.head(c * mask) + self.skip(x)


class Tiny3D(nn.Module):
    def __init__(self, cin, cout, feat=4):
        super().__init__()
        self.c1 = nn.Conv3d(cin, feat, 3, padding=1)
        self.down = nn.Conv3d(feat, 2 * feat, 3, stride=2, padding=1)
        self.c2 = nn.Conv3d(3 * feat, feat, 3, padding=1)
        self.head = nn.Conv3d(feat, cout, 1)
        self.skip = nn.Conv3d(cin, cout, 1)
        with torch.no_grad():
            for m in (self.c1, self.down, self.c2, self.head):
                m.weight.mul_(0.5)
            self.head.weight.mul_(0.2)
            self.skip.weight.zero_()
            self.skip.weight[1, :, 0, 0, 0] = 10.0 / cin
            self.skip.weight[0, :, 0, 0, 0] = -10.0 / cin
            self.skip.bias[:] = torch.tensor([5.0, -5.0])

    def forward(self, x, mask):
        a = F.relu(self.c1(x))
        b = F.relu(self.down(a))
        up = F.interpolate(b, scale_factor=2.0, mode="trilinear", align_corners=False)
        c = F.relu(self.c2(torch.cat([a, up], 1)))
        return self.head(c * mask) + self.skip(x)


# ----------------------------------------------------------------------------------------------
# benchmark U-Nets (about 2 M parameters in 2D; 3D sized for 96³ patches)


def block(nd, cin, cout):
    Conv = nn.Conv2d if nd == 2 else nn.Conv3d
    Norm = nn.BatchNorm2d if nd == 2 else nn.BatchNorm3d
    return nn.Sequential(Conv(cin, cout, 3, padding=1), Norm(cout), nn.ReLU(inplace=True),
                         Conv(cout, cout, 3, padding=1), Norm(cout), nn.ReLU(inplace=True))


class UNet(nn.Module):
    """Plain U-Net: strided-conv down, Resize + conv up (runs on every onnxruntime-web EP), MC mask."""

    def __init__(self, nd, cin, cout, base, depth):
        super().__init__()
        Conv = nn.Conv2d if nd == 2 else nn.Conv3d
        self.nd = nd
        ch = [base * 2 ** i for i in range(depth + 1)]
        self.enc = nn.ModuleList([block(nd, cin, ch[0])])
        self.down = nn.ModuleList()
        for i in range(depth):
            self.down.append(Conv(ch[i], ch[i], 2, stride=2))
            self.enc.append(block(nd, ch[i], ch[i + 1]))
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for i in reversed(range(depth)):
            self.up.append(Conv(ch[i + 1], ch[i], 1))
            self.dec.append(block(nd, 2 * ch[i], ch[i]))
        self.head = Conv(ch[0], cout, 1)
        self.mask_channels = ch[0]

    def forward(self, x, mask):
        skips = []
        x = self.enc[0](x)
        for d, e in zip(self.down, self.enc[1:]):
            skips.append(x)
            x = e(d(x))
        mode = "bilinear" if self.nd == 2 else "trilinear"
        for u, dblk in zip(self.up, self.dec):
            x = u(F.interpolate(x, scale_factor=2.0, mode=mode, align_corners=False))
            x = dblk(torch.cat([skips.pop(), x], 1))
        return self.head(x * mask)


# ----------------------------------------------------------------------------------------------
# export helpers


def export(model, example, path, spatial_names):
    model.eval()
    x, mask = example
    nd = x.dim() - 2
    dyn_in = {0: "batch"}
    for i, n in enumerate(spatial_names):
        dyn_in[2 + i] = n
    torch.onnx.export(model, (x, mask), path, opset_version=OPSET,
                      input_names=["input", "mask"], output_names=["logits"],
                      dynamic_axes={"input": dyn_in, "mask": {0: "batch"}, "logits": dict(dyn_in)},
                      do_constant_folding=True)
    m = onnx.load(path)
    # a stable producer string keeps the files reproducible across runs
    m.producer_name = "edgeseg-make_test_models"
    m.producer_version = "1"
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, path)
    return nd


def quantize_weights_int8(src, dst):
    """Weight-only int8: each Conv weight becomes int8 + per-output-channel DequantizeLinear.

    Per-channel on purpose: per-tensor DequantizeLinear gives wrong results on the JSEP WebGPU EP.
    """
    m = onnx.load(src)
    g = m.graph
    inits = {i.name: i for i in g.initializer}
    new_nodes = []
    for node in g.node:
        if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in inits:
            continue
        w_name = node.input[1]
        w = numpy_helper.to_array(inits[w_name]).astype(np.float32)
        absmax = np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
        scale = np.where(absmax > 0, absmax / 127.0, 1.0).astype(np.float32)
        q = np.clip(np.round(w / scale.reshape((-1,) + (1,) * (w.ndim - 1))), -127, 127).astype(np.int8)
        g.initializer.remove(inits[w_name])
        g.initializer.extend([numpy_helper.from_array(q, w_name + "_q"),
                              numpy_helper.from_array(scale, w_name + "_scale"),
                              numpy_helper.from_array(np.zeros_like(q, shape=(w.shape[0],)), w_name + "_zp")])
        new_nodes.append(helper.make_node("DequantizeLinear", [w_name + "_q", w_name + "_scale", w_name + "_zp"],
                                          [w_name], name=w_name + "_dq", axis=0))
    # onnx 1.12's checker wants nodes topologically sorted: dequantisation first
    nodes = new_nodes + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, dst)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


def file_entries(folder, names):
    return {n: {"sha256": sha256(os.path.join(folder, n)), "bytes": os.path.getsize(os.path.join(folder, n))}
            for n in names}


def reference_output(model, shape, mask_shape, folder):
    """Records PyTorch's output for a fixed input, so ONNX runtimes can be compared without torch."""
    n = int(np.prod(shape))
    x = torch.from_numpy(np.sin(np.arange(n, dtype=np.float64) * 0.01).astype(np.float32) * 0.5 + 0.5).reshape(shape)
    mask = torch.ones(mask_shape)
    with torch.no_grad():
        y = model(x, mask).numpy().astype(np.float64)
    ref = {
        "input": {"shape": list(shape), "formula": "0.5 + 0.5 * sin(0.01 * i)", "mask": "ones",
                  "maskShape": list(mask_shape)},
        "output": {"shape": list(y.shape), "sum": float(y.sum()), "absSum": float(np.abs(y).sum()),
                   "first": [float(v) for v in y.reshape(-1)[:16]]},
        "torch": torch.__version__,
    }
    with open(os.path.join(folder, "reference.json"), "w") as f:
        json.dump(ref, f, indent=2)
        f.write("\n")


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def model_card(folder, title, text):
    with open(os.path.join(folder, "MODEL_CARD.md"), "w") as f:
        f.write(f"# {title}\n\n{text.strip()}\n\n"
                "Generated by `models/training/make_test_models.py` with seeded random weights and a hand-set "
                "intensity skip path (foreground where the preprocessed intensity is above 0.5).\n"
                "**Not a trained model. For tests only; not for any clinical or research use.**\n")


def base_manifest(mid, name, description):
    return {
        "schemaVersion": 1,
        "id": mid,
        "name": name,
        "version": "1.0.0",
        "task": "segmentation",
        "description": description,
        "intendedUse": "Software tests of EdgeSeg only. Not for diagnosis or research.",
        "license": "Apache-2.0",
        "authors": ["EdgeSeg project"],
    }


# ----------------------------------------------------------------------------------------------
# packages


def make_tiny_2d(root):
    folder = os.path.join(root, "tiny-2d")
    os.makedirs(folder, exist_ok=True)
    feat = 4
    files = []
    for seed, fname in ((1, "tiny-2d.onnx"), (2, "tiny-2d-member2.onnx")):
        torch.manual_seed(seed)
        model = Tiny2D(1, 2, feat)
        export(model, (torch.randn(1, 1, 16, 16), torch.ones(1, feat, 1, 1)),
               os.path.join(folder, fname), ["height", "width"])
        files.append(fname)
        if seed == 1:
            reference_output(model, (1, 1, 16, 16), (1, feat, 1, 1), folder)
    quantize_weights_int8(os.path.join(folder, "tiny-2d.onnx"), os.path.join(folder, "tiny-2d-int8.onnx"))
    files.append("tiny-2d-int8.onnx")
    man = base_manifest("tiny-2d", "Tiny 2D test model (slice-wise CT/MR)",
                        "Two-class slice-wise test network: soft tissue brighter than the window centre.")
    man.update({
        "constraints": {"modalities": ["CT", "MR"], "channels": 1, "minSlices": 1},
        "model": "tiny-2d.onnx",
        "inputs": [{"name": "input", "dtype": "float32", "shape": ["batch", 1, "height", "width"]},
                   {"name": "mask", "dtype": "float32", "shape": ["batch", feat, 1, 1]}],
        "outputs": [{"name": "logits", "dtype": "float32", "shape": ["batch", 2, "height", "width"]}],
        "activation": "softmax",
        "preprocessing": {"intensity": {"kind": "window", "center": 40, "width": 400, "outMin": 0, "outMax": 1},
                          "padMultiple": 2, "padValue": 0},
        "spatial": {"mode": "slice2d", "window": [32, 32], "overlap": 0.25, "blending": "gaussian",
                    "sigmaScale": 0.125, "batch": 4},
        "labels": [{"value": 1, "name": "Bright tissue", "channel": 1, "category": TISSUE, "type": SOFT_TISSUE,
                    "color": [230, 80, 60]}],
        "postprocessing": {"minComponentVoxels": 0},
        "uncertainty": {"mcDropout": {"input": "mask", "shape": [1, feat, 1, 1], "rate": 0.25, "defaultPasses": 4},
                        "tta": {"flips": [[0], [1]]},
                        "ensemble": {"members": ["tiny-2d-member2.onnx"]}},
        "variants": [{"id": "int8", "file": "tiny-2d-int8.onnx", "precision": "int8",
                      "description": "weight-only int8, per-channel DequantizeLinear"}],
        "triage": {"labels": [1], "referenceVolumeMl": 100, "boundaryWeight": 0.5, "uncertaintyDiscount": 0.5,
                   "thresholds": {"review": 0.3, "urgent": 0.7}},
        "files": file_entries(folder, files),
    })
    write_json(os.path.join(folder, "manifest.json"), man)
    model_card(folder, "tiny-2d", "Slice-wise 2D test network, 1 channel in (CT window 40/400 → 0..1), 2-class softmax, "
                                  "MC mask input [batch, 4, 1, 1], an ensemble member (seed 2) and an int8 variant.")


def make_tiny_2d_rgb(root):
    folder = os.path.join(root, "tiny-2d-rgb")
    os.makedirs(folder, exist_ok=True)
    feat = 4
    torch.manual_seed(3)
    model = Tiny2D(1, 2, feat)
    export(model, (torch.randn(1, 1, 16, 16), torch.ones(1, feat, 1, 1)),
           os.path.join(folder, "tiny-2d-rgb.onnx"), ["height", "width"])
    reference_output(model, (1, 1, 16, 16), (1, feat, 1, 1), folder)
    man = base_manifest("tiny-2d-rgb", "Tiny 2D test model (RGB photograph, green channel)",
                        "Two-class test network for colour photographs; reads the green channel only.")
    man.update({
        "constraints": {"modalities": ["OP", "XC", "OT"], "channels": 3},
        "model": "tiny-2d-rgb.onnx",
        "inputs": [{"name": "input", "dtype": "float32", "shape": ["batch", 1, "height", "width"]},
                   {"name": "mask", "dtype": "float32", "shape": ["batch", feat, 1, 1]}],
        "outputs": [{"name": "logits", "dtype": "float32", "shape": ["batch", 2, "height", "width"]}],
        "activation": "softmax",
        "preprocessing": {"channels": [1],
                          "intensity": {"kind": "clipScale", "min": 0, "max": 255, "outMin": 0, "outMax": 1},
                          "padMultiple": 2, "padValue": 0},
        "spatial": {"mode": "image2d", "window": [64, 64], "overlap": 0.25, "blending": "gaussian",
                    "sigmaScale": 0.125, "batch": 4},
        "labels": [{"value": 1, "name": "Bright structure", "channel": 1, "category": ANATOMICAL,
                    "type": BLOOD_VESSEL, "color": [255, 40, 40]}],
        "uncertainty": {"mcDropout": {"input": "mask", "shape": [1, feat, 1, 1], "rate": 0.25, "defaultPasses": 4},
                        "tta": {"flips": [[0], [1], [0, 1]]}},
        "files": file_entries(folder, ["tiny-2d-rgb.onnx"]),
    })
    write_json(os.path.join(folder, "manifest.json"), man)
    model_card(folder, "tiny-2d-rgb", "image2d test network for RGB photographs: green channel, 0..255 → 0..1.")


def make_tiny_sigmoid(root):
    folder = os.path.join(root, "tiny-sigmoid")
    os.makedirs(folder, exist_ok=True)
    feat = 4
    torch.manual_seed(4)
    model = Tiny2D(1, 1, feat, sigmoid=True)
    export(model, (torch.randn(1, 1, 16, 16), torch.ones(1, feat, 1, 1)),
           os.path.join(folder, "tiny-sigmoid.onnx"), ["height", "width"])
    reference_output(model, (1, 1, 16, 16), (1, feat, 1, 1), folder)
    man = base_manifest("tiny-sigmoid", "Tiny 2D sigmoid test model",
                        "One-channel sigmoid test network (a binary output with a threshold).")
    man.update({
        "constraints": {"modalities": ["CT", "MR", "OT"], "channels": 1},
        "model": "tiny-sigmoid.onnx",
        "inputs": [{"name": "input", "dtype": "float32", "shape": ["batch", 1, "height", "width"]},
                   {"name": "mask", "dtype": "float32", "shape": ["batch", feat, 1, 1]}],
        "outputs": [{"name": "logits", "dtype": "float32", "shape": ["batch", 1, "height", "width"]}],
        "activation": "sigmoid",
        "preprocessing": {"intensity": {"kind": "zscore", "mask": "nonzero", "clip": [-3, 3]}, "padMultiple": 2},
        "spatial": {"mode": "slice2d", "window": [32, 32], "overlap": 0.5, "blending": "constant"},
        "labels": [{"value": 1, "name": "Above mean", "channel": 0, "category": TISSUE, "type": SOFT_TISSUE,
                    "color": [60, 200, 90], "threshold": 0.5}],
        "uncertainty": {"mcDropout": {"input": "mask", "shape": [1, feat, 1, 1], "rate": 0.5, "defaultPasses": 4}},
        "files": file_entries(folder, ["tiny-sigmoid.onnx"]),
    })
    write_json(os.path.join(folder, "manifest.json"), man)
    model_card(folder, "tiny-sigmoid", "Sigmoid output (1 channel), z-score inside the non-zero mask.")


def make_tiny_oct(root):
    folder = os.path.join(root, "tiny-oct")
    os.makedirs(folder, exist_ok=True)
    feat = 4
    torch.manual_seed(5)
    model = Tiny2D(1, 2, feat)
    export(model, (torch.randn(1, 1, 16, 16), torch.ones(1, feat, 1, 1)),
           os.path.join(folder, "tiny-oct.onnx"), ["height", "width"])
    reference_output(model, (1, 1, 16, 16), (1, feat, 1, 1), folder)
    man = base_manifest("tiny-oct", "Tiny 2D test model (OCT B-scans)",
                        "Two-class slice-wise test network for Ophthalmic Tomography (OPT) B-scans: "
                        "the bright retinal layers.")
    man.update({
        "constraints": {"modalities": ["OPT"], "channels": 1, "minSlices": 1},
        "model": "tiny-oct.onnx",
        "inputs": [{"name": "input", "dtype": "float32", "shape": ["batch", 1, "height", "width"]},
                   {"name": "mask", "dtype": "float32", "shape": ["batch", feat, 1, 1]}],
        "outputs": [{"name": "logits", "dtype": "float32", "shape": ["batch", 2, "height", "width"]}],
        "activation": "softmax",
        "preprocessing": {"intensity": {"kind": "clipScale", "min": 0, "max": 255, "outMin": 0, "outMax": 1},
                          "padMultiple": 2, "padValue": 0},
        "spatial": {"mode": "slice2d", "window": [64, 64], "overlap": 0.25, "blending": "gaussian",
                    "sigmaScale": 0.125, "batch": 4},
        "labels": [{"value": 1, "name": "Bright layer", "channel": 1, "category": ANATOMICAL, "type": RETINA,
                    "color": [250, 200, 60]}],
        "uncertainty": {"mcDropout": {"input": "mask", "shape": [1, feat, 1, 1], "rate": 0.25, "defaultPasses": 4},
                        "tta": {"flips": [[0]]}},
        "files": file_entries(folder, ["tiny-oct.onnx"]),
    })
    write_json(os.path.join(folder, "manifest.json"), man)
    model_card(folder, "tiny-oct", "Slice-wise test network for OCT B-scans (modality OPT): 1 channel, 0..255 → 0..1, "
                                   "2-class softmax, MC mask input [batch, 4, 1, 1].")


def make_tiny_3d(root):
    folder = os.path.join(root, "tiny-3d")
    os.makedirs(folder, exist_ok=True)
    feat = 4
    torch.manual_seed(5)
    model = Tiny3D(1, 2, feat)
    export(model, (torch.randn(1, 1, 8, 8, 8), torch.ones(1, feat, 1, 1, 1)),
           os.path.join(folder, "tiny-3d.onnx"), ["depth", "height", "width"])
    reference_output(model, (1, 1, 8, 8, 8), (1, feat, 1, 1, 1), folder)
    man = base_manifest("tiny-3d", "Tiny 3D patch test model",
                        "Two-class 3D patch test network (strided conv down, Resize + conv up).")
    man.update({
        "constraints": {"modalities": ["MR", "CT"], "channels": 1, "minSlices": 2},
        "model": "tiny-3d.onnx",
        "inputs": [{"name": "input", "dtype": "float32", "shape": ["batch", 1, "depth", "height", "width"]},
                   {"name": "mask", "dtype": "float32", "shape": ["batch", feat, 1, 1, 1]}],
        "outputs": [{"name": "logits", "dtype": "float32", "shape": ["batch", 2, "depth", "height", "width"]}],
        "activation": "softmax",
        "preprocessing": {"intensity": {"kind": "zscore", "mask": "all", "clip": [-5, 5]},
                          "targetSpacingMm": [None, None, None], "padMultiple": 2, "padValue": 0},
        "spatial": {"mode": "patch3d", "window": [16, 16, 16], "overlap": 0.5, "blending": "gaussian",
                    "sigmaScale": 0.125, "batch": 2},
        "labels": [{"value": 1, "name": "Bright region", "channel": 1, "category": TISSUE, "type": SOFT_TISSUE,
                    "color": [80, 160, 255]}],
        "postprocessing": {"largestComponent": [1], "fillHoles": [1]},
        "uncertainty": {"mcDropout": {"input": "mask", "shape": [1, feat, 1, 1, 1], "rate": 0.25,
                                      "defaultPasses": 4},
                        "tta": {"flips": [[0], [1], [2]]}},
        "files": file_entries(folder, ["tiny-3d.onnx"]),
    })
    write_json(os.path.join(folder, "manifest.json"), man)
    model_card(folder, "tiny-3d", "patch3d test network, 16³ windows at 50 % overlap, MC mask [batch, 4, 1, 1, 1].")


def make_bench(out):
    """U-Nets for `deno task bench`: written to an ignored folder, never committed (MBs of weights)."""
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(11)
    u2 = UNet(2, 3, 2, 16, 4)
    params2 = sum(p.numel() for p in u2.parameters())
    export(u2, (torch.randn(1, 3, 256, 256), torch.ones(1, u2.mask_channels, 1, 1)),
           os.path.join(out, "unet2d.onnx"), ["height", "width"])
    torch.manual_seed(12)
    u3 = UNet(3, 1, 2, 8, 3)
    params3 = sum(p.numel() for p in u3.parameters())
    export(u3, (torch.randn(1, 1, 32, 32, 32), torch.ones(1, u3.mask_channels, 1, 1, 1)),
           os.path.join(out, "unet3d.onnx"), ["depth", "height", "width"])
    torch.save(u2.state_dict(), os.path.join(out, "unet2d.pt"))
    torch.save(u3.state_dict(), os.path.join(out, "unet3d.pt"))
    info = {"unet2d": {"file": "unet2d.onnx", "params": params2, "in": 3, "maskChannels": u2.mask_channels,
                       "base": 16, "depth": 4},
            "unet3d": {"file": "unet3d.onnx", "params": params3, "in": 1, "maskChannels": u3.mask_channels,
                       "base": 8, "depth": 3},
            "torch": torch.__version__}
    write_json(os.path.join(out, "models.json"), info)
    print(json.dumps(info))


def torch_bench(out, which, size, threads, iters):
    """Median ms per forward pass of a bench U-Net in PyTorch (called by src/cli/bench.ts)."""
    import time
    torch.set_num_threads(threads)
    if which == "unet2d":
        m = UNet(2, 3, 2, 16, 4)
        shape = (1, 3, size, size)
    else:
        m = UNet(3, 1, 2, 8, 3)
        shape = (1, 1, size, size, size)
    m.load_state_dict(torch.load(os.path.join(out, which + ".pt")))
    m.eval()
    x = torch.rand(shape)
    mask = torch.ones((1, m.mask_channels) + (1,) * (len(shape) - 2))
    times = []
    with torch.inference_mode():
        m(x, mask)
        for _ in range(iters):
            t0 = time.perf_counter()
            m(x, mask)
            times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    print(json.dumps({"medianMs": times[len(times) // 2], "runs": len(times), "threads": threads}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None, help="fixture root (default tests/fixtures/models)")
    ap.add_argument("--bench", default=None, help="write the bench U-Nets to this folder instead")
    ap.add_argument("--torch-bench", nargs=4, metavar=("DIR", "MODEL", "SIZE", "THREADS"))
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--only", default=None, help="write only this fixture package (e.g. tiny-oct)")
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    if args.torch_bench:
        d, which, size, threads = args.torch_bench
        torch_bench(d, which, int(size), int(threads), args.iters)
        return
    if args.bench:
        make_bench(args.bench)
        return
    root = args.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures",
                                    "models")
    root = os.path.normpath(root)
    torch.set_num_threads(1)
    makers = {"tiny-2d": make_tiny_2d, "tiny-2d-rgb": make_tiny_2d_rgb, "tiny-sigmoid": make_tiny_sigmoid,
              "tiny-3d": make_tiny_3d, "tiny-oct": make_tiny_oct}
    if args.only is not None and args.only not in makers:
        ap.error(f"--only: expected one of {', '.join(makers)}, found {args.only}")
    for name, make in makers.items():
        if args.only in (None, name):
            make(root)
    print("wrote", root)


if __name__ == "__main__":
    sys.exit(main())
