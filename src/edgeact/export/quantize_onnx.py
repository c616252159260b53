"""Static int8 quantization of a bundle's ``model.onnx`` with ONNX Runtime -> ``model.int8.onnx``.

QDQ format, per-channel symmetric int8 weights, activations calibrated (MinMax by default) on
frames from episodes. The activation type follows the CPU that will run it:

- ``pi5`` (default; any ARM64 with the dot-product extension, e.g. the Pi 5's Cortex-A76):
  S8S8, signed activations and weights, which ONNX Runtime recommends on ARM;
- ``x86``: U8S8, unsigned activations, the fast path of ORT's x86 kernels (AVX2 / AVX-512
  VNNI ``vpdpbusd`` multiplies u8 by s8); S8S8 there takes a slower path.
- ``auto``: the machine running the command.

Sensitive layers can stay in float: by name (``keep_float``, exact names or glob patterns
such as ``*/decoder/*``) or found automatically (``auto_keep=K``): every Conv/MatMul/Gemm is
quantized alone, the action error that causes is measured, and the K worst stay float.

Always float: the input conversion and normalization (uint8 -> float, one BatchNormalization;
as int8 ops they cost ~15% of the run), the action head and the un-normalization after it
(quantizing the output would put the actions on a 256-step grid), ``LayerNormalization``
(ONNX Runtime has no int8 kernel for it), and by default each attention core -- scores
q @ k^T, ``Softmax``, weights @ V (8-bit softmax outputs round the small weights of a
250-token attention to zero; these products are ~1% of the FLOPs and no slower in float).
Everything else -- every Conv and every weight MatMul/Gemm -- is int8.
"""

from __future__ import annotations

import fnmatch
import inspect
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeact.bundle import ONNX_INT8_NAME, model_file, read_manifest, write_manifest
from edgeact.errors import ConfigError, QuantizeError
from edgeact.export.accuracy import ActionError, compare
from edgeact.export.calibration import Observations, observations_for

TARGETS = {
    "pi5": {"activation": "int8", "weight": "int8", "label": "S8S8",
            "why": "ARM64 with dot-product (Cortex-A76): ONNX Runtime recommends S8S8 QDQ"},
    "x86": {"activation": "uint8", "weight": "int8", "label": "U8S8",
            "why": "x86: U8S8 is the fast path of ONNX Runtime's AVX2/VNNI kernels"},
}
CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
QUANTIZED_OP_TYPES = ("Conv", "MatMul", "Gemm", "Add", "Mul", "Relu", "MaxPool", "Transpose", "Reshape", "Concat",
                      "Unsqueeze", "Squeeze", "Flatten", "Clip")
SENSITIVE_OP_TYPES = ("Conv", "MatMul", "Gemm")


def resolve_target(target: str) -> str:
    if target == "auto":
        machine = platform.machine().lower()
        return "pi5" if machine in ("aarch64", "arm64", "armv8l") else "x86"
    if target not in TARGETS:
        raise ConfigError(f"unknown target {target!r}: use pi5, x86 or auto")
    return target


@dataclass
class QuantizeResult:
    path: Path
    target: str
    label: str
    keep_float: list[str]
    sensitivity: list[tuple[str, float]]
    accuracy: ActionError
    calibration_frames: int
    calibration_source: str
    seconds: float
    entry: dict = field(repr=False, default_factory=dict)


class _Reader:
    """ONNX Runtime CalibrationDataReader over observations (re-iterable via rewind)."""

    def __init__(self, observations: Observations, input_names: list[str]) -> None:
        from edgeact.export.onnx_export import feeds

        self.items = [feeds(input_names, frames, state) for frames, state in observations]
        self.rewind()

    def get_next(self):
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._it = iter(self.items[start_index:end_index])


def _bundle_stats(bundle: Path) -> dict:
    try:
        from edgeact.checkpoint import read_processor_stats

        return read_processor_stats(bundle)
    except Exception:  # noqa: BLE001 - stats only steer the synthetic states; the manifest holds what matters
        return {}


