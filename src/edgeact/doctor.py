"""``edgeact doctor``: is this Pi ready to drive? One OK / WARN / FAIL line per check, with the fix.

Everything read from the system goes through :class:`SystemView`: files under a root
(``/`` on the Pi; a fake sysfs/procfs/dev tree in the tests), a command runner
(``vcgencmd``), package versions, the realtime limit of this process, free disk space, and
what HailoRT finds (``Device.scan()`` and each device's identify).
"""

from __future__ import annotations

import getpass
import importlib.metadata
import platform
import resource
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeact.data.space import free_bytes, recording_rate

OK, WARN, FAIL = "OK", "WARN", "FAIL"
RUNTIME_PACKAGES = ("numpy", "onnxruntime", "opencv-python-headless", "pyserial", "safetensors")
SERIAL_PATTERNS = ("ttyUSB*", "ttyACM*")
HOT_C, CRITICAL_C = 70.0, 80.0  # the Pi 5 throttles from 80-85 °C
LOW_MEMORY_MB = 512
# vcgencmd get_throttled bits: (bit, what it means now); bit + 16 = it happened since boot.
THROTTLE_BITS = ((0, "under-voltage"), (1, "ARM frequency capped"), (2, "throttled"), (3, "soft temperature limit"))


@dataclass(frozen=True)
class Check:
    status: str  # OK, WARN or FAIL
    name: str
    detail: str
    fix: str = ""


def _run_command(cmd: list[str]) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout if result.returncode == 0 else None


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _scan_hailort() -> tuple[str | None, list, str | None]:
    """(HailoRT version, devices HailoRT finds, why the scan failed): (None, [], None) without HailoRT."""
    from edgeact.backends.hailort import hailort_version, import_hailort, scan_devices, shown, take_device
    from edgeact.errors import BackendError

    try:
        hp = import_hailort()
    except BackendError:
        return None, [], None
    version = shown(hailort_version(hp))
    devices = []
    try:
        devices = scan_devices(hp)
        if devices:
            take_device(hp)
    except BackendError as err:
        return version, devices, str(err)
    return version, devices, None


def _rtprio_limit() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_RTPRIO)
    return 1 << 30 if soft == resource.RLIM_INFINITY else soft


@dataclass
class SystemView:
    """The machine the doctor examines. Defaults: this one."""

    root: Path = Path("/")
    user: str = field(default_factory=getpass.getuser)
    run: Callable[[list[str]], str | None] = _run_command
    version: Callable[[str], str | None] = _package_version
    rtprio_limit: Callable[[], int] = _rtprio_limit
    python_version: str = platform.python_version()
    hailort: Callable[[], tuple[str | None, list, str | None]] = _scan_hailort  # (version, devices, error)
    disk_free: Callable[[Path], int] = free_bytes

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    def read(self, absolute: str) -> str | None:
        try:
            return self.path(absolute).read_text()
        except OSError:
            return None

    def glob(self, folder: str, pattern: str) -> list[Path]:
        return sorted(self.path(folder).glob(pattern))

    def user_ids(self) -> tuple[int | None, set[int]]:
        """(uid, gids) of ``user`` from the root's /etc/passwd and /etc/group."""
        uid, gids = None, set()
        for line in (self.read("/etc/passwd") or "").splitlines():
            parts = line.split(":")
            if len(parts) > 3 and parts[0] == self.user:
                uid, gids = int(parts[2]), {int(parts[3])}
        for line in (self.read("/etc/group") or "").splitlines():
            parts = line.split(":")
            if len(parts) > 3 and self.user in parts[3].split(","):
                gids.add(int(parts[2]))
        return uid, gids

    def home(self) -> str | None:
        """``user``'s home directory from the root's /etc/passwd."""
        for line in (self.read("/etc/passwd") or "").splitlines():
            parts = line.split(":")
            if len(parts) > 5 and parts[0] == self.user:
                return parts[5]
        return None

    def group_name(self, gid: int) -> str:
        for line in (self.read("/etc/group") or "").splitlines():
            parts = line.split(":")
            if len(parts) > 2 and parts[2] == str(gid):
                return parts[0]
        return str(gid)

    def may_open(self, device: Path) -> bool:
        """Read and write permission for ``user`` from the mode bits, owner and group."""
        st = device.stat()
        uid, gids = self.user_ids()
        if uid == 0:
            return True
        if st.st_uid == uid:
            return st.st_mode & 0o600 == 0o600
        if st.st_gid in gids:
            return st.st_mode & 0o060 == 0o060
        return st.st_mode & 0o006 == 0o006


