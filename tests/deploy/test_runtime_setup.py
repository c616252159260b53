"""`--setup`: what it installs and how it builds the wheel (the install itself: tests/test_journey.py)."""

from __future__ import annotations

import zipfile

from edgeact.deploy.runtime_setup import requirements_for, wheel_digest


def test_requirements_follow_the_backend_and_hailort():
    assert requirements_for("onnx-int8", hailo=False) == ()
    assert requirements_for("onnx", hailo=True) == ("numpy<2",)
    assert requirements_for("hailo-split", True, "4.23.0", "3.13") == ("numpy<2",)  # 4.x pins it everywhere
    assert requirements_for("hailo-split", True, "5.2.0", "3.11") == ("numpy<2",)  # 5.x below Python 3.13
    assert requirements_for("hailo-split", True, "5.2.0", "3.13") == ()  # Raspberry Pi OS trixie + AI HAT+ 2
    (torch,) = requirements_for("torch-int8", hailo=False)
    assert torch.startswith("torch") and "<2.14" in torch  # pyproject's pin, not an open range


def test_wheel_digest_ignores_zip_timestamps(tmp_path):
    def wheel(name, stamp, body=b"print(1)\n"):
        with zipfile.ZipFile(tmp_path / name, "w") as zf:
            zf.writestr(zipfile.ZipInfo("edgeact/__init__.py", date_time=stamp), body)
        return tmp_path / name

    a = wheel("a.whl", (2024, 1, 1, 0, 0, 0))
    assert wheel_digest(a) == wheel_digest(wheel("b.whl", (2025, 6, 1, 12, 0, 0)))
    assert wheel_digest(a) != wheel_digest(wheel("c.whl", (2024, 1, 1, 0, 0, 0), b"print(2)\n"))


# `--setup` into a fresh venv on the loopback "Pi" (from PyPI), no torch there, `edgeact drive` and
# `edgeact run` driving there, and a second `--setup` that changes nothing: tests/test_journey.py,
# which needs that venv anyway (one install per CI run instead of two).


def test_hailort_on_the_pi_is_found(tmp_path):
    """The snippet --setup runs first, here with a stand-in `hailortcli` on the PATH."""
    import os
    import subprocess

    from edgeact.deploy.runtime_setup import CHECK

    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "hailortcli").write_text("#!/bin/sh\necho 'HailoRT-CLI version 4.20.0'\n")
    (tmp_path / "bin" / "hailortcli").chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"}
    out = subprocess.run(["sh", "-c", CHECK, "edgeact", str(tmp_path)], env=env, capture_output=True, text=True)
    assert "hailo=yes" in out.stdout.splitlines() and "python=/usr/bin/python3" in out.stdout
    out = subprocess.run(["sh", "-c", CHECK, "edgeact", str(tmp_path)], env={**env, "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True)
    assert "hailo=no" in out.stdout.splitlines()


def test_the_wheel_holds_exactly_the_source_tree(tmp_path):
    import shutil

    from edgeact.deploy.runtime_setup import build_wheel, source_tree

    root = source_tree()
    assert root is not None, "the tests run from an editable install"
    had_build = (root / "build").exists()
    stale = root / "build" / "lib" / "edgeact" / "stale_module.py"  # what an old build leaves behind
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_text("")
    try:
        wheel = build_wheel(tmp_path, log=lambda _: None)
    finally:
        stale.unlink()
        if not had_build:
            shutil.rmtree(root / "build")
    with zipfile.ZipFile(wheel) as zf:
        modules = {n for n in zf.namelist() if n.startswith("edgeact/") and n.endswith(".py")}
        assert "edgeact/deploy/templates/edgeact.service" in zf.namelist()
    expected = {str(p.relative_to(root / "src")) for p in (root / "src" / "edgeact").rglob("*.py")}
    assert modules == expected