def match_nodes(model, patterns: list[str]) -> list[str]:
    """Node names matching exact names or glob patterns; unknown patterns raise with suggestions."""
    import difflib

    names = [n.name for n in model.graph.node]
    chosen: list[str] = []
    for pattern in patterns:
        hits = [n for n in names if n == pattern or fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            close = difflib.get_close_matches(pattern, names, n=3, cutoff=0.4)
            hint = f"; did you mean {close}?" if close else f" (nodes look like {names[:2]})"
            raise QuantizeError(f"--keep-float {pattern!r} matches no node of model.onnx{hint}")
        chosen += [h for h in hits if h not in chosen]
    return chosen


def input_preprocessing_nodes(model) -> list[str]:
    """Nodes between the graph inputs and the first Conv/MatMul/Gemm (uint8 -> float, normalization),
    plus the state's own projection layer.

    They stay float: on a full-resolution frame ``QLinearMul``/``QLinearAdd`` cost ~15% of the
    int8 run time, the float ops ~1%, and the first conv quantizes the result anyway. The
    state projection (state_dim -> dim_model) is tiny and was the most sensitive layer.
    """
    inits = {t.name for t in model.graph.initializer}
    ready = {i.name for i in model.graph.input}
    small = set()  # the state: a handful of values on different scales, badly served by one int8 scale
    for value in model.graph.input:
        dims = [d.dim_value for d in value.type.tensor_type.shape.dim]
        if dims and all(d > 0 for d in dims) and int(np.prod(dims)) <= 64:
            small.add(value.name)
    chosen = []
    for node in model.graph.node:  # topological order
        dynamic = [i for i in node.input if i and i not in inits]
        if not dynamic or not all(i in ready for i in dynamic):
            continue
        if node.op_type in SENSITIVE_OP_TYPES:
            if all(i in small for i in dynamic):  # the state projection: float, and stop there
                chosen.append(node.name)
            continue
        chosen.append(node.name)
        ready.update(node.output)
        if all(i in small for i in dynamic):
            small.update(node.output)
    return chosen


def output_head_nodes(model) -> list[str]:
    """The last layer (action head) and the un-normalization after it.

    Kept float: quantizing the output would put the actions themselves on a 256-step grid
    (~0.4% of the action range per step); the head is a few thousand multiply-adds.
    """
    producers = {o: n for n in model.graph.node for o in n.output}
    chosen, stack, seen = [], [o.name for o in model.graph.output], set()
    while stack:
        node = producers.get(stack.pop())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        chosen.append(node.name)
        if node.op_type in SENSITIVE_OP_TYPES:
            continue  # stop at the head's own MatMul/Gemm
        stack.extend(i for i in node.input if i in producers)
    return chosen


def attention_softmax_nodes(model) -> list[str]:
    """The attention core of each layer: the scores MatMul (q @ k^T), Softmax, weights @ V.

    Kept float: 8-bit softmax outputs (steps of 1/255) round the small weights of a
    ~250-token attention to zero; these activation x activation products are ~1% of the
    FLOPs, and in float they skip a requantization, so the model is no slower (slightly faster).
    """
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    producers = {o: n for n in model.graph.node for o in n.output}
    chosen = []
    for node in model.graph.node:
        if node.op_type == "Softmax":
            chosen.append(node.name)
            chosen += [c.name for c in consumers.get(node.output[0], []) if c.op_type == "MatMul"]
            scores = producers.get(node.input[0])
            if scores is not None and scores.op_type == "MatMul":
                chosen.append(scores.name)
    return chosen


def _quantize(src: Path, dst: Path, reader, target: str, method: str, cache: Path | None,
              nodes_to_quantize=None, nodes_to_exclude=None) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    kinds = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}
    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    kwargs = {}
    if cache is not None and "calibration_cache_path" in inspect.signature(quantize_static).parameters:
        kwargs["calibration_cache_path"] = str(cache)
        if cache.is_file():
            reader = None
    if reader is not None and hasattr(reader, "rewind"):
        reader.rewind()
    extra: dict[str, Any] = {"ActivationSymmetric": False, "WeightSymmetric": True}
    if reader is not None and len(reader) > 8:
        # collect in strides: every intermediate tensor of every frame is held until a stride ends
        extra["CalibStridedMinMax"] = max(d for d in range(1, 9) if len(reader) % d == 0)
    if method == "percentile":
        extra["CalibPercentile"] = 99.999
    quantize_static(
        str(src), str(dst), reader,
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=list(QUANTIZED_OP_TYPES),
        per_channel=True,
        reduce_range=False,
        activation_type=kinds[TARGETS[target]["activation"]],
        weight_type=kinds[TARGETS[target]["weight"]],
        nodes_to_quantize=nodes_to_quantize,
        nodes_to_exclude=nodes_to_exclude,
        calibrate_method=methods[method],
        extra_options=extra,
        **kwargs,
    )


