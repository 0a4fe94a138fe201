#!/usr/bin/python3
"""Exact ONNX graph rewrites for patterns onnxruntime-web's WebGPU execution providers cannot run.

    /usr/bin/python3 src/inference/onnx_rewrite.py <in.onnx> <out.onnx> <rewrite>[,<rewrite>...]

Called by `deno task package` (src/inference/package_tool/rewrite.ts), which then checks every rewrite
numerically against the original graph before it keeps it. Written in Python because the edit needs
a full ONNX writer (nodes, attributes, initializers): Debian's python3-onnx (1.12) has one and there is
no onnx package for Deno. Prints one JSON object: {"applied": [...], "skipped": [...]}.

Rewrites (exact: same arithmetic, only the data layout changes):
- convtranspose: ConvTranspose with kernel == stride, no padding, dilation 1, group 1, constant weight
  → a 1×1(×1) Conv whose output channels are (out channel, kernel offset) + depth-to-space
  (Reshape → Transpose → Reshape). Any spatial rank; used for 3D, where both WebGPU EPs fail.
- maxpool3d: MaxPool over 5-D (no dilation, no indices output) → MaxPool 2-D over (H, W) with C·D
  folded into channels, then MaxPool 2-D over (D, 1) with H'·W' folded into one axis. Max is separable
  and padding pads with -inf per axis, so the result is identical. JSEP's pooling is 2-D only (NHWC).
"""
import json
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto


def attrs(node):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


class Builder:
    def __init__(self, model, prefix):
        self.model = model
        self.prefix = prefix
        self.nodes = []
        self.inits = []
        self.n = 0

    def name(self, what):
        self.n += 1
        return f"{self.prefix}/{what}_{self.n}"

    def const(self, arr, what):
        nm = self.name(what)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), nm))
        return nm

    def node(self, op, inputs, what, outputs=None, **kw):
        outs = outputs or [self.name(what + "_out")]
        self.nodes.append(helper.make_node(op, inputs, outs, name=self.name(what), **kw))
        return outs[0]

    def slice_shape(self, tensor, start, end):
        s = self.node("Shape", [tensor], "Shape")
        return self.node("Slice", [s, self.const(np.array([start], np.int64), "start"),
                                   self.const(np.array([end], np.int64), "end")], "Slice")


def initializer(model, name):
    for t in model.graph.initializer:
        if t.name == name:
            return t
    return None


def rewrite_convtranspose(model, node):
    a = attrs(node)
    w_init = initializer(model, node.input[1])
    if w_init is None:
        return None, "weight is not a constant initializer"
    w = numpy_helper.to_array(w_init)
    nd = w.ndim - 2
    k = list(a.get("kernel_shape", w.shape[2:]))
    if nd < 3:
        return None, f"{nd}-D ConvTranspose runs on every provider; left as is"
    if list(a.get("strides", [1] * nd)) != k:
        return None, f"kernel {k} != strides {a.get('strides')}"
    if any(a.get("pads", [0] * 2 * nd)) or any(a.get("output_padding", [0] * nd)) or "output_shape" in a:
        return None, "pads/output_padding/output_shape set"
    if any(d != 1 for d in a.get("dilations", [1] * nd)) or a.get("group", 1) != 1:
        return None, "dilation or group != 1"
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        return None, "auto_pad set"
    ci, co = w.shape[0], w.shape[1]
    kk = int(np.prod(k))
    b = Builder(model, node.name or node.output[0])
    # W[ci, co, k...] → W2[(co, k...), ci, 1...]
    w2 = np.ascontiguousarray(np.moveaxis(w, 0, -1).reshape(co * kk, ci).reshape([co * kk, ci] + [1] * nd))
    conv_in = [node.input[0], b.const(w2.astype(w.dtype), "weight")]
    if len(node.input) > 2 and node.input[2]:
        bias_init = initializer(model, node.input[2])
        if bias_init is None:
            return None, "bias is not a constant initializer"
        conv_in.append(b.const(np.repeat(numpy_helper.to_array(bias_init), kk), "bias"))
    y = b.node("Conv", conv_in, "Conv", kernel_shape=[1] * nd)
    spatial = b.slice_shape(node.input[0], 2, 2 + nd)
    shape1 = b.node("Concat", [b.const(np.array([0, co] + k, np.int64), "dims"), spatial], "Concat", axis=0)
    y = b.node("Reshape", [y, shape1], "Reshape")
    perm = [0, 1] + [v for i in range(nd) for v in (2 + nd + i, 2 + i)]
    y = b.node("Transpose", [y], "Transpose", perm=perm)
    up = b.node("Mul", [spatial, b.const(np.array(k, np.int64), "k")], "Mul")
    shape2 = b.node("Concat", [b.const(np.array([0, co], np.int64), "dims"), up], "Concat", axis=0)
    b.node("Reshape", [y, shape2], "Reshape", outputs=[node.output[0]])
    return b, None