def check_cpu(s: SystemView) -> list[Check]:
    info = s.read("/proc/cpuinfo") or ""
    fields = [line.split(":", 1) for line in info.splitlines() if ":" in line]
    values: dict[str, str] = {}
    for key, value in fields:
        values.setdefault(key.strip(), value.strip())
    cores = sum(1 for key, _ in fields if key.strip() == "processor")
    model = values.get("Model") or values.get("model name") or platform.machine() or "unknown CPU"
    physical = physical_cores(s) or cores
    if cores == 0:
        return [Check(WARN, "cpu", "no /proc/cpuinfo", "run the doctor on the Pi itself")]
    threads = max(1, physical - 1)
    return [Check(OK, "cpu", f"{model}, {cores} cores ({physical} physical)"),
            Check(OK, "ort threads", f"ONNX Runtime gets {threads} threads (physical cores - 1: one stays free for "
                  "control, camera and serial)")]


def physical_cores(s: SystemView) -> int:
    lists = s.glob("/sys/devices/system/cpu", "cpu[0-9]*/topology/thread_siblings_list")
    return len({p.read_text().strip() for p in lists})


def check_governor(s: SystemView) -> list[Check]:
    governors = {p.read_text().strip() for p in s.glob("/sys/devices/system/cpu", "cpu[0-9]*/cpufreq/scaling_governor")}
    if not governors:
        return [Check(WARN, "governor", "no cpufreq information", "")]
    if governors == {"performance"}:
        return [Check(OK, "governor", "performance")]
    return [Check(WARN, "governor", f"{', '.join(sorted(governors))}: the clock ramps up late for bursty inference",
                  "echo performance | sudo tee /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor")]


def check_temperature(s: SystemView) -> list[Check]:
    raw = s.read("/sys/class/thermal/thermal_zone0/temp")
    if raw is None:
        return [Check(WARN, "temperature", "no thermal zone", "")]
    celsius = int(raw.strip()) / 1000
    fix = "fit the Active Cooler (or a fan) and keep the case open"
    if celsius >= CRITICAL_C:
        return [Check(FAIL, "temperature", f"{celsius:.1f} °C: the Pi throttles around 80-85 °C", fix)]
    if celsius >= HOT_C:
        return [Check(WARN, "temperature", f"{celsius:.1f} °C, close to throttling", fix)]
    return [Check(OK, "temperature", f"{celsius:.1f} °C")]


def check_throttling(s: SystemView) -> list[Check]:
    out = s.run(["vcgencmd", "get_throttled"])
    if out is None or "=" not in out:
        return [Check(OK, "throttling", "vcgencmd not available here (not Raspberry Pi OS): not checked")]
    value = int(out.split("=", 1)[1].strip(), 16)
    now = [text for bit, text in THROTTLE_BITS if value & (1 << bit)]
    past = [text for bit, text in THROTTLE_BITS if value & (1 << (bit + 16))]
    fix = "use the official 27 W USB-C supply and a short cable; give the Pi a cooler"
    if now:
        return [Check(FAIL, "throttling", f"now: {', '.join(now)} (get_throttled={value:#x})", fix)]
    if past:
        return [Check(WARN, "throttling", f"since boot: {', '.join(past)} (get_throttled={value:#x})", fix)]
    return [Check(OK, "throttling", "none since boot")]


def throttle_state(s: SystemView) -> dict[str, Any]:
    """Temperature (°C) and vcgencmd's throttle flags now and since boot; None where not readable."""
    raw = s.read("/sys/class/thermal/thermal_zone0/temp")
    out = s.run(["vcgencmd", "get_throttled"])
    value = int(out.split("=", 1)[1].strip(), 16) if out and "=" in out else None
    return {"temperature_c": int(raw.strip()) / 1000 if raw and raw.strip().isdigit() else None,
            "get_throttled": None if value is None else hex(value),
            "now": [text for bit, text in THROTTLE_BITS if value is not None and value & (1 << bit)],
            "since_boot": [text for bit, text in THROTTLE_BITS if value is not None and value & (1 << (bit + 16))]}


