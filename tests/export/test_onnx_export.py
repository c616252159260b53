"""Export: parity with PyTorch, a clean static graph, and the graph passes on small graphs."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeact.errors import ExportError
from edgeact.export import graph_passes
from edgeact.export.onnx_export import export_bundle

OPSET17 = [helper.make_opsetid("", 17)]


def _session(path_or_bytes):
    return ort.InferenceSession(path_or_bytes, providers=["CPUExecutionProvider"])


def test_parity_with_torch_on_fresh_frames(export_result, tiny_ckpt):
    """<= 1e-4 on the export's own check and on frames the export never saw."""
    import torch

    from edgeact.checkpoint import build_policy, load_checkpoint
    from edgeact.export.calibration import synthetic_frames
    from edgeact.model.inference import InferenceModel

    assert export_result.parity_max_abs_diff <= 1e-4
    assert "episode" in export_result.parity_source
    ckpt = load_checkpoint(tiny_ckpt)
    model = InferenceModel(build_policy(ckpt), ckpt.stats).eval()
    session = _session(str(export_result.onnx_path))
    frames = synthetic_frames(4, (64, 96), seed=123)
    rng = np.random.default_rng(1)
    for frame in frames:
        state = rng.uniform(-1, 1, 2).astype(np.float32)
        with torch.inference_mode():
            ref = model(torch.from_numpy(frame)[None], torch.from_numpy(state)[None]).numpy()
        got = session.run(None, {"image": frame[None], "state": state[None]})[0]
        assert got.shape == (1, 10, 2)
        assert np.max(np.abs(got - ref)) <= 1e-4


def test_graph_is_clean_and_static(export_result):
    model = onnx.load(str(export_result.onnx_path))
    counts = Counter(n.op_type for n in model.graph.node)
    assert graph_passes.check_graph(model) == []
    assert counts["Concat"] == 1  # the encoder tokens, joined once
    for op in ("Split", "Squeeze", "Gather", "Slice", "Shape", "ConstantOfShape", "Range", "Loop", "If"):
        assert counts[op] == 0, op
    assert counts["Mul"] + counts["Add"] < 40  # batch norms folded into the convs
    assert counts["BatchNormalization"] == 1  # the image normalization, one op
    opset = {o.domain: o.version for o in model.opset_import}[""]
    assert 13 <= opset <= 17
    # the one Concat joins [latent, state, image tokens] and feeds the encoder
    concat = next(n for n in model.graph.node if n.op_type == "Concat")
    assert len(concat.input) == 3
    n_tokens = 2 + (64 // 32) * (96 // 32)
    shapes = graph_passes._value_shapes(model)
    assert shapes[concat.output[0]] == (n_tokens, 1, 32)
    # inputs and outputs: uint8 NHWC image, float32 state, static batch-1 shapes
    inputs = {i.name: i.type.tensor_type for i in model.graph.input}
    assert inputs["image"].elem_type == TensorProto.UINT8
    assert [d.dim_value for d in inputs["image"].shape.dim] == [1, 64, 96, 3]
    assert inputs["state"].elem_type == TensorProto.FLOAT
    assert [d.dim_value for d in inputs["state"].shape.dim] == [1, 2]
    out = model.graph.output[0].type.tensor_type
    assert [d.dim_value for d in out.shape.dim] == [1, 10, 2]
    # every intermediate shape is known statically
    assert all(o in shapes for n in model.graph.node for o in n.output)


def test_summary_lists_op_counts(export_result):
    text = export_result.summary.format()
    assert "Conv 21" in text and "Concat 1" in text and "opset 17" in text
    assert "image uint8[1, 64, 96, 3]" in text


def test_parity_failure_writes_nothing(tiny_ckpt, tmp_path):
    out = tmp_path / "bundle"
    with pytest.raises(ExportError, match="differs from PyTorch"):
        export_bundle(tiny_ckpt, out, tolerance=-1.0, n_parity=1, log=lambda s: None)
    assert not out.exists()
    assert not any(p.name.startswith(".bundle") for p in tmp_path.iterdir())


def test_refuses_to_replace_a_non_bundle_directory(tiny_ckpt, tmp_path):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="not an edgeact bundle"):
        export_bundle(tiny_ckpt, out, n_parity=1, log=lambda s: None)
    assert (out / "notes.txt").read_text() == "mine"


def test_export_from_pth_state_dict(tiny_ckpt, tmp_path):
    """A .pth + config.json checkpoint is written out as LeRobot files the torch backend loads."""
    import shutil

    import torch
    from safetensors.torch import load_file

    from edgeact import load_policy

    src = tmp_path / "pth"
    src.mkdir()
    shutil.copy(tiny_ckpt / "config.json", src / "config.json")
    torch.save({"model_state_dict": load_file(str(tiny_ckpt / "model.safetensors"))}, src / "best_model.pth")
    from edgeact.checkpoint import load_checkpoint

    stats = load_checkpoint(tiny_ckpt).stats
    import json

    (src / "stats.json").write_text(json.dumps({k: {s: v.tolist() for s, v in d.items()} for k, d in stats.items()}))
    result = export_bundle(src / "best_model.pth", tmp_path / "b", stats_path=src / "stats.json", n_parity=1,
                           log=lambda s: None)
    assert (result.bundle / "policy_preprocessor.json").is_file()
    frame = np.full((64, 96, 3), 100, np.uint8)
    state = np.array([0.1, -0.2], np.float32)
    a = load_policy(str(result.bundle), backend="torch").predict_chunk(frame, state)
    b = load_policy(str(tiny_ckpt), backend="torch").predict_chunk(frame, state)
    np.testing.assert_allclose(a, b, atol=1e-6)


