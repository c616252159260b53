"""deploy / redeploy / rollback / list against a real sshd on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from deployhelpers import bundle_dirs, current_of, metadata, variant

from edgeact.deploy import pipeline
from edgeact.deploy.bundles import verify_local
from edgeact.errors import DeployError
from edgeact.ssh import SshSession, SshTarget


def session(pi) -> SshSession:
    return SshSession(SshTarget(pi.alias, config=pi.config))


def deploy(pi, root, bundle, **options):
    with session(pi) as s:
        report = pipeline.deploy_bundle(s, verify_local(bundle), pipeline.DeployOptions(root=str(root), **options),
                                        log=lambda _: None)
    return report, s.bytes_sent


def test_deploy_redeploy_sends_nothing_and_a_damaged_copy_is_sent_again(loopback_pi, pi_root, pi_bundle):
    first, first_bytes = deploy(loopback_pi, pi_root, pi_bundle)
    name = first.bundle_id
    assert current_of(pi_root) == f"bundles/{name}"
    assert sorted(p.name for p in (pi_root / "current").iterdir() if not p.name.startswith(".")) == \
        sorted(verify_local(pi_bundle).files)
    assert first.smoke["backend"] == "onnx" and first.smoke["latency_ms"] > 0
    assert metadata(pi_root, name)["backend"] == "onnx"
    assert first_bytes > verify_local(pi_bundle).total_bytes  # the bundle went over ssh

    stamp = (pi_root / "bundles" / name / ".deploy.json").stat().st_mtime_ns
    again, again_bytes = deploy(loopback_pi, pi_root, pi_bundle)
    assert again.sent_files == [] and again.smoke is None
    assert again_bytes < 20_000  # the Pi's hashes and a few scripts, not the bundle
    assert (pi_root / "bundles" / name / ".deploy.json").stat().st_mtime_ns == stamp

    (pi_root / "bundles" / name / "model.onnx").write_bytes(b"bit rot")  # on the Pi's SD card
    repaired, _ = deploy(loopback_pi, pi_root, pi_bundle)
    assert repaired.sent_files and current_of(pi_root) == f"bundles/{name}"
    assert (pi_root / "bundles" / name / "model.onnx").read_bytes() == (pi_bundle / "model.onnx").read_bytes()


def test_second_bundle_rollback_list_and_keep(loopback_pi, pi_root, pi_bundle, tmp_path):
    first = deploy(loopback_pi, pi_root, pi_bundle)[0].bundle_id
    second_bundle = variant(pi_bundle, tmp_path / "second", "second")
    report, sent = deploy(loopback_pi, pi_root, second_bundle)
    second = report.bundle_id
    assert sent < 200_000  # only manifest.json differs: the rest is copied from the current bundle on the Pi
    assert first != second and current_of(pi_root) == f"bundles/{second}"

    with session(loopback_pi) as s:
        info, listed = pipeline.list_bundles(s, str(pi_root))
        assert [(b["name"], b["current"]) for b in listed] == [(second, True), (first, False)]
        assert "* " in pipeline.format_list(info, listed)
        config = pi_root / "bundles" / first / "config.json"
        config.write_text("{}")  # changed on the Pi since it was deployed: refused
        with pytest.raises(DeployError, match=r"config.json \(sha256 differs\)"):
            pipeline.rollback(s, str(pi_root), log=lambda _: None)
        assert current_of(pi_root) == f"bundles/{second}"
        config.write_bytes((pi_bundle / "config.json").read_bytes())
        was, now = pipeline.rollback(s, str(pi_root), log=lambda _: None)
    assert (was, now) == (second, first)
    assert current_of(pi_root) == f"bundles/{first}"
    with session(loopback_pi) as s, pytest.raises(DeployError, match="oldest bundle"):
        pipeline.rollback(s, str(pi_root), log=lambda _: None)

    # --keep 2: the oldest deploy goes, whichever bundle was current before
    third = deploy(loopback_pi, pi_root, variant(pi_bundle, tmp_path / "third", "third"), keep=2)[0].bundle_id
    assert bundle_dirs(pi_root) == sorted([second, third]) and current_of(pi_root) == f"bundles/{third}"


def test_a_copy_changed_in_transit_or_a_model_that_does_not_load_never_becomes_current(
        loopback_pi, pi_root, pi_bundle, tmp_path, monkeypatch):
    first = deploy(loopback_pi, pi_root, pi_bundle)[0].bundle_id

    broken = variant(pi_bundle, tmp_path / "broken", "broken", model_bytes=b"not an onnx model")
    with pytest.raises(DeployError, match="smoke check on .* failed, so broken-.* was not made current"):
        deploy(loopback_pi, pi_root, broken)
    assert current_of(pi_root) == f"bundles/{first}"
    assert bundle_dirs(pi_root) == [first]

    real_send = SshSession.send

    def corrupting_send(self, local_dir, names, remote_dir, **kw):
        real_send(self, local_dir, names, remote_dir, **kw)
        (pi_root / "bundles" / os.path.basename(remote_dir) / "config.json").write_text("{}")

    monkeypatch.setattr(SshSession, "send", corrupting_send)
    with pytest.raises(DeployError, match=r"after the copy, config.json \(sha256 differs\)"):
        deploy(loopback_pi, pi_root, variant(pi_bundle, tmp_path / "second", "second"))
    assert current_of(pi_root) == f"bundles/{first}"
    assert bundle_dirs(pi_root) == [first]
    assert not [p for p in (pi_root / "bundles").iterdir() if p.name.startswith(".incoming-")]


def test_an_interrupted_copy_leaves_current_and_resumes(loopback_pi, pi_root, pi_bundle, tmp_path):
    first = deploy(loopback_pi, pi_root, pi_bundle)[0].bundle_id
    big = variant(pi_bundle, tmp_path / "big", "big", extra_bytes=4_000_000)
    cmd = [sys.executable, "-m", "edgeact.cli", "deploy", str(big), loopback_pi.alias, "--ssh-config",
           str(loopback_pi.config), "--remote-dir", str(pi_root), "--bwlimit", "200"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    incoming = pi_root / "bundles" / f".incoming-{verify_local(big).bundle_id}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if incoming.is_dir() and any(incoming.iterdir()):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the copy ended before it could be interrupted"
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # the laptop dies mid-copy, ssh master and rsync with it
    proc.wait()
    assert current_of(pi_root) == f"bundles/{first}"
    assert bundle_dirs(pi_root) == [first]
    assert verify_local(pi_root / "current").files == verify_local(pi_bundle).files  # intact

    report, _ = deploy(loopback_pi, pi_root, big)
    assert current_of(pi_root) == f"bundles/{report.bundle_id}" and not incoming.exists()


def hailo_variant(pi_bundle, tmp_path, boards=("hailo8l", "hailo10h")):
    """The bundle with a Hailo part in its sub-folders (a HEF per board), as `edgeact hailo compile` leaves it."""
    import shutil

    from edgeact.bundle import read_manifest, write_manifest

    out = tmp_path / "rover-hailo"
    shutil.copytree(pi_bundle, out)
    manifest = read_manifest(out)
    hefs = {}
    for board in boards:
        hef = out / "hailo" / "split" / board / "model.hef"
        hef.parent.mkdir(parents=True)
        hef.write_bytes(board.encode() * 1000)
        hefs[board] = {"file": f"hailo/split/{board}/model.hef", "precision": "a16_w16", "dfc_version": "3.33.1",
                       "hailort": "4.23"}
    manifest["models"]["hailo-split"] = {"hefs": hefs}
    write_manifest(out, manifest)
    return out


def test_a_bundle_with_a_hailo_part_is_sent_with_its_folders_and_verified_on_the_pi(loopback_pi, pi_root, pi_bundle,
                                                                                   tmp_path):
    bundle = hailo_variant(pi_bundle, tmp_path)
    local = verify_local(bundle)
    assert local.hefs == {"hailo-split": ("hailo8l", "hailo10h")}
    first, _ = deploy(loopback_pi, pi_root, bundle, backend="onnx")  # this "Pi" has no Hailo device
    for board in ("hailo8l", "hailo10h"):
        assert (pi_root / "current" / "hailo/split" / board / "model.hef").read_bytes() == board.encode() * 1000
    again, sent = deploy(loopback_pi, pi_root, bundle, backend="onnx")
    assert again.sent_files == [] and again.previous == first.bundle_id  # hashed on the Pi, sub-folders included


def test_the_backend_follows_the_pis_board(pi_bundle, tmp_path):
    from edgeact.deploy.bundles import choose_backend

    local = verify_local(hailo_variant(pi_bundle, tmp_path, boards=("hailo8l",)))
    assert choose_backend(local, None, "HAILO8L") == "hailo-split"
    assert choose_backend(local, None, "HAILO8") == "hailo-split"  # a hailo8l HEF runs on a Hailo-8
    assert choose_backend(local, None, "HAILO10H") == "onnx"  # no HEF for it: the CPU model
    assert choose_backend(local, None, None) == "onnx"
    with pytest.raises(DeployError, match=r"none that runs on the Pi's AI HAT\+ 2.*--hw-arch hailo10h.*DFC 5.x"):
        choose_backend(local, "hailo-split", "HAILO10H")


def test_without_a_hailo_device_the_fastest_cpu_model_for_the_pis_cpu():
    from pathlib import Path

    from edgeact.deploy.bundles import LocalBundle, choose_backend

    local = LocalBundle(Path("b"), {}, ("onnx", "onnx-int8", "litert", "litert-fp16", "litert-int8"))
    assert choose_backend(local, None, None, "aarch64") == "litert-int8"  # a Pi 5: XNNPACK's int8 (docs/PI5.md)
    assert choose_backend(local, None, None, "x86_64") == "onnx-int8"  # a loopback "Pi" in the tests
    assert choose_backend(LocalBundle(Path("b"), {}, ("onnx", "onnx-int8")), None, None, "aarch64") == "onnx-int8"
