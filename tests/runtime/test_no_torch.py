"""The Pi runtime must work without torch (and without matplotlib unless a plot is asked for)."""

import subprocess
import sys
from pathlib import Path

CODE = r"""
import sys
sys.modules['torch'] = None          # any `import torch` now raises ImportError
import edgeact.runtime, edgeact.commands.run, edgeact.drive, edgeact.backends.onnx_backend
import edgeact.deploy.smoke, edgeact.doctor, edgeact.commands.doctor  # run on the Pi
from edgeact.runtime import ProcessConfig, RuntimeConfig, ThreadedCamera, run_rover, open_actuator
from edgeact.runtime.fake import FakePolicy, DEFAULT_SPEC
import numpy as np

class Cam(ThreadedCamera):
    def _grab(self):
        return np.zeros((48, 64, 3), np.uint8)

spec = DEFAULT_SPEC.__class__(camera_names=("c",), image_size=(24, 32), state_dim=2, action_dim=2, chunk_size=10)
rep = run_rover(FakePolicy(spec, latency_s=0.002, busy=0.5), Cam(fps=30), open_actuator("sim"),
                RuntimeConfig(rate_hz=50, duration_s=0.4, process=ProcessConfig(handle_signals=False, realtime=False)))
assert rep.neutral_at_exit and rep.actuator["sent"] > 0, rep.format_table()
assert "matplotlib" not in sys.modules
print("ok")
"""


def test_runtime_runs_without_torch():
    src = Path(__file__).resolve().parents[2] / "src"
    out = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(src)!r})\n" + CODE],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr
