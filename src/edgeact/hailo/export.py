"""`edgeact hailo export`: the Hailo part of a bundle, checked against PyTorch before it is written.

``split`` (default): the NPU graph is the backbone and the 1×1 projection (normalized image in,
feature map out), the host graph the transformer (feature map + raw state in, real-unit chunk
out). ``full``: the whole policy on the NPU (normalized image + state token in, chunk out) and
only the state's Linear on the host.

The NPU graphs are written for the Dataflow Compiler's parser: opset 13 (what Hailo staff
suggest for the DFC 3.x parser; 14 for ``full``, the first opset torch exports attention at),
batch 1, static shapes, float32 NCHW input, every tensor of rank ≤ 4, attention as plain
MatMul/Softmax, constants folded; they must pass
:mod:`edgeact.hailo.lint`. Host graphs run in ONNX Runtime at the bundle's opset (17).

The graphs are the same for every board (Hailo-8L, 8, 10H): the board is chosen at compile time.
The parser's start nodes are the nodes that read the NPU graph's inputs, and each must read
nothing else the graph computes (a start node fed by a computed tensor would make the parser take
that tensor as one more input and cut the graph there): :func:`start_nodes` checks it.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeact import fileio
from edgeact.backends.hailo_part import HOST_ONNX, MODES, NET_NAME, NPU_ONNX, part_dir
from edgeact.bundle import read_manifest, write_manifest
from edgeact.errors import ConfigError
from edgeact.export.onnx_export import (
    DEFAULT_OPSET,
    DEFAULT_TOLERANCE,
    ExportError,
    ort_session,
    trace_module,
)
from edgeact.hailo.graphs import normalize_pixels

# 13 is what Hailo staff suggest for the DFC 3.x parser; torch exports attention from opset 14 on
NPU_OPSET = {"split": 13, "full": 14}


@dataclass
class HailoExportResult:
    bundle: Path
    mode: str
    parity_max_abs_diff: float
    parity_frames: int
    parity_source: str
    block: dict[str, Any]


@dataclass
class _Graphs:
    npu: Any  # onnx.ModelProto
    host: Any
    host_runs: str  # "after" (split: host finishes the chunk) or "before" (full: host makes the state token)


def export_hailo(
    bundle: str | Path,
    mode: str = "split",
    *,
    frames: str | Path | None = None,
    n_parity: int = 8,
    tolerance: float = DEFAULT_TOLERANCE,
    log: Callable[[str], None] = print,
) -> HailoExportResult:
    """Add ``hailo/<mode>/`` (NPU graph, host graph) to ``bundle`` and its block to the manifest.

    Raises ExportError (nothing written) when the NPU graph fails the lint or the two graphs
    together differ from PyTorch by more than ``tolerance`` on real (``frames``) or synthetic frames.
    """
    from edgeact.checkpoint import build_policy, load_checkpoint
    from edgeact.hailo.graphs import feature_size, pixel_normalization
    from edgeact.hailo.lint import lint_model
    from edgeact.model.inference import InferenceModel

    bundle = Path(bundle)
    if mode not in MODES:
        raise ConfigError(f"unknown --mode {mode!r}; use one of {', '.join(MODES)}")
    manifest = read_manifest(bundle)
    checkpoint = load_checkpoint(bundle)
    model = InferenceModel(build_policy(checkpoint), checkpoint.stats).eval()
    _check_supported(model)
    image_size = tuple(manifest["policy"]["image_size"])
    mean, std = pixel_normalization(model)
    channels, fh, fw = feature_size(model, image_size)
    log(
        f"hailo export ({mode}): image {image_size[0]}x{image_size[1]} -> feature map "
        f"{channels}x{fh}x{fw}; NPU graph at opset {NPU_OPSET[mode]}, host graph at opset {DEFAULT_OPSET}"
    )
    graphs = _trace(model, mode, image_size, (channels, fh, fw))

    lint = lint_model(graphs.npu)
    log(lint.format(title=f"lint of the NPU graph ({mode})"))
    if not lint.passed:
        raise ExportError(f"the {mode} NPU graph would not parse (see the lint above); nothing was written")

    diff, n, source = _parity(model, graphs, manifest, frames, n_parity, mean, std, checkpoint.stats)
    log(f"parity vs PyTorch on {n} {source}: max |npu+host - torch| = {diff:.2e} (tolerance {tolerance:g})")
    if not np.isfinite(diff) or diff > tolerance:
        raise ExportError(
            f"the Hailo {mode} graphs differ from PyTorch by {diff:.3g} (> {tolerance:g}); nothing was written"
        )

    block = _block(mode, graphs, mean, std, lint, diff, n, source, tolerance)
    _write(bundle, mode, graphs, block, manifest)
    log(
        f"wrote {bundle / part_dir(mode)} (start nodes {block['npu']['start_node_names']}, "
        f"end nodes {block['npu']['end_node_names']})"
    )
    return HailoExportResult(bundle, mode, diff, n, source, block)


def _check_supported(model) -> None:
    if len(model.camera_keys) != 1:
        raise ConfigError(f"the Hailo export takes one camera; this policy has {len(model.camera_keys)}")
    if not model.config.state_dim or model.config.env_state_feature is not None:
        raise ConfigError("the Hailo export expects a robot state input and no environment state (the rover's)")


def _trace(model, mode: str, image_size: tuple[int, int], feature: tuple[int, int, int]) -> _Graphs:
    import torch

    from edgeact.hailo.graphs import (
        HostStateToken,
        HostTransformer,
        NpuBackbone,
        NpuFullPolicy,
    )

    h, w = image_size
    d = model.config.dim_model
    image = torch.zeros(1, 3, h, w)
    state = torch.zeros(1, model.config.state_dim)
    if mode == "split":
        npu, _ = trace_module(NpuBackbone(model), (image,), ["image"], ["features"], NPU_OPSET[mode])
        host, _ = trace_module(
            HostTransformer(model, feature[1:]),
            (torch.zeros(1, *feature), state),
            ["features", "state"],
            ["actions"],
            DEFAULT_OPSET,
        )
        return _Graphs(npu, host, "after")
    npu, _ = trace_module(
        NpuFullPolicy(model, feature[1:]),
        (image, torch.zeros(1, 1, d)),
        ["image", "state_token"],
        ["actions"],
        NPU_OPSET[mode],
    )
    host, _ = trace_module(HostStateToken(model, bias=False), (state,), ["state"], ["state_token"], DEFAULT_OPSET)
    return _Graphs(npu, host, "before")


def run_pair(npu_session, host_session, host_runs: str, npu_image: np.ndarray, state: np.ndarray) -> np.ndarray:
    """One chunk (chunk, A) from the NPU graph (normalized NCHW image) and the host graph, in float."""
    state = np.asarray(state, np.float32).reshape(1, -1)
    if host_runs == "after":
        features = npu_session.run(None, {"image": npu_image})[0]
        return host_session.run(None, {"features": features, "state": state})[0][0]
    token = host_session.run(None, {"state": state})[0]
    return npu_session.run(None, {"image": npu_image, "state_token": token})[0][0]


def _parity(model, graphs: _Graphs, manifest, frames, n_parity, mean, std, stats) -> tuple[float, int, str]:
    from edgeact.bundle import spec_from_manifest
    from edgeact.export.calibration import observations_for
    from edgeact.export.onnx_export import run_torch

    spec = spec_from_manifest(manifest)
    _, observations = observations_for(spec, frames, 0, n_parity, stats.get("observation.state"))
    npu = ort_session(graphs.npu.SerializeToString(), threads=1)
    host = ort_session(graphs.host.SerializeToString(), threads=1)
    worst = 0.0
    for cams, state in observations:
        ref = run_torch(model, cams, state)
        got = run_pair(npu, host, graphs.host_runs, normalize_pixels(cams[0][None], mean, std), state)
        worst = max(worst, float(np.max(np.abs(got - ref))))
    return worst, len(observations), observations.source


def _io(values) -> list[dict[str, Any]]:
    return [
        {"name": v.name, "shape": [d.dim_value for d in v.type.tensor_type.shape.dim], "dtype": "float32"}
        for v in values
    ]


def start_nodes(graph) -> list[str]:
    """Names of the nodes that read the graph's inputs (the parser's start nodes), in graph order.

    Raises ExportError when one of them also reads a tensor another node computes: a parser that
    starts there takes that tensor as an extra input and cuts off the part that computes it.
    """
    inputs = {v.name for v in graph.input}
    computed = {out for nd in graph.node if nd.op_type != "Constant" for out in nd.output}
    starts = [nd for nd in graph.node if set(nd.input) & inputs]
    fed = {nd.name: sorted(set(nd.input) & computed) for nd in starts if set(nd.input) & computed}
    if fed:
        raise ExportError(
            f"start node(s) of the NPU graph also read tensors the graph computes ({fed}); the parser would "
            "take them as extra inputs. Route each graph input through a node that reads only it"
        )
    missing = inputs - {name for nd in starts for name in nd.input}
    if missing:
        raise ExportError(f"NPU graph inputs {sorted(missing)} feed no node")
    return [nd.name for nd in starts]


def _block(mode, graphs: _Graphs, mean, std, lint, diff, n, source, tolerance) -> dict[str, Any]:
    folder = part_dir(mode)
    npu = graphs.npu.graph
    inputs = _io(npu.input)
    for i, entry in enumerate(inputs, start=1):
        entry["layer"] = f"{NET_NAME}/input_layer{i}"  # the DFC's name for the i-th input (calibration key)
    inputs[0]["content"] = "normalized image (the model script's normalization layer makes the device input raw 0-255)"
    inputs[0]["device"] = {"layout": "NHWC", "dtype": "uint8", "range": [0, 255], "channel_order": "RGB"}
    output_names = {v.name for v in npu.output}
    return {
        "mode": mode,
        "net_name": NET_NAME,
        "npu": {
            "file": f"{folder}/{NPU_ONNX}",
            "opset": NPU_OPSET[mode],
            "inputs": inputs,
            "outputs": _io(npu.output),
            # the parser's start/end nodes: ONNX node names, as Hailo's model zoo passes them
            "start_node_names": start_nodes(npu),
            "end_node_names": [nd.name for nd in npu.node if set(nd.output) & output_names],
            "net_input_shapes": {v["name"]: v["shape"] for v in _io(npu.input)},
        },
        "host": {
            "file": f"{folder}/{HOST_ONNX}",
            "opset": DEFAULT_OPSET,
            "runs": graphs.host_runs,
            "inputs": _io(graphs.host.graph.input),
            "outputs": _io(graphs.host.graph.output),
        },
        "normalization": {"mean": mean, "std": std, "units": "0-255 pixels"},
        "parity": {"max_abs_diff": diff, "frames": n, "source": source, "tolerance": tolerance},
        "lint": lint.to_json(),
    }


def _write(bundle: Path, mode: str, graphs: _Graphs, block: dict[str, Any], manifest: dict[str, Any]) -> None:
    """Swap the new ``hailo/<mode>`` folder in, then the manifest (a compiled HEF of the old graphs is dropped)."""
    target = bundle / part_dir(mode)
    target.parent.mkdir(exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{mode}.", dir=target.parent))
    try:
        fileio.atomic_write_bytes(staging / NPU_ONNX, graphs.npu.SerializeToString())
        fileio.atomic_write_bytes(staging / HOST_ONNX, graphs.host.SerializeToString())
        for item in staging.iterdir():
            item.chmod(0o644)
        staging.chmod(0o755)
        fileio.replace_dir(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    manifest.setdefault("hailo", {})[mode] = block
    from edgeact.backends.hailo_part import BACKEND_FOR_MODE

    manifest.get("models", {}).pop(BACKEND_FOR_MODE[mode], None)
    write_manifest(bundle, manifest)
