"""ONNX graph clean-up after export, and the checks a clean graph must pass.

The passes are small and exact (up to float rounding): they fold what is constant, fold the
frozen batch norms (exported as ``Mul``/``Add`` after each ``Conv``) into the convolution,
merge chains of per-channel scale/shift ops (``/255``, mean/std normalization, action
un-normalization) into one ``Mul`` and one ``Add``, and splice nested ``Concat`` nodes so the
encoder tokens are joined by a single ``Concat``. What remains is what ONNX Runtime and
Hailo's parser both read: ``Conv``, ``MatMul``/``Gemm``, ``Softmax``, ``LayerNormalization``,
elementwise ops, and ``Reshape``/``Transpose`` with constant shapes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

# Ops that compute shapes at run time, or control flow: a static graph for an NPU has none.
DYNAMIC_SHAPE_OPS = frozenset(
    {"Shape", "Size", "NonZero", "ConstantOfShape", "Range", "Loop", "If", "Scan", "NonMaxSuppression", "Compress",
     "Unique", "TopK", "SequenceConstruct", "SplitToSequence", "ConcatFromSequence"}
)
# Per-token slicing that a token-list implementation of ACT exports (hundreds of these).
PER_TOKEN_OPS = frozenset({"Split", "Squeeze", "Gather", "Slice"})
OPSET_RANGE = (13, 17)
_FOLD_LIMIT = 1 << 26  # elements; nothing in ACT is near this


# --------------------------------------------------------------------------------------
# helpers
class _Graph:
    """Index of a GraphProto: producers, consumers and constant values."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.graph = model.graph
        self.refresh()

    def refresh(self) -> None:
        self.inits = {t.name: t for t in self.graph.initializer}
        self.producer: dict[str, onnx.NodeProto] = {}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in self.graph.node:
            for out in node.output:
                self.producer[out] = node
            for inp in node.input:
                self.consumers.setdefault(inp, []).append(node)
        self.graph_outputs = {o.name for o in self.graph.output}

    def const(self, name: str) -> np.ndarray | None:
        if name in self.inits:
            return numpy_helper.to_array(self.inits[name])
        node = self.producer.get(name)
        if node is not None and node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    return numpy_helper.to_array(attr.t)
        return None

    def single_use(self, name: str) -> bool:
        return len(self.consumers.get(name, [])) == 1 and name not in self.graph_outputs

    def set_init(self, name: str, value: np.ndarray) -> None:
        tensor = numpy_helper.from_array(np.ascontiguousarray(value), name)
        if name in self.inits:
            self.inits[name].CopyFrom(tensor)
        else:
            self.graph.initializer.append(tensor)
            self.inits[name] = self.graph.initializer[-1]

    def fresh(self, base: str) -> str:
        names = set(self.inits) | set(self.producer) | {i.name for i in self.graph.input}
        name, i = base, 0
        while name in names:
            i += 1
            name = f"{base}_{i}"
        return name