def check_memory(s: SystemView) -> list[Check]:
    info = dict(line.split(":", 1) for line in (s.read("/proc/meminfo") or "").splitlines() if ":" in line)
    if "MemAvailable" not in info:
        return [Check(WARN, "memory", "no /proc/meminfo")]
    total_mb = int(info["MemTotal"].split()[0]) / 1024
    avail_mb = int(info["MemAvailable"].split()[0]) / 1024
    detail = f"{avail_mb:.0f} MB available of {total_mb:.0f} MB"
    if avail_mb < LOW_MEMORY_MB:
        return [Check(WARN, "memory", detail, "close other programs (a desktop session takes ~500 MB)")]
    return [Check(OK, "memory", detail)]


def check_python(s: SystemView) -> list[Check]:
    major, minor = (int(v) for v in s.python_version.split(".")[:2])
    if (major, minor) < (3, 10):
        return [Check(FAIL, "python", s.python_version, "edgeact needs Python 3.10+ (Raspberry Pi OS bookworm)")]
    return [Check(OK, "python", s.python_version)]


def check_packages(s: SystemView) -> list[Check]:
    versions = {name: s.version(name) for name in RUNTIME_PACKAGES}
    missing = [n for n, v in versions.items() if v is None]
    found = ", ".join(f"{n} {v}" for n, v in versions.items() if v)
    checks = []
    if missing:
        checks.append(Check(FAIL, "packages", f"missing: {', '.join(missing)}",
                            f"edgeact deploy --setup from the laptop, or pip install {' '.join(missing)}"))
    else:
        checks.append(Check(OK, "packages", f"edgeact {s.version('edgeact') or '?'}: {found}"))
    torch = s.version("torch")
    checks.append(Check(OK, "torch", f"torch {torch}" if torch else "not installed (only the torch backends need it)"))
    return checks


def check_devices(s: SystemView, label: str, patterns: tuple[str, ...], group: str, absent_fix: str) -> list[Check]:
    devices = sorted({p for pattern in patterns for p in s.glob("/dev", pattern)})
    if not devices:
        return [Check(WARN, label, f"none ({', '.join('/dev/' + p for p in patterns)})", absent_fix)]
    closed = [d for d in devices if not s.may_open(d)]
    names = ", ".join(f"/dev/{d.name}" for d in devices)
    if closed:
        groups = sorted({s.group_name(d.stat().st_gid) for d in closed})
        return [Check(FAIL, label, f"{names}: {s.user} may not open {', '.join('/dev/' + d.name for d in closed)}",
                      f"sudo usermod -aG {','.join(groups) or group} {s.user}, then log out and in again")]
    return [Check(OK, label, names)]


def check_realtime(s: SystemView) -> list[Check]:
    uid, _ = s.user_ids()
    if uid == 0 or s.rtprio_limit() > 0:
        return [Check(OK, "realtime", "SCHED_FIFO allowed for the control thread")]
    return [Check(WARN, "realtime", "SCHED_FIFO not allowed: the control thread runs at normal priority",
                  f"run as the service (edgeact deploy --service sets LimitRTPRIO), or add "
                  f"'{s.user} - rtprio 50' to /etc/security/limits.d/edgeact.conf and log in again")]


def check_hailo(s: SystemView) -> list[Check]:
    """The Hailo board, its apt package set, kernel driver, HailoRT, firmware and PCIe link, and
    whether they match each other (they must: HAILO-FACTS, last section), each with its fix."""
    from edgeact.backends.hailo_system import read_system

    system = read_system(s.read, s.glob)
    version, devices, error = s.hailort()
    if not system.present and not devices and error is None:
        return [Check(OK, "hailo", "no Hailo device: the CPU backends run the model")]
    board = devices[0].board if devices else (system.pci[0].board if system.pci else None)
    return [*_hailo_board(system, devices), *_hailo_packages(system, board), *_hailo_driver(system, board, version),
            *_hailort(s, board, version, error), *_hailo_firmware(devices, version), *_hailo_link(system)]


