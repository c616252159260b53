"""The runtime: camera, inference and control as three decoupled activities.

    camera thread ──newest frame──▶ inference thread ──chunk (frame time)──▶ scheduler
                                                                             │
    control loop (fixed rate, absolute schedule): action for now ─▶ safety ─▶ limits ─▶ actuator

Library use (no CLI)::

    from edgeact.runtime import RuntimeConfig, run_rover, open_camera, open_actuator
    backend = edgeact.load_policy("bundle/", backend="onnx-int8")
    actuator = open_actuator("/dev/ttyUSB0")
    camera = open_camera(0)
    report = run_rover(backend, camera, actuator, RuntimeConfig(rate_hz=50, duration_s=60))
    print(report.format_table())

or ``rt = Runtime(...); rt.start(); …; report = rt.stop()`` to run it in the background
(:func:`edgeact.drive.open_runtime` also opens the parts from their CLI names, the
simulator included). The runtime starts and stops the camera and the actuator; the caller
closes the backend.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np

from edgeact.errors import ConfigError
from edgeact.policy import Backend, PolicySpec
from edgeact.runtime import safety as S
from edgeact.runtime.config import RuntimeConfig
from edgeact.runtime.inference import ActionSource, AsyncInference, SyncInference, TickAction
from edgeact.runtime.interfaces import Actuator, Camera
from edgeact.runtime.limits import ActionLimiter
from edgeact.runtime.process import ProcessState, restore_normal_priority, try_realtime
from edgeact.runtime.ratekeeper import Ratekeeper, Tick
from edgeact.runtime.recovery import RecoveringBackend
from edgeact.runtime.scheduler import ChunkScheduler
from edgeact.runtime.telemetry import RunFacts, RunReport, StopKind, Telemetry, plot_timeline

log = logging.getLogger("edgeact.runtime")

NEUTRAL_TOLERANCE = 1e-6  # |command| below this counts as neutral at exit


def action_indices(spec: PolicySpec) -> tuple[int, int]:
    """Indices of steering and throttle in the policy's actions (by name, else the first two)."""
    names = [n.lower() for n in spec.action_names]
    if spec.action_dim < 2:
        raise ConfigError(f"the policy has {spec.action_dim} action(s); the rover needs steering and throttle")
    si = names.index("steering") if "steering" in names else 0
    ti = names.index("throttle") if "throttle" in names else 1
    return si, ti


