"""Drive a rover with a policy: cameras, inference, fixed-rate control, safety, serial, telemetry.

Nothing here imports torch: the Pi needs numpy, opencv-python-headless, pyserial and the
backend's runtime (onnxruntime, or HailoRT).
"""

from edgeact.runtime.actuators import NullActuator, SerialActuator, open_actuator
from edgeact.runtime.cameras import (
    Camera,
    Frame,
    OpenCVCamera,
    Picamera2Camera,
    ReplayCamera,
    SimCamera,
    open_camera,
)
from edgeact.runtime.limits import ActionLimiter, Limits
from edgeact.runtime.loop import Runtime, RuntimeConfig, run_rover
from edgeact.runtime.preprocess import fit_frame
from edgeact.runtime.ratekeeper import Ratekeeper
from edgeact.runtime.scheduler import Chunk, ChunkScheduler
from edgeact.runtime.sim_arduino import SimArduino
from edgeact.runtime.telemetry import RunReport, Telemetry

__all__ = [
    "ActionLimiter", "Camera", "Chunk", "ChunkScheduler", "Frame", "Limits", "NullActuator", "OpenCVCamera",
    "Picamera2Camera", "Ratekeeper", "ReplayCamera", "RunReport", "Runtime", "RuntimeConfig", "SerialActuator",
    "SimArduino", "SimCamera", "Telemetry", "fit_frame", "open_actuator", "open_camera", "run_rover",
]
