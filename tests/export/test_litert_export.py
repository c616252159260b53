"""ONNX → LiteRT: the three precisions agree with ONNX Runtime fp32, run whole in XNNPACK, and say so."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edgeact.errors import ExportError

pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is a dev dependency (pip install -e '.[dev]')")


@pytest.fixture(scope="module")
def litert_bundle(bundle, episodes, tmp_path_factory):
    from edgeact.export.quantize_litert import litert_bundle as build

    out = tmp_path_factory.mktemp("litert") / "bundle"
    shutil.copytree(bundle, out)
    results = build(out, episodes, frames=8, heldout=6, log=lambda s: None)
    return out, {r.backend: r for r in results}


def test_every_precision_is_written_delegated_and_within_bounds(litert_bundle):
    path, results = litert_bundle
    manifest = json.loads((path / "manifest.json").read_text())
    for backend in ("litert", "litert-fp16", "litert-int8"):
        entry = manifest["models"][backend]
        assert (path / entry["file"]).is_file() and entry["file"] in manifest["files"]
        report = entry["delegation"]
        assert report["delegated"] == report["ops"], f"{backend}: XNNPACK left ops to LiteRT's kernels"
        assert report["outside_xnnpack_pct"] == 0
        assert entry["accuracy"]["passed"]
    assert results["litert"].accuracy.worst_mean_pct < 1e-3  # fp32: the same arithmetic as ONNX Runtime
    assert results["litert-fp16"].accuracy.worst_mean_pct < 0.2
    int8 = manifest["models"]["litert-int8"]
    assert int8["precision"] == "int8" and int8["calibration"]["frames"] == 8
    assert int8["delegation"]["fast_path_pct"] > 90  # convolutions and weight matmuls: int8
    outside = {row["op"] for row in int8["delegation"]["outside_fast_path"] if row["compute"] == "fp32"}
    assert {"BATCH_MATMUL", "SOFTMAX", "MEAN", "RSQRT"} <= outside  # attention core and layer norms stay float


def test_int8_model_quantizes_the_transformer_matmuls(bundle):
    import onnx

    from edgeact.export.calibration import synthetic_observations
    from edgeact.export.litert_export import OnnxToLiteRT, calibrated_ranges
    from edgeact.export.quantize_onnx import attention_softmax_nodes, input_preprocessing_nodes, output_head_nodes

    model = onnx.load(str(bundle / "model.onnx"))
    ranges = calibrated_ranges(model, synthetic_observations(2, (64, 96), 1, 2), ["image", "state"], log=print)
    floats = set(input_preprocessing_nodes(model) + output_head_nodes(model) + attention_softmax_nodes(model))
    records = OnnxToLiteRT(model, "int8", ranges, floats).convert().records
    fcs = [r for r in records if r.op == "FULLY_CONNECTED"]
    assert all(r.compute == "int8" for r in records if r.op == "CONV_2D")
    # float: the state projection, the action head and the decoder's queries . keys (an attention core)
    floats = sorted(r.name for r in fcs if r.compute != "int8")
    assert len(floats) == 3 and any("multihead_attn" in n for n in floats), floats
    assert any("encoder/layers.0" in r.name and r.compute == "int8" for r in fcs)


def test_quantization_parameters():
    from edgeact.export.litert_export import activation_quant, weight_quant

    q = activation_quant(0.0, 2.55)  # after a ReLU: the whole int8 range above 0
    assert q.zero_point[0] == -128 and q.scale[0] == pytest.approx(0.01)
    w = np.array([[1.0, -2.0], [0.5, 0.25]], np.float32)
    qw, wq = weight_quant(w)
    assert qw.dtype == np.int8 and list(qw[0]) == [64, -127] and list(qw[1]) == [127, 64]
    assert np.all(wq.zero_point == 0) and wq.axis == 0  # symmetric, per output channel


def test_unsupported_op_names_itself(bundle):
    import onnx
    from onnx import helper

    from edgeact.export.litert_export import OnnxToLiteRT

    model = onnx.load(str(bundle / "model.onnx"))
    last = model.graph.output[0].name
    model.graph.node.append(helper.make_node("Tanh", [last], ["squashed"], name="odd_tanh"))
    model.graph.output[0].name = "squashed"
    with pytest.raises(ExportError, match="Tanh .*odd_tanh"):
        OnnxToLiteRT(model, "fp32").convert()
