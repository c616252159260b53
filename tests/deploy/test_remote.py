"""The Pi-side snippets' plumbing: paths, hash lists, probe output (the snippets run in the ssh tests)."""

from __future__ import annotations

import hashlib
import subprocess

from edgeact.deploy.remote import HASHES, format_hashes, parse_probe


def test_hash_lists_match_what_the_pi_prints(tmp_path):
    files = {"model.onnx": b"onnx", "config.json": b"{}", "manifest.json": b"[]"}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / ".deploy.json").write_text("{}")  # ours, not the bundle's
    printed = subprocess.run(["sh", "-c", HASHES, "edgeact", str(tmp_path)], capture_output=True, text=True).stdout
    expected = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    assert printed.strip() == format_hashes(expected)


def test_probe_output():
    info = parse_probe("root=/home/pi/edgeact\nuser=pi\nrsync=/usr/bin/rsync\npython=/home/pi/edgeact/venv/bin/python\n"
                       "runtime=0.1.0\ncurrent=bundles/rover-abc\nmeta={\"backend\": \"onnx-int8\"}\n"
                       "hash=aa  ./model.onnx\nhash=bb  ./manifest.json\n")
    assert (info.root, info.user, info.has_rsync, info.runtime, info.current) == \
        ("/home/pi/edgeact", "pi", True, "0.1.0", "rover-abc")
    assert info.hashes == {"model.onnx": "aa", "manifest.json": "bb"}
    assert info.metadata == {"backend": "onnx-int8"}
    bare = parse_probe("root=/r\nuser=pi\nrsync=\npython=\ncurrent=\n")
    assert (bare.has_rsync, bare.current, bare.hashes, bare.runtime) == (False, None, None, "")
