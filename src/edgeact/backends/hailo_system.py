"""What the Pi's system says about its Hailo hardware, read from files under a root (``/`` on the
Pi, a fake tree in the tests): no HailoRT needed. ``edgeact doctor`` and ``edgeact hailo check``
put these facts beside what HailoRT itself reports.

- device nodes: ``/dev/hailo*`` (hailo_pci; hailo1x_pci up to driver 5.2) and ``/dev/h1x-*``
  (hailo1x_pci from driver 5.3: ``HAILO_DEV_NAME "h1x"``, hailo-ai/hailort-drivers v5.3.0
  ``common/hailo_ioctl_common.h``);
- kernel modules as ``lsmod`` lists them (``/proc/modules``) and their versions
  (``/sys/module/<name>/version``: both drivers declare ``MODULE_VERSION(HAILO_DRV_VER)``);
- PCI functions of vendor 0x1e60: device 0x2864 is a Hailo-8 or Hailo-8L (the firmware tells them
  apart), 0x45c4 a Hailo-10H (``common/pcie_common.h``), with the link's speed and width;
- Debian packages installed (``/var/lib/dpkg/status``): ``hailo-all`` (AI Kit, AI HAT+) and
  ``hailo-h10-all`` (AI HAT+ 2) conflict (Raspberry Pi documentation, computers/ai/getting-started.adoc).

Standard library only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edgeact.backends.hailo_part import BOARDS, Board

HAILO_PCI_VENDOR = "0x1e60"
PCI_BOARDS = {b.pci_device: b for b in BOARDS.values()}  # 0x2864 -> a Hailo-8 family board, 0x45c4 -> 10H
KERNEL_MODULES = ("hailo_pci", "hailo1x_pci")
PACKAGE_SETS = {"hailo-all": 4, "hailo-h10-all": 5}  # apt meta-package -> HailoRT major it brings
NODE_PATTERNS = ("hailo[0-9]*", "h1x-*")


@dataclass(frozen=True)
class PciDevice:
    address: str  # 0000:01:00.0
    device: str  # 0x2864, 0x45c4
    driver: str | None  # the bound kernel module
    link: str  # "8.0 GT/s PCIe, x1" ("" when sysfs does not say)

    @property
    def board(self) -> Board | None:
        """The board's stack (for 0x2864 the Hailo-8L entry: 8 and 8L share the stack)."""
        return PCI_BOARDS.get(self.device)

    @property
    def family(self) -> str:
        if self.device == BOARDS["hailo10h"].pci_device:
            return "Hailo-10H"
        return "Hailo-8 or Hailo-8L" if self.device in PCI_BOARDS else f"unknown Hailo device {self.device}"


@dataclass
class HailoSystem:
    nodes: list[str] = field(default_factory=list)  # /dev/hailo0, /dev/h1x-0
    modules: dict[str, str] = field(default_factory=dict)  # loaded Hailo module -> version ("" if unknown)
    pci: list[PciDevice] = field(default_factory=list)
    packages: dict[str, str] = field(default_factory=dict)  # installed dpkg packages with "hailo" -> version

    @property
    def package_sets(self) -> list[str]:
        return [name for name in PACKAGE_SETS if name in self.packages]

    @property
    def present(self) -> bool:
        return bool(self.nodes or self.modules or self.pci)


def read_system(read: Callable[[str], str | None], glob: Callable[[str, str], list[Path]]) -> HailoSystem:
    """The facts, through ``read(absolute_path)`` and ``glob(folder, pattern)`` (a root-relative view)."""
    system = HailoSystem()
    system.nodes = sorted({f"/dev/{p.name}" for pattern in NODE_PATTERNS for p in glob("/dev", pattern)})
    for line in (read("/proc/modules") or "").splitlines():
        name = line.split(" ", 1)[0]
        if name in KERNEL_MODULES:
            system.modules[name] = (read(f"/sys/module/{name}/version") or "").strip()
    for dev in glob("/sys/bus/pci/devices", "*"):
        base = f"/sys/bus/pci/devices/{dev.name}"
        if (read(f"{base}/vendor") or "").strip() != HAILO_PCI_VENDOR:
            continue
        speed, width = (read(f"{base}/current_link_speed") or "").strip(), (read(f"{base}/current_link_width") or "")
        driver = dev / "driver"
        system.pci.append(PciDevice(dev.name, (read(f"{base}/device") or "").strip().lower(),
                                    driver.resolve().name if driver.exists() else None,
                                    f"{speed}, x{width.strip()}" if speed else ""))
    system.packages = installed_packages(read("/var/lib/dpkg/status") or "", "hailo")
    return system


def installed_packages(dpkg_status: str, containing: str) -> dict[str, str]:
    """name -> version of the installed packages whose name contains ``containing`` (dpkg's status file)."""
    found = {}
    for stanza in dpkg_status.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and not line[0].isspace())
        name = fields.get("Package", "")
        if containing in name and fields.get("Status", "").endswith(" installed"):
            found[name] = fields.get("Version", "")
    return found
