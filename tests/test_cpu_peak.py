"""This CPU's peak per precision, read from fake /proc and /sys trees, and the Pi 5 estimates built on it."""

from __future__ import annotations

import pytest

from edgeact.cpu_peak import a76_peak, detect, estimate_pi5_chunk_ms

PI5_CORE = """processor\t: {n}
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
CPU part\t: 0xd0b

"""


def _tree(tmp_path, cpuinfo: str, max_khz: str | None = None):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cpuinfo").write_text(cpuinfo)
    if max_khz:
        freq = tmp_path / "sys/devices/system/cpu/cpu0/cpufreq"
        freq.mkdir(parents=True)
        (freq / "cpuinfo_max_freq").write_text(max_khz + "\n")
    return tmp_path


def test_pi5_is_read_from_cpuinfo_and_cpufreq(tmp_path):
    root = _tree(tmp_path, "".join(PI5_CORE.format(n=n) for n in range(4)) + "Model\t: Raspberry Pi 5 Model B\n",
                 "2400000")
    peak = detect(root, cores=4)
    assert peak.cpu == "Cortex-A76" and peak.clock_ghz == pytest.approx(2.4)
    # the figures: int8 614 GOP/s, fp16 307, fp32 154 on 4 cores
    assert peak.peak("int8") == pytest.approx(614.4) and peak.peak("fp16") == pytest.approx(307.2)
    assert peak.peak("fp32") == pytest.approx(153.6) and peak.peak("int8", threads=1) == pytest.approx(153.6)


def test_x86_peak_from_isa_flags(tmp_path):
    zen3 = ("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel name\t: AMD EPYC\n"
            "cpu MHz\t\t: 2450.000\nflags\t\t: fpu sse2 avx fma f16c avx2\n\n")
    peak = detect(_tree(tmp_path, zen3), cores=2)
    assert peak.per_core["fp32"] == pytest.approx(32 * 2.45)  # 2 FMA pipes x 8 lanes x 2
    assert peak.per_core["fp16"] == peak.per_core["fp32"] and peak.per_core["int8"] == 2 * peak.per_core["fp32"]
    assert "no VNNI" in peak.basis


def test_unknown_cpu_says_so(tmp_path):
    peak = detect(_tree(tmp_path, "processor\t: 0\nCPU part\t: 0xd03\n\n"), cores=4)  # a Cortex-A53 (Pi 3)
    assert peak.peak("int8") is None and peak.basis.startswith("unknown")


def test_pi5_estimate_is_gflop_over_published_efficiency():
    # the arithmetic: 26.7 GFLOP at XNNPACK's 68 % of 614 GOP/s is ~64 ms, at ONNX Runtime's 16 % ~272 ms
    assert estimate_pi5_chunk_ms(26.7, "xnnpack-int8") == pytest.approx(26.7 / (0.68 * 614.4) * 1000)
    assert 60 < estimate_pi5_chunk_ms(26.7, "xnnpack-int8") < 70 < 250 < estimate_pi5_chunk_ms(26.7, "onnxruntime-int8")
    assert a76_peak().peak("fp16") == pytest.approx(307.2)
