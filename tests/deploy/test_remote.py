"""The Pi-side snippets' plumbing: paths, hash lists, probe output (the snippets run in the ssh tests)."""

from __future__ import annotations

import hashlib
import subprocess

import pytest

from edgeact.deploy.remote import HASHES, format_hashes, parse_probe


@pytest.mark.parametrize("coreutils", [True, False])
def test_hash_lists_match_what_the_pi_prints(tmp_path_factory, coreutils):
    tmp_path = tmp_path_factory.mktemp("bundle")
    files = {"model.onnx": b"onnx", "config.json": b"{}", "manifest.json": b"[]",
             "hailo/split/hailo8l/model.hef": b"hef", "hailo/split/host.onnx": b"host"}  # a Hailo part's folders
    for name, data in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    (tmp_path / ".deploy.json").write_text("{}")  # ours, not the bundle's
    (tmp_path / ".incoming" / "x").mkdir(parents=True)
    (tmp_path / ".incoming" / "x" / "partial").write_text("rsync's")
    env = None if coreutils else {"PATH": str(_without_sha256sum(tmp_path_factory.mktemp("bin")))}
    printed = subprocess.run(["/bin/sh", "-c", HASHES, "edgeact", str(tmp_path)], capture_output=True, text=True,
                             env=env).stdout
    expected = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    assert printed.strip() == format_hashes(expected)


def _without_sha256sum(folder):
    """A PATH with the tools the snippet needs but no sha256sum (the python3 fallback)."""
    import shutil

    for tool in ("python3", "sort", "sed", "find"):
        (folder / tool).symlink_to(shutil.which(tool))
    return folder


def test_probe_output():
    info = parse_probe("root=/home/pi/edgeact\nuser=pi\nmachine=aarch64\nrsync=/usr/bin/rsync\n"
                       "python=/home/pi/edgeact/venv/bin/python\n"
                       "runtime=0.1.0\ncurrent=bundles/rover-abc\nmeta={\"backend\": \"onnx-int8\"}\n"
                       "hash=aa  ./model.onnx\nhash=bb  ./manifest.json\n")
    assert (info.root, info.user, info.has_rsync, info.runtime, info.current) == \
        ("/home/pi/edgeact", "pi", True, "0.1.0", "rover-abc")
    assert info.hashes == {"model.onnx": "aa", "manifest.json": "bb"}
    assert info.metadata == {"backend": "onnx-int8"} and info.machine == "aarch64"
    bare = parse_probe("root=/r\nuser=pi\nrsync=\npython=\ncurrent=\n")
    assert (bare.has_rsync, bare.current, bare.hashes, bare.runtime) == (False, None, None, "")
    assert bare.hailo_device is None


def test_the_pis_hailo_board_from_the_probe():
    base = "root=/r\nuser=pi\nrsync=\npython=\ncurrent=\n"
    assert parse_probe(base + "hailo_pci=0x2864\nhailo_arch=HAILO8\n").hailo_device == "HAILO8"  # identify says
    assert parse_probe(base + "hailo_pci=0x2864\n").hailo_device == "HAILO8L"  # 8 or 8L: the HEF must run on an 8L
    assert parse_probe(base + "hailo_pci=0x45c4\nhailo_arch=\n").hailo_device == "HAILO10H"


def test_the_probe_snippet_reads_hailortcli(tmp_path):
    import os

    from edgeact.deploy.remote import PROBE

    (tmp_path / "bin").mkdir()
    cli = tmp_path / "bin" / "hailortcli"
    cli.write_text("#!/bin/sh\nprintf 'Identifying board\\nDevice Architecture: HAILO10H\\nSerial Number: N/A\\n'\n")
    cli.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}
    out = subprocess.run(["sh", "-c", PROBE, "edgeact", str(tmp_path / "root")], env=env, capture_output=True,
                         text=True, check=True).stdout
    assert parse_probe(out).hailo_device == "HAILO10H"
