import json

import pytest

from edgeact.deploy import deploy, plan_deploy
from edgeact.errors import EdgeactError


def make_bundle(folder):
    from edgeact.bundle import new_manifest, write_manifest

    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"onnx bytes")
    manifest = new_manifest({}, [], [], source="test")
    manifest["models"] = {"onnx": {"file": "model.onnx"}}
    write_manifest(folder, manifest)
    return folder


def test_dry_run_copies_the_bundle_and_says_how_to_run(tmp_path):
    bundle = make_bundle(tmp_path / "bundle")
    lines = []
    plan = plan_deploy(bundle, "pi@raspberrypi", dest="rover")
    deploy(plan, dry_run=True, log=lines.append)
    text = "\n".join(lines)
    assert "ssh pi@raspberrypi 'mkdir -p rover'" in text
    assert "pi@raspberrypi:rover/" in text
    assert "edgeact run --model rover --backend onnx" in text


def test_a_file_changed_after_export_is_refused(tmp_path):
    bundle = make_bundle(tmp_path / "bundle")
    (bundle / "model.onnx").write_bytes(b"tampered")
    with pytest.raises(EdgeactError, match="changed after export"):
        plan_deploy(bundle, "pi@raspberrypi")


def test_not_a_bundle(tmp_path):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps({}))
    with pytest.raises(EdgeactError, match="edgeact export"):
        plan_deploy(tmp_path / "ckpt", "pi@raspberrypi")
