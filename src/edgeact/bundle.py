"""The export bundle: its file names and ``manifest.json`` (what each model file takes and gives,
and its hash), and the :class:`PolicySpec` a manifest describes. Neutral: the exporter writes
bundles, the backends read them, and neither imports the other.

Readable with the standard library alone (the Pi loads ONNX backends without torch)::

    {
      "format": "edgeact-bundle", "format_version": 1, "edgeact_version": "0.1.0",
      "policy": {"camera_names": ["cam_front"], "image_size": [360, 640], "channel_order": "RGB",
                 "layout": "NHWC", "state_dim": 2, "action_dim": 2, "chunk_size": 100,
                 "fps": 30.0, "action_names": ["steering", "throttle"],
                 "action_range": {"min": [...], "max": [...]}},
      "inputs":  [{"name": "image", "camera": "cam_front", "dtype": "uint8", "shape": [1, 360, 640, 3]},
                  {"name": "state", "dtype": "float32", "shape": [1, 2]}],
      "outputs": [{"name": "actions", "dtype": "float32", "shape": [1, 100, 2]}],
      "models": {"onnx": {"file": "model.onnx", ...}, "onnx-int8": {...}, "torch-int8": {...}},
      "files": {"model.onnx": {"sha256": "...", "bytes": 123}, "config.json": {...}, ...}
    }
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from edgeact.errors import BackendError, CheckpointError
from edgeact.fileio import atomic_write_json
from edgeact.policy import PolicySpec
from edgeact.version import __version__

MANIFEST_NAME = "manifest.json"
FORMAT = "edgeact-bundle"
FORMAT_VERSION = 1
ONNX_FP32_NAME = "model.onnx"
ONNX_INT8_NAME = "model.int8.onnx"
TORCH_INT8_NAME = "model.int8.torchscript.pt"
# backend -> file of the LiteRT (XNNPACK) models for the Pi 5's CPU
LITERT_MODELS = {"litert": "model.litert.tflite", "litert-fp16": "model.litert-fp16.tflite",
                 "litert-int8": "model.litert-int8.tflite"}


def sha256_file(path: Path, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def file_entry(path: Path) -> dict[str, Any]:
    return {"sha256": sha256_file(path), "bytes": path.stat().st_size}


def hash_files(folder: Path) -> dict[str, dict[str, Any]]:
    """sha256 and size of every file in the bundle except the manifest itself, keyed by path
    relative to the bundle (``hailo/model.hef`` for the Hailo part's sub-folder)."""
    files = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if p.is_file() and rel.as_posix() != MANIFEST_NAME and not any(part.startswith(".") for part in rel.parts):
            files[rel.as_posix()] = file_entry(p)
    return files


def new_manifest(policy: dict[str, Any], inputs: list[dict[str, Any]], outputs: list[dict[str, Any]],
                 source: str) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "edgeact_version": __version__,
        "source_checkpoint": source,
        "policy": policy,
        "inputs": inputs,
        "outputs": outputs,
        "models": {},
        "files": {},
    }


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Refresh the file hashes and write ``manifest.json`` atomically."""
    manifest["files"] = hash_files(folder)
    manifest["edgeact_version"] = __version__
    atomic_write_json(folder / MANIFEST_NAME, manifest)
    (folder / MANIFEST_NAME).chmod(0o644)


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """Read and sanity-check ``manifest.json``; raise BackendError saying how to make one."""
    folder = Path(folder)
    path = folder / MANIFEST_NAME
    if not path.is_file():
        hint = (
            "it looks like a checkpoint: run `edgeact export --checkpoint "
            f"{folder} --out BUNDLE` and load BUNDLE"
            if (folder / "config.json").is_file() or folder.is_file()
            else "run `edgeact export --checkpoint CKPT --out BUNDLE` first"
        )
        raise BackendError(f"{folder} is not an edgeact export bundle (no {MANIFEST_NAME}); {hint}")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON ({err}); re-run `edgeact export`") from err
    if manifest.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an edgeact bundle manifest (format={manifest.get('format')!r})")
    if int(manifest.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format_version {manifest['format_version']}; this edgeact ({__version__}) reads "
            f"up to {FORMAT_VERSION}: upgrade edgeact"
        )
    return manifest


def model_file(folder: str | Path, manifest: dict[str, Any], backend: str, verify: bool = True) -> Path:
    """Path of the model file a backend runs, checked against the manifest's hash.

    Missing entry or file: BackendError naming the command that creates it.
    """
    folder = Path(folder)
    entry = manifest.get("models", {}).get(backend)
    how = {
        "onnx": f"`edgeact export --checkpoint CKPT --out {folder}`",
        "onnx-int8": f"`edgeact quantize {folder} --calib EPISODES`",
        "torch-int8": f"`edgeact quantize {folder} --calib EPISODES --torch`",
        **dict.fromkeys(LITERT_MODELS, f"`edgeact quantize {folder} --calib EPISODES --target pi5`"),
    }.get(backend, "`edgeact export`")
    if entry is None:
        raise BackendError(f"bundle {folder} has no {backend} model; create it with {how}")
    path = folder / entry["file"]
    if not path.is_file():
        raise BackendError(f"{path} is missing although the manifest lists it; re-create it with {how}")
    if verify:
        expected = manifest.get("files", {}).get(entry["file"], {}).get("sha256")
        if expected and sha256_file(path) != expected:
            raise BackendError(
                f"{path} does not match the sha256 in {folder / MANIFEST_NAME}: the file is corrupt or was "
                f"changed after export; re-create it with {how}"
            )
    return path


def spec_from_manifest(manifest: dict[str, Any]) -> PolicySpec:
    """The PolicySpec a bundle's manifest describes (the manifest itself in ``extra``)."""
    policy = manifest["policy"]
    return PolicySpec(
        camera_names=tuple(policy["camera_names"]),
        image_size=tuple(policy["image_size"]),
        state_dim=int(policy["state_dim"]),
        action_dim=int(policy["action_dim"]),
        chunk_size=int(policy["chunk_size"]),
        fps=float(policy.get("fps", 30.0)),
        action_names=tuple(policy.get("action_names", ())),
        extra={"manifest": manifest},
    )


def read_model(folder: str | Path, backend: str, verify: bool = True) -> tuple[dict[str, Any], Path, PolicySpec]:
    """What a CPU backend needs of a bundle: its manifest, the backend's model file (hash-checked)
    and the PolicySpec."""
    manifest = read_manifest(folder)
    return manifest, model_file(folder, manifest, backend, verify=verify), spec_from_manifest(manifest)
