#!/usr/bin/python3
"""Static INT8 (QDQ) quantisation of a package's ONNX model, with activation ranges calibrated on real
training inputs (issue #15: "real INT8 in place of the weight-only variant").

    /usr/bin/python3 models/training/quantize_qdq.py ct-lung-infection [--out FILE] [--check]
        [--method minmax|percentile] [--percentile 99.999] [--calib-negatives 8]

writes models/<id>/model.int8.onnx (the package's `int8` variant) unless --out names another file; then
`deno task check-package <id> --write-files` puts its sha256 and size into the manifest.

What it writes: every activation between the input and the MC-dropout mask gets a QuantizeLinear /
DequantizeLinear pair (uint8, per tensor, asymmetric); every Conv weight there is int8 per output
channel, symmetric (zero point 0), its bias int32 at scale x_scale · w_scale. That is the layout
onnxruntime's QDQ transformers (CPU EP, which the WASM build runs) turn into integer kernels:
DQ → Conv → Q → QLinearConv, DQ → Add → Q → QLinearAdd, Mul → QLinearMul, Sigmoid → QLinearSigmoid,
Concat → QLinearConcat, and DQ → Resize → Q (same scale on both sides) → a uint8 Resize. A Relu that
follows a Conv or an Add is removed and its range (minimum 0, zero point 0) given to the producer's Q:
the saturating QuantizeLinear is the Relu, as in onnxruntime's own quantiser. From the `mc_mask` Mul
on (the last decoder features × the mask, the head 1×1 Conv and the log-sum-exp) the graph stays float:
the mask is an input, and the logits keep full precision for the 0.5 threshold and for calibration.

Calibration runs the fp32 graph with a small PyTorch interpreter of the ONNX ops these nets use (there
is no onnxruntime Python package here); ranges are the minimum and maximum over the calibration set
(`--method minmax`, the default) or a percentile of a 4096-bin histogram. `--check` runs the fp32 and
the QDQ graph (QuantizeLinear / DequantizeLinear simulated in the same interpreter) on the calibration
inputs and prints the largest logit error and the share of pixels whose decision flips: the criterion
that chose min/max (0.39 % flipped pixels vs 0.40 % for the 99.999th percentile), so the method was
chosen on training data only. The calibration inputs of `ct-lung-infection` are the COVID-SemiSeg
*training* slices (grey / 255, which is the manifest's window; see ct.py), padded to a multiple of 16
with the manifest's padValue as the pipeline pads a window, plus `--calib-negatives` slices of the
training half of the non-COVID CT's lung-level slices, windowed with ct.hu_to_input and cropped to the
lung region's box as `cropToRoi` does. No validation slice is read.
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

# ops whose float output is quantised (a Relu after Conv/Add is folded into the producer's Q)
QUANT_OPS = {"Conv", "Add", "Relu", "Resize", "Sigmoid", "Mul", "Concat"}


# ---------------------------------------------------------------------------------------------------
# a PyTorch interpreter for the ONNX graphs of common.py's nets (float and QDQ)


def _attrs(node):
    import onnx
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _q(x, s, zp, axis=1, dtype=torch.uint8):
    lo, hi = (0, 255) if dtype == torch.uint8 else ((-128, 127) if dtype == torch.int8 else (-2**31, 2**31 - 1))
    s, zp = _bcast(s, x, axis), _bcast(zp, x, axis)
    return torch.clamp(torch.round(x / s) + zp, lo, hi)


def _bcast(v, x, axis):
    if v.dim() == 0 or v.numel() == 1:
        return v.reshape(())
    shape = [1] * x.dim()
    shape[axis] = -1
    return v.reshape(shape)


class TorchGraph:
    """Evaluates an ONNX graph op by op in PyTorch (float32); `on_tensor(name, value)` sees every result."""

    def __init__(self, model):
        from onnx import numpy_helper
        self.model = model
        self.init = {}
        self.int_kind = {}
        for t in model.graph.initializer:
            a = numpy_helper.to_array(t)
            self.int_kind[t.name] = a.dtype
            self.init[t.name] = torch.from_numpy(a.astype(np.float32) if a.dtype != np.int64 else a.copy())

    def run(self, feeds, keep=None, on_tensor=None):
        env = dict(self.init)
        kinds = dict(self.int_kind)
        for k, v in feeds.items():
            env[k] = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
        out_names = [o.name for o in self.model.graph.output]
        for node in self.model.graph.node:
            a = _attrs(node)
            x = [env[i] if i else None for i in node.input]
            op = node.op_type
            if op == "Constant":
                from onnx import numpy_helper
                arr = numpy_helper.to_array(a["value"])
                y = torch.from_numpy(arr.copy() if arr.dtype == np.int64 else arr.astype(np.float32))
            elif op == "Conv":
                pads = a.get("pads", [0, 0, 0, 0])
                nd = x[1].dim() - 2
                assert pads[:nd] == pads[nd:], "asymmetric pads"
                fn = F.conv2d if nd == 2 else F.conv3d
                y = fn(x[0], x[1], x[2] if len(x) > 2 else None, stride=a.get("strides", 1),
                       padding=pads[:nd], dilation=a.get("dilations", 1), groups=a.get("group", 1))
            elif op == "Relu":
                y = torch.relu(x[0])
            elif op == "Sigmoid":
                y = torch.sigmoid(x[0])
            elif op in ("Add", "Sub", "Mul", "Max"):
                y = {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Max": torch.maximum}[op](x[0], x[1])
            elif op in ("Exp", "Log"):
                y = torch.exp(x[0]) if op == "Exp" else torch.log(x[0])
            elif op == "Concat":
                y = torch.cat(x, dim=a["axis"])
            elif op == "Slice":
                starts, ends = x[1].tolist(), x[2].tolist()
                axes = x[3].tolist() if len(x) > 3 and x[3] is not None else list(range(len(starts)))
                steps = x[4].tolist() if len(x) > 4 and x[4] is not None else [1] * len(starts)
                idx = [slice(None)] * x[0].dim()
                for s, e, ax, st in zip(starts, ends, axes, steps):
                    n = x[0].shape[ax]
                    idx[ax] = slice(max(-n, min(s, n)), max(-n - 1, min(e, n)), st)
                y = x[0][tuple(idx)]
            elif op == "Resize":
                assert a.get("mode") == b"linear" and a.get("coordinate_transformation_mode") == b"half_pixel"
                scales = x[2].tolist()
                assert scales[:2] == [1.0, 1.0]
                mode = "bilinear" if x[0].dim() == 4 else "trilinear"
                y = F.interpolate(x[0], scale_factor=scales[2:], mode=mode, align_corners=False)
            elif op == "QuantizeLinear":
                dt = torch.uint8 if kinds.get(node.input[2]) == np.uint8 else torch.int8
                y = _q(x[0], x[1], x[2], a.get("axis", 1), dt)
                kinds[node.output[0]] = np.uint8 if dt == torch.uint8 else np.int8
            elif op == "DequantizeLinear":
                ax = a.get("axis", 1)
                y = (x[0] - _bcast(x[2], x[0], ax)) * _bcast(x[1], x[0], ax)
            else:
                raise NotImplementedError(op)
            env[node.output[0]] = y
            if on_tensor is not None:
                on_tensor(node.output[0], y)
        keep = set(keep or []) | set(out_names)
        return {k: env[k] for k in keep if k in env}


# ---------------------------------------------------------------------------------------------------
# the plan: which tensors get Q/DQ, which Relus fold away


def graph_maps(g):
    prod, cons = {}, {}
    for n in g.node:
        for o in n.output:
            prod[o] = n
        for i in n.input:
            cons.setdefault(i, []).append(n)
    return prod, cons


def float_tail(g, mask_input):
    """The nodes from the Mul by the MC-dropout mask on: they stay float."""
    prod, cons = graph_maps(g)
    start = [n for n in g.node if n.op_type == "Mul" and mask_input in n.input]
    if len(start) != 1:
        raise SystemExit("expected one Mul by %s, found %d" % (mask_input, len(start)))
    # keyed by the first output's name: protobuf hands out a new wrapper per access, so id() is no key
    tail, todo = set(), [start[0]]
    while todo:
        n = todo.pop()
        if n.output[0] in tail:
            continue
        tail.add(n.output[0])
        for o in n.output:
            todo.extend(cons.get(o, []))
    return tail


def fold_relus(g, tail):
    """Removes each Relu whose input is a Conv or Add output used only by that Relu (outside the float
    tail): the producer writes the Relu's output name directly."""
    prod, cons = graph_maps(g)
    drop = []
    for n in g.node:
        if n.op_type != "Relu" or n.output[0] in tail:
            continue
        p = prod.get(n.input[0])
        if p is not None and p.op_type in ("Conv", "Add") and len(cons[n.input[0]]) == 1:
            p.output[0] = n.output[0]
            drop.append(n)
    for n in drop:
        g.node.remove(n)
    return len(drop)