def _remove_unused(model: onnx.ModelProto) -> None:
    """Drop nodes whose outputs nobody reads, then unreferenced initializers."""
    graph = model.graph
    needed = {o.name for o in graph.output}
    keep = []
    for node in reversed(list(graph.node)):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(i for i in node.input if i)
    keep.reverse()
    del graph.node[:]
    graph.node.extend(keep)
    used = [t for t in graph.initializer if t.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(used)
    vi = [v for v in graph.value_info if v.name in needed]
    del graph.value_info[:]
    graph.value_info.extend(vi)


# --------------------------------------------------------------------------------------
# passes
def fold_constant_nodes(model: onnx.ModelProto) -> int:
    """Evaluate every node whose inputs are all constant and replace it by initializers.

    Catches what a generic optimizer leaves (e.g. ``LayerNormalization`` on the constant
    decoder queries, whose optional outputs make some folders skip it).
    """
    from onnx.reference import ReferenceEvaluator

    g = _Graph(model)
    folded = 0
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=17)
    for node in list(model.graph.node):
        if node.op_type == "Constant" or node.domain not in ("", "ai.onnx"):
            continue
        inputs = [i for i in node.input if i]
        if not inputs or any(g.const(i) is None for i in inputs):
            continue
        values = {i: g.const(i) for i in inputs}
        if sum(v.size for v in values.values()) > _FOLD_LIMIT:
            continue
        outputs = [o for o in node.output if o]
        sub = helper.make_model(
            helper.make_graph(
                [node],
                "fold",
                [helper.make_tensor_value_info(i, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
                 for i, v in values.items()],
                [helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in outputs],
            ),
            opset_imports=[helper.make_opsetid("", opset)],
        )
        try:
            results = ReferenceEvaluator(sub).run(None, values)
        except Exception:  # noqa: BLE001 - an op the reference evaluator lacks: leave it to the runtime
            continue
        model.graph.node.remove(node)
        for name, value in zip(outputs, results):
            g.set_init(name, np.asarray(value))
        folded += 1
        g.refresh()
    _remove_unused(model)
    return folded


def fold_shapes(model: onnx.ModelProto) -> int:
    """``Shape(x)`` of a tensor whose shape is static becomes a constant (then folds onward)."""
    shapes = _value_shapes(model)
    g = _Graph(model)
    folded = 0
    for node in list(model.graph.node):
        if node.op_type != "Shape" or node.input[0] not in shapes:
            continue
        dims = np.asarray(shapes[node.input[0]], np.int64)
        start, end = _attr(node, "start", 0), _attr(node, "end", None)
        g.set_init(node.output[0], dims[start:end])
        model.graph.node.remove(node)
        folded += 1
    _remove_unused(model)
    return folded


def fold_conv_affine(model: onnx.ModelProto) -> int:
    """``Conv -> Mul(c) -> Add(c)`` with per-output-channel constants becomes one ``Conv`` with bias.

    That is how a frozen batch norm exports; folding it gives the Conv+BN-folded graph that
    quantizers and Hailo's parser expect.
    """
    folded = 0
    changed = True
    while changed:
        changed = False
        g = _Graph(model)
        for conv in list(model.graph.node):
            if conv.op_type != "Conv" or not g.single_use(conv.output[0]):
                continue
            weight = g.const(conv.input[1])
            if weight is None or (len(conv.input) > 2 and conv.input[2] and g.const(conv.input[2]) is None):
                continue
            nxt = g.consumers[conv.output[0]][0]
            if nxt.op_type not in ("Mul", "Add") or len(nxt.input) != 2:
                continue
            other = nxt.input[1] if nxt.input[0] == conv.output[0] else nxt.input[0]
            c = g.const(other)
            n_out, spatial = weight.shape[0], weight.ndim - 2
            if c is None or c.dtype.kind != "f":
                continue
            if c.size == 1:
                vec = np.full(n_out, float(c.reshape(-1)[0]))
            else:
                dims = list(c.shape)
                while len(dims) > spatial + 1 and dims[0] == 1:
                    dims.pop(0)
                if tuple(dims) != (n_out,) + (1,) * spatial:
                    continue  # not one value per output channel
                vec = c.reshape(-1).astype(np.float64)
            has_bias = len(conv.input) > 2 and conv.input[2]
            bias = g.const(conv.input[2]).astype(np.float64) if has_bias else np.zeros(n_out)
            if nxt.op_type == "Mul":
                weight = (weight.astype(np.float64) * vec.reshape(-1, *([1] * (weight.ndim - 1)))).astype(weight.dtype)
                bias = bias * vec
            else:
                bias = bias + vec
            w_name = conv.input[1]
            if nxt.op_type == "Mul":
                if len(g.consumers.get(w_name, [])) > 1 or w_name not in g.inits:
                    w_name = g.fresh(w_name + "_folded")
                g.set_init(w_name, weight)
            has_bias = len(conv.input) > 2 and conv.input[2]
            b_name = conv.input[2] if has_bias else ""
            if not b_name or len(g.consumers.get(b_name, [])) > 1 or b_name not in g.inits:
                b_name = g.fresh((conv.name or "conv").strip("/").replace("/", ".") + ".bias")
            g.set_init(b_name, bias.astype(np.float32))
            new_inputs = [conv.input[0], w_name, b_name]
            del conv.input[:]
            conv.input.extend(new_inputs)
            out = nxt.output[0]
            model.graph.node.remove(nxt)
            conv.output[0] = out
            folded += 1
            changed = True
            break
    _remove_unused(model)
    return folded


_SCALE_TRANSPARENT = ("Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten")


def fold_scalar_mul(model: onnx.ModelProto) -> int:
    """``MatMul(x, W) [+ b] -> Reshape/Transpose -> Mul(scalar)`` becomes ``MatMul(x, W*s) [+ b*s] -> ...``.

    The scaled-dot-product attention exports its 1/sqrt(d) as a ``Mul`` on q and on k after
    the head split; a scalar commutes with reshapes, so it folds into the projection weights.
    """
    folded = 0
    changed = True
    while changed:
        changed = False
        g = _Graph(model)
        for mul in model.graph.node:
            if mul.op_type != "Mul" or len(mul.input) != 2:
                continue
            consts = [g.const(i) for i in mul.input]
            if (consts[0] is None) == (consts[1] is None):
                continue
            k = 1 if consts[1] is not None else 0
            c = consts[k]
            if c.size != 1 or c.dtype.kind != "f":
                continue
            x = mul.input[1 - k]
            path, name = [], x
            while True:  # walk back to the weight-carrying op
                node = g.producer.get(name)
                if node is None or not g.single_use(name):
                    node = None
                    break
                path.append(node)
                if node.op_type in ("MatMul", "Gemm") and g.const(node.input[1]) is not None:
                    break
                if node.op_type in _SCALE_TRANSPARENT:
                    name = node.input[0]
                    continue
                if node.op_type == "Add" and len(node.input) == 2:
                    dynamic = [i for i in node.input if g.const(i) is None]
                    if len(dynamic) == 1:
                        name = dynamic[0]
                        continue
                node = None
                break
            if node is None:
                continue
            scale = float(c.reshape(-1)[0])
            for n in path:
                if n.op_type == "Add" or n is node:
                    if n.op_type == "Add":
                        idx = [i for i in (0, 1) if g.const(n.input[i]) is not None]
                    else:
                        idx = [i for i in (1, 2) if len(n.input) > i and n.input[i]]
                    for i in idx:
                        value = g.const(n.input[i])
                        new = g.fresh(n.input[i] + "_scaled")
                        g.set_init(new, (value.astype(np.float64) * scale).astype(value.dtype))
                        n.input[i] = new
            out = mul.output[0]
            for other in model.graph.node:
                for i, inp in enumerate(other.input):
                    if inp == out:
                        other.input[i] = x
            for o in model.graph.output:
                if o.name == out:  # keep the graph output's name: rename the producer's output instead
                    g.producer[x].output[list(g.producer[x].output).index(x)] = out
            model.graph.node.remove(mul)
            folded += 1
            changed = True
            break
    _remove_unused(model)
    return folded


_AFFINE_OPS = ("Mul", "Div", "Add", "Sub")


def fuse_affine_chains(model: onnx.ModelProto) -> int:
    """Merge runs of Mul/Div/Add/Sub by constants into ``x * a + b`` (one Mul, one Add).

    ``(s - mean) / std`` on the state and the un-normalization of the actions become one
    multiply-add each; ``((x / 255) - mean) / std`` on the NCHW image, a per-channel scale and
    shift, becomes one ``BatchNormalization``. Constants are combined in float64; the chain's
    output name is kept.
    """
    shapes = _value_shapes(model)
    fused = 0
    g = _Graph(model)

    def affine_step(node) -> tuple[str, np.ndarray, np.ndarray] | None:
        """(dynamic input, a, b) if node computes a*x+b with constants a, b."""
        if node.op_type not in _AFFINE_OPS or len(node.input) != 2:
            return None
        c0, c1 = g.const(node.input[0]), g.const(node.input[1])
        if (c0 is None) == (c1 is None):
            return None
        if c0 is not None and c0.dtype.kind != "f" or c1 is not None and c1.dtype.kind != "f":
            return None
        if node.op_type == "Mul":
            c = c1 if c1 is not None else c0
            return (node.input[0] if c1 is not None else node.input[1]), c.astype(np.float64), np.zeros(1)
        if node.op_type == "Add":
            c = c1 if c1 is not None else c0
            return (node.input[0] if c1 is not None else node.input[1]), np.ones(1), c.astype(np.float64)
        if node.op_type == "Div":
            if c1 is None:
                return None  # c / x is not affine
            return node.input[0], 1.0 / c1.astype(np.float64), np.zeros(1)
        if c1 is not None:  # Sub(x, c)
            return node.input[0], np.ones(1), -c1.astype(np.float64)
        return node.input[1], -np.ones(1), c0.astype(np.float64)  # Sub(c, x)

    for node in list(model.graph.node):
        if node not in model.graph.node:
            continue
        step = affine_step(node)
        if step is None:
            continue
        # only start at the head of a chain: the producer of the input is not itself a mergeable step
        prod = g.producer.get(step[0])
        if prod is not None and affine_step(prod) is not None and g.single_use(prod.output[0]):
            continue
        chain = [node]
        a, b = step[1], step[2]
        x = step[0]
        while g.single_use(chain[-1].output[0]):
            nxt = g.consumers[chain[-1].output[0]][0]
            nstep = affine_step(nxt)
            if nstep is None or nstep[0] != chain[-1].output[0]:
                break
            a, b = a * nstep[1], b * nstep[1] + nstep[2]
            chain.append(nxt)
        out = chain[-1].output[0]
        x_shape = shapes.get(x)
        if x_shape is None:
            continue
        try:
            if np.broadcast_shapes(x_shape, a.shape, b.shape) != tuple(x_shape):
                continue
        except ValueError:
            continue
        a, b = np.broadcast_arrays(a, b)
        dtype = np.float32
        need_mul = not np.all(a == 1.0)
        need_add = not np.all(b == 0.0)
        channels = x_shape[1] if len(x_shape) == 4 else 0
        a_vec, b_vec = _per_channel(_squeeze_const(a), channels), _per_channel(_squeeze_const(b), channels)
        use_bn = need_mul and need_add and a_vec is not None and b_vec is not None
        n_new = 1 if use_bn else int(need_mul) + int(need_add)
        if not use_bn and n_new >= len(chain) and len(chain) <= 2 and _is_canonical(chain, need_mul, need_add):
            continue
        a = _squeeze_const(a)
        b = _squeeze_const(b)
        new_nodes = []
        current = x
        base = chain[0].name or out
        if use_bn:
            # one BatchNormalization: a single fast pass in ONNX Runtime (NCHW or NHWC) and a native
            # layer for Hailo; mean 0 and var 1 - eps make sqrt(var + eps) exactly 1 in float32
            names = [g.fresh(base + suffix) for suffix in (".bn_scale", ".bn_bias", ".bn_mean", ".bn_var")]
            for name, value in zip(names, (a_vec, b_vec, np.zeros(channels), np.full(channels, 1 - _BN_EPS))):
                g.set_init(name, np.asarray(value, dtype))
            new_nodes.append(helper.make_node("BatchNormalization", [x, *names], [out], epsilon=_BN_EPS,
                                              name=g.fresh(base + "/BatchNormalization")))
            need_mul = need_add = False
        if need_mul:
            a_name = g.fresh(base + ".scale")
            g.set_init(a_name, a.astype(dtype))
            mul_out = out if not need_add else g.fresh(base + ".scaled")
            new_nodes.append(helper.make_node("Mul", [current, a_name], [mul_out], name=g.fresh(base + "/Mul")))
            current = mul_out
        if need_add:
            b_name = g.fresh(base + ".shift")
            g.set_init(b_name, b.astype(dtype))
            new_nodes.append(helper.make_node("Add", [current, b_name], [out], name=g.fresh(base + "/Add")))
        if not new_nodes:
            new_nodes.append(helper.make_node("Identity", [x], [out], name=g.fresh(base + "/Identity")))
        index = list(model.graph.node).index(chain[0])
        for n in chain:
            model.graph.node.remove(n)
        for offset, n in enumerate(new_nodes):
            model.graph.node.insert(index + offset, n)
        fused += 1
        g.refresh()
    _remove_unused(model)
    return fused


def remove_identities(model: onnx.ModelProto) -> int:
    """Bypass ``Identity`` nodes (kept only where they name a graph output)."""
    outputs = {o.name for o in model.graph.output}
    removed = 0
    for node in list(model.graph.node):
        if node.op_type != "Identity" or node.output[0] in outputs:
            continue
        src, dst = node.input[0], node.output[0]
        for other in model.graph.node:
            for i, name in enumerate(other.input):
                if name == dst:
                    other.input[i] = src
        model.graph.node.remove(node)
        removed += 1
    return removed


_BN_EPS = 1e-5


def _per_channel(c: np.ndarray, channels: int) -> np.ndarray | None:
    """c as one value per channel of an NCHW tensor (scalars repeat), or None if it varies otherwise."""
    if not channels:
        return None
    if c.size == 1:
        return np.full(channels, float(c.reshape(-1)[0]))
    dims = list(c.shape)
    while len(dims) > 3 and dims[0] == 1:
        dims.pop(0)
    if tuple(dims) != (channels, 1, 1):
        return None
    return c.reshape(-1).astype(np.float64)


def _is_canonical(chain, need_mul: bool, need_add: bool) -> bool:
    ops = [n.op_type for n in chain]
    return ops == (["Mul"] if need_mul else []) + (["Add"] if need_add else [])


def _squeeze_const(c: np.ndarray) -> np.ndarray:
    """Drop leading size-1 dims and collapse all-equal arrays to a scalar (broadcast is unchanged)."""
    if c.size and np.all(c == c.reshape(-1)[0]):
        return np.asarray(c.reshape(-1)[0])
    while c.ndim > 1 and c.shape[0] == 1:
        c = c[0]
    return c


def flatten_concats(model: onnx.ModelProto) -> int:
    """``Concat(Concat(a, b), c)`` on the same axis becomes ``Concat(a, b, c)``."""
    spliced = 0
    changed = True
    while changed:
        changed = False
        g = _Graph(model)
        for node in model.graph.node:
            if node.op_type != "Concat":
                continue
            axis = _attr(node, "axis")
            new_inputs, did = [], False
            for inp in node.input:
                prod = g.producer.get(inp)
                if prod is not None and prod.op_type == "Concat" and _attr(prod, "axis") == axis and g.single_use(inp):
                    new_inputs.extend(prod.input)
                    did = True
                else:
                    new_inputs.append(inp)
            if did:
                del node.input[:]
                node.input.extend(new_inputs)
                spliced += 1
                changed = True
                _remove_unused(model)
                break
    return spliced


def _attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _value_shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """Static shapes of every tensor (after ONNX shape inference); unknown dims leave a tensor out."""
    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    shapes = {}
    for vi in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        tt = vi.type.tensor_type
        if not tt.HasField("shape"):
            continue
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        if all(d is not None for d in dims):
            shapes[vi.name] = tuple(dims)
    for t in model.graph.initializer:
        shapes[t.name] = tuple(t.dims)
    return shapes


def clean_graph(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, int]]:
    """Run every pass; returns the cleaned model (shape-inferred) and what each pass did.

    The passes are all our own (no generic optimizer), so the graph is the same wherever it
    is exported.
    """
    stats: dict[str, int] = {}
    stats["constant_nodes_folded"] = 0
    for _ in range(8):  # shapes fold to constants, which lets more shapes and constants fold
        n = fold_shapes(model) + fold_constant_nodes(model)
        stats["constant_nodes_folded"] += n
        if not n:
            break
    stats["conv_affine_folded"] = fold_conv_affine(model)
    stats["scalar_muls_folded"] = fold_scalar_mul(model)
    stats["affine_chains_fused"] = fuse_affine_chains(model)
    stats["concats_spliced"] = flatten_concats(model)
    remove_identities(model)
    stats["constant_nodes_folded"] += fold_constant_nodes(model)
    _constants_to_initializers(model)
    _remove_unused(model)
    _name_nodes(model)
    del model.graph.value_info[:]
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    return model, stats


