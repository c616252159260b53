"""Telemetry: what each stage took, how well the control rate held, what went wrong.

Recorded in memory (for the summary and the plot) and, with a path, streamed as JSON lines
by a writer thread (so file I/O never stalls the control loop; a crash leaves every line
written so far). A write that fails (a full disk) ends the file, not the run: the error is
logged once and nothing more is queued for it. Times in the file are seconds since the run
started.

Records (``"type"``):

- ``tick``: one control tick: ``lag_ms`` (start − deadline), ``period_ms`` (since the previous
  tick), ``missed``, ``steering``, ``throttle`` (as sent), ``neutral`` (+ ``why``),
  ``chunk_age_ms`` (now − capture time of the frame behind the action), ``step`` (fractional
  chunk index read), ``control_ms`` (compute + send time of the tick);
- ``stage``: ``name`` in capture (grab + decode), frame_age (frame age when inference
  starts), preprocess, inference; ``ms``;
- ``fault`` / ``cleared``: ``kind`` and ``message``; ``event``: anything else worth a line
  (serial reconnects, Arduino FAILSAFE/READY, stop reason);
- ``summary``: the :class:`RunReport` at exit.
"""

from __future__ import annotations

import bisect
import json
import logging
import math
import queue
import threading
import time
import warnings
from array import array
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import IO, Any

import numpy as np

from edgeact.runtime.safety import FaultRecord

log = logging.getLogger("edgeact.runtime")

STAGES = ("capture", "frame_age", "preprocess", "inference", "control")


class StopKind(str, Enum):
    """Why a run ended, as a kind a program can act on (``RunReport.stop_reason`` says it in words)."""

    DURATION = "duration"  # the requested duration was reached
    REQUESTED = "requested"  # SIGINT/SIGTERM, the q key, or the caller asked
    SOURCE_ENDED = "source-ended"  # a finite camera source (a replay, a file) ran out
    FAULT = "fault"  # the camera or the backend failed for good, or the control loop crashed
    DEVICE_LOST = "device-lost"  # the accelerator dropped out and did not come back (runtime/recovery.py)

    @property
    def normal(self) -> bool:
        """True for every ending but a fault (a lost device is one)."""
        return self not in (StopKind.FAULT, StopKind.DEVICE_LOST)


def stats_ms(values_s: Sequence[float] | np.ndarray, scale: float = 1e3) -> dict[str, Any]:
    """{n, mean, p50, p99, max} of seconds, in milliseconds (``scale``)."""
    a = np.asarray(values_s, dtype=np.float64)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return {"n": 0}
    a = a * scale
    return {"n": int(a.size), "mean": float(a.mean()), "p50": float(np.percentile(a, 50)),
            "p99": float(np.percentile(a, 99)), "max": float(a.max())}


