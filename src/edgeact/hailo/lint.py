"""`edgeact hailo lint MODEL.onnx`: our own check of a graph against what the Hailo Dataflow
Compiler's ONNX parser (DFC 3.x) is known to reject, before anyone spends time on the DFC.

Hailo's full operator list sits in the login-gated DFC user guide, so every rule below says
where it comes from; the op list is our assumption, drawn from the public sources named in
:data:`SUPPORTED_OPS_SOURCE`. A rule that fails names each node and, where cutting the graph
helps, the parser start/end nodes that would leave the failing nodes on the host.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeact.errors import InputError

# --------------------------------------------------------------------------------------
# the rules' knowledge, each with its source
SUPPORTED_OPS = frozenset(
    {
        "Conv",
        "ConvTranspose",
        "Gemm",
        "MatMul",
        "Relu",
        "LeakyRelu",
        "PRelu",
        "Sigmoid",
        "Tanh",
        "Clip",
        "HardSigmoid",
        "HardSwish",
        "Elu",
        "Softmax",
        "Add",
        "Sub",
        "Mul",
        "Div",
        "MaxPool",
        "AveragePool",
        "GlobalAveragePool",
        "GlobalMaxPool",
        "Concat",
        "Split",
        "Slice",
        "Reshape",
        "Transpose",
        "Flatten",
        "Squeeze",
        "Unsqueeze",
        "Resize",
        "Pad",
        "BatchNormalization",
        "InstanceNormalization",
        "ReduceMean",
        "ReduceMax",
        "ReduceSum",
        "ReduceL2",
        "Sqrt",
        "Pow",
        "Exp",
        "Abs",
        "Neg",
        "DepthToSpace",
        "SpaceToDepth",
        "Identity",
        "Dropout",
    }
)
SUPPORTED_OPS_SOURCE = (
    "assumed: the layer families in the DFC 3.30 user guide's public table of contents (convolution, "
    "dense, pooling, concat, deconvolution, depthwise, elementwise, normalization, activations, softmax, "
    "resize, shuffle), what a transformer the model zoo v2.18 compiles for hailo8l needs (DETR-ResNet18: "
    "convolutions, MatMul attention, softmax, layer normalization), and the ops public parser failures name; "
    "not Hailo's own list (login-gated), so a pass here is necessary, not sufficient"
)
KNOWN_FAILURES = {
    "Erf": "GELU exported as Erf fails to parse (github.com/ankandrew/fast-plate-ocr/issues/44); export GELU "
    "with approximate='tanh' or use ReLU",
    "Gather": "Gather (embedding lookups, indexing) is not an NPU layer; fold it into a constant or cut it off",
}
KNOWN_FAILURES_SOURCE = "public GitHub issues (fast-plate-ocr#44; HAILO-FACTS 'Parser failures seen in public issues')"
DYNAMIC_OPS = frozenset({"Shape", "Size", "NonZero", "ConstantOfShape", "Range", "Loop", "If", "Scan", "TopK"})
MAX_RANK = 4
RANK_SOURCE = (
    "HailoRT's data layout is NHWC (a rank-3 [B,S,C] tensor travels as [B,1,S,C]); 5-D "
    "attention reshapes fail with UnsupportedShuffleLayerError "
    "(github.com/hailo-ai/Hailo-Application-Code-Examples/issues/364, fast-plate-ocr#44)"
)
OPSET_ACCEPTED = (11, 17)
OPSET_RECOMMENDED = 13
OPSET_SOURCE = "Hailo staff suggest opset 13 for the DFC 3.x parser in public issue threads; 11-17 assumed to read"


@dataclass(frozen=True)
class Rule:
    code: str
    what: str
    source: str


RULES = (
    Rule(
        "H001", f"opset within {OPSET_ACCEPTED[0]}-{OPSET_ACCEPTED[1]} (recommended {OPSET_RECOMMENDED})", OPSET_SOURCE
    ),
    Rule("H002", "every op is one the parser reads", SUPPORTED_OPS_SOURCE),
    Rule("H003", "no op known to fail (Erf, Gather)", KNOWN_FAILURES_SOURCE),
    Rule(
        "H004",
        "no dynamic-shape or control-flow ops",
        "the parser needs static shapes (HAILO-FACTS; public issues on "
        "dynamic axes); the guide's dynamic_axes export fails here",
    ),
    Rule(
        "H005",
        "static shapes, batch 1 on every graph input and output",
        "ClientRunner.translate_onnx_model takes net_input_shapes [1, C, H, W]; HEFs are batch-agnostic per frame",
    ),
    Rule("H006", f"every tensor of rank <= {MAX_RANK}", RANK_SOURCE),
    Rule(
        "H007",
        "float32 inputs, outputs and activations (quantization is the optimizer's job)",
        "HAILO-FACTS: graph inputs are float32 in ONNX's NCHW convention; the optimizer quantizes",
    ),
    Rule(
        "H008",
        "image inputs in NCHW with 1 or 3 channels",
        "translate_onnx_model net_input_shapes are [1, C, H, W] (Hailo model zoo parse_utils / HAILO-FACTS)",
    ),
)


@dataclass
class Finding:
    rule: str
    message: str
    nodes: list[str] = field(default_factory=list)
    severity: str = "error"  # "error" fails the lint, "warning" does not


@dataclass
class LintReport:
    path: str
    n_nodes: int
    opset: int
    findings: list[Finding]
    cut: dict[str, list[str]] | None = None  # suggested start/end node names when some nodes fail

    @property
    def passed(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "nodes": self.n_nodes,
            "opset": self.opset,
            "findings": [vars(f) for f in self.findings],
            "cut": self.cut,
            "rules": [r.code for r in RULES],
        }

    def format(self, title: str = "hailo lint") -> str:
        lines = [
            f"{title}: {self.path}: {self.n_nodes} nodes, opset {self.opset}: "
            f"{'PASS' if self.passed else 'FAIL'} ({len(RULES)} rules)"
        ]
        for f in self.findings:
            nodes = f" [{', '.join(f.nodes[:8])}{', ...' if len(f.nodes) > 8 else ''}]" if f.nodes else ""
            lines.append(f"  {f.severity} {f.rule}: {f.message}{nodes}")
        if self.cut:
            lines.append(
                f"  to leave the failing nodes on the host, parse with start_node_names={self.cut['start']} "
                f"end_node_names={self.cut['end']} ({self.cut['kept']} of {self.n_nodes} nodes on the NPU)"
            )
        return "\n".join(lines)


def rules_table() -> str:
    return "\n".join(f"{r.code}  {r.what}\n       source: {r.source}" for r in RULES)


# --------------------------------------------------------------------------------------
def lint_model(model: Any, path: str = "<in memory>") -> LintReport:
    """Lint an onnx.ModelProto (or a path to one)."""
    import onnx

    if isinstance(model, (str, Path)):
        path = str(model)
        if not Path(path).is_file():
            raise InputError(f"no ONNX file at {path}; give a graph such as BUNDLE/hailo/split/edgeact_act.onnx")
        try:
            model = onnx.load(path)
        except Exception as err:  # onnx raises several kinds for a file that is not a model
            raise InputError(f"{path} is not an ONNX model ({err}); "
                             "give the .onnx file `edgeact hailo export` wrote") from err
    graph = model.graph
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    shapes, dtypes = _tensor_info(model)
    findings: list[Finding] = []
    if not OPSET_ACCEPTED[0] <= opset <= OPSET_ACCEPTED[1]:
        findings.append(Finding("H001", f"opset {opset}; export with opset {OPSET_RECOMMENDED}"))
    elif opset != OPSET_RECOMMENDED:
        findings.append(
            Finding("H001", f"opset {opset}; {OPSET_RECOMMENDED} is what Hailo suggests", severity="warning")
        )
    failing: set[str] = set()
    for rule, test, why in (
        ("H003", lambda n: n.op_type in KNOWN_FAILURES, lambda op: KNOWN_FAILURES[op]),
        ("H004", lambda n: n.op_type in DYNAMIC_OPS, lambda op: "computes shapes or branches at run time"),
        (
            "H002",
            lambda n: (
                n.op_type not in SUPPORTED_OPS | set(KNOWN_FAILURES) | DYNAMIC_OPS or n.domain not in ("", "ai.onnx")
            ),
            lambda op: "not in the op list we assume the parser reads",
        ),
    ):
        by_op: dict[str, list[str]] = {}
        for node in graph.node:
            if test(node):
                by_op.setdefault(node.op_type, []).append(node.name)
        for op, names in sorted(by_op.items()):
            findings.append(Finding(rule, f"{op} x{len(names)}: {why(op)}", names))
            failing.update(names)
    findings += _io_findings(graph, shapes)
    high_rank = [n.name for n in graph.node if any(len(shapes.get(o, ())) > MAX_RANK for o in n.output)]
    if high_rank:
        findings.append(Finding("H006", f"{len(high_rank)} nodes make tensors of rank > {MAX_RANK}", high_rank))
        failing.update(high_rank)
    unknown = [n.name for n in graph.node if any(o and o not in shapes for o in n.output)]
    if unknown:
        findings.append(Finding("H005", f"{len(unknown)} nodes without a static output shape", unknown))
        failing.update(unknown)
    not_float = [n.name for n in graph.node if any(dtypes.get(o, 1) != 1 for o in n.output if o)]
    if not_float:
        findings.append(Finding("H007", f"{len(not_float)} nodes make non-float32 tensors", not_float))
        failing.update(not_float)
    cut = suggest_cut(model, failing) if failing else None
    return LintReport(path, len(graph.node), opset, findings, cut)


def _tensor_info(model) -> tuple[dict[str, tuple[int, ...]], dict[str, int]]:
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # noqa: BLE001 - an invalid graph: report the shapes the original declares
        inferred = model
    shapes: dict[str, tuple[int, ...]] = {}
    dtypes: dict[str, int] = {}
    for vi in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        tt = vi.type.tensor_type
        dtypes[vi.name] = tt.elem_type
        if tt.HasField("shape"):
            dims = [d.dim_value if d.HasField("dim_value") else 0 for d in tt.shape.dim]
            if all(d > 0 for d in dims):
                shapes[vi.name] = tuple(dims)
    for t in model.graph.initializer:
        shapes[t.name] = tuple(t.dims)
    return shapes, dtypes


def _io_findings(graph, shapes) -> list[Finding]:
    inits = {t.name for t in graph.initializer}
    findings = []
    for v in [*graph.input, *graph.output]:
        if v.name in inits:
            continue
        shape = shapes.get(v.name)
        tt = v.type.tensor_type
        if shape is None:
            findings.append(Finding("H005", f"{v.name} has a dynamic shape; export with static shapes, batch 1"))
        elif shape[0] != 1:
            findings.append(Finding("H005", f"{v.name} has batch {shape[0]}; export with batch 1"))
        if tt.elem_type != 1:
            findings.append(
                Finding(
                    "H007",
                    f"{v.name} is not float32 (ONNX type {tt.elem_type}); the parser takes "
                    "float inputs and the optimizer quantizes",
                )
            )
    for v in graph.input:
        shape = shapes.get(v.name)
        if v.name not in inits and shape and len(shape) == 4 and shape[1] not in (1, 3) and shape[3] in (1, 3):
            findings.append(
                Finding(
                    "H008",
                    f"{v.name} {list(shape)} looks NHWC; the parser's convention is NCHW "
                    "(the device stream is NHWC anyway)",
                )
            )
    return findings


def suggest_cut(model, failing: set[str]) -> dict[str, Any] | None:
    """Start/end node names that keep the largest failure-free part of the graph on the NPU:
    either everything before the first failing node (end nodes) or after the last (start nodes)."""
    graph = model.graph
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    failing_nodes = [n for n in graph.node if n.name in failing]
    downstream = _closure(failing_nodes, lambda n: [c for o in n.output for c in consumers.get(o, [])])
    upstream = _closure(failing_nodes, lambda n: [producer[i] for i in n.input if i in producer])
    head = [n for n in graph.node if n.name not in downstream]  # cut after: keep what feeds no failing node
    tail = [n for n in graph.node if n.name not in upstream]  # cut before: keep what no failing node feeds
    options: list[dict[str, Any]] = []
    if head:
        head_names = {n.name for n in head}
        ends = [
            n.name
            for n in head
            if any(c.name not in head_names for o in n.output for c in consumers.get(o, []))
            or any(o in {v.name for v in graph.output} for o in n.output)
        ]
        starts = [n.name for n in head if not any(i in producer for i in n.input)]
        options.append({"start": starts, "end": ends, "kept": len(head)})
    if tail:
        tail_names = {n.name for n in tail}
        starts = [
            n.name
            for n in tail
            if any(i in producer and producer[i].name not in tail_names for i in n.input)
            or not any(i in producer for i in n.input)
        ]
        ends = [n.name for n in tail if any(o in {v.name for v in graph.output} for o in n.output)]
        if ends:
            options.append({"start": starts, "end": ends, "kept": len(tail)})
    if not options:
        return None
    return max(options, key=lambda o: o["kept"])


def _closure(start: list, step) -> set[str]:
    seen: set[str] = set()
    stack = list(start)
    while stack:
        node = stack.pop()
        if node.name in seen:
            continue
        seen.add(node.name)
        stack.extend(step(node))
    return seen
