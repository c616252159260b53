"""The bundle's ``model.onnx`` → LiteRT models for XNNPACK on the Pi 5's CPU: ``litert`` (fp32),
``litert-fp16`` and ``litert-int8``.

Our own translation of the ~15 ONNX op types the exported graph holds (no converter package,
so it also runs in CI): convolutions and pooling in NHWC (the ONNX graph is NCHW: weights are
re-laid, and one transpose turns the backbone's last map back before the tokens are formed),
weight MatMul/Gemm as FULLY_CONNECTED, LayerNormalization as MEAN/SUB/MUL/RSQRT/ADD, the
attention core as BATCH_MATMUL + SOFTMAX.

- fp32: the graph as is.
- fp16: weights stored as fp16 (half the file) and the ``reduced_precision_support`` metadata
  ``fp16accfp16``, which lets XNNPACK run fp16 arithmetic where the CPU has it (the A76 does,
  at twice fp32's rate; x86 without AVX512-FP16 computes fp32).
- int8 as ``onnx-int8`` decides it (:mod:`edgeact.export.quantize_onnx`): every Conv and every
  weight MatMul/Gemm int8 -- weights per-channel symmetric, activations per-tensor asymmetric,
  calibrated (min/max) on episode frames -- while the input normalization, the state
  projection, the action head, LayerNorm and each attention core (q @ k^T, softmax,
  weights @ V) stay float. QUANTIZE/DEQUANTIZE ops join the two domains.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeact.errors import ExportError
from edgeact.export.litert_graph import LiteRTGraph, Quant

PRECISIONS = ("fp32", "fp16", "int8")
FP16_METADATA = b"fp16accfp16"  # XNNPACK takes the hint only with fp16 accumulation
Ranges = dict[str, tuple[float, float]]


@dataclass
class Value:
    """An ONNX tensor as it exists in the LiteRT graph."""

    index: int
    nhwc: bool = False  # a 4-D NCHW tensor of the ONNX graph, held as NHWC
    int8: bool = False


@dataclass
class _Plan:
    """What the ONNX graph asks of each node: fused followers, which nodes run int8."""

    consumers: dict[str, list[Any]]
    producers: dict[str, Any]
    fused: dict[str, list[Any]] = field(default_factory=dict)  # node name -> absorbed Add (bias) / Relu
    skip: set[str] = field(default_factory=set)
    int8_nodes: set[str] = field(default_factory=set)


def _plan(model, consts: dict[str, np.ndarray], float_nodes: set[str], int8: bool) -> _Plan:
    consumers: dict[str, list[Any]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    producers = {o: n for n in model.graph.node for o in n.output}
    plan = _Plan(consumers, producers)
    outputs = {o.name for o in model.graph.output}

    def only_consumer(name: str) -> Any:
        users = consumers.get(name, [])
        return users[0] if len(users) == 1 and name not in outputs else None

    for node in model.graph.node:
        absorbed = []
        out = node.output[0]
        if _is_weight_matmul(node, consts):
            n_out = _weight_matrix(node, consts).shape[0]
            nxt = only_consumer(out)
            if nxt is not None and nxt.op_type == "Add":
                other = [i for i in nxt.input if i != out]
                if len(other) == 1 and other[0] in consts and consts[other[0]].size == n_out:
                    absorbed.append(nxt)
                    out = nxt.output[0]
        if node.op_type == "Conv" or _is_weight_matmul(node, consts) or (node.op_type == "Add"
                                                                        and _both_dynamic(node, consts)):
            nxt = only_consumer(out)
            if nxt is not None and nxt.op_type == "Relu":
                absorbed.append(nxt)
        if absorbed:
            plan.fused[node.name] = absorbed
            plan.skip.update(n.name for n in absorbed)
        if int8 and node.name not in float_nodes and (node.op_type in ("Conv", "MaxPool")
                                                      or _is_weight_matmul(node, consts)):
            plan.int8_nodes.add(node.name)
    return plan


def _both_dynamic(node, consts) -> bool:
    return all(i not in consts for i in node.input)


def _is_weight_matmul(node, consts) -> bool:
    if node.op_type == "Gemm":
        return node.input[1] in consts
    return node.op_type == "MatMul" and node.input[0] not in consts and node.input[1] in consts \
        and consts[node.input[1]].ndim == 2


def _weight_matrix(node, consts) -> np.ndarray:
    """(out, in) weights of a MatMul / Gemm, as FULLY_CONNECTED takes them."""
    w = consts[node.input[1]].astype(np.float32)
    if node.op_type == "Gemm":
        attrs = _attrs(node)
        if attrs.get("transA", 0):
            raise ExportError(f"{node.name}: Gemm with transA is not supported")
        w = w * float(attrs.get("alpha", 1.0))
        return w if attrs.get("transB", 0) else w.T
    return w.T


def _attrs(node) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def activation_quant(lo: float, hi: float) -> Quant:
    """Per-tensor asymmetric int8 for values in [lo, hi] (the range always holds 0)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = max(hi - lo, 1e-8) / 255.0
    zero_point = int(np.clip(round(-128 - lo / scale), -128, 127))
    return Quant.per_tensor(scale, zero_point)


