"""The LiteRT backends: agreement with ONNX Runtime, torch-free, auto's choice, a clear error without LiteRT."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from edgeact import load_policy
from edgeact.errors import BackendError

pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is a dev dependency (pip install -e '.[dev]')")
LITERT = ("litert", "litert-fp16", "litert-int8")


@pytest.mark.parametrize("name", LITERT)
def test_agrees_with_onnx_fp32(name, litert_quantized):
    from edgeact.export.calibration import synthetic_frames

    onnx_backend = load_policy(str(litert_quantized), backend="onnx")
    backend = load_policy(str(litert_quantized), backend=name, threads=1)
    assert backend.name == name and backend.spec == onnx_backend.spec
    for frame in synthetic_frames(3, (64, 96), seed=5):
        state = np.array([0.3, -0.2], np.float32)
        got, want = backend.predict_chunk(frame, state), onnx_backend.predict_chunk(frame, state)
        assert got.shape == (10, 2) and got.dtype == np.float32
        bound = 1e-4 if name == "litert" else 0.02 * 1.8  # 2 % of the ~1.8 action range
        assert np.abs(got - want).mean() <= bound
    backend.close()


def test_litert_backends_do_not_import_torch(litert_quantized):
    from without_torch import predict_without_torch

    done = predict_without_torch(litert_quantized, LITERT, (64, 96, 3), (10, 2))
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-2000:]


def test_without_litert_auto_falls_back_and_asking_says_how_to_install(litert_quantized):
    from without_torch import run_without

    code = (
        "import platform, edgeact\n"
        "platform.machine = lambda: 'aarch64'\n"
        "from edgeact.errors import BackendError\n"
        "assert edgeact.load_policy(sys.argv[1]).name == 'onnx-int8'\n"
        "try:\n"
        "    edgeact.load_policy(sys.argv[1], backend='litert-int8')\n"
        "except BackendError as err:\n"
        "    assert 'pip install' in str(err) and 'edgeact[litert]' in str(err), err\n"
        "    print('ok')\n"
    )
    done = run_without(code, str(litert_quantized), blocked=("torch", "ai_edge_litert"))
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-2000:]


def test_auto_picks_litert_int8_on_arm64_and_onnx_int8_on_x86(litert_quantized, monkeypatch):
    import platform

    from edgeact.backends.registry import default_backend

    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    assert default_backend(litert_quantized) == "litert-int8"
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    assert default_backend(litert_quantized) == "onnx-int8"


def test_corrupt_model_is_refused(litert_quantized, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(litert_quantized, copy)
    (copy / "model.litert-int8.tflite").write_bytes(b"not a model")
    with pytest.raises(BackendError, match="sha256"):
        load_policy(str(copy), backend="litert-int8")
    with pytest.raises(BackendError, match="LiteRT cannot load"):
        load_policy(str(copy), backend="litert-int8", verify=False)
