"""Build the Arduino sketch (``firmware/rover_bridge``) for an Uno / Nano, and flash it.

The build is ``firmware/Makefile`` (avr-gcc and the Arduino AVR core, as the Arduino IDE
builds it, with warnings on and a flash / RAM budget); this module checks the tools are
there, runs it and reads its size report. Flashing runs avrdude against the board's
bootloader. :func:`build_emulator` builds the simavr harness (``firmware/emulator``) the
same way. All of it works from a clone of edgeact (the sketch is not part of the wheel).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgeact.errors import ConfigError, ToolchainError

ARDUINO_AVR = Path("/usr/share/arduino/hardware/arduino/avr")
BUILD_PACKAGES = "gcc-avr binutils-avr avr-libc arduino-core-avr make"
EMULATOR_PACKAGES = "simavr libsimavr-dev libelf-dev pkg-config gcc make"
FLASH_LIMIT = 32256  # ATmega328P flash less the Uno's 512-byte optiboot
RAM_LIMIT = 2048


@dataclass(frozen=True)
class Board:
    name: str
    upload_baud: int  # the bootloader's
    notes: str


BOARDS = {
    "uno": Board("uno", 115200, "Arduino Uno (ATmega328P, optiboot)"),
    "nano": Board("nano", 115200, "Arduino Nano (ATmega328P) with the current bootloader"),
    "nano-old": Board("nano-old", 57600, "Arduino Nano or clone with the old ATmegaBOOT bootloader"),
}


@dataclass(frozen=True)
class BuildResult:
    elf: Path
    hex: Path
    flash_bytes: int  # .text + .data
    ram_bytes: int  # .data + .bss (static RAM; the rest of the 2 KiB is stack)
    log: str  # the build's output (compiler warnings, size report)


def firmware_dir(explicit: str | Path | None = None) -> Path:
    """The folder holding the Makefile and rover_bridge/: ``explicit``, or the one in this checkout."""
    path = Path(explicit) if explicit else Path(__file__).resolve().parents[3] / "firmware"
    if not (path / "Makefile").is_file() or not (path / "rover_bridge" / "rover_bridge.ino").is_file():
        raise ConfigError(f"no firmware/Makefile and firmware/rover_bridge/rover_bridge.ino under {path}: "
                          "run from a clone of edgeact (pip install -e .) or pass --firmware-dir")
    return path


def board(name: str) -> Board:
    if name not in BOARDS:
        raise ConfigError(f"unknown board {name!r}: choose one of {', '.join(BOARDS)}")
    return BOARDS[name]


def check_build_tools(arduino_avr: Path = ARDUINO_AVR, which: Callable[[str], str | None] = shutil.which) -> None:
    """ToolchainError naming the Debian packages when avr-gcc, make or the Arduino core is missing."""
    missing = [tool for tool in ("avr-gcc", "avr-g++", "avr-objcopy", "avr-size", "make") if which(tool) is None]
    if not (arduino_avr / "cores" / "arduino" / "Arduino.h").is_file():
        missing.append(f"the Arduino AVR core ({arduino_avr})")
    if missing:
        raise ToolchainError(f"cannot build the firmware: missing {', '.join(missing)}. On Debian / Ubuntu / "
                             f"Raspberry Pi OS: sudo apt install {BUILD_PACKAGES}")


def build(board_name: str = "uno", out_dir: str | Path | None = None, *, firmware: str | Path | None = None,
          arduino_avr: Path = ARDUINO_AVR) -> BuildResult:
    """Build rover_bridge for ``board_name`` into ``out_dir`` (default firmware/build); check the size budget."""
    b = board(board_name)
    src = firmware_dir(firmware)
    check_build_tools(arduino_avr)
    out = Path(out_dir).resolve() if out_dir else src / "build"
    cmd = ["make", "-C", str(src), f"BOARD={b.name}", f"BUILD={out}", f"ARDUINO_AVR={arduino_avr}", "all"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise ToolchainError(f"the firmware build failed ({' '.join(cmd)}):\n{log.strip()}")
    sizes = dict(re.findall(r"^(flash|ram):\s+(\d+) bytes", log, flags=re.M))
    return BuildResult(elf=out / b.name / "rover_bridge.elf", hex=out / b.name / "rover_bridge.hex",
                       flash_bytes=int(sizes["flash"]), ram_bytes=int(sizes["ram"]), log=log)


def build_emulator(out_dir: str | Path, *, firmware: str | Path | None = None) -> Path:
    """Build ``rover_board`` (the sketch on an emulated Uno, see :mod:`.emulator`) with the host cc."""
    src = firmware_dir(firmware)
    missing = [tool for tool in ("cc", "make", "pkg-config") if shutil.which(tool) is None]
    if not missing and subprocess.run(["pkg-config", "--exists", "simavr"]).returncode != 0:
        missing.append("libsimavr")
    if missing:
        raise ToolchainError(f"cannot build the emulator: missing {', '.join(missing)}. "
                             f"On Debian / Ubuntu: sudo apt install {EMULATOR_PACKAGES}")
    out = Path(out_dir).resolve()
    proc = subprocess.run(["make", "-C", str(src), f"BUILD={out}", "emulator"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ToolchainError(f"the emulator build failed:\n{(proc.stdout + proc.stderr).strip()}")
    return out / "rover_board"


def avrdude_command(hex_path: Path, port: str, board_name: str) -> list[str]:
    b = board(board_name)
    return ["avrdude", "-C", "/etc/avrdude.conf", "-p", "atmega328p", "-c", "arduino", "-P", port,
            "-b", str(b.upload_baud), "-D", "-U", f"flash:w:{hex_path}:i"]


def check_flash_target(port: str) -> None:
    """ToolchainError / ConfigError when avrdude or the port is missing (checked before building)."""
    if shutil.which("avrdude") is None:
        raise ToolchainError("avrdude not found: sudo apt install avrdude")
    if not Path(port).exists():
        raise ConfigError(f"no serial port {port}: plug the board in and look for it (ls /dev/ttyACM* /dev/ttyUSB*)")


def flash(hex_path: Path, port: str, board_name: str = "uno") -> str:
    """Upload ``hex_path`` through the board's bootloader with avrdude; its output."""
    check_flash_target(port)
    cmd = avrdude_command(hex_path, port, board_name)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        hint = ""
        if "not in sync" in out or "programmer is not responding" in out:
            other = "nano-old" if board_name == "nano" else "nano"
            hint = (f" The bootloader did not answer at {board(board_name).upload_baud} baud: check the port, "
                    f"close any serial monitor (or edgeact run) holding it, and for a Nano try --board {other}.")
        elif "Permission denied" in out:
            hint = " Add yourself to the 'dialout' group (sudo usermod -aG dialout $USER) and log in again."
        raise ToolchainError(f"flashing {port} failed ({' '.join(cmd)}).{hint}\n{out.strip()}")
    return out
