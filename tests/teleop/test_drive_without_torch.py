"""`edgeact drive` runs on the Pi: no torch (nor matplotlib) is imported by the page, the pilot or the recorder."""

import subprocess
import sys
from pathlib import Path

CODE = r"""
import sys, tempfile
sys.modules['torch'] = None          # any `import torch` now raises ImportError
sys.modules['matplotlib'] = None
import edgeact.commands.drive
from edgeact.teleop.no_policy import NoPolicy
from edgeact.teleop.session import DriveConfig, DriveSession
from edgeact.drive import Parts, open_parts
from edgeact.runtime.config import ProcessConfig, RuntimeConfig

cam, act = open_parts(Parts(camera="sim", actuator="sim"), (90, 160))
quiet = ProcessConfig(handle_signals=False, realtime=False, keyboard=False)
cfg = DriveConfig(runtime=RuntimeConfig(rate_hz=50, process=quiet), port=0, record_dir=tempfile.mkdtemp())
s = DriveSession(NoPolicy((90, 160)), cam, act, cfg, has_policy=False)
s.start()
assert s.url.startswith("http://127.0.0.1:")
rep = s.stop()
assert rep.run.neutral_at_exit, rep.run.format_table()
print("ok")
"""


def test_drive_runs_without_torch():
    src = Path(__file__).resolve().parents[2] / "src"
    out = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(src)!r})\n" + CODE],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr
