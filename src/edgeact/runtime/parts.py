"""Open a camera and an actuator from their CLI strings, wired together for the simulator.

With ``--camera sim``, the simulated rover must move with what the rover's controller
outputs: the simulated Arduino's servo/ESC values (``--actuator sim``), or else the last
command sent.
"""

from __future__ import annotations

from edgeact.runtime.actuators import open_actuator
from edgeact.runtime.cameras import Camera, open_camera


def open_parts(camera: str | int, actuator: str, image_size: tuple[int, int], *, baudrate: int = 115200,
               watchdog_s: float = 0.25, seed: int = 0):
    """(camera, actuator), built but not started; the runtime starts and stops them."""
    act = open_actuator(actuator, baudrate=baudrate, watchdog_s=watchdog_s)
    board = getattr(act, "sim", None)
    if board is not None:
        def controls():
            return board.outputs
    else:
        def controls():
            return act.last_sent
    cam: Camera = open_camera(camera, image_size=image_size, controls=controls, seed=seed)
    return cam, act


def inference_threads() -> int:
    """Threads for the backend under the runtime: every physical core but one.

    The free core keeps the control loop, camera and serial threads on time. Measured on a
    2-core machine at 100 Hz with the 360x640 int8 model: with both cores given to ONNX
    Runtime, 8 control deadlines in 60 s were missed by 10-30 ms (a normal-priority thread
    holding the GIL was starved by the spinning inference threads while the control thread
    waited for the GIL); with one, none were, at 37 ms instead of 21 ms per inference,
    which a 100-step chunk absorbs.
    """
    from edgeact.backends.onnx_backend import physical_cores

    return max(1, physical_cores() - 1)
