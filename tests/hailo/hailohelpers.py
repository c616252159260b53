"""Helpers for the Hailo tests (the doubles live in doubles/)."""

from __future__ import annotations

import sys

import dfc_double

DFC_FOR = {"hailo8l": "3.33.1", "hailo8": "3.33.1", "hailo10h": "5.2.0"}


def compile_for(monkeypatch, bundle, calib, hw_arch, precision="a8_w8", mode="split", dfc=None):
    """Compile ``bundle``'s ``mode`` part for one board with the DFC double of that board's major
    (``dfc``: that DFC version instead of the latest)."""
    from edgeact.hailo.compile import compile_bundle

    monkeypatch.setitem(sys.modules, "hailo_sdk_client", dfc_double.make_module(version=dfc or DFC_FOR[hw_arch]))
    return compile_bundle(bundle, calib, precision, hw_arch, mode=mode, log=lambda s: None)


def compiled_copy(hailo_exported, tmp_path_factory, builds):
    """A copy of the exported bundle compiled for each (mode, hw_arch, precision) of ``builds``."""
    import shutil

    import pytest

    src, _, calib = hailo_exported
    out = tmp_path_factory.mktemp("compiled") / "bundle"
    shutil.copytree(src, out)
    with pytest.MonkeyPatch.context() as mp:
        for mode, hw_arch, precision in builds:
            compile_for(mp, out, calib[mode], hw_arch, precision, mode)
    return out
