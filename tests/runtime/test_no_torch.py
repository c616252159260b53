"""The Pi runtime must work without torch (and without matplotlib unless a plot is asked for)."""

from without_torch import run_without

CODE = r"""
import sys
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
    out = run_without(CODE)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr
