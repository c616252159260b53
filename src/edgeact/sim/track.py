"""Closed tracks: a centre-line polyline, a road width, and projection onto the centre line.

Coordinates are metres in a right-handed world frame (x east, y north, yaw counter-clockwise
from +x). A track is driven in the order of its points (counter-clockwise for the built-in
ones). The centre line is resampled at a uniform spacing, so arc length ``s`` of point ``i``
is ``i * spacing``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from edgeact.errors import ConfigError

DEFAULT_ROAD_WIDTH_M = 1.0
_SPACING_M = 0.05


@dataclass(frozen=True)
class Projection:
    """Where a point lies relative to the centre line."""

    s: float  # progress along the track, metres in [0, length)
    cross_track: float  # signed distance to the centre line; > 0 left of the driving direction
    heading: float  # heading of the centre line at s, radians
    index: int  # index of the centre-line segment the point projects onto


@dataclass
class Track:
    """A closed track. Build one with :func:`make_track` or ``Track.from_points``."""

    name: str
    points: np.ndarray  # (N, 2) float64, uniformly spaced, closed (last joins first), no repeat
    width: float = DEFAULT_ROAD_WIDTH_M
    spacing: float = _SPACING_M
    headings: np.ndarray = field(init=False, repr=False)
    curvature: np.ndarray = field(init=False, repr=False)
    length: float = field(init=False)

    def __post_init__(self) -> None:
        pts = np.asarray(self.points, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 8:
            raise ConfigError(f"track {self.name!r}: need an (N, 2) centre line with N >= 8, got {pts.shape}")
        self.points = pts
        seg = np.roll(pts, -1, axis=0) - pts
        self._seg = seg
        self._seg_len2 = np.maximum((seg**2).sum(axis=1), 1e-12)
        self.length = float(np.sqrt(self._seg_len2).sum())
        self.headings = np.arctan2(seg[:, 1], seg[:, 0])
        dh = np.angle(np.exp(1j * (np.roll(self.headings, -1) - self.headings)))
        # curvature at each point (1/m, > 0 turning left), smoothed over neighbours
        k = dh / self.spacing
        self.curvature = (np.roll(k, 1) + k + np.roll(k, -1)) / 3.0
        self._cum = np.concatenate([[0.0], np.cumsum(np.sqrt(self._seg_len2))])

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_points(
        cls, name: str, points: np.ndarray, width: float = DEFAULT_ROAD_WIDTH_M, spacing: float = _SPACING_M
    ) -> Track:
        """Resample a closed polyline (any spacing, not repeating its first point) uniformly."""
        pts = np.asarray(points, dtype=np.float64)
        closed = np.vstack([pts, pts[:1]])
        seg = np.sqrt((np.diff(closed, axis=0) ** 2).sum(axis=1))
        cum = np.concatenate([[0.0], np.cumsum(seg)])
        total = cum[-1]
        n = max(8, int(round(total / spacing)))
        s = np.linspace(0.0, total, n, endpoint=False)
        x = np.interp(s, cum, closed[:, 0])
        y = np.interp(s, cum, closed[:, 1])
        return cls(name=name, points=np.stack([x, y], axis=1), width=width, spacing=total / n)

    # ------------------------------------------------------------------ queries
    def project(self, x: float, y: float, hint: int | None = None) -> Projection:
        """Project (x, y) onto the centre line.

        ``hint``: the segment index of a previous projection; only a window around it is
        searched (fast, and never jumps to a distant part of the track that passes close by).
        """
        n = len(self.points)
        if hint is None:
            idx = np.arange(n)
        else:
            idx = np.arange(hint - 40, hint + 41) % n
        p = self.points[idx]
        d = self._seg[idx]
        rel = np.array([x, y]) - p
        t = np.clip((rel * d).sum(axis=1) / self._seg_len2[idx], 0.0, 1.0)
        closest = p + d * t[:, None]
        dist2 = ((np.array([x, y]) - closest) ** 2).sum(axis=1)
        j = int(np.argmin(dist2))
        i = int(idx[j])
        if hint is not None and (j == 0 or j == len(idx) - 1):
            return self.project(x, y, None)  # left the window: search everything
        seg = self._seg[i]
        r = np.array([x, y]) - self.points[i]
        cross = (seg[0] * r[1] - seg[1] * r[0]) / math.sqrt(self._seg_len2[i])
        s = self._cum[i] + t[j] * math.sqrt(self._seg_len2[i])
        return Projection(s=float(s % self.length), cross_track=float(cross), heading=float(self.headings[i]), index=i)

    def point_at(self, s: float) -> tuple[float, float, float]:
        """(x, y, heading) of the centre line at arc length ``s`` (wraps around)."""
        s = s % self.length
        i = int(np.searchsorted(self._cum, s, side="right") - 1)
        i = min(max(i, 0), len(self.points) - 1)
        seg_len = math.sqrt(self._seg_len2[i])
        t = (s - self._cum[i]) / seg_len
        x, y = self.points[i] + t * self._seg[i]
        return float(x), float(y), float(self.headings[i])

    def curvature_at(self, s: float) -> float:
        i = int(round((s % self.length) / self.spacing)) % len(self.points)
        return float(self.curvature[i])

    def edges(self) -> tuple[np.ndarray, np.ndarray]:
        """(left, right) road edges as (N, 2) polylines."""
        nrm = np.stack([-np.sin(self.headings), np.cos(self.headings)], axis=1)
        # average neighbouring segment normals so the edge is smooth at the vertices
        nrm = nrm + np.roll(nrm, 1, axis=0)
        nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
        half = self.width / 2
        return self.points + half * nrm, self.points - half * nrm

    def bounds(self, margin: float = 0.0) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) of the road plus ``margin`` metres."""
        lo = self.points.min(axis=0) - self.width / 2 - margin
        hi = self.points.max(axis=0) + self.width / 2 + margin
        return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])

    @property
    def min_radius(self) -> float:
        """Tightest radius of curvature on the centre line, metres."""
        return float(1.0 / max(np.abs(self.curvature).max(), 1e-9))


# ---------------------------------------------------------------------- built-in tracks
def _oval(width: float) -> Track:
    """Two 8 m straights joined by 3 m radius half circles (about 35 m a lap)."""
    straight, radius = 8.0, 3.0
    pts = []
    n_s, n_c = 160, 190
    for i in range(n_s):  # bottom straight, driving +x
        pts.append((-straight / 2 + straight * i / n_s, -radius))
    for i in range(n_c):  # right half circle, counter-clockwise
        a = -math.pi / 2 + math.pi * i / n_c
        pts.append((straight / 2 + radius * math.cos(a), radius * math.sin(a)))
    for i in range(n_s):  # top straight, driving -x
        pts.append((straight / 2 - straight * i / n_s, radius))
    for i in range(n_c):  # left half circle
        a = math.pi / 2 + math.pi * i / n_c
        pts.append((-straight / 2 + radius * math.cos(a), radius * math.sin(a)))
    return Track.from_points("oval", np.array(pts), width=width)


def _winding(width: float) -> Track:
    """A smooth curvy loop (radius modulated by a few harmonics), left and right bends, tightest radius
    ~1.8 m, ~55 m a lap."""
    th = np.linspace(0.0, 2 * math.pi, 4000, endpoint=False)
    r = 8.0 + 1.5 * np.sin(3 * th + 0.4) + 0.3 * np.cos(5 * th) + 0.5 * np.sin(2 * th)
    x = r * np.cos(th) * 1.1
    y = r * np.sin(th) * 0.9
    return Track.from_points("winding", np.stack([x, y], axis=1), width=width)


TRACKS = {"oval": _oval, "winding": _winding}


def track_names() -> tuple[str, ...]:
    return tuple(TRACKS)


def make_track(name: str, width: float = DEFAULT_ROAD_WIDTH_M) -> Track:
    """A built-in track by name (see :func:`track_names`)."""
    try:
        builder = TRACKS[name]
    except KeyError:
        raise ConfigError(f"unknown track {name!r}; use --track with one of: {', '.join(TRACKS)}") from None
    return builder(width)


class LapCounter:
    """Counts progress along the track direction: +1 per lap driven forward, negative if reversed."""

    def __init__(self, track: Track, start_s: float) -> None:
        self.track = track
        self.last_s = start_s
        self.progress_m = 0.0

    def update(self, s: float) -> float:
        ds = s - self.last_s
        half = self.track.length / 2
        if ds > half:
            ds -= self.track.length
        elif ds < -half:
            ds += self.track.length
        self.progress_m += ds
        self.last_s = s
        return self.progress_m

    @property
    def laps(self) -> float:
        return self.progress_m / self.track.length
