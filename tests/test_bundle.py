"""manifest.json: contents, hashes, and the errors a damaged bundle gives."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest

from edgeact import __version__, load_policy
from edgeact.bundle import MANIFEST_NAME, read_manifest
from edgeact.errors import BackendError


def test_manifest_contents(bundle):
    m = read_manifest(bundle)
    assert m["format"] == "edgeact-bundle" and m["edgeact_version"] == __version__
    p = m["policy"]
    assert p["camera_names"] == ["cam_front"] and p["image_size"] == [64, 96]
    assert p["channel_order"] == "RGB" and p["layout"] == "NHWC"
    assert p["fps"] == 20 and p["action_names"] == ["steering", "throttle"]
    assert p["chunk_size"] == 10 and p["state_dim"] == 2 and p["action_dim"] == 2
    assert p["gflops"] > 0
    assert len(p["action_range"]["min"]) == 2
    assert m["inputs"] == [
        {"name": "image", "camera": "cam_front", "dtype": "uint8", "shape": [1, 64, 96, 3], "layout": "NHWC",
         "channel_order": "RGB", "range": [0, 255]},
        {"name": "state", "dtype": "float32", "shape": [1, 2], "units": "raw (unnormalized)"},
    ]
    assert m["outputs"][0]["name"] == "actions" and m["outputs"][0]["shape"] == [1, 10, 2]
    onnx_entry = m["models"]["onnx"]
    assert onnx_entry["file"] == "model.onnx" and onnx_entry["opset"] == 17
    assert onnx_entry["parity"]["max_abs_diff"] <= 1e-4
    assert onnx_entry["graph_problems"] == []
    assert onnx_entry["op_counts"]["Concat"] == 1


def test_manifest_hashes_every_file(bundle):
    m = read_manifest(bundle)
    files = {p.name for p in bundle.iterdir() if p.name != MANIFEST_NAME}
    assert set(m["files"]) == files
    assert {"config.json", "model.safetensors", "model.onnx", "policy_preprocessor.json",
            "policy_postprocessor.json", "edgeact.json"} <= files
    for name, entry in m["files"].items():
        data = (bundle / name).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["bytes"] == len(data)


def test_bundle_loads_in_torch_backend(bundle, tiny_ckpt):
    frame = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    state = np.array([0.2, 0.4], np.float32)
    a = load_policy(str(bundle), backend="torch")
    b = load_policy(str(tiny_ckpt), backend="torch")
    assert a.spec.fps == 20
    np.testing.assert_array_equal(a.predict_chunk(frame, state), b.predict_chunk(frame, state))


def test_corrupted_model_onnx_is_a_clear_error(bundle, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(bundle, damaged)
    data = (damaged / "model.onnx").read_bytes()
    (damaged / "model.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(BackendError, match="does not match the sha256.*corrupt"):
        load_policy(str(damaged), backend="onnx")
    # without the hash check ONNX Runtime's own failure is wrapped, naming the file and the fix
    with pytest.raises(BackendError, match="cannot load .*model.onnx.*edgeact export"):
        load_policy(str(damaged), backend="onnx", verify=False)


def test_missing_model_file_is_a_clear_error(bundle, tmp_path):
    damaged = tmp_path / "nofile"
    shutil.copytree(bundle, damaged)
    (damaged / "model.onnx").unlink()
    with pytest.raises(BackendError, match="missing.*edgeact export"):
        load_policy(str(damaged), backend="onnx")


def test_not_a_bundle(tiny_ckpt, tmp_path):
    with pytest.raises(BackendError, match="not an edgeact export bundle.*edgeact export --checkpoint"):
        load_policy(str(tiny_ckpt), backend="onnx")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / MANIFEST_NAME).write_text("{not json")
    from edgeact.errors import CheckpointError

    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_policy(str(bad), backend="onnx")
