"""Process settings for a run, applied at start and undone at the end.

With inference threads busy on every core, a normal-priority thread holding the GIL gets
starved while the control thread waits for it. So, during a run: the GIL switch interval
drops (1 ms), the garbage collector's existing objects are frozen (a full collection walks
the model's runtime holding the GIL for milliseconds), signals and keys reach the runtime,
and the control thread asks for SCHED_FIFO.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import threading
from collections.abc import Callable

from edgeact.runtime.config import ProcessConfig
from edgeact.runtime.safety import KeyboardEStop, SignalGuard

log = logging.getLogger("edgeact.runtime")


class ProcessState:
    """``apply()`` at start, ``restore()`` at the end (safe to call more than once)."""

    def __init__(self, config: ProcessConfig, on_stop: Callable[[str], None],
                 on_estop: Callable[[str], None]) -> None:
        self.config = config
        self._signals = SignalGuard(on_stop, on_estop)
        self._keys = KeyboardEStop(on_estop, on_stop) if config.keyboard else None
        self._saved_switch: float | None = None
        self._frozen = False

    def apply(self) -> None:
        cfg = self.config
        if cfg.switch_interval_s:
            self._saved_switch = sys.getswitchinterval()
            sys.setswitchinterval(cfg.switch_interval_s)
        if cfg.freeze_gc:
            gc.collect()
            gc.freeze()
            self._frozen = True
        if cfg.handle_signals:
            self._signals.install()

    def start_keys(self) -> None:
        if self._keys is not None and self._keys.start():
            log.warning("keys: space or e = EMERGENCY STOP (latched neutral), q = stop")

    def restore(self) -> None:
        self._signals.restore()
        if self._keys is not None:
            self._keys.stop()
        if self._saved_switch is not None:
            sys.setswitchinterval(self._saved_switch)
            self._saved_switch = None
        if self._frozen:
            gc.unfreeze()
            self._frozen = False


def try_realtime(priority: int = 10) -> bool:
    """SCHED_FIFO for the calling (control) thread only; it sleeps most of each period. True if granted."""
    if not hasattr(os, "sched_setscheduler"):
        return False
    try:
        os.sched_setscheduler(threading.get_native_id(), os.SCHED_FIFO, os.sched_param(priority))
    except (OSError, AttributeError) as err:
        log.info("control thread: normal priority (SCHED_FIFO not permitted: %s; run as root or set an "
                 "rtprio limit for lower jitter)", err)
        return False
    log.info("control thread: SCHED_FIFO priority %d", priority)
    return True


def restore_normal_priority() -> None:
    """Give the calling thread back the normal scheduler (run() uses the caller's thread)."""
    try:
        os.sched_setscheduler(threading.get_native_id(), os.SCHED_OTHER, os.sched_param(0))
    except OSError:
        pass
