"""The systemd unit: rendered from our template, checked by systemd-analyze on the "Pi"."""

from __future__ import annotations

import os
import shlex
import shutil

import pytest

from edgeact.cli import main
from edgeact.deploy.service import ServiceConfig, render_unit, systemd_quote

SYSTEMD_RUNNING = os.path.isdir("/run/systemd/system")


def test_unit_has_the_safe_defaults():
    unit = render_unit("/home/pi/edgeact", "pi", ServiceConfig(), systemd_version=252)
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    assert exec_start.startswith("ExecStart=/home/pi/edgeact/venv/bin/edgeact run --model /home/pi/edgeact/current")
    assert "--max-throttle 0.5" in exec_start and "--no-keys" in exec_start
    for line in ("User=pi", "KillSignal=SIGINT", "Restart=on-failure", "LimitRTPRIO=50",
                 "SupplementaryGroups=dialout video", "WantedBy=multi-user.target"):
        assert line in unit.splitlines()
    assert "RestartSteps" not in unit  # systemd 252 (bookworm) does not know it
    assert "RestartSteps=5" in render_unit("/home/pi/edgeact", "pi", ServiceConfig(), systemd_version=256)


def test_exec_start_is_a_valid_edgeact_run_command():
    from edgeact.cli import build_parser

    unit = render_unit("/home/pi/my rover", "pi", ServiceConfig(actuator="/dev/ttyACM0"))
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    argv = shlex.split(exec_start.removeprefix("ExecStart="))
    assert argv[0] == "/home/pi/my rover/venv/bin/edgeact"
    args = build_parser().parse_args(argv[1:])
    assert (args.command, args.model, args.actuator, args.max_throttle, args.no_keys) == \
        ("run", "/home/pi/my rover/current", "/dev/ttyACM0", 0.5, True)


def test_exec_start_quoting():
    assert systemd_quote("/dev/ttyUSB0") == "/dev/ttyUSB0"
    assert systemd_quote("/home/pi/my rover") == '"/home/pi/my rover"'
    assert systemd_quote("50%") == "50%%"


def _cli(pi, root, *args):
    return main(["deploy", *args, pi.alias, "--ssh-config", str(pi.config), "--remote-dir", str(root)])


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.skipif(SYSTEMD_RUNNING, reason="systemd runs here: --service would install a real unit as this user")
def test_service_is_verified_and_kept_on_the_pi(loopback_pi, pi_root, capsys):
    # The "Pi" here has no running systemd: the unit is written and verified, then the install stops, clearly.
    assert _cli(loopback_pi, pi_root, "--service", "--max-throttle", "0.3") == 2
    assert "systemd is not running" in capsys.readouterr().err
    unit = (pi_root / "edgeact.service").read_text()
    assert "--max-throttle 0.3" in unit and f"User={loopback_pi.user}" in unit

    (pi_root / "venv").unlink()  # no runtime: systemd-analyze rejects the ExecStart
    assert _cli(loopback_pi, pi_root, "--service") == 2
    err = capsys.readouterr().err
    assert "systemd-analyze verify rejected" in err and "add --setup" in err


def test_status_shows_current_and_the_service(loopback_pi, pi_root, capsys):
    assert _cli(loopback_pi, pi_root, "--status") == 0
    out = capsys.readouterr().out
    assert "current: unset" in out
    assert ("systemd is not running" in out) != SYSTEMD_RUNNING
