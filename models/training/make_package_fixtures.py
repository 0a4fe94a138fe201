#!/usr/bin/python3
"""Generates the raw ONNX exports that `deno task package` is tested on (tests/fixtures/onnx/).

    /usr/bin/python3 models/training/make_package_fixtures.py [out folder]

Needs Debian's PyTorch (1.13) and onnx (1.12). These are *exports*, not packages: the tool turns them
into packages. Weights are seeded random numbers (untrained); every file stays a few tens of kB.

- attn-unet-3d.onnx: a tiny MONAI-style 3D attention U-Net exported as is, with MaxPool3d (k=2, s=2)
  down, ConvTranspose3d (kernel = stride = 2) up, attention gates on the skips, InstanceNorm, and a
  dropout-mask input `mask` [B, C, 1, 1, 1] for MC dropout. MaxPool3d fails on the JSEP WebGPU EP and
  ConvTranspose3d on both WebGPU EPs: the tool's rewrites are what make it run there.
- attn-unet-2d.onnx: the same design in 2D (MaxPool2d, ConvTranspose2d): runs everywhere as exported.
- classifier.onnx: a graph the tool must refuse (its output has no spatial axes: not a segmentation).
- bad-opset.onnx: a one-node graph declaring default-domain opset 99.
- tiny-ext.onnx + tiny-ext.onnx.data: the 2D net with its weights in external data.
- attn-resunet-2d.onnx (+ .reference.json): reference design 002's Attention-ResUNet for CT (liver /
  hepatic vessels, 3 classes) at its published layout — four residual encoder blocks and a bridge,
  MaxPool down, ConvTranspose (k = s = 2) "UpConv" up, attention-gated skips — with the widths halved
  (4-8-16-32, bridge 64); the reference JSON holds PyTorch's output on a fixed input for parity.
  `make_package_fixtures.py --only attn-resunet-2d` writes just these two files.
"""
import os
import sys

import onnx
import torch
import torch.nn as nn
from onnx import helper, TensorProto

OPSET = 17


def conv_block(nd, cin, cout):
    Conv = nn.Conv2d if nd == 2 else nn.Conv3d
    Norm = nn.InstanceNorm2d if nd == 2 else nn.InstanceNorm3d
    return nn.Sequential(Conv(cin, cout, 3, padding=1), Norm(cout, affine=True), nn.ReLU())


class AttentionGate(nn.Module):
    """MONAI's AttentionBlock: psi = sigmoid(conv(relu(W_g g + W_x x))); returns x * psi."""

    def __init__(self, nd, fg, fx, fint):
        super().__init__()
        Conv = nn.Conv2d if nd == 2 else nn.Conv3d
        self.wg = Conv(fg, fint, 1)
        self.wx = Conv(fx, fint, 1)
        self.psi = Conv(fint, 1, 1)

    def forward(self, g, x):
        return x * torch.sigmoid(self.psi(torch.relu(self.wg(g) + self.wx(x))))


class AttentionUNet(nn.Module):
    """Two levels: MaxPool down, ConvTranspose (k = s = 2) up, attention-gated skips, mask before the head."""

    def __init__(self, nd, cin=1, cout=2, f=(4, 8, 8)):
        super().__init__()
        Pool = nn.MaxPool2d if nd == 2 else nn.MaxPool3d
        Up = nn.ConvTranspose2d if nd == 2 else nn.ConvTranspose3d
        Conv = nn.Conv2d if nd == 2 else nn.Conv3d
        self.e0 = conv_block(nd, cin, f[0])
        self.e1 = conv_block(nd, f[0], f[1])
        self.e2 = conv_block(nd, f[1], f[2])
        self.pool = Pool(2, 2)
        self.up2 = Up(f[2], f[1], 2, stride=2)
        self.att1 = AttentionGate(nd, f[1], f[1], f[1] // 2)
        self.d1 = conv_block(nd, 2 * f[1], f[1])
        self.up1 = Up(f[1], f[0], 2, stride=2)
        self.att0 = AttentionGate(nd, f[0], f[0], f[0] // 2)
        self.d0 = conv_block(nd, 2 * f[0], f[0])
        self.head = Conv(f[0], cout, 1)

    def forward(self, x, mask):
        s0 = self.e0(x)
        s1 = self.e1(self.pool(s0))
        b = self.e2(self.pool(s1))
        u1 = self.up2(b)
        y = self.d1(torch.cat([self.att1(u1, s1), u1], 1))
        u0 = self.up1(y)
        y = self.d0(torch.cat([self.att0(u0, s0), u0], 1))
        return self.head(y * mask)


def export(model, nd, path, size):
    torch.manual_seed(0)
    model.eval()
    x = torch.randn(1, 1, *([size] * nd))
    mask = torch.ones(1, 4, *([1] * nd))
    names = ["depth", "height", "width"][-nd:]
    dyn = {0: "batch", **{2 + i: n for i, n in enumerate(names)}}
    torch.onnx.export(model, (x, mask), path, opset_version=OPSET, input_names=["input", "mask"],
                      output_names=["logits"],
                      dynamic_axes={"input": dyn, "mask": {0: "batch"}, "logits": dict(dyn)},
                      do_constant_folding=True)
    m = onnx.load(path)
    m.producer_name = "edgeseg-make_package_fixtures"
    m.producer_version = "1"
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, path)


class ResBlock2d(nn.Module):
    """002's residual block: conv-BN-ReLU-conv-BN plus a 1x1 projection of the input, then ReLU."""

    def __init__(self, cin, cout):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                                  nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout))
        self.skip = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        return torch.relu(self.body(x) + self.skip(x))