# --------------------------------------------------------------------------------------
# the passes, on hand-made graphs
def _run(model, feeds):
    return _session(model.SerializeToString()).run(None, feeds)[0]


def test_fuse_affine_chain_matches_original():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])
    mean = numpy_helper.from_array(np.array([0.4, 0.5, 0.6], np.float32).reshape(3, 1, 1), "mean")
    std = numpy_helper.from_array(np.array([0.2, 0.3, 0.25], np.float32).reshape(3, 1, 1), "std")
    k255 = numpy_helper.from_array(np.array(255.0, np.float32), "k255")
    nodes = [
        helper.make_node("Div", ["x", "k255"], ["a"]),
        helper.make_node("Sub", ["a", "mean"], ["b"]),
        helper.make_node("Div", ["b", "std"], ["y"]),
    ]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], [mean, std, k255]),
                              opset_imports=[helper.make_opsetid("", 17)])
    feeds = {"x": np.random.default_rng(0).uniform(0, 255, (1, 3, 4, 4)).astype(np.float32)}
    ref = _run(model, feeds)
    assert graph_passes.fuse_affine_chains(model) == 1
    assert [n.op_type for n in model.graph.node] == ["BatchNormalization"]  # per-channel on NCHW
    np.testing.assert_allclose(_run(model, feeds), ref, rtol=1e-5, atol=1e-5)
    assert graph_passes.fuse_affine_chains(model) == 0  # idempotent


def test_fuse_affine_chain_on_a_vector_is_mul_add():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
    inits = [numpy_helper.from_array(np.array([0.1, -0.2], np.float32), "mean"),
             numpy_helper.from_array(np.array([0.5, 0.25], np.float32), "std")]
    nodes = [helper.make_node("Sub", ["x", "mean"], ["a"]), helper.make_node("Div", ["a", "std"], ["y"])]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], inits), opset_imports=OPSET17)
    feeds = {"x": np.array([[0.3, 0.7]], np.float32)}
    ref = _run(model, feeds)
    assert graph_passes.fuse_affine_chains(model) == 1
    assert [n.op_type for n in model.graph.node] == ["Mul", "Add"]
    np.testing.assert_allclose(_run(model, feeds), ref, rtol=1e-6)


def test_fold_conv_affine_matches_original():
    rng = np.random.default_rng(0)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])
    inits = [
        numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.uniform(0.5, 1.5, (1, 4, 1, 1)).astype(np.float32), "scale"),
        numpy_helper.from_array(rng.normal(size=(1, 4, 1, 1)).astype(np.float32), "shift"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Mul", ["c", "scale"], ["m"]),
        helper.make_node("Add", ["m", "shift"], ["y"]),
    ]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], inits), opset_imports=OPSET17)
    feeds = {"x": rng.normal(size=(1, 3, 8, 8)).astype(np.float32)}
    ref = _run(model, feeds)
    assert graph_passes.fold_conv_affine(model) == 2
    assert [n.op_type for n in model.graph.node] == ["Conv"]
    assert model.graph.node[0].name == "conv"
    np.testing.assert_allclose(_run(model, feeds), ref, rtol=1e-5, atol=1e-5)


def test_flatten_concats():
    a, b, c = (helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 2]) for n in "abc")
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 2])
    nodes = [helper.make_node("Concat", ["a", "b"], ["ab"], axis=0),
             helper.make_node("Concat", ["ab", "c"], ["y"], axis=0)]
    model = helper.make_model(helper.make_graph(nodes, "g", [a, b, c], [y]), opset_imports=OPSET17)
    assert graph_passes.flatten_concats(model) == 1
    assert [list(n.input) for n in model.graph.node] == [["a", "b", "c"]]


def test_check_graph_flags_dynamic_ops():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.INT64, [2])
    model = helper.make_model(helper.make_graph([helper.make_node("Shape", ["x"], ["y"])], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 18)])
    problems = " | ".join(graph_passes.check_graph(model))
    assert "Shape" in problems and "opset 18" in problems and "dynamic shape" in problems


def test_fold_scalar_mul_into_projection():
    """q * (1/sqrt(d)) after the head split folds into the projection weight and bias."""
    rng = np.random.default_rng(0)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [5, 1, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 5, 4])
    inits = [
        numpy_helper.from_array(rng.normal(size=(8, 8)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.normal(size=(8,)).astype(np.float32), "b"),
        numpy_helper.from_array(np.array([5, 1, 2, 4], np.int64), "shape"),
        numpy_helper.from_array(np.array([0.5], np.float32), "scale"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["m"], name="q_proj"),
        helper.make_node("Add", ["b", "m"], ["a"]),
        helper.make_node("Reshape", ["a", "shape"], ["r"]),
        helper.make_node("Transpose", ["r"], ["t"], perm=[1, 2, 0, 3]),
        helper.make_node("Mul", ["t", "scale"], ["y"]),
    ]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], inits), opset_imports=OPSET17)
    feeds = {"x": rng.normal(size=(5, 1, 8)).astype(np.float32)}
    ref = _run(model, feeds)
    assert graph_passes.fold_scalar_mul(model) == 1
    assert [n.op_type for n in model.graph.node] == ["MatMul", "Add", "Reshape", "Transpose"]
    assert model.graph.node[-1].output[0] == "y"
    np.testing.assert_allclose(_run(model, feeds), ref, rtol=1e-5, atol=1e-6)
