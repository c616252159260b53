"""The Hailo part of an export bundle: the boards, file names, the manifest block, and reading it back.

    bundle/
      manifest.json        "hailo": {"split": {...}, "full": {...}}; "models": {"hailo-split": ..., "hailo": ...}
      hailo/split/         edgeact_act.onnx (for the parser), host.onnx (ONNX Runtime), model.alls
      hailo/split/hailo8l/ model.hef, model.har: one folder per board the part is compiled for
      hailo/full/          the same for the whole policy on the NPU (host.onnx: state -> state token)

A mode's block lists its HEFs by board (``"hefs": {"hailo8l": {"file", "precision", "dfc_version",
"hailort"}, ...}``): one bundle can carry a HEF for each of the Pi's three Hailo boards, and the
backend runs the one that matches the device it finds.

Standard library only (the Pi reads it without torch or onnx).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeact.bundle import MANIFEST_NAME, read_manifest, sha256_file
from edgeact.errors import BackendError

MODES = ("split", "full")


@dataclass(frozen=True)
class Board:
    """One of the Pi's Hailo boards and the software stack it needs (HAILO-FACTS, last section).

    The two stacks cannot share an install: Hailo-8/8L run HailoRT 4.x and HEFs from DFC 3.x;
    the Hailo-10H runs HailoRT 5.x and HEFs from DFC 5.x (hailo-ai/hailort v5.2.0
    ``pcie_device.cpp``: "Hailo8 devices are only supported in versions 4.x.x and earlier";
    v4.23.0 ``pcie_device.cpp``: "Hailo1X Devices are only supported in versions 5.0.0 and above").
    """

    hw_arch: str  # the DFC's --hw-arch
    device: str  # HailoRT's DeviceArchitectureTypes name (identify())
    product: str
    hailort_major: int
    dfc_major: int
    dfc: str  # the DFC release paired with `hailort` (model zoo changelogs)
    hailort: str
    package: str  # Raspberry Pi OS package set (documentation: computers/ai/getting-started.adoc)
    kernel_module: str
    pci_device: str  # sysfs /sys/bus/pci/devices/*/device (vendor 0x1e60)

    @property
    def install(self) -> str:
        return f"sudo apt install dkms {self.package}"

    @property
    def stack(self) -> str:
        return f"HailoRT {self.hailort_major}.x + DFC {self.dfc_major}.x (`{self.install}`)"


def _hailo8_family(hw_arch: str, device: str, product: str) -> Board:
    return Board(hw_arch, device, product, hailort_major=4, dfc_major=3, dfc="3.33.1", hailort="4.23.0",
                 package="hailo-all", kernel_module="hailo_pci", pci_device="0x2864")


BOARDS = {
    "hailo8l": _hailo8_family("hailo8l", "HAILO8L", "AI Kit / AI HAT+ 13 TOPS (Hailo-8L)"),
    "hailo8": _hailo8_family("hailo8", "HAILO8", "AI HAT+ 26 TOPS (Hailo-8)"),
    "hailo10h": Board("hailo10h", "HAILO10H", "AI HAT+ 2 40 TOPS (Hailo-10H)", hailort_major=5, dfc_major=5,
                      dfc="5.2.0", hailort="5.2.0", package="hailo-h10-all", kernel_module="hailo1x_pci",
                      pci_device="0x45c4"),
}
HW_ARCHS = tuple(BOARDS)
# A HEF for hailo8l runs on a Hailo-8 too, below its speed (HailoRT's check_hef_is_compatible warns)
RUNS_ON = {"HAILO8L": ("hailo8l",), "HAILO8": ("hailo8", "hailo8l"), "HAILO10H": ("hailo10h",)}


def board_of_device(device_arch: str) -> Board | None:
    """The board of a HailoRT device architecture name (``HAILO8L``...), None for one we do not drive."""
    return next((b for b in BOARDS.values() if b.device == device_arch.upper()), None)


def version_tuple(text: str) -> tuple[int, ...]:
    """``"4.23.0"`` -> (4, 23, 0); ``"3.33.1-rc"`` -> (3, 33, 1); no number -> ()."""
    return tuple(int(p) for p in re.findall(r"\d+", str(text))[:3])


def hailort_for_dfc(dfc_version: str) -> str | None:
    """The HailoRT major.minor a DFC release compiles for, None when unknown.

    Hailo ships them in pairs (model zoo changelog v2.17: DFC 3.33.0 with HailoRT 4.23.0; the
    2025-01 suite: DFC 3.30.0 with HailoRT 4.20.0; model zoo v5.2.0: DFC 5.2 with HailoRT 5.2).
    """
    v = version_tuple(dfc_version)
    if len(v) < 2:
        return None
    if v[0] == 3 and v[1] >= 30:
        return f"4.{v[1] - 10}"
    if v[0] == 5:
        return f"5.{v[1]}"
    return None
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


def hef_dir(mode: str, hw_arch: str) -> str:
    """Bundle-relative folder of a mode's HEF for one board, e.g. ``hailo/split/hailo8l``."""
    return f"{part_dir(mode)}/{hw_arch}"


@dataclass(frozen=True)
class HailoPart:
    """One mode's block of the manifest, with its bundle folder."""

    bundle: Path
    mode: str
    block: dict[str, Any]
    manifest: dict[str, Any]

    def path(self, key: str) -> Path:
        """Absolute path of a file the block names (``npu``, ``host``, ``model_script``)."""
        entry = self.block[key]
        return self.bundle / (entry["file"] if isinstance(entry, dict) else entry)

    @property
    def npu_input(self) -> dict[str, Any]:
        return self.block["npu"]["inputs"][0]

    @property
    def hefs(self) -> dict[str, dict[str, Any]]:
        """hw_arch -> {file, precision, dfc_version, hailort} of every HEF compiled for this part."""
        return self.block.get("hefs", {})

    def hef_for(self, device_arch: str) -> tuple[str, dict[str, Any]] | None:
        """(hw_arch, entry) of the HEF to run on a device (``HAILO8``...): its own board's first, then
        one that runs there degraded (a hailo8l HEF on a Hailo-8); None when none fits."""
        for hw_arch in RUNS_ON.get(device_arch.upper(), ()):
            if hw_arch in self.hefs:
                return hw_arch, self.hefs[hw_arch]
        return None


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


def resolve_mode(bundle: str | Path, mode: str | None) -> str:
    """``mode`` when given; else the bundle's only Hailo part, and ``split`` (the default cut) when
    it holds both."""
    if mode is not None:
        return mode
    modes = [m for m in MODES if m in read_manifest(bundle).get("hailo", {})]
    if not modes:
        raise BackendError(f"bundle {bundle} has no Hailo part; create it with `edgeact hailo export {bundle}`")
    return modes[0] if len(modes) == 1 else MODES[0]


def verified_file(part: HailoPart, key: str, how: str) -> Path:
    """Path of one of the part's files (a block key, or a bundle-relative file name), present and
    matching the manifest's sha256."""
    path = part.path(key) if key in part.block else part.bundle / key
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
