"""Wire a drive: a policy, a camera and an actuator named as on the command line, the runtime.

This is where the simulator plugs into the runtime (``--camera sim``: the simulated rover
moves with what the actuator outputs), so neither imports the other. ``edgeact run``,
``edgeact demo`` and the drive page all go through here::

    from edgeact.drive import Parts, drive, open_policy
    from edgeact.runtime import RuntimeConfig
    policy = open_policy("bundle/")
    try:
        report = drive(policy, Parts(camera="sim:oval", actuator="sim"), RuntimeConfig(rate_hz=100, duration_s=60))
    finally:
        policy.close()
    report.stop_kind      # StopKind.DURATION, REQUESTED, SOURCE_ENDED or FAULT

:func:`open_runtime` gives the :class:`~edgeact.runtime.loop.Runtime` before it starts, for
callers that run it in the background (``rt.start()`` … ``rt.stop()``) or feed it their
own per-tick commands (``source=``, an :class:`~edgeact.runtime.inference.ActionSource`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from edgeact.errors import ConfigError
from edgeact.policy import Backend
from edgeact.runtime import protocol as P
from edgeact.runtime.actuators import open_actuator
from edgeact.runtime.cameras import open_camera
from edgeact.runtime.config import RuntimeConfig
from edgeact.runtime.inference import ActionSource
from edgeact.runtime.interfaces import Actuator, Camera
from edgeact.runtime.loop import Runtime
from edgeact.runtime.recovery import RecoveringBackend, RecoveryConfig, Reopenable
from edgeact.runtime.telemetry import RunReport, Telemetry

SIM_PREFIX = "sim"
DEFAULT_TRACK = "oval"


@dataclass(frozen=True)
class Parts:
    """The camera and the actuator by their CLI names (see ``edgeact run --help``)."""

    camera: str | int  # 0, video file or URL, picamera2[:N], replay:EPISODE_DIR, sim[:TRACK]
    actuator: str  # /dev/ttyUSB0, a pyserial URL, sim (simulated Arduino on a pty), none
    baudrate: int = P.BAUDRATE
    watchdog_s: float = P.WATCHDOG_S  # the simulated Arduino's watchdog
    seed: int = 0  # the simulator's appearance


def is_sim_camera(camera: str | int) -> bool:
    low = str(camera).strip().lower()
    return low == SIM_PREFIX or low.startswith(SIM_PREFIX + ":")


def open_parts(parts: Parts, image_size: tuple[int, int]) -> tuple[Camera, Actuator]:
    """(camera, actuator), built but not started (the runtime starts and stops them).

    ``image_size`` (H, W): the simulator renders at the policy's input size.
    """
    actuator = open_actuator(parts.actuator, baudrate=parts.baudrate, watchdog_s=parts.watchdog_s)
    if not is_sim_camera(parts.camera):
        return open_camera(parts.camera), actuator
    from edgeact.sim.camera import SimCamera
    from edgeact.sim.world import RoverSim

    track = str(parts.camera).split(":", 1)[1] if ":" in str(parts.camera) else DEFAULT_TRACK
    height, width = image_size
    sim = RoverSim(track=track or DEFAULT_TRACK, image_size=(height, width), seed=parts.seed)
    return SimCamera(sim, actuator.outputs), actuator


def open_policy(model: str, backend: str | None = None, threads: int | None = None,
                config_path: str | None = None, fallback: str | None = None,
                recovery: RecoveryConfig | None = None) -> Backend:
    """Load the policy to drive with: ``model`` a bundle, a checkpoint, or ``fake[:MS[:BUSY]]``
    (a stand-in taking MS per inference). ``threads`` defaults to every physical core but one;
    ``config_path``: the config.json of a weights-only ``.pth`` checkpoint.

    A backend on an accelerator that can drop out (one with ``reopen()``: ``hailo``, ``hailo-split``)
    comes wrapped in a :class:`~edgeact.runtime.recovery.RecoveringBackend` (``recovery`` says how
    hard it tries); ``fallback`` names the bundle's CPU backend that drives meanwhile (``onnx-int8``)."""
    if model == "fake" or model.startswith("fake:"):
        from edgeact.runtime.fake import parse_fake

        return parse_fake(model)
    import edgeact
    from edgeact.cpu import inference_threads

    options = {"config_path": config_path} if config_path else {}
    threads = threads or inference_threads()
    policy = edgeact.load_policy(model, backend=backend or "auto", threads=threads, **options)
    if not hasattr(policy, "reopen"):
        if fallback:
            policy.close()
            raise ConfigError(f"--fallback {fallback} backs up an accelerator that can drop out (hailo, hailo-split); "
                              f"{policy.name} runs on the CPU already")
        return policy
    try:
        spare = edgeact.load_policy(model, backend=fallback, threads=threads) if fallback else None
    except Exception:
        policy.close()
        raise
    return RecoveringBackend(cast(Reopenable, policy), spare, recovery)


def open_runtime(backend: Backend, parts: Parts, config: RuntimeConfig, *, telemetry: Telemetry | None = None,
                 source: ActionSource | None = None) -> Runtime:
    """The runtime for ``backend`` on ``parts``, not started; the caller closes the backend."""
    camera, actuator = open_parts(parts, backend.spec.image_size)
    return Runtime(backend, camera, actuator, config, telemetry=telemetry, source=source)


def drive(backend: Backend, parts: Parts, config: RuntimeConfig, *, telemetry: Telemetry | None = None,
          source: ActionSource | None = None) -> RunReport:
    """Drive until the run ends (duration, stop, end of the camera source, fault); the report
    says how it ended in ``stop_kind``."""
    return open_runtime(backend, parts, config, telemetry=telemetry, source=source).run()
