"""A Debian Bookworm arm64 root and the Pi's runtime wheels, run under qemu-aarch64 (no binfmt_misc needed).

The root holds Python 3.11 as Raspberry Pi OS Bookworm has it (``mmdebstrap --variant=extract``: the
packages unpacked, no maintainer scripts, so no emulation while building it); the wheels are PyPI's
aarch64 ones for that Python, installed on the host with ``pip --target``: numpy 1.26 (HailoRT 4.x pins
numpy<2 on the Pi), ONNX Runtime and LiteRT, and no torch. Both are cached under
``~/.cache/edgeact/arm64-root/<key>`` (key: the package lists), so a second run starts at once;
the same code builds them on a fresh machine from Debian's and PyPI's registries.

The root also holds a Raspberry Pi 5's ``/proc/cpuinfo`` and CPU sysfs (4 Cortex-A76, their caches
and clocks): qemu-user looks up paths inside the root first, and LiteRT's CPU detection crashes on
the host's x86 ones (a null read after parsing them, measured with ``qemu -strace``). With them,
cpuinfo inside XNNPACK sees the Pi's cores and picks their kernels.

ONNX Runtime is held below 1.25: from 1.28 on its aarch64 wheel crashes at import under Debian
Bookworm's qemu-user 7.2 (1.24.1 imports; measured), which is the emulator's limit, not the Pi's.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SUITE = "bookworm"
PACKAGES = ("python3.11-minimal", "libpython3.11-stdlib", "libstdc++6", "libgcc-s1", "zlib1g")
WHEELS = ("numpy<2", "onnxruntime>=1.20,<1.25", "ai-edge-litert>=2.3")
PYTHON = "3.11"
TOOLS = ("mmdebstrap", "qemu-aarch64-static")
# XNNPACK and ONNX Runtime pick their kernels by the CPU they see: emulate the Pi 5's core
# (qemu 7.2 knows cortex-a76: dot product and fp16 arithmetic, as the Pi 5 has)
CPU = "cortex-a76"
SRC = Path(__file__).resolve().parents[2] / "src"
PI5_CPUINFO_CORE = """processor\t: {n}
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x4
CPU part\t: 0xd0b
CPU revision\t: 1

"""
PI5_CACHES = (("1", "Data", "64K", None), ("1", "Instruction", "64K", None), ("2", "Unified", "512K", None),
              ("3", "Unified", "2048K", "0-3"))


@dataclass(frozen=True)
class Arm64Root:
    root: Path
    wheels: Path
    built_seconds: float | None  # None when it came from the cache

    def python(self, code: str, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        """Run ``code`` with the root's python3.11 under qemu, with the wheels and this checkout's src/."""
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{self.wheels}:{SRC}", "QEMU_CPU": CPU,
               "PYTHONDONTWRITEBYTECODE": "1", "HOME": str(self.root)}
        cmd = ["qemu-aarch64-static", "-L", str(self.root), str(self.root / f"usr/bin/python{PYTHON}"), "-c", code,
               *args]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def cache_dir() -> Path:
    return Path(os.environ.get("EDGEACT_ARM64_CACHE", Path.home() / ".cache" / "edgeact" / "arm64-root"))


def ensure_root(log=print) -> Arm64Root:
    """The cached root for these package lists, built first when absent (atomically: a half-built one is
    never reused)."""
    key = hashlib.sha256(json.dumps([SUITE, PACKAGES, WHEELS, PYTHON, PI5_CPUINFO_CORE, PI5_CACHES]).encode()
                         ).hexdigest()[:12]
    final = cache_dir() / key
    if (final / "ready").is_file():
        return Arm64Root(final / "root", final / "wheels", None)
    final.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f".{key}-", dir=final.parent) as tmp:
        work = Path(tmp)
        log(f"building the arm64 {SUITE} root ({', '.join(PACKAGES)}) ...")
        subprocess.run(["mmdebstrap", "--quiet", "--variant=extract", "--arch=arm64", f"--include={','.join(PACKAGES)}",
                        SUITE, str(work / "root")], check=True, capture_output=True, text=True)
        log(f"installing aarch64 wheels ({', '.join(WHEELS)}) ...")
        platforms = [arg for v in range(17, 37) for arg in ("--platform", f"manylinux_2_{v}_aarch64")]
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "--target", str(work / "wheels"), *platforms, "--platform", "manylinux2014_aarch64",
                        "--python-version", PYTHON, "--implementation", "cp", "--only-binary=:all:", *WHEELS],
                       check=True, capture_output=True, text=True)
        write_pi5_cpu(work / "root")
        (work / "ready").write_text(json.dumps({"packages": PACKAGES, "wheels": WHEELS}))
        if final.exists():
            shutil.rmtree(final)
        os.replace(work, final)
        work.mkdir()  # TemporaryDirectory removes the path it made
    seconds = time.monotonic() - t0
    log(f"arm64 root ready in {seconds:.0f} s: {final}")
    return Arm64Root(final / "root", final / "wheels", seconds)


def write_pi5_cpu(root: Path) -> None:
    """A Raspberry Pi 5's /proc/cpuinfo and /sys/devices/system/cpu, as the Pi's kernel shows them."""
    (root / "proc").mkdir(exist_ok=True)
    (root / "proc/cpuinfo").write_text("".join(PI5_CPUINFO_CORE.format(n=n) for n in range(4))
                                       + "Revision\t: d04170\nModel\t\t: Raspberry Pi 5 Model B Rev 1.0\n")
    cpu = root / "sys/devices/system/cpu"
    files = {"possible": "0-3", "present": "0-3", "online": "0-3", "kernel_max": "511"}
    for n in range(4):
        files |= {f"cpu{n}/topology/physical_package_id": "0", f"cpu{n}/topology/cluster_cpus_list": "0-3",
                  f"cpu{n}/topology/core_siblings_list": "0-3", f"cpu{n}/topology/thread_siblings_list": str(n),
                  f"cpu{n}/topology/core_id": str(n),
                  f"cpu{n}/cpufreq/cpuinfo_max_freq": "2400000", f"cpu{n}/cpufreq/cpuinfo_min_freq": "1500000"}
        for i, (level, kind, size, shared) in enumerate(PI5_CACHES):
            files |= {f"cpu{n}/cache/index{i}/{k}": v for k, v in (
                ("level", level), ("type", kind), ("size", size), ("shared_cpu_list", shared or str(n)),
                ("coherency_line_size", "64"))}
    for rel, text in files.items():
        (cpu / rel).parent.mkdir(parents=True, exist_ok=True)
        (cpu / rel).write_text(text + "\n")
