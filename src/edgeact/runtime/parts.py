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
