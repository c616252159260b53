"""The Hailo part of an export bundle: file names, the manifest block, and reading it back.

    bundle/
      manifest.json        "hailo": {"split": {...}, "full": {...}}; "models": {"hailo-split": ..., "hailo": ...}
      hailo/split/         npu.onnx (for the parser), host.onnx (ONNX Runtime), model.alls, model.hef, model.har
      hailo/full/          the same for the whole policy on the NPU (host.onnx: state -> state token)

Standard library only (the Pi reads it without torch or onnx).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeact.bundle import MANIFEST_NAME, read_manifest, sha256_file
from edgeact.errors import BackendError

MODES = ("split", "full")
HW_ARCHS = ("hailo8l", "hailo8")
PRECISIONS = ("a8_w8", "a16_w16", "mixed")
NET_NAME = "edgeact_act"
BACKEND_FOR_MODE = {"split": "hailo-split", "full": "hailo"}
NPU_ONNX = f"{NET_NAME}.onnx"  # the DFC CLI names the network after the file: layers are edgeact_act/conv1, ...
HOST_ONNX = "host.onnx"
MODEL_SCRIPT = "model.alls"
HEF_NAME = "model.hef"
HAR_NAME = "model.har"


def part_dir(mode: str) -> str:
    """Bundle-relative folder of a mode's files, e.g. ``hailo/split``."""
    return f"hailo/{mode}"


@dataclass(frozen=True)
class HailoPart:
    """One mode's block of the manifest, with its bundle folder."""

    bundle: Path
    mode: str
    block: dict[str, Any]
    manifest: dict[str, Any]

    def path(self, key: str) -> Path:
        """Absolute path of a file the block names (``npu``, ``host``, ``model_script``, ``hef``, ``har``)."""
        entry = self.block[key]
        return self.bundle / (entry["file"] if isinstance(entry, dict) else entry)

    @property
    def npu_input(self) -> dict[str, Any]:
        return self.block["npu"]["inputs"][0]

    @property
    def compiled(self) -> dict[str, Any] | None:
        return self.block.get("compiled")


def read_part(bundle: str | Path, mode: str = "split") -> HailoPart:
    """The Hailo block for ``mode``; BackendError naming `edgeact hailo export` when absent."""
    bundle = Path(bundle)
    if mode not in MODES:
        raise BackendError(f"unknown Hailo mode {mode!r}; use one of {', '.join(MODES)}")
    manifest = read_manifest(bundle)
    block = manifest.get("hailo", {}).get(mode)
    if block is None:
        raise BackendError(
            f"bundle {bundle} has no Hailo {mode} part; create it with `edgeact hailo export {bundle} --mode {mode}`"
        )
    return HailoPart(bundle, mode, block, manifest)


def verified_file(part: HailoPart, key: str, how: str) -> Path:
    """Path of one of the part's files, present and matching the manifest's sha256."""
    path = part.path(key)
    rel = path.relative_to(part.bundle).as_posix()
    if not path.is_file():
        raise BackendError(f"{path} is missing although {part.bundle / MANIFEST_NAME} lists it; {how}")
    expected = part.manifest.get("files", {}).get(rel, {}).get("sha256")
    if expected and sha256_file(path) != expected:
        raise BackendError(
            f"{path} does not match the sha256 in {part.bundle / MANIFEST_NAME}: the file is corrupt or was "
            f"changed after it was written; {how}"
        )
    return path