class Runtime:
    """One run of a policy on a rover: camera, action source (inference), control loop, actuator.

    ``source``: where each tick's action comes from; by default the policy's inference,
    asynchronous or per tick (``config.sync``).
    """

    def __init__(self, backend: Backend, camera: Camera, actuator: Actuator, config: RuntimeConfig | None = None,
                 telemetry: Telemetry | None = None, source: ActionSource | None = None) -> None:
        self.config = config or RuntimeConfig()
        self.backend = backend
        self.camera = camera
        self.actuator = actuator
        spec = backend.spec
        if len(spec.camera_names) != 1:
            raise ConfigError(f"the runtime drives single-camera policies; this one takes "
                              f"{len(spec.camera_names)} cameras {list(spec.camera_names)}")
        self._steer_i, self._throttle_i = action_indices(spec)
        self.telemetry = telemetry or Telemetry(self.config.output.telemetry_path)
        self.limiter = ActionLimiter(self.config.limits)
        self.safety = S.SafetyMonitor(on_event=self._on_safety_event)
        self.estop = S.EmergencyStop()
        self.ratekeeper = Ratekeeper(self.config.rate_hz)
        self._state = np.zeros(spec.state_dim, dtype=np.float32)  # last command sent, as the policy's state
        self._stop_event = threading.Event()
        self.source = source or self._inference_source()
        self._process = ProcessState(self.config.process, self.request_stop, self.emergency_stop)
        self._stop: tuple[str, StopKind] | None = None
        self._thread: threading.Thread | None = None
        self._started = False
        self._finished = False
        self._t_start = 0.0
        self._t_end = 0.0
        self._neutral_ticks = 0
        self._last_status = 0.0
        self._last_lag_log = -1e9
        self.report: RunReport | None = None

    def _inference_source(self) -> ActionSource:
        cfg = self.config
        if cfg.sync:
            return SyncInference(self.backend, self.camera, self._get_state, self.telemetry,
                                 frame_wait_s=cfg.safety.camera_stall_s, should_stop=self._stop_event.is_set)
        scheduler = ChunkScheduler(max_age_s=cfg.safety.max_chunk_age_s, ensemble_coeff=cfg.ensemble_coeff)
        return AsyncInference(self.backend, self.camera, scheduler, self._get_state, self.telemetry,
                              startup_grace_s=cfg.safety.startup_grace_s, nice=cfg.process.inference_nice)

    # ---- control from outside (any thread, signal handlers) ----------------------------

    def request_stop(self, reason: str = "stop requested", kind: StopKind = StopKind.REQUESTED) -> None:
        """End the run (neutral first); the first reason given is the one reported."""
        if self._stop is None:
            self._stop = (reason, kind)
        self._stop_event.set()

    def emergency_stop(self, reason: str = "emergency stop") -> None:
        """Latch neutral until the process restarts or ``estop.release()``; the run goes on sending neutral."""
        self.estop.trigger(reason)

    @property
    def running(self) -> bool:
        return self._started and not self._finished

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start every part and the control loop in a background thread."""
        self._start_parts()
        self._thread = threading.Thread(target=self._control_loop, name="control", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the control loop to end (duration, fault, stop). True if it ended."""
        if self._thread is None:
            return self._finished
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self, reason: str = "stopped") -> RunReport:
        """Stop (neutral first), stop every part, return the report."""
        self.request_stop(reason)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        return self._shutdown()

    def run(self) -> RunReport:
        """Start, run the control loop in this thread until it ends, stop; return the report."""
        self._start_parts()
        try:
            self._control_loop()
        finally:
            report = self._shutdown()
        return report

    # ---- parts --------------------------------------------------------------------------

    def _start_parts(self) -> None:
        if self._started:
            raise RuntimeError("a Runtime runs once; build a new one")
        self._started = True
        tel = self.telemetry
        tel.start()
        if self.camera.on_frame is None:
            self.camera.on_frame = lambda f: tel.stage("capture", f.t_capture, f.grab_s)
        if self.actuator.on_event is None:
            self.actuator.on_event = self._on_actuator_event
        if isinstance(self.backend, RecoveringBackend) and self.backend.on_event is None:
            self.backend.on_event = self._on_device_event
        self._process.apply()
        started: list[Camera | Actuator] = []
        try:
            # Camera first (it may take a moment to open), then the actuator: its start() sends
            # neutral, which arms the board's watchdog, so the control loop must follow at once.
            self.camera.start()
            started.append(self.camera)
            self.actuator.start()
            started.append(self.actuator)
            self.source.start(time.monotonic())
            self._process.start_keys()
        except BaseException:
            for part in reversed(started):
                _stop_part(part)
            self._process.restore()
            tel.stop()
            self._finished = True
            raise
        cfg = self.config
        tel.event("event", "start", f"{cfg.mode} mode, {cfg.rate_hz:g} Hz, backend {self.backend.name}",
                  rate_hz=cfg.rate_hz, mode=cfg.mode, backend=self.backend.name, camera=self.camera.name,
                  actuator=self.actuator.port)

    def _shutdown(self) -> RunReport:
        if self._finished and self.report is not None:
            return self.report
        self._finished = True
        self._t_end = self._t_end or time.monotonic()
        try:
            self.actuator.neutral()
        except Exception:
            log.exception("neutral at stop")
        self.source.stop()
        for part in (self.camera, self.actuator):  # the actuator's stop sends neutral again, then closes
            _stop_part(part)
        self._process.restore()
        reason, kind = self._stop or ("stopped", StopKind.REQUESTED)
        self.telemetry.event("event", "stop", reason)
        report = self.telemetry.build_report(self._facts(reason, kind))
        self.telemetry.write({"type": "summary", **report.to_dict()})
        self.telemetry.stop()
        self._plot(report)
        self.report = report
        return report

    def _plot(self, report: RunReport) -> None:
        path = self.config.output.plot_path
        if not path:
            return
        try:
            plot_timeline(self.telemetry, path, 1.0 / self.config.rate_hz,
                          title=f"edgeact run ({report.mode}, {self.config.rate_hz:g} Hz, {self.backend.name})")
            report.plot_path = str(path)
        except Exception as err:  # noqa: BLE001 - a missing matplotlib must not hide the report
            log.warning("no timeline plot: %s", err)

    def _facts(self, reason: str, kind: StopKind) -> RunFacts:
        last = self.actuator.last_sent
        neutral_exit = all(abs(v) < NEUTRAL_TOLERANCE for v in (*last, *self.actuator.outputs()))
        return RunFacts(
            mode=self.config.mode, backend=self.backend.name, rate_hz=self.config.rate_hz,
            duration_s=max(0.0, self._t_end - self._t_start) if self._t_start else 0.0,
            missed_deadlines=self.ratekeeper.missed, skipped_slots=self.ratekeeper.skipped,
            chunks=self.source.chunks, inference_errors=self.source.errors, neutral_ticks=self._neutral_ticks,
            actuator=self.actuator.stats(), faults=list(self.safety.history), stop_reason=reason, stop_kind=kind,
            neutral_at_exit=neutral_exit, arduino=self.actuator.board_stats(), sim=self.camera.stats(),
            device=self.backend.stats() if isinstance(self.backend, RecoveringBackend) else None,
        )

    # ---- the control loop ---------------------------------------------------------------

    def _get_state(self) -> np.ndarray:
        return self._state.copy()

    def _set_state(self, steering: float, throttle: float) -> None:
        st = np.zeros_like(self._state)
        if st.size >= 1:
            st[0] = steering
        if st.size >= 2:
            st[1] = throttle
        self._state = st

    def _control_loop(self) -> None:
        cfg = self.config
        rk = self.ratekeeper
        realtime = cfg.process.realtime and try_realtime()
        self._t_start = time.monotonic()
        rk.start(self._t_start)
        self._last_status = self._t_start
        self.telemetry.event("event", "control-start", t=self._t_start)
        try:
            while not self._stop_event.is_set():
                if cfg.duration_s is not None and rk.next_deadline - self._t_start >= cfg.duration_s - 1e-9:
                    # exactly rate x duration ticks
                    self.request_stop(f"duration {cfg.duration_s:g} s reached", StopKind.DURATION)
                    break
                tick = rk.wait(should_stop=self._stop_event.is_set)
                if self._stop_event.is_set():
                    break
                if tick.missed:
                    self._report_lag(tick)
                self._tick(tick)
        except BaseException as err:  # noqa: BLE001 - neutral first, then re-raised
            self.request_stop(f"control loop error: {type(err).__name__}: {err}", StopKind.FAULT)
            try:
                self.actuator.neutral()
            finally:
                raise
        finally:
            self._t_end = time.monotonic()
            try:
                self.actuator.neutral()  # first thing after the loop, whatever ended it
            except Exception:
                log.exception("neutral after the control loop")
            if realtime:
                restore_normal_priority()  # run() uses the caller's thread: give it back as it was

    def _tick(self, tick: Tick) -> None:
        pick = self.source.action(tick.t)
        faulted = self.safety.update(pick.t, self._conditions(pick))
        s, th, neutral = self._drive(pick.t, pick.action, faulted or self._stop_event.is_set())
        why = ""
        if neutral:
            why = "; ".join(self.safety.reasons()) or pick.why_none or "stopping"
        self.telemetry.tick(tick.t, tick.lag, tick.period, tick.missed, s, th, neutral,
                            pick.age_s if not neutral else float("nan"), time.monotonic() - tick.t, why, pick.step)
        self._maybe_status(pick.t)

    def _report_lag(self, tick: Tick) -> None:
        """Like openpilot's Ratekeeper: say when the loop lags (at most once every 5 s)."""
        if tick.t - self._last_lag_log < 5.0:
            return
        self._last_lag_log = tick.t
        log.warning("control lagging by %.1f ms (%d slots skipped now; %d missed deadlines so far)",
                    (tick.lag + tick.skipped * self.ratekeeper.period) * 1e3, tick.skipped, self.ratekeeper.missed)

    def _camera_condition(self, now: float) -> str | None:
        cam = self.camera
        if cam.finished:
            self.request_stop("camera source ended", StopKind.SOURCE_ENDED)
            return None
        frame = cam.latest()
        safety = self.config.safety
        if frame is None:
            waited = now - self._t_start
            return f"no frame {waited:.1f} s after start" if waited > safety.startup_grace_s else None
        age = now - frame.t_capture
        if age > safety.camera_stall_s:
            return f"no new frame for {age * 1e3:.0f} ms (limit {safety.camera_stall_s * 1e3:.0f} ms)"
        return None

    def _conditions(self, pick: TickAction) -> dict[str, str | None]:
        """Every fault kind → its message when it holds at ``pick.t``, else None."""
        if self.estop.triggered:
            self.safety.latch(S.ESTOP, f"emergency stop ({self.estop.reason})", pick.t)
        elif S.ESTOP in self.safety.latched:  # released on purpose (EmergencyStop.release: the drive page)
            self.safety.unlatch(S.ESTOP, pick.t)
        cond: dict[str, str | None] = {S.CAMERA_STALL: self._camera_condition(pick.t)}
        if self.camera.error:  # the grab thread died (device unplugged, decode error): fatal
            cond[S.CAMERA_ERROR] = f"camera failed: {self.camera.error}"
            self.request_stop(cond[S.CAMERA_ERROR] or "", StopKind.FAULT)
        cond[S.STALE_CHUNK] = pick.stale
        src = self.source
        cond[S.BACKEND_ERROR] = f"backend error: {src.last_error}" if src.last_error else None
        device = self.backend if isinstance(self.backend, RecoveringBackend) else None
        if device is not None and device.gave_up and device.fallback is None:
            self.request_stop(f"{device.name}: the device dropped out and did not come back after "
                              f"{device.config.attempts} reopen attempts ({device.last_error})", StopKind.DEVICE_LOST)
        elif src.consecutive_errors >= self.config.safety.max_backend_errors:
            self.request_stop(f"backend failed {src.consecutive_errors} times in a row: {src.last_error}",
                              StopKind.FAULT)
        act = self.actuator
        cond[S.SERIAL_LOST] = None if act.connected else (act.status or "serial lost")
        return cond

    def _drive(self, now: float, action: np.ndarray | None, neutral: bool) -> tuple[float, float, bool]:
        if neutral or action is None:
            self.limiter.reset(now)
            self.actuator.neutral()
            return self._neutral_tick()
        s, th = self.limiter.apply(float(action[self._steer_i]), float(action[self._throttle_i]), now)
        if not self.actuator.send(s, th):
            self.limiter.reset(now)  # not delivered: the board's watchdog holds neutral
            return self._neutral_tick()
        self._set_state(s, th)
        return s, th, False

    def _neutral_tick(self) -> tuple[float, float, bool]:
        self._set_state(0.0, 0.0)
        self._neutral_ticks += 1
        return 0.0, 0.0, True

    def _maybe_status(self, now: float) -> None:
        every = self.config.output.status_every_s
        if not every or now - self._last_status < every:
            return
        self._last_status = now
        rate, inference_s, age_s = self.telemetry.recent()
        st = self.actuator.stats(recent=200)
        log.info("t=%5.1fs rate %5.1f Hz | inference %5.1f ms | chunk age %5.0f ms | sent %d acked %d | %s",
                 now - self._t_start, rate, inference_s * 1e3, age_s * 1e3, st.get("sent", 0), st.get("acked", 0),
                 "; ".join(self.safety.reasons()) or "ok")

    # ---- events -------------------------------------------------------------------------

    def _on_safety_event(self, event: str, kind: str, message: str, t: float, **extra: Any) -> None:
        self.telemetry.event(event, kind, message, t=t, **extra)

    def _on_device_event(self, kind: str, message: str) -> None:
        self.telemetry.event("event", kind, message)

    def _on_actuator_event(self, kind: str, message: str) -> None:
        level = logging.WARNING if kind in ("serial-lost", "arduino-failsafe", "arduino-ready") else logging.INFO
        log.log(level, "%s: %s", kind, message)
        self.telemetry.event("event", kind, message)


def _stop_part(part: Camera | Actuator) -> None:
    try:
        part.stop()
    except Exception:
        log.exception("stopping %s", part)


def run_rover(backend: Backend, camera: Camera, actuator: Actuator, config: RuntimeConfig | None = None,
              telemetry: Telemetry | None = None) -> RunReport:
    """Drive: run the control loop in the calling thread until it ends; return the report.

    Called from the main thread, SIGINT/SIGTERM stop the run cleanly (neutral first) and
    SIGUSR1 is an emergency stop (``config.process.handle_signals``).
    """
    return Runtime(backend, camera, actuator, config, telemetry).run()
