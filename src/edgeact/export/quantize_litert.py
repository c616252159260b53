"""``edgeact quantize --target pi5``: the bundle's LiteRT models for XNNPACK on the Pi 5's CPU.

Writes ``model.litert.tflite`` (fp32), ``model.litert-fp16.tflite`` and
``model.litert-int8.tflite`` from ``model.onnx`` (:mod:`edgeact.export.litert_export`),
calibrated on the same episode frames as ``onnx-int8``, and records each in the manifest
with its action error against ONNX fp32 on held-out frames and its delegation report: which
operators XNNPACK took, which it left to LiteRT's own kernels, and what each computes in, with
its share of the model's FLOPs. The report is measured here, by loading the model into
LiteRT's interpreter with XNNPACK (the same delegate the Pi runs; what it takes depends on the
operators and types, not on the CPU).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeact.bundle import LITERT_MODELS, model_file, read_manifest, write_manifest
from edgeact.errors import ExportError
from edgeact.export.accuracy import ActionError, compare
from edgeact.export.litert_graph import OpRecord


@dataclass
class LiteRTResult:
    backend: str
    path: Path
    accuracy: ActionError
    delegation: dict[str, Any]


def delegated_ops(data: bytes) -> tuple[set[int], str]:
    """Indices of the operators XNNPACK took, and LiteRT's version.

    A delegate replaces each partition it takes by one DELEGATE node whose inputs and outputs
    are the partition's boundary; the partition's operators are those between them.
    """
    from ai_edge_litert import interpreter as litert

    it = litert.Interpreter(model_content=data, num_threads=1)
    it.allocate_tensors()
    ops = it._get_ops_details()  # noqa: SLF001 - the public API lists no execution plan
    original = [o for o in ops if o["op_name"] != "DELEGATE"]
    producer = {int(t): o["index"] for o in original for t in o["outputs"]}
    taken: set[int] = set()
    for node in (o for o in ops if o["op_name"] == "DELEGATE"):
        boundary = {int(t) for t in node["inputs"]}
        stack = [int(t) for t in node["outputs"]]
        while stack:
            index = producer.get(stack.pop())
            if index is None or index in taken:
                continue
            taken.add(index)
            stack += [int(t) for t in ops[index]["inputs"] if int(t) not in boundary and int(t) >= 0]
    return taken, getattr(litert, "__version__", "") or _litert_version()


def _litert_version() -> str:
    from importlib.metadata import version

    return version("ai-edge-litert")


def delegation_report(records: list[OpRecord], delegated: set[int], precision: str) -> dict[str, Any]:
    """Per operator type: where it runs (XNNPACK or LiteRT's kernels), in what, its share of FLOPs.

    ``fast_path_pct``: the FLOPs XNNPACK computes in the model's precision (int8 for the int8 model).
    """
    total = sum(r.flops for r in records) or 1.0
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in records:
        where = "xnnpack" if r.index in delegated else "litert-kernels"
        g = groups.setdefault((r.op, r.compute, where), {"op": r.op, "compute": r.compute, "engine": where,
                                                         "count": 0, "flops": 0.0})
        g["count"] += 1
        g["flops"] += r.flops
    rows = sorted(groups.values(), key=lambda g: -g["flops"])
    for g in rows:
        g["flops_pct"] = round(100.0 * g["flops"] / total, 3)
        g["gflops"] = round(g["flops"] / 1e9, 4)
        del g["flops"]
    fast = sum(r.flops for r in records if r.index in delegated and (precision != "int8" or r.compute == "int8"))
    # besides what XNNPACK does not take: float arithmetic in the int8 model, and layout / conversion ops
    outside = [g for g in rows if g["engine"] != "xnnpack" or g["compute"] == "-"
               or (precision == "int8" and g["compute"] == "fp32")]
    return {"ops": len(records), "delegated": len(delegated), "gflops": round(total / 1e9, 4),
            "fast_path_pct": round(100.0 * fast / total, 3),
            "outside_xnnpack_pct": round(sum(g["flops_pct"] for g in rows if g["engine"] != "xnnpack"), 3),
            "outside_fast_path": outside, "by_op": rows}


def format_delegation(backend: str, report: dict[str, Any]) -> str:
    lines = [f"{backend}: {report['delegated']}/{report['ops']} ops in XNNPACK; "
             f"{report['fast_path_pct']:.1f}% of {report['gflops']:.2f} GFLOP on the fast path, "
             f"{report['outside_xnnpack_pct']:.2f}% outside XNNPACK"]
    for g in report["outside_fast_path"]:
        lines.append(f"    outside the fast path: {g['op']:<16} {g['compute']:<5} {g['engine']:<15} "
                     f"{g['count']:>3} ops  {g['flops_pct']:6.3f}% of FLOPs")
    return "\n".join(lines)


def litert_bundle(bundle: str | Path, calib: str | Path | None = None, *, frames: int = 64, heldout: int = 32,
                  precisions: tuple[str, ...] = ("fp32", "fp16", "int8"),
                  log: Callable[[str], None] = print) -> list[LiteRTResult]:
    """Write the bundle's LiteRT models (``precisions``) and record them in its manifest."""
    import onnx
    import onnxruntime as ort

    from edgeact.bundle import spec_from_manifest
    from edgeact.cpu import session_options
    from edgeact.export.calibration import observations_for
    from edgeact.export.litert_export import OnnxToLiteRT, calibrated_ranges
    from edgeact.export.onnx_export import feeds
    from edgeact.export.quantize_onnx import (
        _bundle_stats,
        attention_softmax_nodes,
        input_preprocessing_nodes,
        output_head_nodes,
    )
    from edgeact.fileio import atomic_write_bytes

    try:
        import ai_edge_litert  # noqa: F401 - its schema writes the models and its interpreter checks them
    except ImportError as err:
        raise ExportError("the LiteRT models need ai-edge-litert: pip install 'edgeact[litert]'") from err
    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    src = model_file(bundle, manifest, "onnx")
    spec = spec_from_manifest(manifest)
    model = onnx.load(str(src))
    input_names = [i["name"] for i in manifest["inputs"]]
    calib_obs, held_obs = observations_for(spec, calib, frames, heldout, _bundle_stats(bundle).get("observation.state"))
    reference = ort.InferenceSession(str(src), session_options(), providers=["CPUExecutionProvider"])

    def run_fp32(frames_, state_):
        return reference.run(None, feeds(input_names, frames_, state_))[0][0]

    ranges = None
    if "int8" in precisions:
        log(f"LiteRT int8: calibrating on {len(calib_obs)} {calib_obs.source}")
        ranges = calibrated_ranges(model, calib_obs, input_names, log)
    float_nodes = set(input_preprocessing_nodes(model) + output_head_nodes(model) + attention_softmax_nodes(model))
    results = []
    for precision in precisions:
        backend = {"fp32": "litert", "fp16": "litert-fp16", "int8": "litert-int8"}[precision]
        t0 = time.perf_counter()
        graph = OnnxToLiteRT(model, precision, ranges, float_nodes).convert()
        data = graph.serialize(f"edgeact {backend} from {src.name}")
        delegated, version = delegated_ops(data)
        report = delegation_report(graph.records, delegated, precision)
        runner = _runner(data, input_names)
        accuracy = compare(run_fp32, runner, held_obs, manifest["policy"])
        out = bundle / LITERT_MODELS[backend]
        atomic_write_bytes(out, data)
        out.chmod(0o644)
        log(f"wrote {out} ({len(data) / 1e6:.1f} MB, {time.perf_counter() - t0:.0f} s)")
        log("  " + format_delegation(backend, report))
        log("  " + accuracy.format())
        manifest["models"][backend] = {
            "file": out.name, "precision": precision, "engine": "LiteRT + XNNPACK", "ai_edge_litert_version": version,
            "calibration": ({"method": "minmax", "frames": len(calib_obs), "source": calib_obs.source}
                            if precision == "int8" else None),
            "float_fixed": sorted(float_nodes) if precision == "int8" else [],
            "accuracy": accuracy.to_json(), "delegation": report,
        }
        results.append(LiteRTResult(backend, out, accuracy, report))
    write_manifest(bundle, manifest)
    return results


def _runner(data: bytes, input_names: list[str]) -> Callable[[list[np.ndarray], np.ndarray], np.ndarray]:
    from ai_edge_litert import interpreter as litert

    it = litert.Interpreter(model_content=data, num_threads=None)
    it.allocate_tensors()
    details = {d["name"]: d["index"] for d in it.get_input_details()}
    output = it.get_output_details()[0]["index"]

    def run(frames: list[np.ndarray], state: np.ndarray) -> np.ndarray:
        for name, frame in zip(input_names, frames):
            it.set_tensor(details[name], np.ascontiguousarray(frame)[None])
        if len(input_names) > len(frames):
            it.set_tensor(details[input_names[len(frames)]], np.asarray(state, np.float32).reshape(1, -1))
        it.invoke()
        return it.get_tensor(output)[0]

    return run
