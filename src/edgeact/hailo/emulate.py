"""`edgeact hailo emulate`: which precision drives, found before compiling and without a HAT.

The NPU graph is fake-quantized the way Hailo's optimizer quantizes, and run in ONNX Runtime;
the host graph stays float. What we emulate, and where it comes from:

- **Activations**: unsigned integers with a zero point, one (scale, zero point) per tensor,
  8 or 16 bits (Hailo's quantization-scheme lesson: "8/16bit uint for the activations";
  HailoRT's ``quant_infos`` carry ``qp_scale``/``qp_zp`` per stream; Hailo staff on
  community.hailo.ai: "Hailo uses unsigned integers for all quantized values", 16-bit values
  span 0..65535). Ranges are the calibration set's min/max (the optimizer's basic
  calibration); a layer's output is quantized after its fused activation (conv + ReLU is one
  Hailo layer). The normalization layer's output (the image after ``normalization``) is
  quantized like any other layer.
- **Weights**: signed, symmetric, 8 or 16 bits ("4/8/16bit int representation for the
  weights"), **one scale per layer (per tensor)**. Hailo's public material never mentions
  per-channel weight scales, and its model scripts turn on ``equalization``, the cross-layer
  channel balancing that exists to make per-tensor weight scales work; we take per-tensor as
  the default and offer ``weights="per-channel"`` to bound the other case. Equalization
  itself is not emulated, so a8_w8 here is a pessimistic estimate; biases stay float (Hailo
  keeps them at higher precision).
- **Outputs**: 16-bit except in a8_w8 (our model script sets ``{output_layer*}`` to a16_w16).

``mixed`` comes from a per-layer sensitivity search: each layer alone in 8-bit (the rest
16-bit) is scored by the action error it causes; the most sensitive go to 16-bit until the
error is within the bound.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeact.backends.hailo_part import HailoPart, verified_file
from edgeact.errors import ConfigError
from edgeact.hailo.graphs import normalize_pixels
from edgeact.policy import Frames, PolicySpec

WEIGHTED_OPS = ("Conv", "Gemm", "MatMul")
LAYOUT_OPS = frozenset({"Reshape", "Transpose", "Flatten", "MaxPool", "Squeeze", "Unsqueeze", "Identity"})
# inner ops of a decomposed layer norm: the DFC maps the pattern to one layer, quantized at its output
INNER_OPS = frozenset({"ReduceMean", "Sub", "Pow", "Sqrt"})
WEIGHT_MODES = ("per-tensor", "per-channel")
REEXPORT = "re-run `edgeact hailo export`"


@dataclass(frozen=True)
class Precision:
    """Bits per quantization point: ``default`` for every layer, ``sixteen`` the layers at 16 bits."""

    name: str
    default_bits: int
    sixteen: frozenset[str] = frozenset()
    outputs_16: bool = True  # the model script's {output_layer*} a16_w16 (all but a8_w8)

    def bits(self, layer: str) -> int:
        return 16 if layer in self.sixteen else self.default_bits


A8_W8 = Precision("a8_w8", 8, outputs_16=False)
A16_W16 = Precision("a16_w16", 16)


# --------------------------------------------------------------------------------------
# the fake-quantized graph
@dataclass
class QuantPoint:
    tensor: str  # the tensor quantized (a layer's output, after a fused ReLU)
    layer: str  # the node that owns it (Conv/Add/... name), its precision key
    is_output: bool = False


def quant_points(model) -> list[QuantPoint]:
    """Where the chip holds a quantized tensor: graph inputs, and each layer's output."""
    graph = model.graph
    consumers: dict[str, list] = {}
    for node in graph.node:
        for i in node.input:
            consumers.setdefault(i, []).append(node)
    outputs = {o.name for o in graph.output}
    inits = {t.name for t in graph.initializer}
    points = [QuantPoint(v.name, v.name) for v in graph.input if v.name not in inits]
    for node in graph.node:
        if node.op_type in LAYOUT_OPS or node.op_type in INNER_OPS or node.op_type == "Relu":
            continue
        tensor = node.output[0]
        users = consumers.get(tensor, [])
        if len(users) == 1 and users[0].op_type == "Relu" and tensor not in outputs:
            tensor = users[0].output[0]  # activation fused into the layer
        points.append(QuantPoint(tensor, node.name, tensor in outputs))
    return points


