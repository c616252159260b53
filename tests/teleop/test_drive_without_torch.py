"""`edgeact drive` runs on the Pi: no torch (nor matplotlib) is imported by the page (HTTPS included), the pilot or
the recorder."""

from without_torch import run_without

CODE = r"""
import tempfile
import edgeact.commands.drive
from edgeact.teleop.no_policy import NoPolicy
from edgeact.teleop.session import DriveConfig, DriveSession
from edgeact.drive import Parts, open_parts
from edgeact.runtime.config import ProcessConfig, RuntimeConfig

cam, act = open_parts(Parts(camera="sim", actuator="sim"), (90, 160))
quiet = ProcessConfig(handle_signals=False, realtime=False, keyboard=False)
cfg = DriveConfig(runtime=RuntimeConfig(rate_hz=50, process=quiet), port=0, record_dir=tempfile.mkdtemp(),
                  https=True, cert_dir=tempfile.mkdtemp())
s = DriveSession(NoPolicy((90, 160)), cam, act, cfg, has_policy=False)
s.start()
assert s.url.startswith("https://127.0.0.1:")
rep = s.stop()
assert rep.run.neutral_at_exit, rep.run.format_table()
print("ok")
"""


def test_drive_runs_without_torch():
    out = run_without(CODE, blocked=("torch", "matplotlib"))
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr
