"""Frame sources, each grabbing in its own thread and keeping only the newest frame.

Every camera here is a :class:`ThreadedCamera` and follows the
:class:`edgeact.runtime.interfaces.Camera` protocol. Frames are HxWx3 uint8 **RGB** at the
source's own size; :func:`edgeact.frames.fit_frame` brings them to the model's input size.

Sources (:func:`open_camera` parses the CLI string):

- ``0``, ``1``…: an OpenCV (V4L2) device; ``path/video.mp4`` or a URL: a video stream,
  played at its own fps;
- ``picamera2`` / ``picamera2:N``: a Raspberry Pi camera via picamera2 (imported lazily);
- ``replay:DIR``: the frames of an episode directory (``frames/*.jpg`` + ``meta.json``) at
  the episode's fps; a directory of episodes plays them in order;
- ``sim`` / ``sim:TRACK``: the rover simulator in closed loop is wired above the runtime
  (:func:`edgeact.drive.open_parts`), since the runtime does not import the simulator.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgeact.errors import CameraError, ConfigError
from edgeact.runtime.interfaces import Frame

log = logging.getLogger("edgeact.runtime")

class ThreadedCamera:
    """Base: a grab thread publishing the newest frame. Subclasses implement
    ``_open()`` (in ``start()``, may raise CameraError), ``_grab() -> np.ndarray | None``
    (RGB frame, or None at the end of a finite source) and ``_close()``.

    ``fps``: when set, frames are paced on an absolute schedule at that rate (for sources
    that would otherwise run as fast as they can: files, replays); live devices set None
    and are paced by the hardware.
    """

    name = "camera"

    def __init__(self, fps: float | None = None, on_frame: Callable[[Frame], None] | None = None) -> None:
        self.fps = fps
        self.on_frame = on_frame  # telemetry hook, called in the grab thread
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._index = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.finished = False
        self.error: str | None = None
        self.frames = 0

    def start(self) -> None:
        if self._thread is not None:
            return
        self._open()
        self._stop.clear()
        self.finished = False
        self.error = None
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=2.0)
        self._thread = None
        try:
            self._close()
        except Exception:
            log.exception("closing camera %s", self.name)

    def __enter__(self) -> ThreadedCamera:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def latest(self) -> Frame | None:
        return self._latest

    def stats(self) -> dict[str, Any] | None:
        """Nothing beyond the frames; sources with more to say (the simulator) override this."""
        return None

    def wait_new(self, after_index: int, timeout: float) -> Frame | None:
        """The newest frame if its index is > ``after_index``, waiting up to ``timeout``."""
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                f = self._latest
                if f is not None and f.index > after_index:
                    return f
                left = end - time.monotonic()
                if left <= 0 or self._stop.is_set() or self.finished or self.error:
                    return None
                self._cond.wait(left)

    # ---- grab thread --------------------------------------------------------------------

    def _publish(self, image: np.ndarray, t_capture: float, grab_s: float) -> None:
        frame = Frame(image, t_capture, self._index, grab_s)
        self._index += 1
        self.frames += 1
        with self._cond:
            self._latest = frame
            self._cond.notify_all()
        if self.on_frame is not None:
            try:
                self.on_frame(frame)
            except Exception:
                log.exception("camera frame hook failed")

    def _run(self) -> None:
        period = 1.0 / self.fps if self.fps else None
        next_t = time.monotonic()
        try:
            while not self._stop.is_set():
                if period is not None:
                    wait = next_t - time.monotonic()
                    if wait > 0 and self._stop.wait(wait):
                        break
                    next_t += period
                    if time.monotonic() - next_t > period:  # fell behind: drop, don't burst
                        next_t = time.monotonic() + period
                t0 = time.monotonic()
                image = self._grab()
                t1 = time.monotonic()
                if image is None:
                    self.finished = True
                    log.info("camera %s: end of source after %d frames", self.name, self.frames)
                    break
                self._publish(image, t1, t1 - t0)
        except Exception as err:  # noqa: BLE001 - the loop reports it as a camera fault
            self.error = f"{type(err).__name__}: {err}"
            log.error("camera %s failed: %s", self.name, self.error)
        finally:
            with self._cond:
                self._cond.notify_all()

    def _open(self) -> None:
        pass

    def _grab(self) -> np.ndarray | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _close(self) -> None:
        pass


class OpenCVCamera(ThreadedCamera):
    """``cv2.VideoCapture`` on a device index, a video file or a stream URL.

    Devices: the driver buffer is set to 1 frame (newest frame, least latency), optional
    ``size`` = (W, H) and ``fps`` requests. Files are paced at their own fps.
    """

    def __init__(self, source: int | str, size: tuple[int, int] | None = None, fps: float | None = None,
                 loop: bool = False, **kw: Any) -> None:
        self.source = source
        self.is_device = isinstance(source, int)
        self.size = size
        self.request_fps = fps
        self.loop = loop
        super().__init__(fps=None, **kw)
        self.name = f"opencv:{source}"
        self._cap: Any = None  # cv2.VideoCapture once open

    def _open(self) -> None:
        import cv2

        cap = cv2.VideoCapture(self.source)
        if not cap.isOpened():
            hint = ("check `ls /dev/video*`, that no other program holds it, and on a Pi camera module use "
                    "--camera picamera2") if self.is_device else "check the path or URL"
            raise CameraError(f"cannot open camera {self.source!r}: {hint}")
        if self.is_device:
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
            if self.size:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
            if self.request_fps:
                cap.set(cv2.CAP_PROP_FPS, self.request_fps)
        else:
            file_fps = cap.get(cv2.CAP_PROP_FPS)
            self.fps = self.request_fps or (file_fps if file_fps and 1 <= file_fps <= 240 else 30.0)
        self._cap = cap

    def _grab(self) -> np.ndarray | None:
        import cv2

        ok, bgr = self._cap.read()
        if not ok and not self.is_device and self.loop:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, bgr = self._cap.read()
        if not ok:
            if self.is_device:
                raise CameraError(f"camera {self.source!r} returned no frame (unplugged?)")
            return None
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def _close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class Picamera2Camera(ThreadedCamera):
    """A Raspberry Pi camera module through picamera2 (Raspberry Pi OS package)."""

    def __init__(self, index: int = 0, size: tuple[int, int] = (640, 480), fps: float = 30.0, **kw: Any) -> None:
        super().__init__(fps=None, **kw)
        self.index = index
        self.size = size  # (W, H)
        self.request_fps = fps
        self.name = f"picamera2:{index}"
        self._cam: Any = None  # picamera2.Picamera2 once open

    def _open(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError as err:
            raise CameraError(
                "picamera2 is not installed. On Raspberry Pi OS: `sudo apt install python3-picamera2`, and create "
                "the virtual environment with `python3 -m venv --system-site-packages` so it is visible; or use "
                "a USB camera with --camera 0"
            ) from err
        cam = Picamera2(self.index)
        # "RGB888" in libcamera/picamera2 is B,G,R byte order in memory (OpenCV's BGR).
        config = cam.create_video_configuration(
            main={"size": tuple(self.size), "format": "RGB888"},
            controls={"FrameRate": float(self.request_fps)},
            buffer_count=2,
        )
        cam.configure(config)
        cam.start()
        self._cam = cam

    def _grab(self) -> np.ndarray | None:
        bgr = self._cam.capture_array("main")
        return np.ascontiguousarray(bgr[..., 2::-1])

    def _close(self) -> None:
        if self._cam is not None:
            try:
                self._cam.stop()
                self._cam.close()
            finally:
                self._cam = None


def _episode_dirs(directory: Path) -> list[Path]:
    if (directory / "frames").is_dir():
        return [directory]
    eps = sorted(p for p in directory.iterdir() if p.is_dir() and (p / "frames").is_dir())
    if not eps:
        raise CameraError(f"{directory} is not an episode directory (no frames/) nor a directory of episodes")
    return eps


class ReplayCamera(ThreadedCamera):
    """The frames of recorded episodes, at the episode's fps (``meta.json``; 30 if absent)."""

    def __init__(self, directory: str | Path, fps: float | None = None, loop: bool = False, **kw: Any) -> None:
        super().__init__(fps=fps, **kw)
        self.directory = Path(directory)
        self.loop = loop
        self.name = f"replay:{self.directory.name}"
        self._files: list[Path] = []
        self._pos = 0

    def _open(self) -> None:
        if not self.directory.is_dir():
            raise CameraError(f"replay directory {self.directory} does not exist")
        files: list[Path] = []
        fps = None
        for ep in _episode_dirs(self.directory):
            ep_files = sorted(p for p in (ep / "frames").iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
            files.extend(ep_files)
            meta = ep / "meta.json"
            if fps is None and meta.is_file():
                try:
                    fps = float(json.loads(meta.read_text()).get("fps", 0)) or None
                except (ValueError, OSError) as err:
                    raise CameraError(f"cannot read {meta}: {err}") from err
        if not files:
            raise CameraError(f"no frames (*.jpg, *.png) under {self.directory}")
        self._files = files
        self._pos = 0
        if self.fps is None:
            self.fps = fps or 30.0

    def _grab(self) -> np.ndarray | None:
        import cv2

        if self._pos >= len(self._files):
            if not self.loop:
                return None
            self._pos = 0
        path = self._files[self._pos]
        self._pos += 1
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise CameraError(f"cannot decode {path}")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def open_camera(
    spec: str | int,
    *,
    fps: float | None = None,
    on_frame: Callable[[Frame], None] | None = None,
) -> ThreadedCamera:
    """Build (not start) a camera from a CLI string; see the module docstring.

    ``sim``/``sim:TRACK`` is refused here: :func:`edgeact.drive.open_parts` wires the
    simulator to the actuator.
    """
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().lstrip("-").isdigit()):
        return OpenCVCamera(int(spec), fps=fps, on_frame=on_frame)
    s = str(spec).strip()
    low = s.lower()
    if low.startswith("replay:"):
        return ReplayCamera(s[len("replay:"):], fps=fps, on_frame=on_frame)
    if low in ("picamera2", "picam", "picamera") or low.startswith(("picamera2:", "picam:")):
        idx = s.split(":", 1)[1] if ":" in s else "0"
        if not idx.isdigit():
            raise ConfigError(f"picamera2 camera index must be an integer, got {idx!r}")
        return Picamera2Camera(int(idx), fps=fps or 30.0, on_frame=on_frame)
    if low == "sim" or low.startswith("sim:"):
        raise ConfigError("the simulator camera moves with the actuator's outputs: open it with "
                          "edgeact.drive.open_parts (as `edgeact run --camera sim` does)")
    path = Path(s)
    if path.is_dir():
        return ReplayCamera(path, fps=fps, on_frame=on_frame)
    if "://" in s or path.is_file():
        return OpenCVCamera(s, fps=fps, on_frame=on_frame)
    raise ConfigError(f"unknown camera {s!r}: use a device index (0), a video file, picamera2[:N], "
                      f"replay:EPISODE_DIR or sim[:TRACK]")