class AttnResUNet002(nn.Module):
    """Reference 002's Attention-ResUNet: ResBlocks (f, 2f, 4f, 8f) with MaxPool, a 16f bridge, and four
    decoder levels of UpConv (ConvTranspose k = s = 2) + attention gate on the skip + ResBlock; the
    MC-dropout mask multiplies the last decoder features; 3 classes."""

    def __init__(self, f=4, cout=3):
        super().__init__()
        w = [f, 2 * f, 4 * f, 8 * f, 16 * f]
        self.enc = nn.ModuleList([ResBlock2d(1 if i == 0 else w[i - 1], w[i]) for i in range(4)])
        self.bridge = ResBlock2d(w[3], w[4])
        self.pool = nn.MaxPool2d(2, 2)
        self.ups = nn.ModuleList([nn.ConvTranspose2d(w[i + 1], w[i], 2, stride=2) for i in range(4)])
        self.gates = nn.ModuleList([AttentionGate(2, w[i], w[i], max(1, w[i] // 2)) for i in range(4)])
        self.dec = nn.ModuleList([ResBlock2d(2 * w[i], w[i]) for i in range(4)])
        self.head = nn.Conv2d(w[0], cout, 1)

    def forward(self, x, mask):
        skips = []
        for block in self.enc:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        y = self.bridge(x)
        for i in reversed(range(4)):
            u = self.ups[i](y)
            y = self.dec[i](torch.cat([self.gates[i](u, skips[i]), u], 1))
        return self.head(y * mask)


def reference_output(model, path, size=32, mask_channels=4):
    """PyTorch's output on a fixed input (0.5 + 0.5 sin(0.01 i)) with an all-ones mask, for parity tests."""
    import json
    import math
    n = size * size
    x = torch.tensor([0.5 + 0.5 * math.sin(0.01 * i) for i in range(n)], dtype=torch.float32).reshape(1, 1, size, size)
    with torch.no_grad():
        y = model.eval()(x, torch.ones(1, mask_channels, 1, 1))
    flat = y.reshape(-1)
    with open(path, "w") as f:
        json.dump({"input": {"shape": [1, 1, size, size], "formula": "0.5 + 0.5 * sin(0.01 * i)", "mask": "ones",
                             "maskShape": [1, mask_channels, 1, 1]},
                   "output": {"shape": list(y.shape), "sum": float(flat.sum()), "absSum": float(flat.abs().sum()),
                              "first": [float(v) for v in flat[:32]], "every97": [float(v) for v in flat[::97]]}},
                  f, indent=2)
        f.write("\n")


def classifier(path):
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, "height", "width"])
    y = helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 1])
    g = helper.make_graph([helper.make_node("ReduceMean", ["input"], ["scores"], axes=[2, 3], keepdims=0)],
                          "classifier", [x], [y])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="edgeseg")
    onnx.checker.check_model(m)
    onnx.save(m, path)


def bad_opset(path):
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, "height", "width"])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1, "height", "width"])
    g = helper.make_graph([helper.make_node("Relu", ["input"], ["logits"])], "bad", [x], [y])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 99)], producer_name="edgeseg")
    onnx.save(m, path)  # no checker: opset 99 does not exist


def external(src, folder):
    m = onnx.load(src)
    onnx.save_model(m, os.path.join(folder, "tiny-ext.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="tiny-ext.onnx.data", size_threshold=0)


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    args = sys.argv[1:]
    only = None
    if args[:1] == ["--only"]:
        only, args = args[1], args[2:]
    out = args[0] if args else os.path.join(root, "tests", "fixtures", "onnx")
    os.makedirs(out, exist_ok=True)
    if only in (None, "attn-resunet-2d"):
        torch.manual_seed(3)
        net = AttnResUNet002()
        for m in net.modules():  # BatchNorm statistics of a trained net, not the identity
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
        export(net, 2, os.path.join(out, "attn-resunet-2d.onnx"), 32)
        reference_output(net, os.path.join(out, "attn-resunet-2d.reference.json"))
    if only is not None:
        return
    torch.manual_seed(1)
    export(AttentionUNet(3), 3, os.path.join(out, "attn-unet-3d.onnx"), 16)
    torch.manual_seed(2)
    export(AttentionUNet(2), 2, os.path.join(out, "attn-unet-2d.onnx"), 32)
    classifier(os.path.join(out, "classifier.onnx"))
    bad_opset(os.path.join(out, "bad-opset.onnx"))
    external(os.path.join(out, "attn-unet-2d.onnx"), out)
    for n in sorted(os.listdir(out)):
        print(f"{n}: {os.path.getsize(os.path.join(out, n))} bytes")


if __name__ == "__main__":
    main()
