"""A run's settings, nested by concern; every default is defined here or in the part it configures.

    RuntimeConfig(rate_hz=100, duration_s=60,
                  limits=Limits(max_throttle=0.5),          # edgeact.runtime.limits
                  safety=SafetyConfig(camera_stall_s=0.3),  # edgeact.runtime.safety
                  process=ProcessConfig(keyboard=True),
                  output=OutputConfig(telemetry_path="run.jsonl"))
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgeact.errors import ConfigError
from edgeact.runtime.limits import Limits
from edgeact.runtime.safety import SafetyConfig

MAX_RATE_HZ = 1000.0  # the serial link carries ~400 lines/s at 115200 baud


@dataclass(frozen=True)
class ProcessConfig:
    """What the run does to its process while it drives (all undone at the end)."""

    handle_signals: bool = True  # SIGINT/SIGTERM stop, SIGUSR1 emergency stop (main thread only)
    keyboard: bool = False  # space/e = emergency stop, q = stop, when stdin is a terminal
    switch_interval_s: float | None = 0.001  # GIL switch interval during the run (Python's default is 5 ms)
    freeze_gc: bool = True  # gc.freeze() at start: collections skip everything allocated before the run
    realtime: bool = True  # try SCHED_FIFO for the control thread (root or an rtprio limit); else normal
    inference_nice: int = 0  # > 0 lowers the inference thread's priority (Linux per-thread nice)


@dataclass(frozen=True)
class OutputConfig:
    """What the run writes and logs besides its report."""

    telemetry_path: str | None = None  # JSON lines
    plot_path: str | None = None  # PNG of the timelines
    status_every_s: float = 0.0  # log a one-line status this often (0: never)


@dataclass(frozen=True)
class RuntimeConfig:
    """One run: control rate and mode, then the limits, safety, process and output settings."""

    rate_hz: float = 50.0  # control rate; a hobby servo's PWM frame is 20 ms (50 Hz)
    duration_s: float | None = None  # None: until stopped (Ctrl-C, SIGTERM, 'q', end of a finite camera)
    sync: bool = False  # capture → infer → act each tick (the guide's loop), for comparison
    ensemble_coeff: float | None = None  # temporal ensembling (LeRobot: 0.01); None: newest chunk
    limits: Limits = field(default_factory=Limits)
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    process: ProcessConfig = field(default_factory=ProcessConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def __post_init__(self) -> None:
        if not self.rate_hz > 0:
            raise ConfigError(f"rate must be positive, got {self.rate_hz} Hz")
        if self.rate_hz > MAX_RATE_HZ:
            raise ConfigError(f"rate {self.rate_hz} Hz is beyond what the serial link carries (~400 lines/s)")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ConfigError(f"duration must be positive, got {self.duration_s}")

    @property
    def mode(self) -> str:
        return "sync" if self.sync else "async"
