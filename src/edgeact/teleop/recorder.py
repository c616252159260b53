"""Recording episodes while driving, in the format ``sim record`` writes and ``edgeact train`` reads.

One episode per toggle. A step is recorded for each camera frame on the episode's fps
schedule (a faster camera is subsampled; a slot without a new frame counts as dropped):
the frame, the command the rover actually executed when it arrived (the label), the
command executed at the step before (the state, as the simulator records it) and the
intervention flag. The recorder runs in its own thread and every disk operation (frames,
data.csv, the rename, deleting an erased episode) happens there: a slow SD card drops
recording slots (counted in the cadence), never a control tick, and it never holds up the
page's server.

Atomic per episode: steps go to a hidden temporary folder that is renamed into place when
the episode ends (:class:`~edgeact.data.episodes.EpisodeWriter`), so a crash or a power cut
loses at most the episode in progress. Temporary folders left by a crash are removed at
start.

A write that fails (the disk is full, the card went read-only, an I/O error) ends the
recording: the episode in progress is discarded (its hidden folder removed; earlier
episodes are untouched), :attr:`Recorder.error` says why, and ``on_error`` is called (the
drive then holds neutral or keeps driving, as configured). Recording starts again only
when a person asks for it (auto-record waits for that too).

``auto_record``: an episode starts when the rover moves (|throttle| executed above
``AUTO_THROTTLE``) and ends after ``AUTO_IDLE_S`` without throttle, as Donkeycar's
auto-record-on-throttle does.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from edgeact.data.episodes import EpisodeWriter, episode_name, next_episode_index
from edgeact.errors import DataError
from edgeact.runtime.interfaces import Camera
from edgeact.teleop.pilot import Executed

log = logging.getLogger("edgeact.drive")

AUTO_THROTTLE = 0.05
AUTO_IDLE_S = 1.0


@dataclass(frozen=True)
class Cadence:
    """How well one recorded episode kept its schedule."""

    episode: str
    steps: int
    duration_s: float
    target_hz: float
    achieved_hz: float
    dropped: int  # schedule slots without a new camera frame
    step_ms_p50: float
    step_ms_p99: float
    interventions: int  # steps flagged as a person's takeover

    def row(self) -> str:
        return (f"{self.episode:<13} {self.steps:>6} {self.duration_s:>7.1f} "
                f"{self.achieved_hz:>6.1f}/{self.target_hz:<4g} {self.dropped:>7} {self.step_ms_p50:>7.1f} "
                f"{self.step_ms_p99:>7.1f} {self.interventions:>6}")


def describe_write_error(err: BaseException) -> str:
    """What a person can act on, for an error writing an episode."""
    errno_ = getattr(err, "errno", None)
    if errno_ == errno.ENOSPC:
        return "the disk is full (free space, then press Record again)"
    if errno_ == errno.EROFS:
        return "the disk became read-only (an SD card that failed or was remounted)"
    if errno_ == errno.EDQUOT:
        return "the disk quota is used up"
    return f"a write failed ({err})"


def format_cadence(reports: list[Cadence]) -> str:
    head = (f"{'episode':<13} {'steps':>6} {'secs':>7} {'Hz/target':>11} {'dropped':>7} {'p50 ms':>7} "
            f"{'p99 ms':>7} {'interv':>6}")
    return "\n".join([head, *(r.row() for r in reports)]) if reports else "no episodes recorded"


class Recorder:
    """``toggle()`` starts or ends an episode; ``rerecord()`` drops the one in progress and starts
    again; ``erase_last()`` deletes the last episode this session recorded."""

    def __init__(self, root: str | os.PathLike, fps: float, camera: Camera, executed: Callable[[], Executed],
                 jpeg_quality: int = 90, on_event: Callable[[str, str], None] | None = None,
                 auto_record: bool = False, meta: dict[str, Any] | None = None,
                 on_error: Callable[[str], None] | None = None) -> None:
        if not fps > 0:
            raise DataError(f"recording fps must be positive, got {fps}")
        self.root = Path(root)
        self.fps = float(fps)
        self.camera = camera
        self.executed = executed
        self.jpeg_quality = jpeg_quality
        self.on_event = on_event
        self.meta = dict(meta or {})  # into every episode's meta.json (the policy that drove)
        self.session = ""  # when start() was called: groups this drive's episodes (edgeact data view)
        self.on_error = on_error
        self.error: str | None = None  # why recording last stopped on its own; None once an episode starts again
        self.saved: list[Path] = []  # this session's episodes, oldest first
        self.cadence: list[Cadence] = []
        self._lock = threading.Lock()
        self._writer: EpisodeWriter | None = None
        self._want: str | None = None  # a request for the recorder thread: start, stop, restart
        self._recording = False
        self.auto_record = auto_record
        self._last_throttle_t = 0.0
        self._auto_paused = False  # after a failed write: auto-record waits for a person's toggle
        self._trash: list[Path] = []  # erased episodes, deleted by the recorder thread
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._steps: list[float] = []
        self._dropped = 0
        self._interventions = 0
        self._prev = (0.0, 0.0)
        self._t0 = 0.0

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        self.session = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.root.mkdir(parents=True, exist_ok=True)
        for leftover in self.root.glob(".episode_*.tmp"):  # a crash mid-episode: that episode is lost
            log.warning("removing %s, an episode a crash left unfinished", leftover)
            shutil.rmtree(leftover, ignore_errors=True)
        for leftover in self.root.glob(".episode_*.erased"):  # erased, not yet deleted when it stopped
            shutil.rmtree(leftover, ignore_errors=True)
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the episode in progress (it is kept) and the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10.0)
            self._thread = None
        self._finish()
        self._empty_trash()

    # ---- requests (any thread) -------------------------------------------------------------

    @property
    def recording(self) -> bool:
        """Whether an episode is being recorded (as asked: the recorder thread follows within a frame)."""
        return self._recording

    @property
    def steps(self) -> int:
        w = self._writer
        return len(w) if w is not None else 0

    @property
    def episodes(self) -> int:
        return len(self.saved)

    def toggle(self) -> bool:
        """Start or end an episode; True when recording after the call."""
        with self._lock:
            self._auto_paused = False  # a person asked: auto-record may start episodes again
            self._recording = not self._recording
            self._want = "start" if self._recording else "stop"
            return self._recording

    def rerecord(self) -> None:
        with self._lock:
            if self.recording:
                self._want = "restart"

    def next_episode(self) -> None:
        """End the episode in progress (it is kept) and start the next at once."""
        with self._lock:
            if self._recording:
                self._want = "start"  # with an episode in progress, a start saves it first

    def erase_last(self) -> str | None:
        """Delete the last episode recorded in this session (never one from before); its name, or None."""
        with self._lock:
            if not self.saved:
                return None
            path = self.saved.pop()
            if self.cadence and self.cadence[-1].episode == path.name:
                self.cadence.pop()
        trash = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".erased", dir=self.root))
        try:
            os.replace(path, trash / path.name)  # gone from the dataset at once, atomically
        except FileNotFoundError:  # `edgeact data pull --delete-after-verify` took it meanwhile
            shutil.rmtree(trash, ignore_errors=True)
            self._emit("erased", f"{path.name} is no longer in {self.root} (pulled and deleted?)")
            return None
        with self._lock:
            self._trash.append(trash)  # deleting its files may take seconds on an SD card: the recorder thread's job
        self._emit("erased", f"erased {path.name}")
        return path.name

    # ---- the recorder thread ---------------------------------------------------------------

    def _run(self) -> None:
        last_index = -1
        next_slot = 0.0
        period = 1.0 / self.fps
        while not self._stop.is_set():
            if self.auto_record:
                self._follow_throttle()
            self._handle_request()
            self._empty_trash()
            frame = self.camera.wait_new(last_index, timeout=0.1)
            if frame is None or self._writer is None:
                if frame is not None:
                    last_index = frame.index
                next_slot = 0.0
                continue
            last_index = frame.index
            if next_slot and frame.t_capture < next_slot - 0.5 * period:
                continue  # a camera faster than the episode's fps: keep one frame per slot
            if next_slot:
                missed = int((frame.t_capture - next_slot) / period + 0.5)
                self._dropped += max(0, missed)
                next_slot += (max(0, missed) + 1) * period
            else:
                next_slot = frame.t_capture + period
            self._add(frame.image, frame.t_capture)

    def _add(self, image: np.ndarray, t_capture: float) -> None:
        ex = self.executed()
        action = (float(ex.steering), float(ex.throttle))
        try:
            assert self._writer is not None
            self._writer.add(image, action, timestamp=t_capture - self._t0, state=self._prev,
                             intervention=ex.intervention)
        except (DataError, OSError) as err:
            self._failed(err)
            return
        self._steps.append(t_capture)
        self._interventions += int(ex.intervention)
        self._prev = action

    def _failed(self, err: BaseException) -> None:
        """A write failed: discard the episode in progress, stop recording, say why."""
        name = self._writer.name if self._writer is not None else "the episode"
        self._abort()
        with self._lock:
            self._recording = False
            self._want = None
            self._auto_paused = self.auto_record
        self.error = f"recording stopped: {describe_write_error(err)}; {name} discarded, earlier episodes are intact"
        log.error("%s", self.error)
        self._emit("record-error", self.error)
        if self.on_error is not None:
            self.on_error(self.error)

    def _follow_throttle(self) -> None:
        now = time.monotonic()
        moving = abs(self.executed().throttle) > AUTO_THROTTLE
        if moving:
            self._last_throttle_t = now
        with self._lock:
            if moving and not self._recording and not self._auto_paused:
                self._recording, self._want = True, "start"
            elif self._recording and not moving and now - self._last_throttle_t > AUTO_IDLE_S:
                self._recording, self._want = False, "stop"

    def _handle_request(self) -> None:
        with self._lock:
            want, self._want = self._want, None
        if want == "restart":
            self._abort()
            self._emit("rerecord", "episode dropped; recording again")
        elif want is not None:
            self._finish()  # "stop", or a "start" while one is in progress (a stop and a start pressed together)
        if want in ("start", "restart"):
            self._begin()

    def _begin(self) -> None:
        path = self.root / episode_name(next_episode_index(self.root))
        try:
            self._writer = EpisodeWriter(path, self.fps, state_names=("steering", "throttle"),
                                         jpeg_quality=self.jpeg_quality, intervention_column=True,
                                         meta={"source": "edgeact drive", "session": self.session, **self.meta})
        except (DataError, OSError) as err:
            self._failed(err)
            return
        self.error = None
        self._t0 = time.monotonic()
        self._steps, self._dropped, self._interventions, self._prev = [], 0, 0, (0.0, 0.0)
        self._emit("record-start", f"recording {path.name}")

    def _abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()
            self._writer = None

    def _finish(self) -> None:
        w = self._writer
        if w is None:
            return
        if len(w) == 0:
            self._writer = None
            w.abort()
            return
        cadence = self._cadence(w.name)
        w.meta["cadence"] = asdict(cadence)
        try:
            path = w.close()
        except (DataError, OSError) as err:  # data.csv, meta.json or the rename: the episode is not saved
            self._failed(err)
            return
        self._writer = None
        with self._lock:
            self.saved.append(path)
            self.cadence.append(cadence)
        self._emit("record-stop", f"saved {path.name}: {cadence.steps} steps, {cadence.achieved_hz:.1f} Hz")

    def _empty_trash(self) -> None:
        with self._lock:
            trash, self._trash = self._trash, []
        for folder in trash:
            shutil.rmtree(folder, ignore_errors=True)

    def _cadence(self, name: str) -> Cadence:
        t = np.asarray(self._steps, dtype=np.float64)
        dt = np.diff(t) * 1e3 if t.size > 1 else np.zeros(0)
        duration = float(t[-1] - t[0] + 1.0 / self.fps) if t.size else 0.0
        return Cadence(name, int(t.size), duration, self.fps, float(t.size / duration) if duration else 0.0,
                       self._dropped, float(np.percentile(dt, 50)) if dt.size else float("nan"),
                       float(np.percentile(dt, 99)) if dt.size else float("nan"), self._interventions)

    def _emit(self, kind: str, message: str) -> None:
        log.info("%s", message)
        if self.on_event is not None:
            self.on_event(kind, message)