def rewrite_maxpool3d(model, node):
    a = attrs(node)
    k = list(a.get("kernel_shape", []))
    if len(k) != 3:
        return None, f"{len(k)}-D MaxPool runs on every provider; left as is"
    if len([o for o in node.output if o]) != 1:
        return None, "the Indices output is used"
    if any(d != 1 for d in a.get("dilations", [1, 1, 1])) or a.get("storage_order", 0) != 0:
        return None, "dilation or storage_order set"
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        return None, "auto_pad set"
    s = list(a.get("strides", [1, 1, 1]))
    p = list(a.get("pads", [0] * 6))
    ceil = a.get("ceil_mode", 0)
    b = Builder(model, node.name or node.output[0])
    x = node.input[0]
    hw = b.slice_shape(x, 3, 5)
    shape1 = b.node("Concat", [b.const(np.array([0, -1], np.int64), "dims"), hw], "Concat", axis=0)
    y = b.node("Reshape", [x, shape1], "Reshape")  # [N, C·D, H, W]
    y = b.node("MaxPool", [y], "MaxPoolHW", kernel_shape=k[1:], strides=s[1:],
               pads=[p[1], p[2], p[4], p[5]], ceil_mode=ceil)
    hw2 = b.slice_shape(y, 2, 4)
    cd = b.slice_shape(x, 1, 3)
    shape2 = b.node("Concat", [b.const(np.array([0], np.int64), "n"), cd,
                               b.const(np.array([-1], np.int64), "rest")], "Concat", axis=0)
    y = b.node("Reshape", [y, shape2], "Reshape")  # [N, C, D, H'·W']
    y = b.node("MaxPool", [y], "MaxPoolD", kernel_shape=[k[0], 1], strides=[s[0], 1],
               pads=[p[0], 0, p[3], 0], ceil_mode=ceil)
    shape3 = b.node("Concat", [b.const(np.array([0, 0, 0], np.int64), "ncd"), hw2], "Concat", axis=0)
    b.node("Reshape", [y, shape3], "Reshape", outputs=[node.output[0]])
    return b, None


REWRITES = {"convtranspose": ("ConvTranspose", rewrite_convtranspose),
            "maxpool3d": ("MaxPool", rewrite_maxpool3d)}


def main():
    src, dst, which = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
    model = onnx.load(src)  # loads external data from beside src, if any
    applied, skipped = [], []
    for rw in which:
        op, fn = REWRITES[rw]
        new_nodes = []
        for node in model.graph.node:
            if node.op_type != op or node.domain not in ("", "ai.onnx"):
                new_nodes.append(node)
                continue
            b, why = fn(model, node)
            if b is None:
                skipped.append({"rewrite": rw, "node": node.name, "op": op, "reason": why})
                new_nodes.append(node)
                continue
            new_nodes.extend(b.nodes)
            model.graph.initializer.extend(b.inits)
            applied.append({"rewrite": rw, "node": node.name, "op": op,
                            "as": [n.op_type for n in b.nodes if n.op_type not in ("Shape", "Slice", "Concat")]})
        del model.graph.node[:]
        model.graph.node.extend(new_nodes)
    # drop initializers no node uses any more (the replaced ConvTranspose weights)
    used = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
    keep = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
    onnx.checker.check_model(model)
    onnx.save(model, dst)
    print(json.dumps({"applied": applied, "skipped": skipped}))


if __name__ == "__main__":
    main()
