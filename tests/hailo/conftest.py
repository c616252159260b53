"""Fixtures for the Hailo tests: the doubles of hailo_platform / hailo_sdk_client, injected through
sys.modules, and a tiny bundle with both Hailo parts exported."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "doubles"))

import dfc_double
import hailort_double
from hailohelpers import DFC_FOR, compiled_copy


@pytest.fixture
def hailort(monkeypatch):
    """install(devices=[(id, arch)], version=..., infer_model_api=...) -> the hailo_platform double in sys.modules."""

    def install(**options):
        module = hailort_double.make_module(**options)
        monkeypatch.setitem(sys.modules, "hailo_platform", module)
        monkeypatch.setitem(sys.modules, "hailo_platform.pyhailort", module.pyhailort)
        monkeypatch.setitem(sys.modules, "hailo_platform.pyhailort.pyhailort", module.pyhailort.pyhailort)
        return module

    return install


@pytest.fixture
def no_hailort(monkeypatch):
    """hailo_platform not importable, even where a real one is installed."""
    monkeypatch.setitem(sys.modules, "hailo_platform", None)


@pytest.fixture
def dfc(monkeypatch):
    """The DFC 3.x double (Hailo-8/8L) in sys.modules."""
    module = dfc_double.make_module()
    monkeypatch.setitem(sys.modules, "hailo_sdk_client", module)
    return module


@pytest.fixture
def dfc5(monkeypatch):
    """The DFC 5.x double (Hailo-10H) in sys.modules."""
    module = dfc_double.make_module(version="5.2.0")
    monkeypatch.setitem(sys.modules, "hailo_sdk_client", module)
    return module


@pytest.fixture(scope="session")
def every_board(hailo_exported, tmp_path_factory):
    """A copy of the exported bundle with both parts compiled (a16_w16) for hailo8l, hailo8 and hailo10h."""
    return compiled_copy(hailo_exported, tmp_path_factory,
                         [(mode, hw_arch, "a16_w16") for mode in ("split", "full") for hw_arch in DFC_FOR])


@pytest.fixture
def no_dfc(monkeypatch):
    monkeypatch.setitem(sys.modules, "hailo_sdk_client", None)


@pytest.fixture(scope="session")
def hailo_exported(bundle, episodes, tmp_path_factory):
    """A copy of the tiny bundle with hailo/split and hailo/full exported, and their calibration files."""
    from edgeact.hailo.calib import build_calibration, save_calibration
    from edgeact.hailo.export import export_hailo

    root = tmp_path_factory.mktemp("hailo")
    out = root / "bundle"
    shutil.copytree(bundle, out)
    results = {mode: export_hailo(out, mode, frames=episodes, log=lambda s: None) for mode in ("split", "full")}
    calib = {
        mode: save_calibration(
            build_calibration(out, episodes, 32, mode, log=lambda s: None), root / f"calib_{mode}.npy"
        )
        for mode in ("split", "full")
    }
    return out, results, calib


@pytest.fixture
def hailo_bundle(hailo_exported, tmp_path) -> tuple[Path, dict]:
    """A private copy (tests that compile write into it)."""
    src, _, calib = hailo_exported
    out = tmp_path / "bundle"
    shutil.copytree(src, out)
    return out, calib