def quantize_bundle(
    bundle: str | Path,
    calib: str | Path | None = None,
    *,
    frames: int = 64,
    heldout: int = 32,
    target: str = "pi5",
    keep_float: list[str] | tuple[str, ...] = (),
    auto_keep: int = 0,
    method: str = "minmax",
    sensitivity_frames: int = 8,
    auto_keep_among: list[str] | tuple[str, ...] = (),
    float_softmax: bool = True,
    log: Callable[[str], None] = print,
) -> QuantizeResult:
    """Quantize ``bundle/model.onnx`` to ``bundle/model.int8.onnx`` and record it in the manifest.

    ``calib``: an episodes directory (calibration and held-out frames are disjoint); None uses
    synthetic frames (fine for benchmarking speed, not for judging accuracy).
    ``auto_keep_among``: node names or glob patterns that limit the sensitivity search
    (default: every Conv/MatMul/Gemm; one quantize-and-run per candidate).
    ``float_softmax``: keep each attention core (q @ k^T, softmax, weights @ V) in float.
    """
    import logging

    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))  # ORT's quantizer warns through the root logger
    try:
        return _quantize_bundle(bundle, calib, frames, heldout, target, keep_float, auto_keep, method,
                                sensitivity_frames, auto_keep_among, float_softmax, log)
    finally:
        root.setLevel(level)


def _quantize_bundle(bundle, calib, frames, heldout, target, keep_float, auto_keep, method, sensitivity_frames,
                     auto_keep_among, float_softmax, log) -> QuantizeResult:
    import onnx
    import onnxruntime as ort

    from edgeact.bundle import spec_from_manifest
    from edgeact.cpu import session_options
    from edgeact.export.onnx_export import feeds

    start = time.perf_counter()
    bundle = Path(bundle)
    target = resolve_target(target)
    if method not in CALIBRATION_METHODS:
        raise ConfigError(f"unknown calibration method {method!r}: use one of {CALIBRATION_METHODS}")
    if frames < 1:
        raise ConfigError(f"--frames must be >= 1, got {frames}")
    manifest = read_manifest(bundle)
    src = model_file(bundle, manifest, "onnx")
    spec = spec_from_manifest(manifest)
    fp32 = onnx.load(str(src), load_external_data=False)
    kept = match_nodes(fp32, list(keep_float))
    fixed_float = input_preprocessing_nodes(fp32) + output_head_nodes(fp32)
    fixed_float += attention_softmax_nodes(fp32) if float_softmax else []
    input_names = [i["name"] for i in manifest["inputs"]]

    calib_obs, held_obs = observations_for(spec, calib, frames, heldout, _bundle_stats(bundle).get("observation.state"))
    if len(calib_obs) == 0 or len(held_obs) == 0:
        raise QuantizeError(f"not enough frames in {calib}: {len(calib_obs)} for calibration, {len(held_obs)} held out")
    log(f"quantizing {src} for {target} ({TARGETS[target]['label']}: {TARGETS[target]['why']})")
    log(f"calibrating ({method}) on {len(calib_obs)} {calib_obs.source}; accuracy on {len(held_obs)} held-out")
    if calib is None:
        log("  note: no --calib episodes, so synthetic frames: fine for timing, not for a policy that will drive")
    reader = _Reader(calib_obs, input_names)
    ref_session = ort.InferenceSession(str(src), session_options(), providers=["CPUExecutionProvider"])

    def run_fp32(frames_, state_):
        return ref_session.run(None, feeds(input_names, frames_, state_))[0][0]

    sensitivity: list[tuple[str, float]] = []
    if auto_keep < 0:
        raise ConfigError(f"--auto-keep must be >= 0, got {auto_keep}")
    with tempfile.TemporaryDirectory(prefix="edgeact-quant-") as tmp:
        tmp_dir = Path(tmp)
        cache = tmp_dir / "calibration.json"
        t0 = time.perf_counter()
        full = tmp_dir / "full.int8.onnx"
        _quantize(src, full, reader, target, method, cache, nodes_to_exclude=kept + fixed_float)
        log(f"  calibrated and quantized in {time.perf_counter() - t0:.1f} s")
        if auto_keep > 0:
            among = set(match_nodes(fp32, list(auto_keep_among))) if auto_keep_among else {
                n.name for n in fp32.graph.node}
            among -= set(kept) | set(fixed_float)  # already float
            sensitivity = _sensitivity(src, fp32, reader, target, method, cache, calib_obs, sensitivity_frames,
                                       input_names, manifest["policy"], run_fp32, tmp_dir, log, among)
            auto = [name for name, _ in sensitivity if name not in kept][:auto_keep]
            log(f"  keeping in float (most sensitive): {', '.join(auto)}")
            kept += auto
            _quantize(src, full, reader, target, method, cache, nodes_to_exclude=kept + fixed_float)
        session = ort.InferenceSession(str(full), session_options(), providers=["CPUExecutionProvider"])

        def run_int8(frames_, state_):
            return session.run(None, feeds(input_names, frames_, state_))[0][0]

        accuracy = compare(run_fp32, run_int8, held_obs, manifest["policy"])
        log("  " + accuracy.format())
        data = full.read_bytes()

    from edgeact.fileio import atomic_write_bytes

    out = bundle / ONNX_INT8_NAME
    atomic_write_bytes(out, data)
    out.chmod(0o644)
    entry = {
        "file": ONNX_INT8_NAME,
        "precision": "int8",
        "format": "QDQ",
        "target": target,
        "scheme": TARGETS[target]["label"],
        "activation_type": TARGETS[target]["activation"],
        "weight_type": TARGETS[target]["weight"],
        "per_channel": True,
        "reduce_range": False,
        "op_types_quantized": list(QUANTIZED_OP_TYPES),
        "calibration": {"method": method, "frames": len(calib_obs), "source": calib_obs.source},
        "keep_float": kept,
        "float_fixed": fixed_float,
        "float_softmax": float_softmax,
        "auto_keep": auto_keep,
        "sensitivity": [{"node": n, "error_pct": e} for n, e in sensitivity[:20]],
        "accuracy": accuracy.to_json(),
        "onnxruntime_version": ort.__version__,
    }
    manifest["models"]["onnx-int8"] = entry
    write_manifest(bundle, manifest)
    seconds = time.perf_counter() - start
    log(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) in {seconds:.0f} s")
    return QuantizeResult(out, target, TARGETS[target]["label"], kept, sensitivity, accuracy, len(calib_obs),
                          calib_obs.source, seconds, entry)