def _hailo_board(system, devices) -> list[Check]:
    nodes = ", ".join(system.nodes) or "no /dev/hailo* or /dev/h1x-* node"
    if devices:
        d = devices[0]
        what = d.board.product if d.board else f"{d.architecture} (not a board edgeact compiles for)"
        return [Check(OK if d.board else WARN, "hailo board", f"{what} at {d.device_id} ({nodes})")]
    if system.pci:
        pci = system.pci[0]
        return [Check(OK, "hailo board", f"{pci.family} at {pci.address} (PCI {pci.device}; {nodes}); HailoRT "
                      "could not identify it, see below")]
    return [Check(FAIL, "hailo board", f"a Hailo driver or node is present but no Hailo PCIe device ({nodes})",
                  "check the HAT's ribbon cable and `dtparam=pciex1` in /boot/firmware/config.txt, then reboot")]


def _hailo_packages(system, board) -> list[Check]:
    from edgeact.backends.hailo_system import PACKAGE_SETS

    sets = system.package_sets
    listed = ", ".join(f"{n} {v}" for n, v in sorted(system.packages.items())) or "none"
    want = board.package if board else "hailo-all (Hailo-8/8L) or hailo-h10-all (Hailo-10H)"
    if len(sets) > 1:
        other = " ".join(x for x in sets if x != want) if board else " or ".join(sets)
        return [Check(FAIL, "hailo packages", f"both {' and '.join(sets)} are installed; they conflict",
                      f"keep the one for this board: sudo apt remove {other}")]
    if not sets:
        return [Check(WARN, "hailo packages", f"neither hailo-all nor hailo-h10-all is installed (hailo packages: "
                      f"{listed})", f"sudo apt install dkms {want}, then reboot")]
    if board is not None and PACKAGE_SETS[sets[0]] != board.hailort_major:
        return [Check(FAIL, "hailo packages", f"{sets[0]} is installed, which is for the other boards, but this is "
                      f"a {board.product}", f"sudo apt remove {sets[0]} && {board.install}, then reboot")]
    return [Check(OK, "hailo packages", listed)]


def _hailo_driver(system, board, version: str | None) -> list[Check]:
    if not system.modules:
        return [Check(FAIL, "hailo driver", "no Hailo kernel module loaded (lsmod: neither hailo_pci nor hailo1x_pci)",
                      f"sudo apt install dkms {board.package if board else 'hailo-all'} (dkms builds the driver), "
                      "reboot; "
                      "`dmesg | grep -i hailo` says why it did not load")]
    if board is not None and board.kernel_module not in system.modules:
        return [Check(FAIL, "hailo driver", f"{', '.join(system.modules)} loaded, but a {board.product} needs "
                      f"{board.kernel_module}", f"{board.install}, then reboot")]
    name = board.kernel_module if board is not None else next(iter(system.modules))
    driver = system.modules[name]
    detail = f"{name} {driver or '(version unknown)'}"
    if version and driver and driver != version:
        return [Check(FAIL, "hailo driver", f"{detail}, HailoRT {version}: driver and library must be the same "
                      "version (HAILO_INVALID_DRIVER_VERSION)",
                      f"sudo apt install --reinstall {board.package if board else 'hailo-all'}, then reboot")]
    return [Check(OK, "hailo driver", detail + (f" = HailoRT {version}" if version and driver else ""))]


def _hailort(s: SystemView, board, version: str | None, error: str | None) -> list[Check]:
    from edgeact.backends.hailo_part import version_tuple
    from edgeact.backends.hailort import INSTALL_HINT

    if version is None:
        return [Check(FAIL, "hailort", "HailoRT's Python API (hailo_platform) is not importable here", INSTALL_HINT)]
    if error:
        return [Check(FAIL, "hailort", f"HailoRT {version}: {error}")]
    if board is not None and version_tuple(version)[:1] != (board.hailort_major,):
        return [Check(FAIL, "hailort", f"HailoRT {version} cannot drive a {board.product}", board.stack)]
    numpy = s.version("numpy") or ""
    needs_numpy1 = version_tuple(version)[:1] == (4,) or version_tuple(s.python_version) < (3, 13)
    if needs_numpy1 and version_tuple(numpy)[:1] >= (2,):
        return [Check(FAIL, "hailort", f"HailoRT {version}, but numpy {numpy}: hailo_platform needs numpy<2 here",
                      "pip install 'numpy<2' (edgeact deploy --setup does this when it finds HailoRT)")]
    return [Check(OK, "hailort", f"HailoRT {version}, numpy {numpy or '?'}")]


