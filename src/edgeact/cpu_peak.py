"""The arithmetic peak of this machine's CPU per precision, and what engines reach on a Pi 5.

Neutral (standard library only): the benchmark puts achieved GOP/s in proportion to it, the
input-size study estimates Pi 5 chunk times from it. A peak is cores x clock x operations per
cycle, a multiply-add counting 2, from the core's published SIMD issue rates:

- Cortex-A76 (the Pi 5; ``CPU part 0xd0b`` in /proc/cpuinfo): two 128-bit SIMD pipes, each
  issuing one FMLA or SDOT per cycle (Arm's Cortex-A76 Software Optimization Guide): fp32 16,
  fp16 32, int8 64 operations per cycle per core; 4 cores at 2.4 GHz give 154 / 307 / 614.
- x86, from the ISA flags: two FMA pipes of the widest vector the core executes natively
  (AVX-512 on 512-bit datapaths; AMD family 0x19, Zen 3/4, runs it on 256-bit ones). fp16 has
  no faster arithmetic than fp32 without AVX512-FP16. int8 is 4x fp32 with VNNI (one
  ``vpdpbusd`` per 4 multiply-adds per lane) and 2x without (``vpmaddubsw`` + ``vpmaddwd``,
  both on the multiply pipes).
- anything else: unknown.

The clock is cpufreq's maximum where the kernel exposes it, else /proc/cpuinfo's ``cpu MHz``
(a VM's nominal clock; boost not counted).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

PRECISIONS = ("int8", "fp16", "fp32")

# ARM cores we know the SIMD issue rates of: CPU part -> (name, fp32, fp16, int8 ops/cycle/core)
ARM_CORES: dict[str, tuple[str, int, int, int]] = {
    "0xd0b": ("Cortex-A76", 16, 32, 64),
}
PI5_CLOCK_GHZ = 2.4
PI5_CORES = 4

# Published Pi 5 efficiency: achieved / peak of the precision on 4 cores (docs/PI5.md has the sources).
# key: (engine, precision) -> (fraction, source)
PI5_ENGINE_EFFICIENCY: dict[str, tuple[float, str]] = {
    "xnnpack-int8": (0.68, "Arm model card resnet-18-int8-xnnpack-executorch: 3.64 GOP in 8.75 ms"),
    "ncnn-int8": (0.35, "ncnn benchmark README, Pi 5: ResNet-18 int8 16.7 ms"),
    "onnxruntime-int8": (0.16, "Arm model card inception-v3-int8-mlas-onnx-raspberrypi5: 11.4 GOP in 113 ms"),
    "xnnpack-fp16": (0.48, "Arm, YOLO26 on Raspberry Pi 5: YOLO26n (5.4 GFLOP) in 36.6 ms, XNNPACK fp16"),
    "onnxruntime-fp32": (0.28, "Arm, YOLO26 on Raspberry Pi 5: YOLO26n (5.4 GFLOP) in 127 ms, ORT fp32"),
    "xnnpack-fp32": (0.26, "Arm, YOLO26 on Raspberry Pi 5: YOLO26n (5.4 GFLOP) in 137 ms, ExecuTorch fp32"),
}


@dataclass(frozen=True)
class CpuPeak:
    """Per-core arithmetic peak of this machine's CPU (None: unknown) and how it was derived."""

    cpu: str
    cores: int
    clock_ghz: float | None
    per_core: dict[str, float | None]  # precision -> G operations per second per core
    basis: str

    def peak(self, precision: str, threads: int | None = None) -> float | None:
        """G operations per second with ``threads`` cores busy (default: all)."""
        per_core = self.per_core.get(precision)
        if per_core is None:
            return None
        return per_core * min(threads or self.cores, self.cores)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def a76_peak(clock_ghz: float = PI5_CLOCK_GHZ, cores: int = PI5_CORES) -> CpuPeak:
    """The Pi 5's peak: 4 Cortex-A76 at 2.4 GHz."""
    return _arm_peak("0xd0b", cores, clock_ghz)


def _arm_peak(part: str, cores: int, clock: float) -> CpuPeak:
    name, fp32, fp16, int8 = ARM_CORES[part]
    return CpuPeak(name, cores, clock, {"fp32": fp32 * clock, "fp16": fp16 * clock, "int8": int8 * clock},
                   f"{name}: 2 SIMD pipes x 128 bit, FMLA/SDOT at {clock:.2f} GHz (Arm Software Optimization Guide)")


def estimate_pi5_chunk_ms(gflop: float, engine: str) -> float:
    """Chunk time on a Pi 5 (4 cores) for ``gflop`` per chunk at ``engine``'s published efficiency."""
    fraction, _ = PI5_ENGINE_EFFICIENCY[engine]
    precision = engine.rsplit("-", 1)[1]
    peak = a76_peak().peak(precision)
    assert peak is not None  # the A76's peaks are all known
    return gflop / (fraction * peak) * 1000.0


def detect(root: str | Path = "/", cores: int | None = None) -> CpuPeak:
    """This machine's peak, read from ``root``/proc/cpuinfo and cpufreq (a fake tree in tests)."""
    root = Path(root)
    try:
        text = (root / "proc/cpuinfo").read_text()
    except OSError:
        text = ""
    fields = _first_block(text)
    n = cores or os.cpu_count() or 1
    clock = _max_clock_ghz(root) or _float(fields.get("cpu MHz"), 1e-3)
    part = fields.get("CPU part", "").lower()
    if part in ARM_CORES:
        return _arm_peak(part, n, clock or PI5_CLOCK_GHZ)
    flags = set(fields.get("flags", "").split())
    cpu = fields.get("model name") or fields.get("Model") or "unknown CPU"
    if not clock or "fma" not in flags:
        return CpuPeak(cpu, n, clock, dict.fromkeys(PRECISIONS),
                       "unknown: not an ARM core we know, no x86 FMA, or no clock")
    family = int(fields.get("cpu family", "0") or 0)
    amd = fields.get("vendor_id") == "AuthenticAMD"
    bits = 512 if "avx512f" in flags and not (amd and family == 0x19) else 256
    fp32 = 2 * (bits // 32) * 2  # two FMA pipes, a multiply-add is 2
    fp16 = fp32 * 2 if "avx512_fp16" in flags else fp32
    vnni = bool(flags & {"avx512_vnni", "avx_vnni"})
    int8 = fp32 * (4 if vnni else 2)
    basis = (f"x86 {bits}-bit datapath, 2 FMA pipes at {clock:.2f} GHz; int8 "
             + ("VNNI vpdpbusd" if vnni else "vpmaddubsw + vpmaddwd (no VNNI)")
             + ("; fp16 AVX512-FP16" if fp16 > fp32 else "; fp16 computed as fp32"))
    return CpuPeak(cpu, n, clock, {"fp32": fp32 * clock, "fp16": fp16 * clock, "int8": int8 * clock}, basis)


def _first_block(text: str) -> dict[str, str]:
    """The first processor's ``key: value`` lines, plus machine-wide ones (``Model`` on a Pi)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip()
        if sep and key not in fields:
            fields[key] = value.strip()
    return fields


def _max_clock_ghz(root: Path) -> float | None:
    path = root / "sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"
    try:
        return _float(path.read_text().strip(), 1e-6)  # kHz
    except OSError:
        return None


def _float(text: str | None, scale: float) -> float | None:
    try:
        return float(text) * scale if text else None
    except ValueError:
        return None