def _runner(session, input_names: list[str]) -> Callable[[list[np.ndarray], np.ndarray], np.ndarray]:
    """(frames, state) -> the session's action chunk."""
    from edgeact.export.onnx_export import feeds

    return lambda frames, state: session.run(None, feeds(input_names, frames, state))[0][0]


def _sensitivity(src, fp32, reader, target, method, cache, calib_obs, n_frames, input_names, policy, run_fp32,
                 tmp_dir: Path, log, among: set[str] | None = None) -> list[tuple[str, float]]:
    """Per-layer error: quantize one Conv/MatMul/Gemm at a time; worst mean action error first."""
    import onnxruntime as ort

    from edgeact.cpu import session_options

    candidates = [n.name for n in fp32.graph.node
                  if n.op_type in SENSITIVE_OP_TYPES and (among is None or n.name in among)]
    if not candidates:
        raise QuantizeError("no Conv/MatMul/Gemm layer to search for --auto-keep")
    probe = calib_obs.subset(np.linspace(0, len(calib_obs) - 1, min(n_frames, len(calib_obs))).round().astype(int))
    probe.source = "calibration frames"
    log(f"  per-layer sensitivity: {len(candidates)} layers x {len(probe)} frames")
    scores = []
    t0 = time.perf_counter()
    one = tmp_dir / "one.int8.onnx"
    for k, name in enumerate(candidates):
        _quantize(src, one, reader, target, method, cache, nodes_to_quantize=[name])
        session = ort.InferenceSession(str(one), session_options(), providers=["CPUExecutionProvider"])
        err = compare(run_fp32, _runner(session, input_names), probe, policy)
        scores.append((name, float(np.mean(err.mean_pct))))
        if (k + 1) % 10 == 0 or k + 1 == len(candidates):
            log(f"    {k + 1}/{len(candidates)} layers ({time.perf_counter() - t0:.0f} s)")
    scores.sort(key=lambda item: -item[1])
    for name, e in scores[:5]:
        log(f"    {e:.3f}%  {name}")
    return scores