def _constants_to_initializers(model: onnx.ModelProto) -> None:
    g = _Graph(model)
    for node in list(model.graph.node):
        if node.op_type == "Constant":
            value = g.const(node.output[0])
            if value is None:
                continue
            model.graph.node.remove(node)
            g.set_init(node.output[0], value)


def _name_nodes(model: onnx.ModelProto) -> None:
    seen: set[str] = set()
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"/{node.op_type}_{i}" if not node.name else f"{node.name}_{i}"
        seen.add(node.name)


# --------------------------------------------------------------------------------------
# summary and checks
@dataclass
class GraphSummary:
    op_counts: dict[str, int]
    n_nodes: int
    n_params: int
    opset: int
    inputs: list[dict]
    outputs: list[dict]
    problems: list[str] = field(default_factory=list)

    def format(self) -> str:
        ops = ", ".join(f"{op} {n}" for op, n in sorted(self.op_counts.items(), key=lambda kv: (-kv[1], kv[0])))
        io = "; ".join(f"{t['name']} {t['dtype']}{list(t['shape'])}" for t in self.inputs)
        out = "; ".join(f"{t['name']} {t['dtype']}{list(t['shape'])}" for t in self.outputs)
        lines = [
            f"graph: {self.n_nodes} nodes, {self.n_params / 1e6:.2f} M parameters, opset {self.opset}",
            f"  inputs:  {io}",
            f"  outputs: {out}",
            f"  ops: {ops}",
        ]
        if self.problems:
            lines += [f"  problem: {p}" for p in self.problems]
        return "\n".join(lines)


