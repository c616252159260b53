"""Every backend behind one protocol: same shapes and units, agreement with torch, clear errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from edgeact import load_policy
from edgeact.backends.registry import BACKENDS
from edgeact.errors import BackendError, InputError
from edgeact.policy import Backend

CPU_BACKENDS = ("torch", "onnx", "onnx-int8", "torch-int8")


@pytest.fixture(scope="module")
def observations():
    from edgeact.export.calibration import synthetic_frames

    rng = np.random.default_rng(3)
    frames = synthetic_frames(4, (64, 96), seed=42)
    return [(f, rng.uniform(-0.8, 0.8, 2).astype(np.float32)) for f in frames]


@pytest.fixture(scope="module")
def reference(quantized, observations):
    path, _, _ = quantized
    torch_backend = load_policy(str(path), backend="torch")
    return np.stack([torch_backend.predict_chunk(f, s) for f, s in observations])


@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_shapes_units_and_agreement(name, quantized, observations, reference):
    path, _, _ = quantized
    backend = load_policy(str(path), backend=name)
    assert isinstance(backend, Backend) and backend.name == name
    assert backend.spec.image_size == (64, 96) and backend.spec.chunk_size == 10 and backend.spec.fps == 20
    out = np.stack([backend.predict_chunk(f, s) for f, s in observations])
    assert out.shape == (4, 10, 2) and out.dtype == np.float32
    # real units: un-normalized with the action stats, so not centred on 0 with unit spread
    err = np.abs(out - reference)
    if name in ("torch", "onnx"):
        assert err.max() <= 1e-4
    else:
        span = np.array([1.8, 1.8])  # action range of the random stats is about [-0.9, 0.9]
        assert (err.mean(axis=(0, 1)) / span).max() < 0.05
    backend.close()


def test_frames_as_dict_and_input_errors(quantized, observations):
    path, _, _ = quantized
    backend = load_policy(str(path), backend="onnx")
    frame, state = observations[0]
    by_name = backend.predict_chunk({"cam_front": frame}, state)
    np.testing.assert_array_equal(by_name, backend.predict_chunk(frame, state))
    with pytest.raises(InputError, match="does not match"):
        backend.predict_chunk(frame[:32], state)
    with pytest.raises(InputError, match="uint8"):
        backend.predict_chunk(frame.astype(np.float32), state)
    with pytest.raises(InputError, match="state has 3 values"):
        backend.predict_chunk(frame, np.zeros(3, np.float32))


def test_unknown_backend_names_the_choices(quantized):
    path, _, _ = quantized
    with pytest.raises(BackendError, match="unknown backend 'onnx-fp16'.*onnx-int8.*torch-int8"):
        load_policy(str(path), backend="onnx-fp16")
    assert {"torch", "onnx", "onnx-int8", "torch-int8"} <= set(BACKENDS)


@pytest.mark.parametrize("name", ["onnx-int8", "torch-int8"])
def test_int8_before_quantize_says_run_quantize(name, bundle):
    with pytest.raises(BackendError, match=f"has no {name} model.*edgeact quantize"):
        load_policy(str(bundle), backend=name)


def test_corrupted_int8_file(quantized, tmp_path):
    path, _, _ = quantized
    damaged = shutil.copytree(path, tmp_path / "damaged")
    (damaged / "model.int8.torchscript.pt").write_bytes(b"not a zip")
    with pytest.raises(BackendError, match="corrupt"):
        load_policy(str(damaged), backend="torch-int8")
    with pytest.raises(BackendError, match="cannot load.*edgeact quantize"):
        load_policy(str(damaged), backend="torch-int8", verify=False)


def test_onnx_session_settings(quantized):
    from edgeact.cpu import physical_cores, session_options

    path, _, _ = quantized
    backend = load_policy(str(path), backend="onnx")
    assert backend.threads == physical_cores() >= 1
    opts = session_options(3, spin=False)
    assert opts.intra_op_num_threads == 3 and opts.inter_op_num_threads == 1
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    import onnxruntime as ort

    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert load_policy(str(path), backend="onnx", threads=1).threads == 1


def test_onnx_backends_do_not_import_torch(quantized):
    """The Pi runs ONNX backends with numpy + onnxruntime only."""
    from without_torch import predict_without_torch

    done = predict_without_torch(quantized[0], ("onnx", "onnx-int8"), (64, 96, 3), (10, 2))
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-2000:]


def test_torch_int8_runs_on_the_pi_engine(quantized, observations):
    """The Pi's PyTorch uses QNNPACK; the same file re-packs its weights for it at load."""
    import torch

    if "qnnpack" not in torch.backends.quantized.supported_engines:
        pytest.skip("this PyTorch build has no QNNPACK")
    path, _, _ = quantized
    pi = load_policy(str(path), backend="torch-int8", engine="qnnpack")
    try:
        here = load_policy(str(path), backend="torch-int8")
        frame, state = observations[0]
        a, b = pi.predict_chunk(frame, state), here.predict_chunk(frame, state)
        assert a.shape == (10, 2) and np.abs(a - b).mean() < 0.02
    finally:
        from edgeact.cpu import host_engine

        torch.backends.quantized.engine = host_engine()


def test_auto_picks_int8_then_onnx_then_torch(bundle, quantized, tiny_ckpt):
    import edgeact

    assert edgeact.load_policy(str(quantized[0])).name == "onnx-int8"
    assert edgeact.load_policy(str(bundle)).name == "onnx"
    assert edgeact.load_policy(str(tiny_ckpt)).name == "torch"