def _hailo_firmware(devices, version: str | None) -> list[Check]:
    from edgeact.backends.hailo_part import version_tuple

    checks = []
    for d in devices:
        same = version_tuple(d.firmware)[:2] == version_tuple(version or "")[:2]
        apt = d.board.package if d.board else "hailo-all"
        checks.append(Check(OK, "hailo firmware", f"{d.device_id}: {d.firmware}") if same else Check(
            FAIL, "hailo firmware", f"{d.device_id} runs firmware {d.firmware or '?'}, HailoRT is {version}: they "
            "must share major.minor (HailoRT refuses most controls otherwise)",
            f"sudo apt install --reinstall {apt}, then reboot (the driver loads the firmware at boot)"))
    return checks


def _hailo_link(system) -> list[Check]:
    checks = []
    for pci in system.pci:
        if not pci.link:
            checks.append(Check(WARN, "hailo pcie", f"{pci.address}: sysfs gives no link speed"))
        elif pci.link.startswith("5.0 GT/s"):
            checks.append(Check(WARN, "hailo pcie", f"{pci.address}: {pci.link} (PCIe Gen 2)",
                                "add dtparam=pciex1_gen=3 to /boot/firmware/config.txt and reboot (the AI Kit needs "
                                "it; the AI HAT+ and AI HAT+ 2 set Gen 3 themselves)"))
        else:
            checks.append(Check(OK, "hailo pcie", f"{pci.address}: {pci.link}"))
    return checks


@dataclass(frozen=True)
class RecordingPlan:
    """What ``edgeact drive --record`` will need: room for ``minutes`` at ``fps`` in ``folder``."""

    folder: str | None = None  # None: the user's home (where ~/edgeact lives)
    minutes: float = 30.0  # a session of driving and recording
    fps: float = 30.0  # edgeact drive's recording rate without a model


def check_recording_space(s: SystemView, plan: RecordingPlan) -> list[Check]:
    folder = plan.folder or s.home() or "/"
    path = s.path(folder)
    free = s.disk_free(path)
    rate = recording_rate(plan.fps, root=path)
    minutes = free / rate.bytes_per_minute
    detail = (f"{free / 1e9:.1f} GB free for {folder}: {minutes:.0f} min of recording at {plan.fps:g} fps "
              f"({rate.bytes_per_minute / 1e6:.0f} MB/min, {rate.basis})")
    if minutes < plan.minutes:
        return [Check(WARN, "recording space", f"{detail}, less than {plan.minutes:g} min",
                      "copy the episodes to the laptop and delete them here, or record to a larger card or USB "
                      "drive (edgeact drive --record DIR); when the disk fills mid-episode that episode is lost")]
    return [Check(OK, "recording space", detail)]


def run_checks(s: SystemView, recording: RecordingPlan | None = None) -> list[Check]:
    """Every check, in the order a person fixes things."""
    return [
        *check_cpu(s), *check_governor(s), *check_temperature(s), *check_throttling(s), *check_memory(s),
        *check_python(s), *check_packages(s),
        *check_devices(s, "camera", ("video*",), "video",
                       "plug in the USB camera, or connect the camera module and use --camera picamera2"),
        *check_devices(s, "serial", SERIAL_PATTERNS, "dialout",
                       "plug in the Arduino (USB): it appears as /dev/ttyUSB0 or /dev/ttyACM0"),
        *check_realtime(s), *check_hailo(s), *check_recording_space(s, recording or RecordingPlan()),
    ]


def format_checks(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = []
    for c in checks:
        lines.append(f"{c.status:<4}  {c.name:<{width}}  {c.detail}")
        if c.fix:
            lines.append(f"{'':<4}  {'':<{width}}  fix: {c.fix}")
    fails = sum(c.status == FAIL for c in checks)
    warns = sum(c.status == WARN for c in checks)
    lines.append(f"{fails} FAIL, {warns} WARN, {len(checks) - fails - warns} OK")
    return "\n".join(lines)

