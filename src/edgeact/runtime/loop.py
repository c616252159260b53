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

or ``rt = Runtime(...); rt.start(); …; report = rt.stop()`` to run it in the background.
The runtime starts and stops the camera and the actuator; the caller closes the backend.
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time
from dataclasses import dataclass, replace

import numpy as np

from edgeact.errors import ConfigError
from edgeact.runtime import safety as S
from edgeact.runtime.command_source import CommandSource
from edgeact.runtime.inference import InferenceWorker, run_inference
from edgeact.runtime.limits import ActionLimiter, Limits
from edgeact.runtime.ratekeeper import Ratekeeper
from edgeact.runtime.scheduler import NO_CHUNK, ChunkScheduler, Selection
from edgeact.runtime.telemetry import RunReport, Telemetry, plot_timeline, stats_ms

log = logging.getLogger("edgeact.runtime")


@dataclass
class RuntimeConfig:
    rate_hz: float = 50.0  # control rate; a hobby servo's PWM frame is 20 ms (50 Hz)
    duration_s: float | None = None  # None: until stopped (Ctrl-C, SIGTERM, 'q', end of a finite camera)
    sync: bool = False  # capture → infer → act each tick (the guide's loop), for comparison
    ensemble_coeff: float | None = None  # temporal ensembling (LeRobot: 0.01); None: newest chunk
    # limits
    max_throttle: float = 1.0
    steering_rate: float | None = 8.0  # units per second
    throttle_rate: float | None = 4.0
    # safety
    max_chunk_age_s: float = 0.5
    camera_stall_s: float = 0.5
    startup_grace_s: float = 10.0
    max_backend_errors: int = 3
    # process
    handle_signals: bool = True  # SIGINT/SIGTERM stop, SIGUSR1 emergency stop (main thread only)
    keyboard: bool = False  # space/e = emergency stop, q = stop, when stdin is a terminal
    switch_interval_s: float | None = 0.001  # GIL switch interval during the run (Python's default is 5 ms)
    freeze_gc: bool = True  # gc.freeze() at start: collections skip everything allocated before the run
    realtime: bool = True  # try SCHED_FIFO for the control thread (root or an rtprio limit); else normal
    inference_nice: int = 0  # > 0 lowers the inference thread's priority (Linux per-thread nice)
    # output
    telemetry_path: str | None = None  # JSON lines
    plot_path: str | None = None  # PNG of the timelines
    status_every_s: float = 0.0  # log a one-line status this often (0: never)

    def __post_init__(self) -> None:
        if not self.rate_hz > 0:
            raise ConfigError(f"rate must be positive, got {self.rate_hz} Hz")
        if self.rate_hz > 1000:
            raise ConfigError(f"rate {self.rate_hz} Hz is beyond what the serial link carries (~400 lines/s)")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ConfigError(f"duration must be positive, got {self.duration_s}")
        try:
            self.limits()
            self.safety()
        except ValueError as err:
            raise ConfigError(str(err)) from err

    def limits(self) -> Limits:
        return Limits(self.max_throttle, self.steering_rate, self.throttle_rate)

    def safety(self) -> S.SafetyConfig:
        return S.SafetyConfig(self.max_chunk_age_s, self.camera_stall_s, self.startup_grace_s, self.max_backend_errors)


def _action_indices(spec) -> tuple[int, int]:
    names = [n.lower() for n in spec.action_names]
    if spec.action_dim < 2:
        raise ConfigError(f"the policy has {spec.action_dim} action(s); the rover needs steering and throttle")
    si = names.index("steering") if "steering" in names else 0
    ti = names.index("throttle") if "throttle" in names else 1
    return si, ti