def activation_ranges(
    model, points: list[QuantPoint], feeds: list[dict[str, np.ndarray]]
) -> dict[str, tuple[float, float]]:
    """min/max of every quantization point over the calibration feeds (float graph)."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    known = {o.name for o in probe.graph.output}
    names = [p.tensor for p in points]
    for name in names:
        if name not in known:
            probe.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    session = ort.InferenceSession(probe.SerializeToString(), _options(), providers=["CPUExecutionProvider"])
    lo = dict.fromkeys(names, np.inf)
    hi = dict.fromkeys(names, -np.inf)
    for feed in feeds:
        for name, value in zip(names, session.run(names, feed)):
            lo[name] = min(lo[name], float(value.min()))
            hi[name] = max(hi[name], float(value.max()))
    return {n: (lo[n], hi[n]) for n in names}


def fake_quantize(model, points: list[QuantPoint], ranges, precision: Precision, weights: str = "per-tensor"):
    """A copy of ``model`` with weights and activations rounded as the chip would hold them."""
    import onnx
    from onnx import numpy_helper

    if weights not in WEIGHT_MODES:
        raise ConfigError(f"unknown weight quantization {weights!r}; use one of {', '.join(WEIGHT_MODES)}")
    q = onnx.ModelProto()
    q.CopyFrom(model)
    inits = {t.name: t for t in q.graph.initializer}
    for node in q.graph.node:
        if node.op_type in WEIGHTED_OPS and len(node.input) > 1 and node.input[1] in inits:
            tensor = inits[node.input[1]]
            w = numpy_helper.to_array(tensor)
            axis = 0 if node.op_type in ("Conv", "Gemm") else w.ndim - 1  # output channels
            tensor.CopyFrom(
                numpy_helper.from_array(_quantize_weight(w, precision.bits(node.name), weights, axis), tensor.name)
            )
    by_tensor = {p.tensor: p for p in points}
    new_nodes = []
    renames: dict[str, str] = {}
    for v in q.graph.input:  # graph inputs: quantize right after entry
        if v.name in by_tensor:
            renames[v.name] = f"{v.name}__fq"
            new_nodes += _fq_nodes(
                v.name, renames[v.name], ranges[v.name], _point_bits(by_tensor[v.name], precision), q
            )
    for node in q.graph.node:
        for i, name in enumerate(node.input):
            if name in renames:
                node.input[i] = renames[name]
        new_nodes.append(node)
        for out in node.output:
            point = by_tensor.get(out)
            if point is None or out in renames:
                continue
            raw = f"{out}__float"
            node.output[list(node.output).index(out)] = raw
            new_nodes += _fq_nodes(raw, out, ranges[out], _point_bits(point, precision), q)
    del q.graph.node[:]
    q.graph.node.extend(new_nodes)
    del q.graph.value_info[:]
    return q


def _point_bits(point: QuantPoint, precision: Precision) -> int:
    return 16 if point.is_output and precision.outputs_16 else precision.bits(point.layer)


def _quantize_weight(w: np.ndarray, bits: int, mode: str, axis: int) -> np.ndarray:
    qmax = 2 ** (bits - 1) - 1
    if mode == "per-channel":
        reduce = tuple(i for i in range(w.ndim) if i != axis)
        peak = np.max(np.abs(w), axis=reduce, keepdims=True)
    else:
        peak = np.max(np.abs(w))
    scale = np.where(peak > 0, peak / qmax, 1.0)
    return (np.clip(np.round(w / scale), -qmax, qmax) * scale).astype(np.float32)


def quant_params(lo: float, hi: float, bits: int) -> tuple[float, float]:
    """(scale, zero point) of an unsigned ``bits`` grid covering [lo, hi] and 0."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    qmax = 2**bits - 1
    scale = (hi - lo) / qmax if hi > lo else 1.0
    return float(scale), float(np.clip(np.round(-lo / scale), 0, qmax))


