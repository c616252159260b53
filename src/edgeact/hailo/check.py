"""`edgeact hailo check`: on the Pi, is everything in place to run a HEF?

HailoRT's Python API and version, numpy (hailo_platform needs numpy<2), the devices and their
architecture, each device's PCIe link (sysfs: Hailo's PCI vendor id is 0x1e60), and with a
bundle, whether its compiled HEFs are intact and were compiled for this device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeact.errors import BackendError

HAILO_PCI_VENDOR = "0x1e60"


@dataclass
class CheckLine:
    what: str
    ok: bool
    detail: str


@dataclass
class CheckReport:
    lines: list[CheckLine] = field(default_factory=list)

    def add(self, what: str, ok: bool, detail: str) -> None:
        self.lines.append(CheckLine(what, ok, detail))

    @property
    def ok(self) -> bool:
        return all(line.ok for line in self.lines)

    def format(self) -> str:
        width = max((len(line.what) for line in self.lines), default=0)
        return "\n".join(f"{'OK ' if line.ok else 'NO '} {line.what:<{width}}  {line.detail}" for line in self.lines)


def pcie_links(sysfs: Path = Path("/sys/bus/pci/devices")) -> dict[str, str]:
    """PCI address -> "speed, xwidth" of every Hailo device sysfs lists."""
    links = {}
    for dev in sorted(sysfs.glob("*")) if sysfs.is_dir() else []:
        try:
            if (dev / "vendor").read_text().strip() != HAILO_PCI_VENDOR:
                continue
            speed = (dev / "current_link_speed").read_text().strip()
            width = (dev / "current_link_width").read_text().strip()
        except OSError:
            continue
        links[dev.name] = f"{speed}, x{width}"
    return links


def run_check(bundle: str | Path | None = None, sysfs: Path = Path("/sys/bus/pci/devices")) -> CheckReport:
    from edgeact.backends.hailort import (
        DEVICE_HINT,
        check_arch,
        check_version,
        import_hailort,
        scan_devices,
    )

    report = CheckReport()
    numpy_ok = int(np.__version__.split(".")[0]) < 2
    report.add(
        "numpy",
        numpy_ok,
        np.__version__ + ("" if numpy_ok else " (hailo_platform needs numpy<2: pip install 'numpy<2')"),
    )
    try:
        hp = import_hailort()
        version = ".".join(map(str, check_version(hp)))
        report.add("HailoRT", True, f"{version} (hailo_platform)")
    except BackendError as err:  # not importable (with the install steps), too old, or the 5.x line
        report.add("HailoRT", False, str(err))
        return report
    devices = scan_devices(hp)
    report.add(
        "devices",
        bool(devices),
        ", ".join(f"{d.device_id} {d.architecture}" for d in devices) or f"none found: {DEVICE_HINT}",
    )
    links = pcie_links(sysfs)
    for d in devices:
        link = links.get(d.device_id) or links.get(f"0000:{d.device_id}")
        # the Pi 5's external PCIe runs at Gen 2 unless dtparam=pciex1_gen=3 is set
        report.add(
            f"PCIe {d.device_id}", link is not None, link or "no sysfs entry (not a PCIe device, or sysfs unavailable)"
        )
    if bundle is not None and devices:
        _check_bundle(report, Path(bundle), devices, check_arch)
    return report


def _check_bundle(report: CheckReport, bundle: Path, devices, check_arch) -> None:
    from edgeact.backends.hailo_part import MODES, read_part, verified_file

    found = False
    for mode in MODES:
        try:
            part = read_part(bundle, mode)
        except BackendError:
            continue
        if part.compiled is None:
            report.add(
                f"HEF ({mode})", False, f"not compiled: `edgeact hailo compile {bundle} --mode {mode} --calib CALIB`"
            )
            continue
        found = True
        try:
            verified_file(part, "hef", "copy the bundle again")
            warning = check_arch(part.compiled["hw_arch"], devices)
            report.add(
                f"HEF ({mode})",
                True,
                f"{part.compiled['hw_arch']}, {part.compiled['precision']}, DFC "
                f"{part.compiled['dfc_version']}" + (f"; {warning}" if warning else ""),
            )
        except BackendError as err:
            report.add(f"HEF ({mode})", False, str(err))
    if not found and not any(line.what.startswith("HEF") for line in report.lines):
        report.add("HEF", False, f"{bundle} has no Hailo part: `edgeact hailo export {bundle}`")