class Telemetry:
    """Thread-safe recorder. ``start()`` opens the JSONL file (if any); ``stop()`` closes it."""

    def __init__(self, path: str | Path | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path) if path else None
        self._clock = clock
        self.t0 = clock()
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._file: IO[str] | None = None
        self.write_error: str | None = None  # why the file stopped early (set by the writer thread)
        # tick columns: packed doubles/bytes (~60 bytes a tick, ~22 MB an hour at 100 Hz)
        self.tick_t = array("d")
        self.tick_lag = array("d")
        self.tick_period = array("d")
        self.tick_missed = array("b")
        self.tick_steering = array("d")
        self.tick_throttle = array("d")
        self.tick_neutral = array("b")
        self.tick_chunk_age = array("d")
        # stage name -> (times, seconds)
        self.stages: dict[str, tuple[array[float], array[float]]] = {s: (array("d"), array("d")) for s in STAGES}
        self.events: list[dict[str, Any]] = []

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self, t0: float | None = None) -> None:
        self.t0 = self._clock() if t0 is None else t0
        if self.path is not None and self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - closed by the writer
            self._writer = threading.Thread(target=self._write_loop, name="telemetry-writer", daemon=True)
            self._writer.start()

    def stop(self) -> None:
        if self._writer is not None:
            self._queue.put(None)
            self._writer.join(timeout=5.0)
            self._writer = None

    # ---- recording ----------------------------------------------------------------------

    def rel(self, t: float) -> float:
        return round(t - self.t0, 6)

    def stage(self, name: str, t: float, seconds: float) -> None:
        with self._lock:
            ts, vs = self.stages.setdefault(name, (array("d"), array("d")))
            ts.append(t)
            vs.append(seconds)
        if self._writing:
            self._queue.put({"type": "stage", "t": self.rel(t), "name": name, "ms": round(seconds * 1e3, 3)})

    def tick(self, t: float, lag: float, period: float, missed: bool, steering: float, throttle: float,
             neutral: bool, chunk_age: float, control_s: float, why: str = "", step: float = float("nan")) -> None:
        with self._lock:
            self.tick_t.append(t)
            self.tick_lag.append(lag)
            self.tick_period.append(period)
            self.tick_missed.append(missed)
            self.tick_steering.append(steering)
            self.tick_throttle.append(throttle)
            self.tick_neutral.append(neutral)
            self.tick_chunk_age.append(chunk_age)
            self.stages["control"][0].append(t)
            self.stages["control"][1].append(control_s)
        if self._writing:
            rec = {"type": "tick", "t": self.rel(t), "lag_ms": _r(lag * 1e3), "period_ms": _r(period * 1e3),
                   "missed": missed, "steering": _r(steering, 4), "throttle": _r(throttle, 4), "neutral": neutral,
                   "chunk_age_ms": _r(chunk_age * 1e3), "step": _r(step, 3), "control_ms": _r(control_s * 1e3)}
            if why:
                rec["why"] = why
            self._queue.put(rec)

    def event(self, type_: str, kind: str = "", message: str = "", t: float | None = None, **extra: Any) -> None:
        t = self._clock() if t is None else t
        rec = {"type": type_, "t": self.rel(t), "kind": kind, "message": message, **extra}
        with self._lock:
            self.events.append(rec)
        if self._writing:
            self._queue.put(rec)

    def write(self, record: dict[str, Any]) -> None:
        """Write a record to the file only (e.g. the summary)."""
        if self._writing:
            self._queue.put(record)

    @property
    def _writing(self) -> bool:
        return self._writer is not None and self.write_error is None

    def _write_loop(self) -> None:
        f = self._file
        assert f is not None  # opened by start() before the writer thread
        last_flush = time.monotonic()
        try:
            while True:
                rec = self._queue.get()
                if rec is None:
                    break
                f.write(json.dumps(rec, default=_json_default) + "\n")
                if time.monotonic() - last_flush > 0.5:
                    f.flush()
                    last_flush = time.monotonic()
        except OSError as err:
            self.write_error = f"telemetry file {self.path}: {err}; the run goes on, the file ends here"
            log.error("%s", self.write_error)
        finally:
            try:
                f.close()
            except OSError:
                pass  # the lines that fit are on disk; the error is reported above

    # ---- views --------------------------------------------------------------------------

    def stage_values(self, name: str) -> np.ndarray:
        """Seconds recorded for stage ``name`` (a copy)."""
        with self._lock:
            if name not in self.stages:
                return np.zeros(0)
            return np.array(self.stages[name][1], dtype=np.float64)

    def recent(self, ticks: int = 200, inferences: int = 20) -> tuple[float, float, float]:
        """(control rate Hz, mean inference s, mean chunk age s) over the last ticks, for a status line."""
        with self._lock:
            per = np.array(self.tick_period[-ticks:], dtype=np.float64)
            age = np.array(self.tick_chunk_age[-ticks:], dtype=np.float64)
            inf = np.array(self.stages["inference"][1][-inferences:], dtype=np.float64)
        per, age = per[np.isfinite(per)], age[np.isfinite(age)]
        nan = float("nan")
        return (1.0 / per.mean() if per.size else 0.0, float(inf.mean()) if inf.size else nan,
                float(age.mean()) if age.size else nan)

    def timelines(self) -> dict[str, Any]:
        """A consistent copy of every recorded series, times in seconds since start (for plots)."""
        with self._lock:
            return {
                "t": np.array(self.tick_t) - self.t0, "period": np.array(self.tick_period),
                "lag": np.array(self.tick_lag), "steering": np.array(self.tick_steering),
                "throttle": np.array(self.tick_throttle), "neutral": np.array(self.tick_neutral, dtype=bool),
                "chunk_age": np.array(self.tick_chunk_age),
                "stages": {k: (np.array(ts) - self.t0, np.array(vs)) for k, (ts, vs) in self.stages.items() if len(ts)},
                "events": list(self.events),
            }

    def build_report(self, run: RunFacts) -> RunReport:
        """The run's :class:`RunReport`: ``run`` from the loop, the timing statistics from what was recorded."""
        nominal = 1.0 / run.rate_hz
        with self._lock:
            periods = np.array(self.tick_period, dtype=np.float64)
            ages = np.array(self.tick_chunk_age, dtype=np.float64)
            n_ticks = len(self.tick_t)
        periods = periods[np.isfinite(periods)]
        faults = [{"kind": r.kind, "message": r.message, "t_start": round(r.t_start - self.t0, 4),
                   "t_end": None if r.t_end is None else round(r.t_end - self.t0, 4)} for r in run.faults]
        return RunReport(
            mode=run.mode, backend=run.backend, rate_hz=run.rate_hz, duration_s=run.duration_s, ticks=n_ticks,
            missed_deadlines=run.missed_deadlines, skipped_slots=run.skipped_slots,
            jitter_ms=stats_ms(np.abs(periods - nominal)), period_ms=stats_ms(periods),
            stages_ms={name: stats_ms(self.stage_values(name)) for name in STAGES},
            chunk_age_ms=stats_ms(ages), chunks=run.chunks, inference_errors=run.inference_errors,
            neutral_ticks=run.neutral_ticks, actuator=run.actuator, faults=faults, stop_reason=run.stop_reason,
            stop_kind=run.stop_kind, neutral_at_exit=run.neutral_at_exit, arduino=run.arduino, sim=run.sim,
            device=run.device, telemetry_path=str(self.path) if self.path else None,
        )

    def since(self, t: float) -> dict[str, np.ndarray]:
        """Tick periods and inference times recorded from time ``t`` (this clock's seconds) on, for
        per-interval views (the long-drive benchmark's minutes)."""
        with self._lock:
            i = bisect.bisect_left(self.tick_t, t)
            inference = self.stages.get("inference")
            j = bisect.bisect_left(inference[0], t) if inference else 0
            return {"period": np.array(self.tick_period[i:], dtype=np.float64),
                    "inference": np.array(inference[1][j:] if inference else [], dtype=np.float64)}

    def window(self, n: int) -> dict[str, np.ndarray]:
        """The last ``n`` ticks' period, missed flag and chunk age, and the last ``n`` inferences (for live views)."""
        with self._lock:
            inference = self.stages.get("inference")
            return {"period": np.array(self.tick_period[-n:], dtype=np.float64),
                    "missed": np.array(self.tick_missed[-n:], dtype=bool),
                    "chunk_age": np.array(self.tick_chunk_age[-n:], dtype=np.float64),
                    "inference": np.array(inference[1][-n:] if inference else [], dtype=np.float64)}


