"""`edgeact hailo export`: split and full graphs equal PyTorch, are written for the parser, and are
recorded (names, shapes, hashes) in the manifest; nothing is written when a check fails."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest

from edgeact.backends.hailo_part import read_part
from edgeact.errors import BackendError, ConfigError
from edgeact.export.onnx_export import ExportError
from edgeact.hailo.export import export_hailo
from edgeact.hailo.lint import lint_model


@pytest.mark.parametrize("mode", ["split", "full"])
def test_both_graphs_match_pytorch_and_pass_the_lint(hailo_exported, mode):
    bundle, results, _ = hailo_exported
    result = results[mode]
    assert result.parity_max_abs_diff <= 1e-4 and "episode" in result.parity_source
    part = read_part(bundle, mode)
    npu = onnx.load(str(part.path("npu")))
    assert lint_model(npu).passed
    names = {n.name for n in npu.graph.node}
    block = part.block["npu"]
    assert block["start_node_names"] and set(block["start_node_names"] + block["end_node_names"]) <= names
    h, w = part.manifest["policy"]["image_size"]
    assert block["net_input_shapes"]["image"] == [1, 3, h, w]
    image = npu.graph.input[0]
    assert image.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    for key in ("npu", "host"):
        rel = part.block[key]["file"]
        assert part.manifest["files"][rel]["sha256"]
    assert part.block["lint"]["passed"]


def test_split_cuts_after_the_projection(hailo_exported):
    bundle, _, _ = hailo_exported
    part = read_part(bundle, "split")
    npu = onnx.load(str(part.path("npu")))
    ops = {n.op_type for n in npu.graph.node}
    assert ops <= {"Conv", "Relu", "MaxPool", "Add"}  # the normalization is the model script's, not the graph's
    d = part.manifest["policy"]["dim_model"]
    assert part.block["npu"]["outputs"][0]["shape"][:2] == [1, d]
    assert [i["name"] for i in part.block["host"]["inputs"]] == ["features", "state"]


def test_normalization_is_in_pixel_units(hailo_exported):
    import torch

    from edgeact.checkpoint import build_policy, load_checkpoint
    from edgeact.hailo.graphs import normalize_pixels
    from edgeact.model.inference import InferenceModel

    bundle, _, _ = hailo_exported
    norm = read_part(bundle, "split").block["normalization"]
    ckpt = load_checkpoint(bundle)
    model = InferenceModel(build_policy(ckpt), ckpt.stats)
    frame = np.random.default_rng(0).integers(0, 256, (1, 4, 5, 3), dtype=np.uint8)
    expected = model._prepare_image(torch.from_numpy(frame), model.camera_keys[0]).numpy()
    np.testing.assert_allclose(normalize_pixels(frame, norm["mean"], norm["std"]), expected, atol=1e-5)


def test_a_failed_parity_writes_nothing(bundle, tmp_path):
    out = tmp_path / "b"
    shutil.copytree(bundle, out)
    before = (out / "manifest.json").read_text()
    with pytest.raises(ExportError, match="nothing was written"):
        export_hailo(out, "split", tolerance=-1.0, log=lambda s: None)
    assert (out / "manifest.json").read_text() == before
    assert not (out / "hailo").exists()


def test_bad_input(tmp_path, bundle):
    with pytest.raises(BackendError, match="edgeact export"):
        export_hailo(tmp_path, "split", log=lambda s: None)
    with pytest.raises(ConfigError, match="--mode"):
        export_hailo(bundle, "half", log=lambda s: None)


def test_every_start_node_reads_only_the_npu_graphs_inputs(hailo_exported):
    """The parser starts at these nodes: one fed by a tensor the graph computes would become a second
    network input (full mode's token join, fed by the backbone's tokens, once was one)."""
    bundle, _, _ = hailo_exported
    for mode in ("split", "full"):
        part = read_part(bundle, mode)
        graph = onnx.load(str(part.path("npu"))).graph
        inputs = {v.name for v in graph.input}
        constants = {i.name for i in graph.initializer}
        by_name = {n.name: n for n in graph.node}
        starts = [by_name[name] for name in part.block["npu"]["start_node_names"]]
        assert {t for n in starts for t in n.input} & inputs == inputs  # every input has its start node
        for node in starts:
            assert set(node.input) <= inputs | constants, (mode, node.name, list(node.input))
    full = read_part(bundle, "full").block["npu"]["start_node_names"]
    assert not any("Concat" in name for name in full)


def test_a_start_node_fed_by_a_computed_tensor_is_refused():
    from onnx import TensorProto, helper

    from edgeact.hailo.export import start_nodes

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    token = helper.make_tensor_value_info("token", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["h"], name="relu"), helper.make_node("Concat", ["h", "token"], ["y"],
                                                                                 name="join", axis=0)],
        "g", [x, token], [y])
    with pytest.raises(ExportError, match="join"):
        start_nodes(graph)


def test_reexport_drops_the_stale_hef(hailo_bundle):
    bundle, _ = hailo_bundle
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["models"]["hailo-split"] = {"file": "hailo/split/model.hef"}
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    export_hailo(bundle, "split", log=lambda s: None)
    assert "hailo-split" not in json.loads((bundle / "manifest.json").read_text())["models"]
