"""Static int8: manifest entry, keep-float, targets, the accuracy figure, calibration frames."""

from __future__ import annotations

import shutil
import sys

import numpy as np
import onnx
import pytest

from edgeact.bundle import read_manifest, sha256_file
from edgeact.errors import QuantizeError
from edgeact.export.accuracy import from_errors
from edgeact.export.calibration import episode_observations, read_episodes
from edgeact.export.quantize_onnx import quantize_bundle


def test_onnx_int8_manifest_entry(quantized):
    path, result, _ = quantized
    m = read_manifest(path)
    entry = m["models"]["onnx-int8"]
    assert entry["file"] == "model.int8.onnx" and entry["format"] == "QDQ" and entry["per_channel"]
    assert entry["target"] == "pi5" and entry["scheme"] == "S8S8" and entry["activation_type"] == "int8"
    assert entry["keep_float"] == ["/policy/model/encoder/layers.0/linear1/MatMul"]
    fixed = entry["float_fixed"]  # input conversion, action head + un-normalization, attention softmax
    assert "/policy/model/action_head/MatMul" in fixed and any("Softmax" in n for n in fixed)
    assert any("BatchNormalization" in n for n in fixed)
    assert "/policy/model/encoder_robot_state_input_proj/Gemm" in fixed  # the 2-value state stays float
    assert entry["calibration"]["frames"] == 8 and "episode" in entry["calibration"]["source"]
    acc = entry["accuracy"]
    assert len(acc["mean_pct"]) == 2 and acc["frames"] == 6 and "held-out" in acc["source"]
    assert acc["worst_mean_pct"] < 10  # a random tiny model; the 2% bound is for trained policies
    assert m["files"]["model.int8.onnx"]["sha256"] == sha256_file(path / "model.int8.onnx")
    assert result.accuracy.mean_pct == acc["mean_pct"]


def test_keep_float_node_stays_float(quantized):
    path, _, _ = quantized
    model = onnx.load(str(path / "model.int8.onnx"))
    producers = {o: n for n in model.graph.node for o in n.output}
    inits = {t.name: t for t in model.graph.initializer}
    kept = next(n for n in model.graph.node if n.name == "/policy/model/encoder/layers.0/linear1/MatMul")
    weight = kept.input[1]
    assert weight in inits and inits[weight].data_type == onnx.TensorProto.FLOAT
    # (its activation input may come through a DequantizeLinear: the tensor is quantized for other users)
    # ... while the convolutions are quantized (int8 weights through DequantizeLinear)
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    assert producers[conv.input[1]].op_type == "DequantizeLinear"
    assert inits[producers[conv.input[1]].input[0]].data_type == onnx.TensorProto.INT8
    q_types = {inits[n.input[2]].data_type for n in model.graph.node if n.op_type == "QuantizeLinear"
               and len(n.input) > 2 and n.input[2] in inits}
    assert q_types == {onnx.TensorProto.INT8}  # S8S8 for the Pi


def test_x86_target_and_auto_keep(bundle, episodes, tmp_path):
    out = tmp_path / "b"
    shutil.copytree(bundle, out)
    result = quantize_bundle(out, episodes, frames=4, heldout=2, target="x86", auto_keep=1,
                             auto_keep_among=["*/decoder/*linear*", "*/encoder/*linear*"], sensitivity_frames=2,
                             log=lambda s: None)
    assert result.label == "U8S8"
    assert len(result.keep_float) == 1 and result.keep_float[0] == result.sensitivity[0][0]
    assert all(e >= 0 for _, e in result.sensitivity)
    assert [e for _, e in result.sensitivity] == sorted((e for _, e in result.sensitivity), reverse=True)
    entry = read_manifest(out)["models"]["onnx-int8"]
    assert entry["target"] == "x86" and entry["activation_type"] == "uint8"
    assert entry["sensitivity"][0]["node"] == result.keep_float[0]
    model = onnx.load(str(out / "model.int8.onnx"))
    inits = {t.name: t for t in model.graph.initializer}
    q_types = {inits[n.input[2]].data_type for n in model.graph.node if n.op_type == "QuantizeLinear"
               and len(n.input) > 2 and n.input[2] in inits}
    assert onnx.TensorProto.UINT8 in q_types


def test_unknown_keep_float_name_suggests(bundle, tmp_path):
    out = tmp_path / "b"
    shutil.copytree(bundle, out)
    with pytest.raises(QuantizeError, match="matches no node.*did you mean"):
        quantize_bundle(out, None, frames=2, heldout=1, keep_float=["/policy/model/encoder/layers.0/linear1/MatMull"],
                        log=lambda s: None)
    assert not (out / "model.int8.onnx").exists()


def test_quantize_needs_an_exported_bundle(tiny_ckpt):
    from edgeact.errors import BackendError

    with pytest.raises(BackendError, match="edgeact export"):
        quantize_bundle(tiny_ckpt, None, log=lambda s: None)


def test_accuracy_figure_is_mean_error_over_action_range():
    err = np.zeros((2, 3, 2))
    err[..., 0] = 0.02  # steering: 0.02 over a range of 2 -> 1%
    err[0, 0, 1] = 0.6  # throttle: one big error, range 0.5
    policy = {"action_names": ["steering", "throttle"], "action_dim": 2}
    e = from_errors(err, np.array([2.0, 0.5]), policy, 2, "test", "")
    assert e.mean_pct == pytest.approx([1.0, 0.6 / 0.5 * 100 / 6])
    assert e.first_step_pct == pytest.approx([1.0, 0.6 / 0.5 * 100 / 2])
    assert e.max_pct == pytest.approx([1.0, 120.0])
    assert not e.passed and "ABOVE" in e.format()


def test_torch_int8_entry(quantized):
    path, _, tresult = quantized
    entry = read_manifest(path)["models"]["torch-int8"]
    assert entry["file"] == "model.int8.torchscript.pt" and entry["format"] == "torchscript"
    assert entry["target"] == "pi5" and "dynamic int8 Linear" in entry["scheme"]
    assert tresult.accuracy.worst_mean_pct < 10


def test_torch_int8_file_needs_no_edgeact_code(quantized):
    """The TorchScript file runs with plain torch.jit.load, edgeact's model code not imported."""
    import subprocess

    path, _, _ = quantized
    code = (
        "import sys, torch, numpy as np\n"
        "m = torch.jit.load(sys.argv[1])\n"
        "out = m(torch.zeros(1, 64, 96, 3, dtype=torch.uint8), torch.zeros(1, 2))\n"
        "assert tuple(out.shape) == (1, 10, 2), out.shape\n"
        "assert not any(k.startswith('edgeact') for k in sys.modules), [k for k in sys.modules if 'edgeact' in k]\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(path / "model.int8.torchscript.pt")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ok" in done.stdout


def test_episode_frames_split_and_resize(episodes):
    calib, held = episode_observations(episodes, 5, 4, (64, 96), 2)
    assert calib.images[0].shape == (5, 64, 96, 3) and calib.images[0].dtype == np.uint8
    assert held.images[0].shape == (4, 64, 96, 3)
    assert "held-out" in held.source and "3 episode" in held.source


def test_calibration_episodes_state_is_previous_command(episodes):
    eps = read_episodes(episodes)
    assert len(eps) == 3
    np.testing.assert_array_equal(eps[0].states[0], [0, 0])
    np.testing.assert_allclose(eps[0].states[1:], eps[0].actions[:-1])
    assert eps[0].load_frame(0).shape == (72, 108, 3)