def quantized_tensors(g, tail, graph_input):
    """Activations that get Q/DQ: the image input and each output of a QUANT_OPS node outside the tail."""
    out = [graph_input]
    for n in g.node:
        if n.output[0] not in tail and n.op_type in QUANT_OPS:
            out.append(n.output[0])
    return out


# ---------------------------------------------------------------------------------------------------
# calibration


class RangeCollector:
    """Per tensor: running min/max and a histogram of values (for a percentile range)."""

    BINS = 4096

    def __init__(self, names):
        self.names = set(names)
        self.lo, self.hi, self.hist, self.edges = {}, {}, {}, {}

    def first_pass(self, name, y):
        if name in self.names:
            self.lo[name] = min(self.lo.get(name, np.inf), float(y.min()))
            self.hi[name] = max(self.hi.get(name, -np.inf), float(y.max()))

    def second_pass(self, name, y):
        if name in self.names:
            lo, hi = self.lo[name], self.hi[name]
            if hi <= lo:
                hi = lo + 1e-6
            h = torch.histc(y.flatten(), bins=self.BINS, min=lo, max=hi).numpy().astype(np.float64)
            self.hist[name] = self.hist.get(name, 0) + h
            self.edges[name] = np.linspace(lo, hi, self.BINS + 1)

    def range(self, name, method, pct):
        lo, hi = self.lo[name], self.hi[name]
        if method == "percentile" and name in self.hist:
            h, e = self.hist[name], self.edges[name]
            c = np.cumsum(h) / h.sum()
            tail = (100.0 - pct) / 100.0
            if lo < 0:
                lo = float(e[np.searchsorted(c, tail / 2)])
                hi = float(e[min(len(e) - 1, np.searchsorted(c, 1 - tail / 2) + 1)])
            else:
                hi = float(e[min(len(e) - 1, np.searchsorted(c, 1 - tail) + 1)])
        return min(lo, 0.0), max(hi, 0.0)