def _fq_nodes(src: str, dst: str, rng: tuple[float, float], bits: int, model) -> list:
    """dst = (clip(round(src / s) + zp, 0, qmax) - zp) * s, in float ops every runtime has."""
    from onnx import helper, numpy_helper

    scale, zp = quant_params(*rng, bits)
    base = dst.replace("/", "_")
    consts = {"s": scale, "zp": zp, "lo": 0.0, "hi": float(2**bits - 1)}
    names = {}
    for key, value in consts.items():
        names[key] = f"{base}__fq_{key}"
        model.graph.initializer.append(numpy_helper.from_array(np.asarray(value, np.float32), names[key]))
    t = [f"{base}__fq_t{i}" for i in range(4)]
    return [
        helper.make_node("Div", [src, names["s"]], [t[0]], name=f"{base}__fq_div"),
        helper.make_node("Round", [t[0]], [t[1]], name=f"{base}__fq_round"),
        helper.make_node("Add", [t[1], names["zp"]], [t[2]], name=f"{base}__fq_add"),
        helper.make_node("Clip", [t[2], names["lo"], names["hi"]], [t[3]], name=f"{base}__fq_clip"),
        helper.make_node("Sub", [t[3], names["zp"]], [f"{base}__fq_q"], name=f"{base}__fq_sub"),
        helper.make_node("Mul", [f"{base}__fq_q", names["s"]], [dst], name=f"{base}__fq_mul"),
    ]


def _options():
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return options


# --------------------------------------------------------------------------------------
# running it
class Emulator:
    """The bundle's Hailo part with its NPU graph fake-quantized at one precision."""

    def __init__(self, part: HailoPart, calibration: dict[str, np.ndarray], max_calib: int = 64) -> None:
        import onnx
        import onnxruntime as ort

        self.part = part
        self.npu = onnx.load(str(verified_file(part, "npu", REEXPORT)))
        self.host = ort.InferenceSession(
            str(verified_file(part, "host", REEXPORT)), _options(), providers=["CPUExecutionProvider"]
        )
        norm = part.block["normalization"]
        self.mean, self.std = norm["mean"], norm["std"]
        self.host_runs = part.block["host"]["runs"]
        self.points = quant_points(self.npu)
        self.layers = [n.name for n in self.npu.graph.node if n.op_type in WEIGHTED_OPS + ("Add",)]
        self.ranges = activation_ranges(self.npu, self.points, self._calib_feeds(calibration, max_calib))
        self.float_session = ort.InferenceSession(
            self.npu.SerializeToString(), _options(), providers=["CPUExecutionProvider"]
        )

    def _calib_feeds(self, calibration: dict[str, np.ndarray], limit: int) -> list[dict[str, np.ndarray]]:
        inputs = self.part.block["npu"]["inputs"]
        data = [calibration[i["layer"]] for i in inputs]
        n = len(data[0])
        index = np.linspace(0, n - 1, min(limit, n)).round().astype(int)
        feeds = []
        for k in index:
            feed = {inputs[0]["name"]: normalize_pixels(data[0][k : k + 1], self.mean, self.std)}
            for entry, arr in zip(inputs[1:], data[1:]):
                feed[entry["name"]] = arr[k].reshape(entry["shape"]).astype(np.float32)
            feeds.append(feed)
        return feeds

    def session(self, precision: Precision | None, weights: str = "per-tensor"):
        """ONNX Runtime session of the NPU graph at ``precision`` (None: float)."""
        import onnxruntime as ort

        if precision is None:
            return self.float_session
        model = fake_quantize(self.npu, self.points, self.ranges, precision, weights)
        return ort.InferenceSession(model.SerializeToString(), _options(), providers=["CPUExecutionProvider"])

    def predict(self, npu_session, frame: np.ndarray, state: np.ndarray) -> np.ndarray:
        from edgeact.hailo.export import run_pair

        return run_pair(
            npu_session, self.host, self.host_runs, normalize_pixels(frame[None], self.mean, self.std), state
        )


class EmulatedBackend:
    """A Backend (``predict_chunk``) over one emulated precision, for ``sim.evaluate``."""

    def __init__(self, emulator: Emulator, spec: PolicySpec, precision: Precision | None, weights: str = "per-tensor"):
        self.name = f"hailo-emulated-{precision.name if precision else 'fp32'}"
        self.spec = spec
        self.emulator = emulator
        self.npu_session = emulator.session(precision, weights)

    def predict_chunk(self, image: Frames, state: np.ndarray) -> np.ndarray:
        frames, state = self.spec.check_inputs(image, state)
        return self.emulator.predict(self.npu_session, frames[0], state).astype(np.float32)

    def close(self) -> None:
        self.npu_session = None


# --------------------------------------------------------------------------------------
# sensitivity and the report
@dataclass
class PrecisionResult:
    precision: str
    action_error: Any  # edgeact.export.accuracy.ActionError
    sixteen_bit_layers: list[str] = field(default_factory=list)
    sim: dict[str, dict[str, Any]] = field(default_factory=dict)  # track -> EvalResult.to_json()


