"""Fixtures: the sketch built for the ATmega328P (edgeact.firmware.build, i.e. firmware/Makefile)
and the simavr harness (firmware/emulator/rover_board.c, host cc), each built once per session."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # emulated_board

from edgeact import firmware  # noqa: E402
from edgeact.errors import ToolchainError  # noqa: E402
from emulated_board import EmulatedBoard  # noqa: E402

FIRMWARE_DIR = Path(__file__).resolve().parents[2] / "firmware"


@pytest.fixture(scope="session")
def avr_build(tmp_path_factory) -> firmware.BuildResult:
    try:
        firmware.check_build_tools()
    except ToolchainError as err:
        pytest.skip(f"{err} (scripts/install-test-system-packages.sh installs them)")
    return firmware.build("uno", tmp_path_factory.mktemp("avr-build"))


@pytest.fixture(scope="session")
def harness(tmp_path_factory) -> Path:
    if shutil.which("pkg-config") is None or subprocess.run(["pkg-config", "--exists", "simavr"]).returncode:
        pytest.skip("libsimavr is not installed: apt install simavr libsimavr-dev libelf-dev pkg-config "
                    "(scripts/install-test-system-packages.sh does)")
    out = tmp_path_factory.mktemp("harness")
    subprocess.run(["make", "-C", str(FIRMWARE_DIR), f"BUILD={out}", "emulator"], check=True, capture_output=True)
    return out / "rover_board"


@pytest.fixture
def board(harness, avr_build, tmp_path):
    """The firmware on an emulated Uno in step with the wall clock; its pty at ``board.port``."""
    b = EmulatedBoard(harness, avr_build.elf, tmp_path).start()
    yield b
    b.stop()