def u8_params(lo, hi):
    scale = (hi - lo) / 255.0 if hi > lo else 1.0
    zp = int(np.clip(np.round(-lo / scale), 0, 255))
    return np.float32(scale), np.uint8(zp)


# ---------------------------------------------------------------------------------------------------
# the rewrite


def quantize(model, graph_input, mask_input, calib, method="minmax", pct=99.999):
    """Returns the QDQ model (a modified copy) and a summary. `calib` is a list of feed dicts."""
    import copy
    import onnx
    from onnx import helper, numpy_helper

    m = copy.deepcopy(model)
    g = m.graph
    ev = TorchGraph(model)  # ranges from the float graph: a folded Relu's range is its own output's
    tail = float_tail(g, mask_input)
    folded = fold_relus(g, tail)
    names = quantized_tensors(g, tail, graph_input)
    _prod, cons = graph_maps(g)
    # a Resize output shares its input's parameters (onnxruntime drops the pair only then)
    shared = {n.output[0]: n.input[0] for n in g.node if n.op_type == "Resize" and n.output[0] in names}
    own = [t for t in names if t not in shared]

    col = RangeCollector(own)
    for feeds in calib:
        ev.run(feeds, on_tensor=col.first_pass)
        col.first_pass(graph_input, torch.from_numpy(feeds[graph_input]))
    if method == "percentile":
        for feeds in calib:
            ev.run(feeds, on_tensor=col.second_pass)
            col.second_pass(graph_input, torch.from_numpy(feeds[graph_input]))
    params = {t: u8_params(*col.range(t, method, pct)) for t in own}
    for t, src in shared.items():
        params[t] = params[src]

    inits = {i.name: i for i in g.initializer}
    new_init = []
    new_nodes = []
    qname = {}
    for t in names:
        s, zp = params[t]
        new_init += [numpy_helper.from_array(np.array(s, np.float32), t + "_scale"),
                     numpy_helper.from_array(np.array(zp, np.uint8), t + "_zp")]
        qname[t] = t + "_q"
    # weights and biases of the Convs whose input and output are quantised
    wq = 0
    for n in g.node:
        if n.op_type != "Conv" or n.input[0] not in params or n.output[0] not in params:
            continue
        w = numpy_helper.to_array(inits[n.input[1]]).astype(np.float32)
        amax = np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
        ws = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
        q = np.clip(np.round(w / ws.reshape([-1] + [1] * (w.ndim - 1))), -127, 127).astype(np.int8)
        wn = n.input[1]
        new_init += [numpy_helper.from_array(q, wn + "_q"), numpy_helper.from_array(ws, wn + "_wscale"),
                     numpy_helper.from_array(np.zeros(w.shape[0], np.int8), wn + "_wzp")]
        new_nodes.append(helper.make_node("DequantizeLinear", [wn + "_q", wn + "_wscale", wn + "_wzp"],
                                          [wn + "_dq"], axis=0, name=wn + "_dq"))
        n.input[1] = wn + "_dq"
        if len(n.input) > 2 and n.input[2]:
            b = numpy_helper.to_array(inits[n.input[2]]).astype(np.float64)
            bs = (float(params[n.input[0]][0]) * ws.astype(np.float64)).astype(np.float32)
            bq = np.clip(np.round(b / bs), -2**31, 2**31 - 1).astype(np.int32)
            bn = n.input[2]
            new_init += [numpy_helper.from_array(bq, bn + "_q"), numpy_helper.from_array(bs, bn + "_bscale"),
                         numpy_helper.from_array(np.zeros(w.shape[0], np.int32), bn + "_bzp")]
            new_nodes.append(helper.make_node("DequantizeLinear", [bn + "_q", bn + "_bscale", bn + "_bzp"],
                                              [bn + "_dq"], axis=0, name=bn + "_dq"))
            n.input[2] = bn + "_dq"
        wq += 1
    # Q after each quantised tensor, one DQ per consumer (a dedicated pair, as the QDQ selectors want)
    qnodes, dqnodes = {}, {}
    for t in names:
        qnodes[t] = helper.make_node("QuantizeLinear", [t, t + "_scale", t + "_zp"], [qname[t]], name=t + "_Q")
        dqnodes[t] = []
        for j, c in enumerate(cons.get(t, [])):
            dq = "%s_dq%d" % (t, j)
            dqnodes[t].append(helper.make_node("DequantizeLinear", [qname[t], t + "_scale", t + "_zp"], [dq],
                                               name="%s_DQ%d" % (t, j)))
            for k, i in enumerate(c.input):
                if i == t:
                    c.input[k] = dq
    # topological order: weight DQs first, the input's Q/DQ, then each Q and its DQs right after the producer
    placed = list(new_nodes) + [qnodes[graph_input]] + dqnodes[graph_input]
    for n in g.node:
        placed.append(n)
        for o in n.output:
            if o in qnodes:
                placed += [qnodes[o]] + dqnodes[o]
    # drop the float weights / biases now unused
    used = {i for n in placed for i in n.input}
    keep_init = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(keep_init + new_init)
    del g.node[:]
    g.node.extend(placed)
    onnx.checker.check_model(m, full_check=True)
    summary = {"method": method, "percentile": pct if method == "percentile" else None,
               "calibrationInputs": len(calib), "quantisedTensors": len(names), "int8Convs": wq,
               "foldedRelus": folded}
    return m, summary


