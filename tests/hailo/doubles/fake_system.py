"""A Pi's Hailo files under a fake root, as the boards and Raspberry Pi OS lay them out: the device
node, ``/proc/modules`` (what lsmod reads), the module's version, the PCI function in sysfs with its
bound driver and link, and dpkg's status file (hailo-ai/hailort-drivers v4.23.0 / v5.3.0; Raspberry
Pi documentation computers/ai/getting-started.adoc)."""

from __future__ import annotations

from pathlib import Path

BOARD = {  # what each board's own stack installs
    "hailo8l": ("0x2864", "hailo_pci", "hailo0", "hailo-all"),
    "hailo8": ("0x2864", "hailo_pci", "hailo0", "hailo-all"),
    "hailo10h": ("0x45c4", "hailo1x_pci", "h1x-0", "hailo-h10-all"),
}


def write(root: Path, path: str, text: str) -> Path:
    file = root / path.lstrip("/")
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(text)
    return file


def dpkg_status(packages: dict[str, str]) -> str:
    return "\n\n".join(f"Package: {name}\nStatus: install ok installed\nVersion: {version}\nArchitecture: arm64"
                       for name, version in packages.items()) + "\n"


def fake_hailo(root: Path, board: str = "hailo8l", *, driver: str = "4.23.0", module: str | None = None,
               packages: dict[str, str] | None = None, link: str = "8.0 GT/s PCIe",
               address: str = "0000:01:00.0") -> Path:
    """Write a Pi with ``board`` attached; every part overridable to make it wrong."""
    device, default_module, node, package_set = BOARD[board]
    module = module or default_module
    write(root, f"/dev/{node}", "")
    write(root, "/proc/modules", f"{module} 131072 0 - Live 0x0000000000000000\nsnd 1 0 - Live 0x0\n")
    write(root, f"/sys/module/{module}/version", driver + "\n")
    pci = root / "sys/bus/pci/devices" / address
    write(root, f"/sys/bus/pci/devices/{address}/vendor", "0x1e60\n")
    write(root, f"/sys/bus/pci/devices/{address}/device", device + "\n")
    write(root, f"/sys/bus/pci/devices/{address}/current_link_speed", link + "\n")
    write(root, f"/sys/bus/pci/devices/{address}/current_link_width", "1\n")
    (root / "sys/bus/pci/drivers" / module).mkdir(parents=True, exist_ok=True)
    (pci / "driver").symlink_to(root / "sys/bus/pci/drivers" / module)
    write(root, "/sys/bus/pci/devices/0000:00:00.0/vendor", "0x14e4\n")  # the Pi's own bridge
    write(root, "/var/lib/dpkg/status", dpkg_status(packages if packages is not None else
                                                    {package_set: "5.0.0", "hailort": driver, "openssh-server": "1"}))
    return root