def _r(v: float | None, nd: int = 3) -> float | None:
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else round(float(v), nd)


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    return str(o)


@dataclass(frozen=True)
class RunFacts:
    """What the control loop knows at the end of a run; the telemetry adds the timing statistics."""

    mode: str  # "async" or "sync"
    backend: str
    rate_hz: float
    duration_s: float
    missed_deadlines: int
    skipped_slots: int
    chunks: int
    inference_errors: int
    neutral_ticks: int
    actuator: dict[str, Any]
    faults: Sequence[FaultRecord]
    stop_reason: str
    stop_kind: StopKind
    neutral_at_exit: bool
    arduino: dict[str, Any] | None = None
    sim: dict[str, Any] | None = None
    device: dict[str, Any] | None = None


@dataclass
class RunReport:
    """What a run did; ``format_table()`` is the summary printed at exit."""

    mode: str  # "async" or "sync"
    backend: str
    rate_hz: float
    duration_s: float
    ticks: int
    missed_deadlines: int
    skipped_slots: int
    jitter_ms: dict[str, Any]  # |actual period − nominal|: n, mean, p50, p99, max
    period_ms: dict[str, Any]
    stages_ms: dict[str, Any]  # capture, frame_age, preprocess, inference, control
    chunk_age_ms: dict[str, Any]  # at use, driving ticks only
    chunks: int
    inference_errors: int
    neutral_ticks: int
    actuator: dict[str, Any]
    faults: list[dict[str, Any]]
    stop_reason: str
    stop_kind: StopKind
    neutral_at_exit: bool
    arduino: dict[str, Any] | None = None  # the simulated Arduino's view: inter-arrival, FAILSAFE
    sim: dict[str, Any] | None = None  # the simulated rover: laps, off-track events
    device: dict[str, Any] | None = None  # an accelerator that can drop out: losses, reopens, fallback chunks
    telemetry_path: str | None = None
    plot_path: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def fault_kinds(self) -> list[str]:
        return [f["kind"] for f in self.faults]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(json.dumps(asdict(self), default=_json_default))
        return out

    def format_table(self) -> str:
        def row(name: str, d: dict[str, Any], unit: str = "ms") -> str:
            if not d or not d.get("n"):
                return f"  {name:<24} {'-':>8} {'-':>8} {'-':>8} {'-':>8} {0:>7}"
            return (f"  {name:<24} {d['mean']:>8.2f} {d['p50']:>8.2f} {d['p99']:>8.2f} {d['max']:>8.2f} "
                    f"{d['n']:>7}")

        lines = [
            f"edgeact run: {self.mode} mode, backend {self.backend}, {self.rate_hz:g} Hz for {self.duration_s:.1f} s "
            f"-> stopped: {self.stop_reason}",
            f"  {'stage (ms)':<24} {'mean':>8} {'p50':>8} {'p99':>8} {'max':>8} {'n':>7}",
        ]
        for name in STAGES:
            lines.append(row(name, self.stages_ms.get(name, {})))
        lines.append(row("chunk age at use", self.chunk_age_ms))
        lines.append(row("control period", self.period_ms))
        lines.append(row("|period - nominal|", self.jitter_ms))
        ack = self.actuator.get("ack_latency_ms") or {}
        lines.append(row("ack latency", ack))
        lines.append(
            f"  ticks {self.ticks}, missed deadlines {self.missed_deadlines} (skipped slots {self.skipped_slots}), "
            f"neutral ticks {self.neutral_ticks}, chunks {self.chunks}, inference errors {self.inference_errors}")
        a = self.actuator
        lines.append(
            f"  actuator {a.get('port', '?')}: sent {a.get('sent', 0)}, acked {a.get('acked', 0)}, "
            f"neutral {a.get('neutral_sent', 0)}, send failures {a.get('send_failures', 0)}, "
            f"rx rejected {a.get('rx_rejected', 0)}, FAILSAFE {a.get('failsafe_count', 0)}, "
            f"reconnects {a.get('reconnects', 0)}")
        if self.arduino:
            ia = self.arduino.get("inter_arrival") or {}
            if ia.get("n"):
                lines.append(
                    f"  sim Arduino: {self.arduino.get('drive_commands', 0)} drive commands, inter-arrival "
                    f"{ia['mean_ms']:.2f} ± {ia['std_ms']:.2f} ms (p1 {ia['p1_ms']:.2f}, p99 {ia['p99_ms']:.2f}, "
                    f"max {ia['max_ms']:.2f}), rejected {self.arduino.get('rejected', 0)}, "
                    f"FAILSAFE entered: {'yes' if self.arduino.get('entered_failsafe') else 'no'}")
            else:
                lines.append(f"  sim Arduino: no drive commands, FAILSAFE entered: "
                             f"{'yes' if self.arduino.get('entered_failsafe') else 'no'}")
        if self.sim:
            lines.append("  sim rover: " + ", ".join(f"{k} {v}" for k, v in self.sim.items()))
        if self.device:
            d = self.device
            lines.append(f"  device: {d['state']}, lost {d['losses']} time(s), reopened {d['reopened']} (after "
                         f"{', '.join(f'{s:.1f}' for s in d['recovery_s']) or '-'} s), failed attempts "
                         f"{d['failed_attempts']}" + (f", {d['fallback_chunks']} chunks from {d['fallback']}"
                                                      if d["fallback"] else ""))
        if self.faults:
            lines.append("  faults:")
            for f in self.faults[:20]:
                end = f"{f['t_end']:.2f}" if f.get("t_end") is not None else "end"
                lines.append(f"    {f['t_start']:7.2f}-{end:>7} s  {f['kind']}: {f['message']}")
            if len(self.faults) > 20:
                lines.append(f"    … {len(self.faults) - 20} more in the telemetry file")
        else:
            lines.append("  faults: none")
        lines.append(f"  neutral at exit: {'yes' if self.neutral_at_exit else 'NO'}")
        if self.telemetry_path:
            plot = f", plot: {self.plot_path}" if self.plot_path else ""
            lines.append(f"  telemetry: {self.telemetry_path}{plot}")
        return "\n".join(lines)


