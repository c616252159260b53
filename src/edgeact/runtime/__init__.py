"""Drive a rover with a policy: cameras, inference, fixed-rate control, safety, serial, telemetry.

Nothing here imports torch: the Pi needs numpy, opencv-python-headless, pyserial and the
backend's runtime (onnxruntime, or HailoRT). Nothing here imports the simulator either: it
plugs in through :mod:`edgeact.runtime.interfaces` (see :mod:`edgeact.drive`).
"""

from edgeact.runtime.actuators import NullActuator, SerialActuator, open_actuator
from edgeact.runtime.cameras import (
    OpenCVCamera,
    Picamera2Camera,
    ReplayCamera,
    ThreadedCamera,
    open_camera,
)
from edgeact.runtime.config import OutputConfig, ProcessConfig, RuntimeConfig
from edgeact.runtime.interfaces import Actuator, Camera, Frame
from edgeact.runtime.limits import ActionLimiter, Limits
from edgeact.runtime.loop import Runtime, run_rover
from edgeact.runtime.ratekeeper import Ratekeeper
from edgeact.runtime.safety import SafetyConfig
from edgeact.runtime.scheduler import Chunk, ChunkScheduler
from edgeact.runtime.sim_arduino import SimArduino
from edgeact.runtime.telemetry import RunReport, StopKind, Telemetry

__all__ = [
    "ActionLimiter", "Actuator", "Camera", "Chunk", "ChunkScheduler", "Frame", "Limits", "NullActuator",
    "OpenCVCamera", "OutputConfig", "Picamera2Camera", "ProcessConfig", "Ratekeeper", "ReplayCamera", "RunReport",
    "Runtime", "RuntimeConfig", "SafetyConfig", "SerialActuator", "SimArduino", "StopKind", "Telemetry",
    "ThreadedCamera", "open_actuator", "open_camera", "run_rover",
]
