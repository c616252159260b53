"""Export a checkpoint to a bundle: LeRobot pretrained files + ``model.onnx`` + ``manifest.json``.

The ONNX graph is :class:`~edgeact.model.inference.InferenceModel`, the whole inference path:
uint8 NHWC RGB frame(s) and the raw state in, real-unit action chunk out. Batch 1, static
shapes, opset 17.

Exporter: torch's TorchScript-based exporter (``dynamo=False``, default), then the clean-up
passes in :mod:`edgeact.export.graph_passes`. It emits opset 17 natively (with
``LayerNormalization``) and folds the weight chunks of the attention projections and the
sinusoidal position tables itself. torch 2.13's dynamo exporter (``exporter="dynamo"``, needs
onnxscript) emits opset 18 -- its own down-conversion to 17 produced an invalid ``Split`` --
and leaves ``Split`` on the weights and ``Sin``/``Cos`` tables in the graph; our passes fold
those and then convert the clean graph to 17, so both give the same ops. The TorchScript
exporter is the default because it needs nothing extra and is what Hailo's tools are tested
with; dynamo is there for when torch drops it.

Before anything is written, the ONNX model is run with ONNX Runtime on real (or synthetic)
frames and compared with the PyTorch model; a difference above ``tolerance`` aborts.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeact import fileio
from edgeact.bundle import MANIFEST_NAME, ONNX_FP32_NAME, new_manifest, write_manifest
from edgeact.errors import ExportError
from edgeact.export.graph_passes import GraphSummary, clean_graph, summarize
from edgeact.fileio import atomic_write_bytes, atomic_write_json

DEFAULT_OPSET = 17
DEFAULT_TOLERANCE = 1e-4


@dataclass
class ExportResult:
    bundle: Path
    onnx_path: Path
    summary: GraphSummary
    parity_max_abs_diff: float
    parity_frames: int
    parity_source: str
    passes: dict[str, int]
    manifest: dict[str, Any] = field(repr=False)


def io_names(camera_names: tuple[str, ...] | list[str], state_dim: int) -> tuple[list[str], list[str]]:
    """ONNX input names (``image`` or ``image_<camera>`` per camera, ``state``) and output names."""
    cams = list(camera_names)
    images = ["image"] if len(cams) == 1 else [f"image_{c}" for c in cams]
    return images + (["state"] if state_dim else []), ["actions"]


def example_inputs(spec) -> tuple:
    import torch

    h, w = spec.image_size
    frames = tuple(torch.zeros(1, h, w, 3, dtype=torch.uint8) for _ in spec.camera_names)
    state = (torch.zeros(1, spec.state_dim),) if spec.state_dim else ()
    return frames + state


def export_onnx_model(model, spec, opset: int = DEFAULT_OPSET, exporter: str = "torchscript"):
    """Trace ``model`` (an InferenceModel) to an ONNX ModelProto and clean the graph.

    Returns (model_proto, pass statistics).
    """
    import torch

    if model.config.env_state_feature is not None:
        raise ExportError("environment-state inputs are not supported by the export (the rover has none)")
    inputs, outputs = io_names(spec.camera_names, spec.state_dim)
    args = example_inputs(spec)
    model = model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings on int(h) (static by design) and deprecations
        with torch.no_grad():
            if exporter == "torchscript":
                proto = _torchscript_proto(model, args, inputs, outputs, opset)
            elif exporter == "dynamo":
                import contextlib
                import logging

                logging.getLogger("onnxscript").setLevel(logging.ERROR)
                with contextlib.redirect_stdout(io.StringIO()):  # progress lines of the dynamo exporter
                    program = torch.onnx.export(
                        model, args, dynamo=True, opset_version=max(opset, 18), input_names=inputs,
                        output_names=outputs, optimize=True, external_data=False, verbose=False,
                    )
                proto = program.model_proto
            else:
                raise ExportError(f"unknown exporter {exporter!r}: use 'torchscript' or 'dynamo'")
    return _finish(proto, opset)


def trace_module(module, args: tuple, input_names: list[str], output_names: list[str],
                 opset: int = DEFAULT_OPSET):
    """Any module (static shapes, batch 1) → a cleaned, checked ONNX ModelProto, exported the way
    ``export_onnx_model`` exports the whole policy (TorchScript exporter, our graph passes).

    Returns (model_proto, pass statistics).
    """
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.no_grad():
            proto = _torchscript_proto(module.eval(), args, input_names, output_names, opset)
    return _finish(proto, opset)


def _torchscript_proto(model, args: tuple, inputs: list[str], outputs: list[str], opset: int):
    import onnx
    import torch

    buffer = io.BytesIO()
    try:
        torch.onnx.export(
            model, args, buffer, dynamo=False, opset_version=opset, input_names=inputs,
            output_names=outputs, do_constant_folding=True,
        )
    except Exception as err:
        raise ExportError(f"torch {torch.__version__}'s TorchScript ONNX exporter failed ({err}); "
                          "try --exporter dynamo (pip install onnxscript)") from err
    return onnx.load_from_string(buffer.getvalue())


def _finish(proto, opset: int):
    """Clean the graph, convert it down to ``opset`` when needed, stamp and check it."""
    import onnx

    proto, passes = clean_graph(proto)
    current = max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    if current > opset:  # the dynamo exporter starts at 18; once the graph is clean it converts down
        from onnx import version_converter

        try:
            proto = version_converter.convert_version(proto, opset)
        except Exception as err:
            raise ExportError(f"cannot convert the exported graph from opset {current} to {opset}: {err}") from err
    proto.producer_name = "edgeact"
    from edgeact.version import __version__

    proto.producer_version = __version__
    onnx.checker.check_model(proto, full_check=True)
    return proto, passes


def ort_session(model: bytes | str | Path, threads: int | None = None):
    """An ONNX Runtime CPU session with the latency settings of the onnx backend."""
    import onnxruntime as ort

    from edgeact.cpu import session_options

    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, session_options(threads), providers=["CPUExecutionProvider"])


def run_torch(model, frames: list[np.ndarray], state: np.ndarray) -> np.ndarray:
    import torch

    inputs = [torch.from_numpy(np.ascontiguousarray(f))[None] for f in frames]
    if state.size:
        inputs.append(torch.from_numpy(np.asarray(state, np.float32))[None])
    with torch.inference_mode():
        return model(*inputs)[0].numpy()


def feeds(input_names: list[str], frames: list[np.ndarray], state: np.ndarray) -> dict[str, np.ndarray]:
    n_cam = len(frames)
    out = {name: np.ascontiguousarray(f)[None] for name, f in zip(input_names[:n_cam], frames)}
    if len(input_names) > n_cam:
        out[input_names[n_cam]] = np.asarray(state, np.float32).reshape(1, -1)
    return out


def parity(model, session, observations, input_names: list[str]) -> float:
    """Max |onnx - torch| over the observations (real units)."""
    worst = 0.0
    for frames, state in observations:
        ref = run_torch(model, frames, state)
        got = session.run(None, feeds(input_names, frames, state))[0][0]
        worst = max(worst, float(np.max(np.abs(got - ref))))
    return worst


def policy_block(checkpoint, spec) -> dict[str, Any]:
    action_stats = checkpoint.stats.get("action", {})
    block: dict[str, Any] = {
        "type": "act",
        "camera_names": list(spec.camera_names),
        "image_size": list(spec.image_size),
        "channel_order": "RGB",
        "layout": "NHWC",
        "image_dtype": "uint8",
        "state_dim": spec.state_dim,
        "action_dim": spec.action_dim,
        "chunk_size": spec.chunk_size,
        "n_action_steps": checkpoint.config.n_action_steps,
        "fps": spec.fps,
        "action_names": list(spec.action_names),
        "vision_backbone": checkpoint.config.vision_backbone,
        "dim_model": checkpoint.config.dim_model,
    }
    if "min" in action_stats and "max" in action_stats:
        block["action_range"] = {
            "min": np.asarray(action_stats["min"], np.float64).reshape(-1).tolist(),
            "max": np.asarray(action_stats["max"], np.float64).reshape(-1).tolist(),
        }
    if "mean" in action_stats and "std" in action_stats:
        block["action_mean"] = np.asarray(action_stats["mean"], np.float64).reshape(-1).tolist()
        block["action_std"] = np.asarray(action_stats["std"], np.float64).reshape(-1).tolist()
    return block


def io_block(spec) -> tuple[list[dict], list[dict]]:
    inputs, outputs = io_names(spec.camera_names, spec.state_dim)
    h, w = spec.image_size
    ins: list[dict] = [
        {"name": name, "camera": cam, "dtype": "uint8", "shape": [1, h, w, 3], "layout": "NHWC",
         "channel_order": "RGB", "range": [0, 255]}
        for name, cam in zip(inputs, spec.camera_names)
    ]
    if spec.state_dim:
        ins.append({"name": "state", "dtype": "float32", "shape": [1, spec.state_dim], "units": "raw (unnormalized)"})
    outs = [{"name": outputs[0], "dtype": "float32", "shape": [1, spec.chunk_size, spec.action_dim],
             "units": "real (unnormalized)", "names": list(spec.action_names)}]
    return ins, outs


# --------------------------------------------------------------------------------------
def export_bundle(
    checkpoint_path: str | Path,
    out: str | Path,
    *,
    frames: str | Path | None = None,
    n_parity: int = 8,
    tolerance: float = DEFAULT_TOLERANCE,
    opset: int = DEFAULT_OPSET,
    exporter: str = "torchscript",
    config_path: str | Path | None = None,
    stats_path: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> ExportResult:
    """Write the bundle directory ``out`` (replaced atomically) from a checkpoint.

    ``frames``: an episodes directory for the parity check (else synthetic frames).
    Raises ExportError when the ONNX model differs from PyTorch by more than ``tolerance``.
    """

    from edgeact.checkpoint import build_policy, load_checkpoint, spec_from_checkpoint
    from edgeact.export.calibration import observations_for
    from edgeact.model.inference import InferenceModel
    from edgeact.model.profile import count_gflops

    out = Path(out)
    _check_replaceable(out)
    checkpoint = load_checkpoint(checkpoint_path, config_path, stats_path)
    spec = spec_from_checkpoint(checkpoint)
    policy = build_policy(checkpoint)
    model = InferenceModel(policy, checkpoint.stats).eval()
    log(f"exporting {checkpoint.source} ({checkpoint.config.vision_backbone}, dim_model {checkpoint.config.dim_model}, "
        f"image {spec.image_size[0]}x{spec.image_size[1]}, chunk {spec.chunk_size}) with the {exporter} exporter, "
        f"opset {opset}")
    proto, passes = export_onnx_model(model, spec, opset, exporter)
    summary = summarize(proto)
    data = proto.SerializeToString()

    _, parity_obs = observations_for(spec, frames, 0, n_parity, checkpoint.stats.get("observation.state"))
    input_names, _ = io_names(spec.camera_names, spec.state_dim)
    session = ort_session(data)
    diff = parity(model, session, parity_obs, input_names)
    log(f"parity vs PyTorch on {len(parity_obs)} {parity_obs.source}: max |onnx - torch| = {diff:.2e} "
        f"(tolerance {tolerance:g})")
    if not np.isfinite(diff) or diff > tolerance:
        raise ExportError(
            f"the ONNX model differs from PyTorch by {diff:.3g} (> {tolerance:g}); nothing was written. "
            "Report this with the checkpoint's config.json"
        )
    gflops = count_gflops(model, list(example_inputs(spec)))

    manifest = new_manifest(policy_block(checkpoint, spec), *io_block(spec), source=str(checkpoint.source))
    manifest["policy"]["gflops"] = round(gflops, 4)
    manifest["models"]["onnx"] = {
        "file": ONNX_FP32_NAME,
        "precision": "fp32",
        "opset": summary.opset,
        "exporter": exporter,
        "parity": {"max_abs_diff": diff, "frames": len(parity_obs), "source": parity_obs.source,
                   "tolerance": tolerance},
        "op_counts": summary.op_counts,
        "graph_problems": summary.problems,
    }
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=_parent(out)))
    try:
        _write_checkpoint_files(checkpoint, policy, staging, copy=config_path is None and stats_path is None)
        atomic_write_bytes(staging / ONNX_FP32_NAME, data)
        reloaded = load_checkpoint(staging)  # the bundle must be loadable by the torch backend
        if set(reloaded.state_dict) != set(checkpoint.state_dict):
            raise ExportError(f"the copied checkpoint files in {staging} do not reload to the same weights")
        write_manifest(staging, manifest)
        _publishable(staging)
        replace_dir(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(out, out / ONNX_FP32_NAME, summary, diff, len(parity_obs), parity_obs.source, passes, manifest)


def _parent(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    return out.parent


def _write_checkpoint_files(checkpoint, policy, folder: Path, copy: bool) -> None:
    """The LeRobot pretrained files: copied as they are when the checkpoint is such a directory."""
    from edgeact.checkpoint import (
        CONFIG_NAME,
        META_NAME,
        POSTPROCESSOR_NAME,
        PREPROCESSOR_NAME,
        WEIGHTS_NAME,
        save_pretrained,
    )

    source = Path(checkpoint.source)
    names = [CONFIG_NAME, WEIGHTS_NAME, PREPROCESSOR_NAME, POSTPROCESSOR_NAME]
    if copy and source.is_dir() and all((source / n).is_file() for n in names):
        import json

        for json_name in (PREPROCESSOR_NAME, POSTPROCESSOR_NAME):
            for step in json.loads((source / json_name).read_text()).get("steps", []):
                if step.get("state_file"):
                    names.append(step["state_file"])
        for name in names:
            if not (source / name).is_file():
                break
        else:
            for name in names:
                shutil.copy2(source / name, folder / name)
            meta = {**checkpoint.meta, "fps": checkpoint.fps, "action_names": list(checkpoint.action_names)}
            atomic_write_json(folder / META_NAME, meta)
            return
    target = folder / "pretrained"
    extra = {k: v for k, v in checkpoint.meta.items() if k not in ("fps", "action_names", "edgeact_version")}
    save_pretrained(policy, checkpoint.stats, target, fps=checkpoint.fps, action_names=checkpoint.action_names,
                    extra_meta=extra)
    for item in target.iterdir():
        item.rename(folder / item.name)
    target.rmdir()


def _check_replaceable(target: Path) -> None:
    if target.exists() and (not target.is_dir() or (not (target / MANIFEST_NAME).is_file() and any(target.iterdir()))):
        raise ExportError(f"{target} exists and is not an edgeact bundle; choose another --out or remove it")


def _publishable(folder: Path) -> None:
    """Temp files are private (0600); a bundle is copied to the rover, so make it world-readable."""
    folder.chmod(0o755)
    for item in folder.iterdir():
        if item.is_file():
            item.chmod(0o644)


def replace_dir(new: Path, target: Path) -> None:
    """Swap ``new`` into ``target`` once ``target`` is known to be a bundle we may replace."""
    if target.exists():
        _check_replaceable(target)
    fileio.replace_dir(new, target)
