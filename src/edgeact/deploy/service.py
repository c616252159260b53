"""``edgeact deploy --service``: a systemd unit that drives the rover on boot from ``<root>/current``.

The unit comes from ``templates/edgeact.service`` (safe defaults: throttle capped, restart on
failure with a back-off, neutral on stop, realtime allowed), is checked with
``systemd-analyze verify`` on the Pi where it exists, kept at ``<root>/edgeact.service`` and
installed as ``/etc/systemd/system/edgeact.service`` (sudo without a password, as on
Raspberry Pi OS).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from importlib import resources
from string import Template

from edgeact.deploy import remote
from edgeact.deploy.remote import RemoteInfo
from edgeact.errors import DeployError
from edgeact.ssh import SshSession
from edgeact.version import __version__

UNIT_NAME = "edgeact.service"
# systemd >= 254 grows the restart delay (RestartSteps); older ones restart every RestartSec.
BACKOFF_SYSTEMD = 254


@dataclass(frozen=True)
class ServiceConfig:
    """The driving command the unit runs; the defaults are the cautious ones."""

    backend: str = "auto"
    camera: str = "0"
    actuator: str = "/dev/ttyUSB0"
    rate_hz: float = 50.0
    max_throttle: float = 0.5
    restart_sec: int = 2


def systemd_quote(arg: str) -> str:
    """One ExecStart argument: quoted when it has spaces or quotes; % and $ escaped (systemd expands them)."""
    arg = arg.replace("%", "%%").replace("$", "$$")
    if re.search(r"[\s\"'\\;]", arg):
        return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return arg


def render_unit(root: str, user: str, config: ServiceConfig, systemd_version: int | None = None) -> str:
    """The unit text for a Pi whose remote root is ``root`` (absolute) and whose login is ``user``."""
    command = [f"{root}/venv/bin/edgeact", "run", "--model", f"{root}/current", "--backend", config.backend,
               "--camera", config.camera, "--actuator", config.actuator, "--rate", f"{config.rate_hz:g}",
               "--max-throttle", f"{config.max_throttle:g}", "--no-keys", "--status", "10"]
    backoff = ("RestartSteps=5\nRestartMaxDelaySec=60" if (systemd_version or 0) >= BACKOFF_SYSTEMD
               else "# systemd < 254: a fixed RestartSec, no growing back-off")
    template = Template((resources.files("edgeact.deploy") / "templates" / UNIT_NAME).read_text())
    return template.substitute(version=__version__, root=root, user=user,
                               exec_start=" ".join(systemd_quote(a) for a in command),
                               restart_sec=config.restart_sec, restart_backoff=backoff)


SYSTEMD_VERSION = "systemctl --version 2>/dev/null | head -n 1 | awk '{print $2}'"

# $1 root, $2 unit text: keep it in the root, verify, install, (re)start.
INSTALL = r"""
set -eu
unit="$1/edgeact.service"
printf '%s' "$2" > "$unit.tmp" && mv -f "$unit.tmp" "$unit"
if command -v systemd-analyze >/dev/null 2>&1; then
  # It exits 0 on unknown keys, which are mistakes here too: any remark about our file rejects it.
  remarks=$(systemd-analyze verify "$unit" 2>&1) && ! printf '%s' "$remarks" | grep -qF edgeact.service || {
    printf 'systemd-analyze verify rejected %s:\n%s\n' "$unit" "$remarks" >&2; exit 3; }
fi
[ -d /run/systemd/system ] || { echo "NO_SYSTEMD"; exit 4; }
if [ "$(id -u)" -eq 0 ]; then sudo=; else sudo="sudo -n"; fi
$sudo install -m 0644 "$unit" /etc/systemd/system/edgeact.service || { echo "NEED_SUDO"; exit 5; }
$sudo systemctl daemon-reload
$sudo systemctl enable edgeact.service
$sudo systemctl restart edgeact.service
"""

# $1 root, $2 log lines.
STATUS = r"""
cd "$1" 2>/dev/null || { echo "nothing deployed in $1"; exit 0; }
echo "current: $(readlink current 2>/dev/null || echo unset)"
if [ ! -d /run/systemd/system ]; then echo "service: systemd is not running on this host"; exit 0; fi
if [ ! -f /etc/systemd/system/edgeact.service ]; then
  echo "service: not installed (edgeact deploy --service)"; exit 0
fi
systemctl status edgeact.service --no-pager --lines=0 || true
journalctl -u edgeact.service -n "$2" --no-pager -o short-iso 2>&1 || true
"""


def install_service(session: SshSession, info: RemoteInfo, config: ServiceConfig) -> str:
    """Write, verify and start the unit; returns its text. DeployError says what is missing."""
    version = session.run(SYSTEMD_VERSION, check=False).stdout.strip()
    unit = render_unit(info.root, info.user, config, int(version) if version.isdigit() else None)
    result = session.run(INSTALL, info.root, unit, check=False)
    where = f"{info.root}/{UNIT_NAME} on {session.target.destination}"
    if "NO_SYSTEMD" in result.stdout:
        raise DeployError(f"systemd is not running on {session.target.destination}, so the service cannot be "
                          f"installed; the unit is at {where}")
    if "NEED_SUDO" in result.stdout:
        raise DeployError(f"installing the unit needs sudo without a password on {session.target.destination}; "
                          f"run there: sudo install -m 0644 {shlex.quote(info.root)}/{UNIT_NAME} /etc/systemd/system/ "
                          "&& sudo systemctl daemon-reload && sudo systemctl enable --now edgeact")
    if result.returncode != 0:
        hint = " (is the runtime installed there? add --setup)" if "not executable" in result.stderr else ""
        raise DeployError(f"installing {where} failed{hint}: {(result.stderr + result.stdout).strip()[-800:]}")
    return unit


def service_status(session: SshSession, root: str, lines: int = 30) -> str:
    """``current``, the unit's state and its last ``lines`` log lines."""
    info = remote.probe(session, root)
    return session.run(STATUS, info.root, str(lines)).stdout