# ---------------------------------------------------------------------------------------------------
# ct-lung-infection's calibration set


def pad_to(img, multiple, value):
    h, w = img.shape
    ph, pw = (-h) % multiple, (-w) % multiple
    return np.pad(img, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)), constant_values=value)


def ct_calibration(manifest, negatives):
    import ct
    multiple = manifest["preprocessing"].get("padMultiple", 16)
    pad_value = manifest["preprocessing"].get("padValue", ct.AIR)
    ch = manifest["uncertainty"]["mcDropout"]["shape"][1]
    ones = np.ones((1, ch, 1, 1), np.float32)
    feeds = []
    train, _val = ct.slice_ids()
    for k in train:
        img, _gt = ct.load_case(k)
        feeds.append({"input": pad_to(img, multiple, pad_value)[None, None], "mc_mask": ones})
    if negatives > 0:
        neg = ct.negative_split()
        ks = neg["train"][:: max(1, len(neg["train"]) // negatives)][:negatives]
        for k in ks:
            y0, y1, x0, x1 = ct.roi_crop_box(neg["roi"][k], pad=0)
            feeds.append({"input": pad_to(neg["img"][k][y0:y1, x0:x1], multiple, pad_value)[None, None],
                          "mc_mask": ones})
    return feeds, {"covidTrainingSlices": len(train), "negativeTrainingSlices": max(0, negatives)}


STATIC_VARIANT = {"id": "int8", "file": "model.int8.onnx", "precision": "int8",
                  "description": "static INT8 (QDQ): int8 per-channel weights, uint8 activations calibrated on "
                                 "training slices; onnxruntime fuses it into QLinearConv"}


def quantize_ct_file(src, manifest, dst, method="minmax", pct=99.999, negatives=8):
    """The CT packages' static INT8 file from their fp32 ONNX (ct.py export calls this); returns the summary."""
    import onnx
    calib, info = ct_calibration(manifest, negatives)
    qm, summary = quantize(onnx.load(src), manifest["inputs"][0]["name"],
                           manifest["uncertainty"]["mcDropout"]["input"], calib, method, pct)
    summary["calibration"] = info
    onnx.save(qm, dst)
    return summary


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("package", help="package id under models/ (ct-lung-infection)")
    ap.add_argument("--out", help="output file (default models/<id>/model.int8.onnx)")
    ap.add_argument("--method", choices=["minmax", "percentile"], default="minmax")
    ap.add_argument("--percentile", type=float, default=99.999)
    ap.add_argument("--calib-negatives", type=int, default=8)
    ap.add_argument("--check", action="store_true", help="fp32 vs simulated QDQ logits on the calibration set")
    args = ap.parse_args()
    import onnx
    torch.set_num_threads(1)
    pkg = os.path.join(C.ROOT, "models", args.package)
    man = json.load(open(os.path.join(pkg, "manifest.json")))
    if args.package not in ("ct-lung-infection", "ct-lung-infection-3class"):
        raise SystemExit("calibration data are wired for the CT packages only")
    out = args.out or os.path.join(pkg, "model.int8.onnx")
    src = os.path.join(pkg, man["model"])
    summary = quantize_ct_file(src, man, out, args.method, args.percentile, args.calib_negatives)
    print(json.dumps(summary))
    if args.check:
        calib, _ = ct_calibration(man, args.calib_negatives)
        model = onnx.load(src)
        fe, qe = TorchGraph(model), TorchGraph(onnx.load(out))
        errs = []
        for feeds in calib:
            a = fe.run(feeds)["logits"]
            b = qe.run(feeds)["logits"]
            pa, pb = torch.softmax(a, 1)[:, 1], torch.softmax(b, 1)[:, 1]
            errs.append((float((a - b).abs().max()), float((pa - pb).abs().mean()),
                         float(((pa > 0.5) != (pb > 0.5)).float().mean())))
        e = np.array(errs)
        print(json.dumps({"logitMaxAbs": float(e[:, 0].max()), "probMeanAbs": float(e[:, 1].mean()),
                          "flippedPixelFraction": float(e[:, 2].mean())}))


if __name__ == "__main__":
    main()