def weight_quant(w: np.ndarray) -> tuple[np.ndarray, Quant]:
    """Per-output-channel symmetric int8 (axis 0), the scheme XNNPACK's qc8 kernels take."""
    flat = np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
    scale = np.where(flat > 0, flat / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.round(w / scale.reshape(-1, *([1] * (w.ndim - 1)))), -127, 127).astype(np.int8)
    return q, Quant(scale, np.zeros_like(scale, dtype=np.int64), axis=0)


class OnnxToLiteRT:
    """Translate one ONNX model (our exporter's graph) to a LiteRT graph at one precision."""

    def __init__(self, model, precision: str, ranges: Ranges | None = None,
                 float_nodes: set[str] | frozenset[str] = frozenset()) -> None:
        from onnx import numpy_helper, shape_inference

        if precision not in PRECISIONS:
            raise ExportError(f"unknown precision {precision!r}; use one of {PRECISIONS}")
        if precision == "int8" and ranges is None:
            raise ExportError("int8 needs calibrated activation ranges")
        self.model = shape_inference.infer_shapes(model)
        self.precision = precision
        self.ranges = ranges or {}
        self.consts = {t.name: numpy_helper.to_array(t) for t in self.model.graph.initializer}
        for node in self.model.graph.node:
            if node.op_type == "Constant":
                self.consts[node.output[0]] = numpy_helper.to_array(_attrs_raw(node)["value"])
        self.shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
                       for v in [*self.model.graph.value_info, *self.model.graph.input, *self.model.graph.output]}
        self.plan = _plan(self.model, self.consts, set(float_nodes), precision == "int8")
        self.g = LiteRTGraph()
        self.values: dict[str, Value] = {}
        self._cache: dict[tuple, int] = {}

    # ------------------------------------------------------------------ entry point
    def convert(self) -> LiteRTGraph:
        g = self.g
        for inp in self.model.graph.input:
            if inp.name in self.consts:
                continue
            shape = self.shapes[inp.name]
            dtype = np.uint8 if inp.type.tensor_type.elem_type == 2 else np.float32
            quant = Quant.per_tensor(1.0, 0) if dtype == np.uint8 else None  # lets DEQUANTIZE cast it
            index = g.tensor(shape, dtype, inp.name, quant)
            g.inputs.append(index)
            self.values[inp.name] = Value(index)
        for node in self.model.graph.node:
            if node.name in self.plan.skip or node.op_type == "Constant":
                continue
            handler = getattr(self, "_" + node.op_type, None)
            if handler is None:
                raise ExportError(f"ONNX op {node.op_type} ({node.name}) has no LiteRT translation")
            handler(node)
        for out in self.model.graph.output:
            g.outputs.append(self.get(out.name, int8=False, nhwc=False))
        if self.precision == "fp16":
            g.metadata["reduced_precision_support"] = FP16_METADATA
        return g

    # ------------------------------------------------------------------ values and conversions
    def get(self, name: str, int8: bool, nhwc: bool | None = None) -> int:
        """The LiteRT tensor of ONNX tensor ``name`` in the domain and layout asked for."""
        if name in self.consts:
            raise ExportError(f"{name} is a constant where a tensor was expected")
        v = self.values[name]
        index = v.index
        layout = v.nhwc
        if nhwc is not None and nhwc != layout:
            if not layout:
                raise ExportError(f"{name}: cannot move a tensor into NHWC")
            index = self._converted(("nchw", name, v.int8), lambda: self._transpose(index, (0, 3, 1, 2), name,
                                                                                     v.int8))
            layout = False
        if int8 and not v.int8:
            q = activation_quant(*self._range(name))
            index = self._converted(("q", name, layout), lambda: self._unary("QUANTIZE", index, name + "/quantize",
                                                                              np.int8, q, "-"))
        elif not int8 and v.int8:
            index = self._converted(("dq", name, layout), lambda: self._unary("DEQUANTIZE", index,
                                                                               name + "/dequantize", np.float32,
                                                                               None, "-"))
        return index

    def _converted(self, key: tuple, make: Callable[[], int]) -> int:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def _range(self, name: str) -> tuple[float, float]:
        if name not in self.ranges:
            raise ExportError(f"no calibrated range for {name}")
        return self.ranges[name]

    def _unary(self, kind: str, index: int, name: str, dtype, quant: Quant | None, compute: str) -> int:
        out = self.g.tensor(self.g.shapes[index], dtype, name, quant)
        self.g.op(kind, [index], [out], name, compute, flops=np.prod(self.g.shapes[index]) if compute != "-" else 0)
        return out

    def _transpose(self, index: int, perm: tuple[int, ...], name: str, int8: bool) -> int:
        shape = [self.g.shapes[index][p] for p in perm]
        quant = self._tensor_quant(index) if int8 else None
        out = self.g.tensor(shape, self.g.dtypes[index], name + "/transpose", quant)
        self.g.op("TRANSPOSE", [index, self.g.const(np.array(perm, np.int32), name + "/perm")], [out],
                  name + "/transpose", "-")
        return out

    def _tensor_quant(self, index: int) -> Quant | None:
        q = self.g.tensors[index].quantization
        return None if q is None else Quant(np.array(q.scale, np.float32), np.array(q.zeroPoint, np.int64))

    def _weight(self, array: np.ndarray, name: str) -> int:
        """A float constant; stored fp16 behind a DEQUANTIZE in the fp16 model."""
        array = np.ascontiguousarray(array, np.float32)
        if self.precision != "fp16" or array.size < 64:
            return self.g.const(array, name)
        half = self.g.const(array.astype(np.float16), name + "/fp16")
        out = self.g.tensor(array.shape, np.float32, name)
        self.g.op("DEQUANTIZE", [half], [out], name + "/dequantize", "-")
        return out

    def _out(self, node, shape: list[int], int8: bool, nhwc: bool = False, quant: Quant | None = None) -> int:
        """The LiteRT tensor for ``node``'s (last fused) output."""
        name = self._final_output(node)
        if int8 and quant is None:
            quant = activation_quant(*self._range(name))
        index = self.g.tensor(shape, np.int8 if int8 else np.float32, name, quant if int8 else None)
        self.values[name] = Value(index, nhwc, int8)
        return index

    def _final_output(self, node) -> str:
        fused = self.plan.fused.get(node.name)
        return fused[-1].output[0] if fused else node.output[0]

    def _activation(self, node) -> int:
        relu = any(n.op_type == "Relu" for n in self.plan.fused.get(node.name, []))
        return self.g.schema.ActivationFunctionType.RELU if relu else self.g.schema.ActivationFunctionType.NONE

    def _onnx_shape(self, name: str) -> list[int]:
        if name in self.consts:
            return list(self.consts[name].shape)
        return self.shapes[name]

    # ------------------------------------------------------------------ ops
    def _Transpose(self, node) -> None:
        src = node.input[0]
        perm = tuple(_attrs(node)["perm"])
        v = self.values[src]
        if v.nhwc is False and self.g.dtypes[v.index] == np.uint8 and perm == (0, 3, 1, 2):
            self.values[node.output[0]] = Value(v.index, nhwc=True)  # the NHWC frame: already LiteRT's layout
            return
        index = self.get(src, v.int8, nhwc=False)
        out = self._transpose(index, perm, node.output[0], v.int8)
        self.values[node.output[0]] = Value(out, False, v.int8)

    def _Cast(self, node) -> None:
        v = self.values[node.input[0]]
        if self.g.dtypes[v.index] != np.uint8:
            raise ExportError(f"{node.name}: only the uint8 frame's cast to float is supported")
        out = self.g.tensor(self.g.shapes[v.index], np.float32, node.output[0])
        self.g.op("DEQUANTIZE", [v.index], [out], node.name, "fp32", flops=np.prod(self.g.shapes[v.index]))
        self.values[node.output[0]] = Value(out, v.nhwc)

    def _BatchNormalization(self, node) -> None:
        scale, bias, mean, var = (self.consts[i].astype(np.float64) for i in node.input[1:5])
        a = scale / np.sqrt(var + float(_attrs(node).get("epsilon", 1e-5)))
        b = bias - mean * a
        v = self.values[node.input[0]]
        if not v.nhwc:
            raise ExportError(f"{node.name}: BatchNormalization outside the image path")
        x = self.get(node.input[0], False)
        shape = list(self.g.shapes[x])
        tmp = self.g.tensor(shape, np.float32, node.output[0] + "/scaled")
        n = np.prod(shape)
        self.g.op("MUL", [x, self.g.const(a.astype(np.float32), node.name + "/a")], [tmp], node.name + "/mul",
                  "fp32", flops=n)
        out = self._out(node, shape, False, nhwc=True)
        self.g.op("ADD", [tmp, self.g.const(b.astype(np.float32), node.name + "/b")], [out], node.name + "/add",
                  "fp32", flops=n)

    def _Conv(self, node) -> None:
        attrs = _attrs(node)
        if attrs.get("group", 1) != 1 or any(d != 1 for d in attrs.get("dilations", [1, 1])):
            raise ExportError(f"{node.name}: grouped or dilated convolutions are not supported")
        int8 = node.name in self.plan.int8_nodes
        x = self.get(node.input[0], int8, nhwc=True) if self.values[node.input[0]].nhwc else None
        if x is None:
            raise ExportError(f"{node.name}: convolution input is not an image map")
        w = self.consts[node.input[1]].astype(np.float32).transpose(0, 2, 3, 1)  # OIHW -> OHWI
        bias = self.consts[node.input[2]].astype(np.float32) if len(node.input) > 2 else np.zeros(w.shape[0],
                                                                                                   np.float32)
        stride = attrs.get("strides", [1, 1])
        kh, kw = w.shape[1:3]
        x, padding = self._pad(node, x, attrs.get("pads", [0, 0, 0, 0]), (kh, kw), stride, int8)
        n, h, wd, c = self.g.shapes[x]
        oh = _valid(h, kh, stride[0]) if padding == "VALID" else -(-h // stride[0])
        ow = _valid(wd, kw, stride[1]) if padding == "VALID" else -(-wd // stride[1])
        if int8:
            qw, wq = weight_quant(w)
            in_scale = float(self.g.tensors[x].quantization.scale[0])
            bscale = (wq.scale * in_scale).astype(np.float32)
            wi = self.g.const(qw, node.name + "/weights", wq)
            bi = self.g.const(np.round(bias / bscale).astype(np.int32), node.name + "/bias",
                              Quant(bscale, np.zeros_like(bscale, np.int64)))
        else:
            wi, bi = self._weight(w, node.name + "/weights"), self.g.const(bias, node.name + "/bias")
        out = self._out(node, [n, oh, ow, w.shape[0]], int8, nhwc=True)
        self.g.op("CONV_2D", [x, wi, bi], [out], node.name, "int8" if int8 else "fp32",
                  flops=2.0 * oh * ow * w.shape[0] * kh * kw * c,
                  padding=getattr(self.g.schema.Padding, padding), strideH=stride[0], strideW=stride[1],
                  dilationHFactor=1, dilationWFactor=1, fusedActivationFunction=self._activation(node))

    def _pad(self, node, x: int, pads: list[int], kernel: tuple[int, int], stride: list[int],
             int8: bool) -> tuple[int, str]:
        """(input, padding): SAME where it equals ONNX's symmetric pads, else an explicit PAD and VALID."""
        top, left, bottom, right = pads
        if not any(pads):
            return x, "VALID"
        if stride == [1, 1] and top == bottom == (kernel[0] - 1) // 2 and left == right == (kernel[1] - 1) // 2 \
                and kernel[0] % 2 and kernel[1] % 2:
            return x, "SAME"
        n, h, w, c = self.g.shapes[x]
        quant = self._tensor_quant(x) if int8 else None
        out = self.g.tensor([n, h + top + bottom, w + left + right, c], self.g.dtypes[x], node.name + "/padded",
                            quant)
        paddings = np.array([[0, 0], [top, bottom], [left, right], [0, 0]], np.int32)
        self.g.op("PAD", [x, self.g.const(paddings, node.name + "/paddings")], [out], node.name + "/pad", "-")
        return out, "VALID"

    def _MaxPool(self, node) -> None:
        attrs = _attrs(node)
        int8 = node.name in self.plan.int8_nodes
        lo, _ = self._range(node.input[0]) if self.ranges else (0.0, 0.0)
        producer = self.plan.producers.get(node.input[0])
        if lo < 0 or (producer is not None and producer.op_type != "Relu" and not self.ranges):
            raise ExportError(f"{node.name}: max pooling is translated for non-negative inputs (after a ReLU) only")
        x = self.get(node.input[0], int8, nhwc=True)
        kh, kw = attrs["kernel_shape"]
        stride = attrs.get("strides", [1, 1])
        if attrs.get("ceil_mode", 0):
            raise ExportError(f"{node.name}: ceil_mode max pooling is not supported")
        # zero padding is exact here: every input is >= 0, so a padded 0 never wins the max
        x, _ = self._pad(node, x, attrs.get("pads", [0, 0, 0, 0]), (0, 0), [0, 0], int8)
        n, h, w, c = self.g.shapes[x]
        quant = self._tensor_quant(x) if int8 else None  # int8 max pooling keeps its input's scale
        out = self._out(node, [n, _valid(h, kh, stride[0]), _valid(w, kw, stride[1]), c], int8, nhwc=True,
                        quant=quant)
        self.g.op("MAX_POOL_2D", [x], [out], node.name, "int8" if int8 else "fp32",
                  flops=np.prod(self.g.shapes[out]) * kh * kw, padding=self.g.schema.Padding.VALID,
                  strideH=stride[0], strideW=stride[1], filterHeight=kh, filterWidth=kw,
                  fusedActivationFunction=self.g.schema.ActivationFunctionType.NONE)

    def _Relu(self, node) -> None:
        v = self.values[node.input[0]]
        x = self.get(node.input[0], v.int8)
        out = self._out(node, list(self.g.shapes[x]), v.int8, nhwc=v.nhwc)
        self.g.op("RELU", [x], [out], node.name, "int8" if v.int8 else "fp32", flops=np.prod(self.g.shapes[x]))

    def _Add(self, node) -> None:
        self._binary(node, "ADD")

    def _Mul(self, node) -> None:
        self._binary(node, "MUL")

    def _binary(self, node, kind: str) -> None:
        a, b = node.input
        if a in self.consts and b in self.consts:
            raise ExportError(f"{node.name}: constant folding is the exporter's job")
        dynamic = [i for i in (a, b) if i not in self.consts]
        const = [i for i in (a, b) if i in self.consts]
        if len(dynamic) == 2:
            va, vb = self.values[a], self.values[b]
            int8 = kind == "ADD" and va.int8 and vb.int8
            nhwc = va.nhwc and vb.nhwc
            ia, ib = self.get(a, int8, nhwc=nhwc), self.get(b, int8, nhwc=nhwc)
            shape = list(np.broadcast_shapes(self.g.shapes[ia], self.g.shapes[ib]))
            out = self._out(node, shape, int8, nhwc=nhwc)
            self.g.op(kind, [ia, ib], [out], node.name, "int8" if int8 else "fp32", flops=np.prod(shape),
                      fusedActivationFunction=self._activation(node))
            return
        v = self.values[dynamic[0]]
        c = self.consts[const[0]].astype(np.float32)
        if v.nhwc:
            c = c.reshape([1] * (4 - c.ndim) + list(c.shape)).transpose(0, 2, 3, 1)
        x = self.get(dynamic[0], False)
        shape = list(np.broadcast_shapes(self.g.shapes[x], c.shape))
        out = self._out(node, shape, False, nhwc=v.nhwc)
        inputs = [x, self.g.const(c, node.name + "/const")]
        self.g.op(kind, inputs if dynamic[0] == a else inputs[::-1], [out], node.name, "fp32", flops=np.prod(shape),
                  fusedActivationFunction=self._activation(node))

    def _MatMul(self, node) -> None:
        if _is_weight_matmul(node, self.consts):
            self._fully_connected(node)
            return
        a, b = node.input
        if a in self.consts:
            self._constant_matmul(node)
            return
        ia = self.get(a, False, nhwc=False)
        ib = self._weight(self.consts[b], node.name + "/b") if b in self.consts else self.get(b, False, nhwc=False)
        sa, sb = self.g.shapes[ia], self.g.shapes[ib]
        shape = [*np.broadcast_shapes(sa[:-2], sb[:-2]), sa[-2], sb[-1]]
        out = self._out(node, shape, False)
        self.g.op("BATCH_MATMUL", [ia, ib], [out], node.name, "fp32", flops=2.0 * np.prod(shape) * sa[-1],
                  adjX=False, adjY=False)

    def _constant_matmul(self, node) -> None:
        """constant A (1, H, M, K) @ tensor B (1, H, K, N): the decoder's learned queries against the keys.

        XNNPACK's fp16 path refuses a constant operand of BATCH_MATMUL, so it is one FULLY_CONNECTED
        with a block-diagonal (H*M, H*K) weight over B laid out (N, H*K): the same products, in the
        operator every precision delegates (its zero blocks cost H x the arithmetic of this small product;
        the delegation report counts the useful products).
        """
        a = self.consts[node.input[0]].astype(np.float32)
        ib = self.get(node.input[1], False, nhwc=False)
        sb = self.g.shapes[ib]
        if a.ndim != 4 or len(sb) != 4 or a.shape[0] != 1 or sb[0] != 1 or a.shape[1] != sb[1] or a.shape[3] != sb[2]:
            raise ExportError(f"{node.name}: constant @ tensor is translated for (1, H, M, K) @ (1, H, K, N) only")
        _, heads, m, k = a.shape
        n = sb[3]
        weight = np.zeros((heads * m, heads * k), np.float32)
        for h in range(heads):
            weight[h * m:(h + 1) * m, h * k:(h + 1) * k] = a[0, h]
        tokens = self._transpose(ib, (0, 3, 1, 2), node.name + "/tokens", False)  # (1, N, H, K)
        flat = self.g.tensor([n, heads * k], np.float32, node.name + "/flat")
        self.g.op("RESHAPE", [tokens, self.g.const(np.array([n, heads * k], np.int32), node.name + "/flat_shape")],
                  [flat], node.name + "/flat", "-", newShape=[n, heads * k])
        product = self.g.tensor([n, heads * m], np.float32, node.name + "/product")
        self.g.op("FULLY_CONNECTED", [flat, self._weight(weight, node.name + "/weights"),
                                      self.g.const(np.zeros(heads * m, np.float32), node.name + "/bias")],
                  [product], node.name, "fp32", flops=2.0 * n * heads * k * m, keepNumDims=False,  # the useful products
                  fusedActivationFunction=self.g.schema.ActivationFunctionType.NONE)
        split = self.g.tensor([1, n, heads, m], np.float32, node.name + "/split")
        self.g.op("RESHAPE", [product, self.g.const(np.array([1, n, heads, m], np.int32), node.name + "/split_shape")],
                  [split], node.name + "/split", "-", newShape=[1, n, heads, m])
        out = self._transpose(split, (0, 2, 3, 1), node.name, False)  # (1, H, M, N)
        self.values[self._final_output(node)] = Value(out)

    def _Gemm(self, node) -> None:
        if not _is_weight_matmul(node, self.consts):
            raise ExportError(f"{node.name}: Gemm without constant weights is not supported")
        self._fully_connected(node)

    def _fully_connected(self, node) -> None:
        int8 = node.name in self.plan.int8_nodes
        w = _weight_matrix(node, self.consts)
        bias = np.zeros(w.shape[0], np.float32)
        if node.op_type == "Gemm" and len(node.input) > 2:
            bias = bias + self.consts[node.input[2]].astype(np.float32).reshape(-1) * float(
                _attrs(node).get("beta", 1.0))
        for absorbed in self.plan.fused.get(node.name, []):
            if absorbed.op_type == "Add":
                other = [i for i in absorbed.input if i in self.consts][0]
                bias = bias + self.consts[other].astype(np.float32).reshape(-1)
        x = self.get(node.input[0], int8, nhwc=False)
        in_shape = list(self.g.shapes[x])
        if in_shape[-1] != w.shape[1]:
            raise ExportError(f"{node.name}: input {in_shape} does not match weights {list(w.shape)}")
        if int8:
            qw, wq = weight_quant(w)
            bscale = (wq.scale * float(self.g.tensors[x].quantization.scale[0])).astype(np.float32)
            wi = self.g.const(qw, node.name + "/weights", wq)
            bi = self.g.const(np.round(bias / bscale).astype(np.int32), node.name + "/bias",
                              Quant(bscale, np.zeros_like(bscale, np.int64)))
        else:
            wi, bi = self._weight(w, node.name + "/weights"), self.g.const(bias, node.name + "/bias")
        shape = in_shape[:-1] + [w.shape[0]]
        out = self._out(node, shape, int8)
        self.g.op("FULLY_CONNECTED", [x, wi, bi], [out], node.name, "int8" if int8 else "fp32",
                  flops=2.0 * np.prod(in_shape) * w.shape[0], keepNumDims=True,
                  fusedActivationFunction=self._activation(node))

    def _Softmax(self, node) -> None:
        x = self.get(node.input[0], False, nhwc=False)
        axis = _attrs(node).get("axis", -1)
        if axis not in (-1, len(self.g.shapes[x]) - 1):
            raise ExportError(f"{node.name}: softmax over axis {axis}; only the last axis is supported")
        out = self._out(node, list(self.g.shapes[x]), False)
        self.g.op("SOFTMAX", [x], [out], node.name, "fp32", flops=5 * np.prod(self.g.shapes[x]), beta=1.0)

    def _Reshape(self, node) -> None:
        v = self.values[node.input[0]]
        x = self.get(node.input[0], v.int8, nhwc=False)
        shape = self.shapes[node.output[0]]
        quant = self._tensor_quant(x) if v.int8 else None
        out = self.g.tensor(shape, self.g.dtypes[x], node.output[0], quant)
        self.values[node.output[0]] = Value(out, False, v.int8)
        self.g.op("RESHAPE", [x, self.g.const(np.array(shape, np.int32), node.name + "/shape")], [out], node.name,
                  "-", newShape=[int(d) for d in shape])

    _Unsqueeze = _Reshape
    _Squeeze = _Reshape
    _Flatten = _Reshape

    def _Concat(self, node) -> None:
        inputs = [self.g.const(self.consts[i].astype(np.float32), node.name + f"/const{k}") if i in self.consts
                  else self.get(i, False, nhwc=False) for k, i in enumerate(node.input)]
        shape = self.shapes[node.output[0]]
        axis = _attrs(node)["axis"] % len(shape)
        out = self._out(node, shape, False)
        self.g.op("CONCATENATION", inputs, [out], node.name, "-", axis=axis,
                  fusedActivationFunction=self.g.schema.ActivationFunctionType.NONE)

    def _LayerNormalization(self, node) -> None:
        attrs = _attrs(node)
        x = self.get(node.input[0], False, nhwc=False)
        shape = list(self.g.shapes[x])
        if attrs.get("axis", -1) not in (-1, len(shape) - 1):
            raise ExportError(f"{node.name}: layer norm over axis {attrs['axis']}; only the last is supported")
        axis = self.g.const(np.array([len(shape) - 1], np.int32), node.name + "/axis")
        reduced = shape[:-1] + [1]
        n = np.prod(shape)
        g = self.g
        name = node.name

        def tensor(suffix: str, s: list[int]) -> int:
            return g.tensor(s, np.float32, f"{name}/{suffix}")

        mean, centred, square, var, var_eps, inv, normed, scaled = (
            tensor("mean", reduced), tensor("centred", shape), tensor("square", shape), tensor("var", reduced),
            tensor("var_eps", reduced), tensor("rsqrt", reduced), tensor("normed", shape), tensor("scaled", shape))
        g.op("MEAN", [x, axis], [mean], name + "/mean", "fp32", flops=n, keepDims=True)
        g.op("SUB", [x, mean], [centred], name + "/sub", "fp32", flops=n)
        g.op("MUL", [centred, centred], [square], name + "/square", "fp32", flops=n)
        g.op("MEAN", [square, axis], [var], name + "/var", "fp32", flops=n, keepDims=True)
        eps = g.const(np.array([attrs.get("epsilon", 1e-5)], np.float32), name + "/eps")
        g.op("ADD", [var, eps], [var_eps], name + "/add_eps", "fp32", flops=np.prod(reduced))
        g.op("RSQRT", [var_eps], [inv], name + "/rsqrt", "fp32", flops=np.prod(reduced))
        g.op("MUL", [centred, inv], [normed], name + "/normalize", "fp32", flops=n)
        g.op("MUL", [normed, g.const(self.consts[node.input[1]].astype(np.float32), name + "/gamma")], [scaled],
             name + "/gamma", "fp32", flops=n)
        out = self._out(node, shape, False)
        beta = self.consts[node.input[2]].astype(np.float32) if len(node.input) > 2 else np.zeros(shape[-1],
                                                                                                  np.float32)
        g.op("ADD", [scaled, g.const(beta, name + "/beta")], [out], name + "/beta", "fp32", flops=n)


def _attrs_raw(node) -> dict[str, Any]:
    return {a.name: a.t for a in node.attribute if a.name == "value"}


def _valid(size: int, kernel: int, stride: int) -> int:
    return (size - kernel) // stride + 1


def calibrated_ranges(model, observations, input_names: list[str], log: Callable[[str], None] = print) -> Ranges:
    """Min and max of every tensor of the fp32 ONNX model over ``observations`` (ONNX Runtime)."""
    import onnx
    import onnxruntime as ort

    from edgeact.cpu import session_options
    from edgeact.export.onnx_export import feeds

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    inferred = onnx.shape_inference.infer_shapes(probe)
    known = {o.name for o in probe.graph.output}
    for value in inferred.graph.value_info:
        if value.name not in known and value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT:
            probe.graph.output.append(value)
    session = ort.InferenceSession(probe.SerializeToString(), session_options(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    lo = dict.fromkeys(names, np.inf)
    hi = dict.fromkeys(names, -np.inf)
    for k, (frames, state) in enumerate(observations):
        for name, value in zip(names, session.run(None, feeds(input_names, frames, state))):
            lo[name] = min(lo[name], float(np.min(value)))
            hi[name] = max(hi[name], float(np.max(value)))
        if (k + 1) % 16 == 0:
            log(f"    calibration: {k + 1}/{len(observations)} frames")
    return {n: (lo[n], hi[n]) for n in names}