class Runtime:
    """One run of a policy on a rover. Parts: camera, inference worker, control loop, actuator."""

    def __init__(self, backend, camera, actuator, config: RuntimeConfig | None = None,
                 telemetry: Telemetry | None = None, command_source: CommandSource | None = None) -> None:
        self.config = config or RuntimeConfig()
        if command_source is not None and self.config.sync:
            raise ConfigError("a command source (edgeact drive) needs the async runtime, not --sync")
        self.command_source = command_source  # None: the policy drives (see command_source.py)
        self.backend = backend
        self.camera = camera
        self.actuator = actuator
        spec = backend.spec
        if len(spec.camera_names) != 1:
            raise ConfigError(f"the runtime drives single-camera policies; this one takes "
                              f"{len(spec.camera_names)} cameras {list(spec.camera_names)}")
        self._si, self._ti = _action_indices(spec)
        self.telemetry = telemetry or Telemetry(self.config.telemetry_path)
        self.scheduler = ChunkScheduler(max_age_s=self.config.max_chunk_age_s,
                                        ensemble_coeff=self.config.ensemble_coeff)
        self.limiter = ActionLimiter(self.config.limits())
        self.safety_config = self.config.safety()
        self.safety = S.SafetyMonitor(on_event=self._on_safety_event)
        self.estop = S.EmergencyStop()
        self.ratekeeper = Ratekeeper(self.config.rate_hz)
        self.worker: InferenceWorker | None = None
        self._state = np.zeros(spec.state_dim, dtype=np.float32)  # last command sent, as the policy's state
        self._stop_event = threading.Event()
        self._stop_reason: str | None = None
        self._signals = S.SignalGuard(self.request_stop, self.emergency_stop)
        self._keys: S.KeyboardEStop | None = None
        self._thread: threading.Thread | None = None
        self._started = False
        self._finished = False
        self._saved_switch: float | None = None
        self._t_start = 0.0
        self._t_end = 0.0
        self._neutral_ticks = 0
        self._chunks_sync = 0
        self._sync_errors = 0
        self._sync_consecutive = 0
        self._sync_last_error: str | None = None
        self._last_index = -1
        self._last_status = 0.0
        self._realtime = False
        self._last_lag_log = -1e9
        self.report: RunReport | None = None

    # ---- control from outside (any thread, signal handlers) ----------------------------

    def request_stop(self, reason: str = "stop requested") -> None:
        if self._stop_reason is None:
            self._stop_reason = reason
        self._stop_event.set()

    def emergency_stop(self, reason: str = "emergency stop") -> None:
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
        cfg = self.config
        tel = self.telemetry
        tel.start()
        if getattr(self.camera, "on_frame", "absent") is None:
            self.camera.on_frame = lambda f: tel.stage("capture", f.t_capture, f.grab_s)
        if hasattr(self.actuator, "on_event") and self.actuator.on_event is None:
            self.actuator.on_event = self._on_actuator_event
        if cfg.switch_interval_s:
            self._saved_switch = sys.getswitchinterval()
            sys.setswitchinterval(cfg.switch_interval_s)
        if cfg.freeze_gc:
            # A full collection walks every object (the model's runtime included) holding the
            # GIL for milliseconds; frozen objects are skipped, so collections during the run
            # only walk what the run allocates.
            gc.collect()
            gc.freeze()
        if cfg.handle_signals:
            self._signals.install()
        started = []
        try:
            # Camera first (it may take a moment to open), then the actuator: its start() sends
            # neutral, which arms the board's watchdog, so the control loop must follow at once.
            self.camera.start()
            started.append(self.camera)
            self.actuator.start()
            started.append(self.actuator)
            if not cfg.sync:
                self.worker = InferenceWorker(self.backend, self.camera, self.scheduler, self._get_state, tel,
                                             nice=cfg.inference_nice)
                self.worker.start()
            if cfg.keyboard:
                self._keys = S.KeyboardEStop(self.emergency_stop, self.request_stop)
                if self._keys.start():
                    log.warning("keys: space or e = EMERGENCY STOP (latched neutral), q = stop")
        except BaseException:
            for part in reversed(started):
                try:
                    part.stop()
                except Exception:  # noqa: BLE001
                    log.exception("stopping %s", part)
            self._restore_process_state()
            tel.stop()
            self._finished = True
            raise
        mode = "sync" if cfg.sync else "async"
        tel.event("event", "start", f"{mode} mode, {cfg.rate_hz:g} Hz, backend {self.backend.name}",
                  rate_hz=cfg.rate_hz, mode=mode, backend=self.backend.name,
                  camera=getattr(self.camera, "name", "?"), actuator=getattr(self.actuator, "port", "?"))

    def _restore_process_state(self) -> None:
        self._signals.restore()
        if self._keys is not None:
            self._keys.stop()
            self._keys = None
        if self._saved_switch is not None:
            sys.setswitchinterval(self._saved_switch)
            self._saved_switch = None
        if self.config.freeze_gc:
            gc.unfreeze()

    def _shutdown(self) -> RunReport:
        if self._finished and self.report is not None:
            return self.report
        self._finished = True
        self._t_end = self._t_end or time.monotonic()
        try:
            self.actuator.neutral()
        except Exception:  # noqa: BLE001
            log.exception("neutral at stop")
        if self.worker is not None:
            self.worker.stop()
        for part in (self.camera, self.actuator):  # the actuator's stop sends neutral again, then closes
            try:
                part.stop()
            except Exception:  # noqa: BLE001
                log.exception("stopping %s", part)
        self._restore_process_state()
        reason = self._stop_reason or "stopped"
        self.telemetry.event("event", "stop", reason)
        report = self._build_report(reason)
        self.telemetry.write({"type": "summary", **report.to_dict()})
        self.telemetry.stop()
        if self.config.plot_path:
            try:
                plot_timeline(self.telemetry, self.config.plot_path, 1.0 / self.config.rate_hz,
                              title=f"edgeact run ({report.mode}, {self.config.rate_hz:g} Hz, {self.backend.name})")
                report.plot_path = str(self.config.plot_path)
            except Exception as err:  # noqa: BLE001 - a missing matplotlib must not hide the report
                log.warning("no timeline plot: %s", err)
        self.report = report
        return report

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
        if cfg.realtime:
            self._try_realtime()
        self._t_start = time.monotonic()
        rk.start(self._t_start)
        self._last_status = self._t_start
        self.telemetry.event("event", "control-start", t=self._t_start)
        try:
            while True:
                if cfg.duration_s is not None and rk.next_deadline - self._t_start >= cfg.duration_s - 1e-9:
                    self.request_stop(f"duration {cfg.duration_s:g} s reached")  # exactly rate x duration ticks
                    break
                tick = rk.wait(should_stop=self._stop_event.is_set)
                if self._stop_event.is_set():
                    break
                if tick.missed:
                    self._report_lag(tick)
                if cfg.sync:
                    self._sync_tick(tick)
                else:
                    self._async_tick(tick)
                if self._stop_event.is_set():
                    break
        except BaseException as err:
            self.request_stop(f"control loop error: {type(err).__name__}: {err}")
            try:
                self.actuator.neutral()
            finally:
                raise
        finally:
            self._t_end = time.monotonic()
            try:
                self.actuator.neutral()  # first thing after the loop, whatever ended it
            except Exception:  # noqa: BLE001
                log.exception("neutral after the control loop")
            self._restore_normal_priority()  # run() uses the caller's thread: give it back as it was

    def _report_lag(self, tick) -> None:
        """Like openpilot's Ratekeeper: say when the loop lags (at most once every 5 s)."""
        if tick.t - self._last_lag_log < 5.0:
            return
        self._last_lag_log = tick.t
        log.warning("control lagging by %.1f ms (%d slots skipped now; %d missed deadlines so far)",
                    (tick.lag + tick.skipped * self.ratekeeper.period) * 1e3, tick.skipped, self.ratekeeper.missed)

    def _try_realtime(self, priority: int = 10) -> None:
        """SCHED_FIFO for this (the control) thread only; it sleeps most of each period."""
        import os

        if not hasattr(os, "sched_setscheduler"):
            return
        try:
            os.sched_setscheduler(threading.get_native_id(), os.SCHED_FIFO, os.sched_param(priority))
            self._realtime = True
            log.info("control thread: SCHED_FIFO priority %d", priority)
        except (OSError, AttributeError) as err:
            log.info("control thread: normal priority (SCHED_FIFO not permitted: %s; run as root or set an "
                     "rtprio limit for lower jitter)", err)

    def _restore_normal_priority(self) -> None:
        import os

        if getattr(self, "_realtime", False):
            try:
                os.sched_setscheduler(threading.get_native_id(), os.SCHED_OTHER, os.sched_param(0))
            except OSError:
                pass
            self._realtime = False

    def _camera_condition(self, now: float) -> str | None:
        cam = self.camera
        if cam.finished:
            self.request_stop("camera source ended")
            return None
        frame = cam.latest()
        if frame is None:
            waited = now - self._t_start
            if waited > self.safety_config.startup_grace_s:
                return f"no frame {waited:.1f} s after start"
            return None
        age = now - frame.t_capture
        if age > self.safety_config.camera_stall_s:
            return f"no new frame for {age * 1e3:.0f} ms (limit {self.safety_config.camera_stall_s * 1e3:.0f} ms)"
        return None

    def _common_conditions(self, now: float, sel: Selection | None, backend_error: str | None,
                           consecutive: int) -> dict[str, str | None]:
        if self.estop.triggered:
            self.safety.latch(S.ESTOP, f"emergency stop ({self.estop.reason})", now)
        elif S.ESTOP in self.safety.latched:  # released on purpose (EmergencyStop.release)
            self.safety.unlatch(S.ESTOP, now)
        cond: dict[str, str | None] = {}
        cond[S.CAMERA_STALL] = self._camera_condition(now)
        if self.camera.error:  # the grab thread died (device unplugged, decode error): fatal
            cond[S.CAMERA_ERROR] = f"camera failed: {self.camera.error}"
            self.request_stop(cond[S.CAMERA_ERROR])
        if sel is not None:
            if sel.ok:
                cond[S.STALE_CHUNK] = None
            elif sel.reason == NO_CHUNK:
                waited = now - self._t_start
                cond[S.STALE_CHUNK] = (f"no chunk {waited:.1f} s after start"
                                       if waited > self.safety_config.startup_grace_s else None)
            else:
                cond[S.STALE_CHUNK] = sel.reason
        cond[S.BACKEND_ERROR] = f"backend error: {backend_error}" if backend_error else None
        if consecutive >= self.safety_config.max_backend_errors:
            self.request_stop(f"backend failed {consecutive} times in a row: {backend_error}")
        connected = bool(getattr(self.actuator, "connected", True))
        cond[S.SERIAL_LOST] = None if connected else (getattr(self.actuator, "status", "") or "serial lost")
        return cond

    def _drive(self, now: float, action: np.ndarray | None, neutral: bool) -> tuple[float, float, bool]:
        if neutral or action is None:
            self.limiter.reset(now)
            self.actuator.neutral()
            self._set_state(0.0, 0.0)
            self._neutral_ticks += 1
            return 0.0, 0.0, True
        s, th = self.limiter.apply(float(action[self._si]), float(action[self._ti]), now)
        if not self.actuator.send(s, th):
            self.limiter.reset(now)  # not delivered: the board's watchdog holds neutral
            self._set_state(0.0, 0.0)
            self._neutral_ticks += 1
            return 0.0, 0.0, True
        self._set_state(s, th)
        return s, th, False

    def _async_tick(self, tick) -> None:
        now = tick.t
        sel = self.scheduler.select(now)
        hold = ""
        if self.command_source is not None:
            sel, hold = self._consult_command_source(now, sel)
        w = self.worker
        cond = self._common_conditions(now, sel, w.last_error if w else None, w.consecutive_errors if w else 0)
        faulted = self.safety.update(now, cond)
        s, th, neutral = self._drive(now, sel.action, faulted or not sel.ok or bool(hold) or self._stop_event.is_set())
        why = "; ".join(self.safety.reasons()) if neutral else ""
        if neutral and not why:
            why = hold or sel.reason or "stopping"
        self.telemetry.tick(now, tick.lag, tick.period, tick.missed, s, th, neutral,
                            sel.age_s if not neutral else float("nan"), time.monotonic() - now, why, sel.step)
        if self.command_source is not None:
            self.command_source.executed(now, s, th, neutral, why)
        self._maybe_status(now)

    def _consult_command_source(self, now: float, sel: Selection) -> tuple[Selection, str]:
        """The command source's decision in place of the policy's action; also why to hold neutral."""
        policy = None if sel.action is None else (float(sel.action[self._si]), float(sel.action[self._ti]))
        decision = self.command_source.decide(now, policy)
        if decision.uses_policy and not sel.ok:
            return sel, decision.hold  # the policy's stale chunk stays a fault
        action = np.zeros(self.backend.spec.action_dim, dtype=np.float64)
        if decision.command is not None:
            action[self._si], action[self._ti] = decision.command
        hold = (decision.hold or "held neutral by the command source") if decision.command is None else ""
        return replace(sel, action=action, reason=""), hold

    def _sync_tick(self, tick) -> None:
        """The guide's loop: wait for a frame, infer, send the chunk's first action."""
        now = tick.t
        frame = None
        give_up = now + self.safety_config.camera_stall_s
        while frame is None and not self._stop_event.is_set():  # in slices: a stop is not held up
            left = give_up - time.monotonic()
            if left <= 0:
                break
            frame = self.camera.wait_new(self._last_index, timeout=min(left, 0.02))
        action = None
        age = float("nan")
        if frame is not None:
            self._last_index = frame.index
            try:
                chunk = run_inference(self.backend, frame, self._get_state(), self._chunks_sync, self.telemetry)
                self._chunks_sync += 1
                self._sync_consecutive = 0
                self._sync_last_error = None
                action = chunk.actions[0].astype(np.float64)
            except Exception as err:  # noqa: BLE001
                self._sync_errors += 1
                self._sync_consecutive += 1
                self._sync_last_error = f"{type(err).__name__}: {err}"
                self.telemetry.event("event", "inference-error", self._sync_last_error)
        t_act = time.monotonic()
        if frame is not None:
            age = t_act - frame.t_capture
        cond = self._common_conditions(t_act, None, self._sync_last_error, self._sync_consecutive)
        faulted = self.safety.update(t_act, cond)
        s, th, neutral = self._drive(t_act, action, faulted or self._stop_event.is_set())
        why = ("; ".join(self.safety.reasons()) or ("no action" if action is None else "stopping")) if neutral else ""
        self.telemetry.tick(now, tick.lag, tick.period, tick.missed, s, th, neutral,
                            age if not neutral else float("nan"), time.monotonic() - now, why)
        self._maybe_status(t_act)

    def _maybe_status(self, now: float) -> None:
        every = self.config.status_every_s
        if not every or now - self._last_status < every:
            return
        self._last_status = now
        tel = self.telemetry
        n = 200
        with tel._lock:  # noqa: SLF001
            per = np.array(tel.tick_period[-n:], dtype=np.float64)
            age = np.array(tel.tick_chunk_age[-n:], dtype=np.float64)
        per = per[np.isfinite(per)]
        inf = tel.stage_values("inference")[-20:]
        age = age[np.isfinite(age)]
        st = self.actuator.stats()
        log.info("t=%5.1fs rate %5.1f Hz | inference %5.1f ms | chunk age %5.0f ms | sent %d acked %d | %s",
                 now - self._t_start, 1.0 / per.mean() if per.size else 0.0,
                 inf.mean() * 1e3 if inf.size else float("nan"), age.mean() * 1e3 if age.size else float("nan"),
                 st.get("sent", 0), st.get("acked", 0), "; ".join(self.safety.reasons()) or "ok")

    # ---- events -------------------------------------------------------------------------

    def _on_safety_event(self, event: str, kind: str, message: str, t: float, **extra) -> None:
        self.telemetry.event(event, kind, message, t=t, **extra)

    def _on_actuator_event(self, kind: str, message: str) -> None:
        level = logging.WARNING if kind in ("serial-lost", "arduino-failsafe", "arduino-ready") else logging.INFO
        log.log(level, "%s: %s", kind, message)
        self.telemetry.event("event", kind, message)

    # ---- report -------------------------------------------------------------------------

    def _build_report(self, reason: str) -> RunReport:
        cfg = self.config
        tel = self.telemetry
        nominal = 1.0 / cfg.rate_hz
        with tel._lock:  # noqa: SLF001
            periods = np.array(tel.tick_period, dtype=np.float64)
            ages = np.array(tel.tick_chunk_age, dtype=np.float64)
            n_ticks = len(tel.tick_t)
        periods = periods[np.isfinite(periods)]
        stages = {name: stats_ms(tel.stage_values(name)) for name in ("capture", "frame_age", "preprocess",
                                                                       "inference", "control")}
        faults = [{"kind": r.kind, "message": r.message, "t_start": round(r.t_start - tel.t0, 4),
                   "t_end": None if r.t_end is None else round(r.t_end - tel.t0, 4)} for r in self.safety.history]
        sim = getattr(self.actuator, "sim", None)
        arduino = sim.stats() if sim is not None else None
        last = tuple(getattr(self.actuator, "last_sent", (0.0, 0.0)))
        neutral_exit = abs(last[0]) < 1e-6 and abs(last[1]) < 1e-6
        if sim is not None:
            neutral_exit = neutral_exit and all(abs(v) < 1e-6 for v in sim.outputs)
        sim_stats = self.camera.stats() if hasattr(self.camera, "stats") else None
        w = self.worker
        return RunReport(
            mode="sync" if cfg.sync else "async",
            backend=getattr(self.backend, "name", "?"),
            rate_hz=cfg.rate_hz,
            duration_s=max(0.0, self._t_end - self._t_start) if self._t_start else 0.0,
            ticks=n_ticks,
            missed_deadlines=self.ratekeeper.missed,
            skipped_slots=self.ratekeeper.skipped,
            jitter_ms=stats_ms(np.abs(periods - nominal)),
            period_ms=stats_ms(periods),
            stages_ms=stages,
            chunk_age_ms=stats_ms(ages),
            chunks=(w.chunks if w else self._chunks_sync),
            inference_errors=(w.errors if w else self._sync_errors),
            neutral_ticks=self._neutral_ticks,
            actuator=self.actuator.stats(),
            faults=faults,
            stop_reason=reason,
            neutral_at_exit=neutral_exit,
            arduino=arduino,
            sim=sim_stats,
            telemetry_path=str(tel.path) if tel.path else None,
        )


def run_rover(backend, camera, actuator, config: RuntimeConfig | None = None,
              telemetry: Telemetry | None = None) -> RunReport:
    """Drive: run the control loop in the calling thread until it ends; return the report.

    Called from the main thread, SIGINT/SIGTERM stop the run cleanly (neutral first) and
    SIGUSR1 is an emergency stop (``config.handle_signals``).
    """
    return Runtime(backend, camera, actuator, config, telemetry).run()