def action_error(emulator: Emulator, session, observations, manifest_policy: dict):
    from edgeact.export.accuracy import compare

    return compare(
        lambda f, s: emulator.predict(emulator.float_session, f[0], s),
        lambda f, s: emulator.predict(session, f[0], s),
        observations,
        manifest_policy,
    )


def sensitive_layers(
    emulator: Emulator,
    observations,
    manifest_policy: dict,
    weights: str = "per-tensor",
    target_pct: float = 0.5,
    log: Callable[[str], None] = print,
) -> tuple[list[str], list[tuple[str, float]]]:
    """Layers to keep at 16 bits: ranked by the error each causes alone at 8 bits (others 16),
    taken greedily until the mixed model's worst mean action error is ≤ ``target_pct``."""
    scores = []
    for i, layer in enumerate(emulator.layers, start=1):
        alone = Precision("probe", 8, frozenset(emulator.layers) - {layer})
        err = action_error(emulator, emulator.session(alone, weights), observations, manifest_policy)
        scores.append((layer, err.worst_mean_pct))
        log(f"  sensitivity [{i}/{len(emulator.layers)}] {layer}: {err.worst_mean_pct:.3f}% alone at 8-bit")
    ranked = sorted(scores, key=lambda kv: -kv[1])
    chosen: list[str] = []
    for layer, _ in [(None, 0.0), *ranked]:
        if layer is not None:
            chosen.append(layer)
        mixed = Precision("mixed", 8, frozenset(chosen))
        err = action_error(emulator, emulator.session(mixed, weights), observations, manifest_policy)
        if err.worst_mean_pct <= target_pct:
            break
    return chosen, ranked


def _precision(name: str, sixteen_bit_layers: list[str]) -> Precision:
    if name == "a8_w8":
        return A8_W8
    if name == "a16_w16":
        return A16_W16
    if name == "mixed":
        return Precision("mixed", 8, frozenset(sixteen_bit_layers))
    raise ConfigError(f"unknown precision {name!r}; use a8_w8, a16_w16 or mixed")


def emulate_bundle(
    bundle: str | Path,
    calib: str | Path,
    precisions: tuple[str, ...] = ("a8_w8", "a16_w16", "mixed"),
    *,
    mode: str = "split",
    episodes: str | Path | None = None,
    heldout: int = 32,
    weights: str = "per-tensor",
    sim_tracks: tuple[str, ...] = (),
    sim_seconds: float = 45.0,
    sim_seed: int = 1000,
    target_pct: float = 0.5,
    log: Callable[[str], None] = print,
) -> dict[str, PrecisionResult]:
    """Action error vs fp32 on held-out frames per precision, and closed-loop scores with ``sim_tracks``."""
    from edgeact.backends.hailo_part import read_part
    from edgeact.bundle import spec_from_manifest
    from edgeact.export.calibration import observations_for
    from edgeact.hailo.calib import load_calibration
    from edgeact.sim.evaluate import evaluate

    part = read_part(bundle, mode)
    spec = spec_from_manifest(part.manifest)
    policy = part.manifest["policy"]
    emulator = Emulator(part, load_calibration(calib, part))
    _, held = observations_for(spec, episodes, 0, heldout)
    log(
        f"emulating the {mode} NPU graph ({len(emulator.layers)} weighted layers, {len(emulator.points)} quantized "
        f"tensors, {weights} weights) on {len(held)} {held.source}"
    )
    results: dict[str, PrecisionResult] = {}
    for name in precisions:
        layers: list[str] = []
        if name == "mixed":
            layers, _ = sensitive_layers(
                emulator, held.subset(slice(0, min(16, len(held)))), policy, weights, target_pct, log
            )
        precision = _precision(name, layers)
        err = action_error(emulator, emulator.session(precision, weights), held, policy)
        results[name] = PrecisionResult(name, err, layers)
        log(f"{name:8s} {err.format()}" + (f"; 16-bit layers: {layers}" if name == "mixed" else ""))
    for track in sim_tracks:
        results.setdefault("fp32", PrecisionResult("fp32", None))
        for name, result in results.items():
            driving = None if name == "fp32" else _precision(name, result.sixteen_bit_layers)
            backend = EmulatedBackend(emulator, spec, driving, weights)
            score = evaluate(backend, track, seconds=sim_seconds, seed=sim_seed)
            result.sim[track] = score.to_json()
            log(
                f"sim {track:8s} {name:8s} {score.laps:.2f} laps, mean |cross-track| {score.mean_cross_track_m:.3f} m, "
                f"off-track {score.off_track_events}"
            )
    return results
