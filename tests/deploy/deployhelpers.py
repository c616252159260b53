"""Bundles for the deploy tests, made from the session's tiny export bundle."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from edgeact.bundle import read_manifest, write_manifest


def variant(bundle: Path, out: Path, note: str, model_bytes: bytes | None = None, extra_bytes: int = 0) -> Path:
    """A copy of ``bundle`` with a different manifest (so a different id), optionally with a replaced
    model.onnx (a model that does not load) or a file of random bytes (that no bundle on the Pi
    has, so it must be sent); hashes re-written."""
    shutil.copytree(bundle, out)
    manifest = read_manifest(out)
    manifest["source_checkpoint"] = note
    if extra_bytes:
        (out / "padding.bin").write_bytes(os.urandom(extra_bytes))
    if model_bytes is not None:
        (out / "model.onnx").write_bytes(model_bytes)
    write_manifest(out, manifest)
    return out


def current_of(root: Path) -> str | None:
    link = root / "current"
    return os.readlink(link) if link.is_symlink() else None


def bundle_dirs(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "bundles").iterdir() if not p.name.startswith("."))


def metadata(root: Path, name: str) -> dict:
    return json.loads((root / "bundles" / name / ".deploy.json").read_text())
