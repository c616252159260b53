"""edgeact.firmware.build and `edgeact firmware build|flash`: avr-gcc + the Arduino AVR core via
firmware/Makefile, warnings as errors, the size budget, clear errors for missing tools."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from edgeact.cli import main
from edgeact.errors import ConfigError, ToolchainError
from edgeact.firmware import build


def test_build_for_the_nano_reports_flash_and_ram_within_budget(avr_build, tmp_path, capsys):
    assert main(["firmware", "build", "--board", "nano", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    hex_file = tmp_path / "nano" / "rover_bridge.hex"
    assert f"built {hex_file}" in out and "flash " in out and "RAM " in out
    records = hex_file.read_text().split()
    assert records[-1] == ":00000001FF" and all(r.startswith(":") for r in records)  # Intel hex, as avrdude reads
    assert 0 < avr_build.flash_bytes <= 16384 and 0 < avr_build.ram_bytes <= 1024
    assert f"flash: {avr_build.flash_bytes} bytes" in avr_build.log


def test_the_sketchs_warnings_fail_the_build_and_the_budget_is_enforced(avr_build, tmp_path):
    fw = tmp_path / "firmware"
    shutil.copytree(build.firmware_dir(), fw, ignore=shutil.ignore_patterns("build"))
    sketch = fw / "rover_bridge" / "rover_bridge.ino"
    sketch.write_text(sketch.read_text().replace("void loop() {", "void loop() {\n  int unused;"))
    with pytest.raises(ToolchainError, match="unused variable"):
        build.build("uno", tmp_path / "out", firmware=fw)
    proc = subprocess.run(["make", "-C", str(build.firmware_dir()), f"BUILD={tmp_path / 'b2'}", "FLASH_BUDGET=2000"],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "over the size budget" in proc.stderr


def test_missing_tools_name_the_debian_packages(tmp_path):
    with pytest.raises(ToolchainError, match="apt install gcc-avr binutils-avr avr-libc arduino-core-avr"):
        build.check_build_tools(which=lambda tool: None)
    with pytest.raises(ToolchainError, match=f"the Arduino AVR core \\({tmp_path}\\)"):
        build.check_build_tools(arduino_avr=tmp_path, which=lambda tool: "/usr/bin/" + tool)
    with pytest.raises(ConfigError, match="choose one of uno, nano, nano-old"):
        build.board("mega")


def test_flash_checks_the_port_first_and_uses_the_bootloaders_baud(tmp_path, monkeypatch, capsys):
    assert main(["firmware", "flash", "--port", str(tmp_path / "ttyACM9"), "--board", "uno"]) == 2
    assert "no serial port" in capsys.readouterr().err
    assert build.avrdude_command(tmp_path / "x.hex", "/dev/ttyUSB0", "nano-old")[:10] == [
        "avrdude", "-C", "/etc/avrdude.conf", "-p", "atmega328p", "-c", "arduino", "-P", "/dev/ttyUSB0", "-b"]
    assert build.avrdude_command(tmp_path / "x.hex", "/dev/ttyUSB0", "nano-old")[10] == "57600"
    assert build.avrdude_command(tmp_path / "x.hex", "/dev/ttyACM0", "uno")[10] == "115200"
    monkeypatch.setattr(shutil, "which", lambda tool: None)
    with pytest.raises(ToolchainError, match="apt install avrdude"):
        build.check_flash_target("/dev/null")