_DTYPE_NAMES = {onnx.TensorProto.UINT8: "uint8", onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.INT8: "int8",
                onnx.TensorProto.INT64: "int64", onnx.TensorProto.FLOAT16: "float16"}


def _io(values) -> list[dict]:
    out = []
    for v in values:
        tt = v.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tt.shape.dim]
        out.append({"name": v.name, "dtype": _DTYPE_NAMES.get(tt.elem_type, str(tt.elem_type)), "shape": dims})
    return out


def summarize(model: onnx.ModelProto, check: bool = True) -> GraphSummary:
    counts = Counter(n.op_type for n in model.graph.node)
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    n_params = int(sum(np.prod(t.dims) for t in model.graph.initializer))
    summary = GraphSummary(dict(counts), len(model.graph.node), n_params, opset, _io(model.graph.input),
                           _io(model.graph.output))
    if check:
        summary.problems = check_graph(model)
    return summary


def check_graph(model: onnx.ModelProto, opset_range: tuple[int, int] = OPSET_RANGE) -> list[str]:
    """What keeps a graph from being static and NPU-friendly; empty when clean.

    Checks: opset in range, no dynamic-shape or control-flow ops, at most a handful of
    per-token slicing ops, one ``Concat`` at most per model input group (the token join),
    batch-1 static input and output shapes, and every intermediate shape known.
    """
    problems = []
    counts = Counter(n.op_type for n in model.graph.node)
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if not opset_range[0] <= opset <= opset_range[1]:
        problems.append(f"opset {opset} is outside {opset_range[0]}-{opset_range[1]}")
    dynamic = sorted(op for op in counts if op in DYNAMIC_SHAPE_OPS)
    if dynamic:
        problems.append("dynamic-shape or control-flow ops: " + ", ".join(f"{op} x{counts[op]}" for op in dynamic))
    per_token = sum(counts[op] for op in PER_TOKEN_OPS)
    if per_token > 4:
        problems.append(f"{per_token} Split/Squeeze/Gather/Slice ops: a per-token chain instead of one Concat")
    if counts.get("Concat", 0) > 1:
        problems.append(f"{counts['Concat']} Concat ops: the encoder tokens should be joined by one")
    foreign = sorted({n.domain for n in model.graph.node if n.domain not in ("", "ai.onnx")})
    if foreign:
        problems.append(f"ops from non-standard domains: {foreign}")
    for v in [*_io(model.graph.input), *_io(model.graph.output)]:
        if not v["shape"] or not all(isinstance(d, int) and d > 0 for d in v["shape"]):
            problems.append(f"{v['name']} has a dynamic shape {v['shape']}")
        elif v["shape"][0] != 1:
            problems.append(f"{v['name']} batch is {v['shape'][0]}, expected 1")
    known = set(_value_shapes(model))
    unknown = [o for n in model.graph.node for o in n.output if o and o not in known]
    if unknown:
        problems.append(f"{len(unknown)} tensors without a static shape, e.g. {unknown[:3]}")
    return problems