def plot_timeline(tel: Telemetry, path: str | Path, nominal_period_s: float | None = None,
                  title: str = "edgeact run") -> Path:
    """PNG of the run's timelines: control period/lag, latencies, commands, faults."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from edgeact.fileio import atomic_save

    path = Path(path)
    lines = tel.timelines()
    t = lines["t"]
    period, lag, age = lines["period"] * 1e3, lines["lag"] * 1e3, lines["chunk_age"] * 1e3
    steer, thr, neutral, events = lines["steering"], lines["throttle"], lines["neutral"], lines["events"]
    stages = {k: (ts, vs * 1e3) for k, (ts, vs) in lines["stages"].items() if k != "control"}

    fig, axes = plt.subplots(4, 1, figsize=(12, 10), sharex=True)
    ax = axes[0]
    ax.plot(t, period, lw=0.6, label="control period")
    ax.plot(t, lag, lw=0.6, label="lag behind deadline")
    if nominal_period_s:
        ax.axhline(nominal_period_s * 1e3, color="k", lw=0.5, ls="--", label="nominal")
    ax.set_ylabel("ms")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title)
    ax = axes[1]
    for name, (ts, vs) in stages.items():
        ax.plot(ts, vs, lw=0.6, marker=".", ms=2, label=name)
    ax.plot(t, age, lw=0.6, label="chunk age at use")
    ax.set_ylabel("ms")
    ax.legend(loc="upper right", fontsize=8)
    ax = axes[2]
    ax.plot(t, steer, lw=0.8, label="steering sent")
    ax.plot(t, thr, lw=0.8, label="throttle sent")
    ax.set_ylim(-1.05, 1.05)
    ax.legend(loc="upper right", fontsize=8)
    ax = axes[3]
    ax.fill_between(t, 0, neutral.astype(float), step="post", alpha=0.4, label="neutral")
    for e in events:
        if e.get("type") in ("fault", "event"):
            ax.axvline(e["t"], color="r" if e["type"] == "fault" else "g", lw=0.8)
            ax.text(e["t"], 0.9, e.get("kind", ""), rotation=90, fontsize=7, va="top")
    ax.set_ylim(-0.05, 1.05)
    ax.set_ylabel("neutral / faults")
    ax.set_xlabel("s since start")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fig.tight_layout()
    atomic_save(path, lambda p: fig.savefig(p, dpi=90, format="png"))
    plt.close(fig)
    return path
