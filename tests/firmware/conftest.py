"""Fixtures: the sketch built for the ATmega328P (edgeact.firmware.build, i.e. firmware/Makefile)
and the simavr harness (firmware/emulator/rover_board.c, host cc), each built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeact.errors import ToolchainError
from edgeact.firmware import build
from edgeact.firmware.emulator import EmulatedBoard

INSTALL_HINT = "(scripts/install-test-system-packages.sh installs them)"


@pytest.fixture(scope="session")
def avr_build(tmp_path_factory) -> build.BuildResult:
    try:
        build.check_build_tools()
    except ToolchainError as err:
        pytest.skip(f"{err} {INSTALL_HINT}")
    return build.build("uno", tmp_path_factory.mktemp("avr-build"))


@pytest.fixture(scope="session")
def harness(tmp_path_factory) -> Path:
    try:
        return build.build_emulator(tmp_path_factory.mktemp("harness"))
    except ToolchainError as err:
        pytest.skip(f"{err} {INSTALL_HINT}")


@pytest.fixture
def board(harness, avr_build, tmp_path):
    """The firmware on an emulated Uno in step with the wall clock; its pty at ``board.port``."""
    b = EmulatedBoard(harness, avr_build.elf, tmp_path).start()
    yield b
    b.stop()
