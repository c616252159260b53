"""Closed tracks: a centre-line polyline, a road width, and projection onto the centre line.

Coordinates are metres in a right-handed world frame (x east, y north, yaw counter-clockwise
from +x). A track is driven in the order of its points (counter-clockwise for the built-in
ones); ``NAME-rev`` is the same road driven the other way (every left bend becomes a right
bend). The centre line is resampled at a uniform spacing, so arc length ``s`` of point ``i``
is ``i * spacing``. The road width may vary along the track (``widths``, one per point).
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
    width: float = DEFAULT_ROAD_WIDTH_M  # the widest point when ``widths`` varies
    spacing: float = _SPACING_M
    # (N,) road width at each point; empty: ``width`` everywhere
    widths: np.ndarray = field(default_factory=lambda: np.empty(0))
    headings: np.ndarray = field(init=False, repr=False)
    curvature: np.ndarray = field(init=False, repr=False)
    length: float = field(init=False)

    def __post_init__(self) -> None:
        pts = np.asarray(self.points, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 8:
            raise ConfigError(f"track {self.name!r}: need an (N, 2) centre line with N >= 8, got {pts.shape}")
        self.points = pts
        given = np.asarray(self.widths, np.float64)
        widths = np.full(len(pts), float(self.width)) if given.size == 0 else given
        if widths.shape != (len(pts),) or not np.all(widths > 0):
            raise ConfigError(
                f"track {self.name!r}: widths must be {len(pts)} positive values, got shape {widths.shape}")
        self.widths = widths
        self.width = float(widths.max())
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
        cls,
        name: str,
        points: np.ndarray,
        width: float | np.ndarray = DEFAULT_ROAD_WIDTH_M,
        spacing: float = _SPACING_M,
    ) -> Track:
        """Resample a closed polyline (any spacing, not repeating its first point) uniformly.

        ``width``: one road width, or one per input point (interpolated along the track).
        """
        pts = np.asarray(points, dtype=np.float64)
        closed = np.vstack([pts, pts[:1]])
        seg = np.sqrt((np.diff(closed, axis=0) ** 2).sum(axis=1))
        cum = np.concatenate([[0.0], np.cumsum(seg)])
        total = cum[-1]
        n = max(8, int(round(total / spacing)))
        s = np.linspace(0.0, total, n, endpoint=False)
        x = np.interp(s, cum, closed[:, 0])
        y = np.interp(s, cum, closed[:, 1])
        widths = np.empty(0)
        if np.ndim(width) > 0:
            w = np.asarray(width, dtype=np.float64)
            if w.shape != (len(pts),):
                raise ConfigError(f"track {name!r}: {len(pts)} points but {w.shape} widths")
            widths = np.interp(s, cum, np.r_[w, w[:1]])
        return cls(name=name, points=np.stack([x, y], axis=1), width=float(np.max(width)), spacing=total / n,
                   widths=widths)

    def reversed(self) -> Track:
        """The same road driven the other way, named ``<name>-rev`` (its left bends are right bends)."""
        name = self.name[: -len(REVERSE_SUFFIX)] if self.name.endswith(REVERSE_SUFFIX) else self.name + REVERSE_SUFFIX
        # point i of the reversed track lies at arc length i * spacing along the new direction
        order = np.r_[0, np.arange(len(self.points) - 1, 0, -1)]
        return Track(name=name, points=self.points[order].copy(), width=self.width, spacing=self.spacing,
                     widths=self.widths[order].copy())

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

    def half_width(self, index: int) -> float:
        """Half the road width at centre-line point ``index`` (the off-track threshold there)."""
        return float(self.widths[index % len(self.widths)]) / 2

    def is_off_track(self, projection: Projection) -> bool:
        """True when the projected point lies beyond the road's edge."""
        return abs(projection.cross_track) > self.half_width(projection.index)

    def edges(self) -> tuple[np.ndarray, np.ndarray]:
        """(left, right) road edges as (N, 2) polylines."""
        nrm = np.stack([-np.sin(self.headings), np.cos(self.headings)], axis=1)
        # average neighbouring segment normals so the edge is smooth at the vertices
        nrm = nrm + np.roll(nrm, 1, axis=0)
        nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
        half = (self.widths / 2)[:, None]
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


# A turtle path: ("S", length) drives straight, ("A", radius, degrees) drives an arc
# (degrees > 0 turning left). Two straights marked ("S", None) get the lengths that close the
# loop, so a shape is written as its bends and never drifts open.
_Segment = tuple


def _turtle(segments: list[_Segment], step: float = 0.02) -> np.ndarray:
    """Closed centre line of a turtle path starting at the origin heading +x."""
    free = [i for i, seg in enumerate(segments) if seg[0] == "S" and seg[1] is None]
    if len(free) != 2:
        raise ValueError("a turtle path needs exactly two straights of free length")

    def walk(lengths: dict[int, float]) -> tuple[np.ndarray, np.ndarray, float]:
        pts, x, y, h = [], 0.0, 0.0, 0.0
        dirs = {}
        for i, seg in enumerate(segments):
            if seg[0] == "S":
                length = lengths.get(i, seg[1] or 0.0)
                dirs[i] = np.array([math.cos(h), math.sin(h)])
                n = max(1, int(length / step))
                for k in range(n):
                    pts.append((x + length * k / n * math.cos(h), y + length * k / n * math.sin(h)))
                x, y = x + length * math.cos(h), y + length * math.sin(h)
            else:
                radius, turn = seg[1], math.radians(seg[2])
                side = 1.0 if turn > 0 else -1.0
                cx, cy = x - side * radius * math.sin(h), y + side * radius * math.cos(h)
                n = max(2, int(abs(turn) * radius / step))
                for k in range(n):
                    a = h + turn * k / n
                    pts.append((cx + side * radius * math.sin(a), cy - side * radius * math.cos(a)))
                h += turn
                x, y = cx + side * radius * math.sin(h), cy - side * radius * math.cos(h)
        return np.array(pts), np.array([x, y]), h

    _, end, heading = walk({})
    if abs(heading - 2 * math.pi) > 1e-6:
        raise ValueError(f"a closed turtle path turns 360 degrees in total, not {math.degrees(heading):.1f}")
    # the end point moves linearly with the two free lengths: solve for the ones that close it
    d = []
    for i in free:
        _, e, _ = walk({i: 1.0})
        d.append(e - end)
    lengths = np.linalg.solve(np.stack(d, axis=1), -end)
    if np.any(lengths <= 0):
        raise ValueError(f"the free straights would need lengths {lengths}: the path cannot close")
    pts, end, _ = walk(dict(zip(free, lengths.tolist())))
    return pts


def _chicane(width: float) -> Track:
    """A rounded rectangle whose long sides each hold an S-bend (left-right-left), ~45 m a lap."""
    s_bend = [("A", 1.5, 50.0), ("A", 1.5, -100.0), ("A", 1.5, 50.0)]
    path = [("S", None), *s_bend, ("S", 2.0), ("A", 2.5, 90.0), ("S", None), ("A", 2.5, 90.0), ("S", 2.0),
            *[(k, r, -a) for k, r, a in s_bend], ("S", 3.0), ("A", 2.5, 90.0), ("S", 4.0), ("A", 2.5, 90.0)]
    return Track.from_points("chicane", _turtle(path), width=width)


def _hairpin(width: float) -> Track:
    """Two switchback hairpins (radius 0.8 m, the rover turns at 0.57 m) on a rounded loop, ~40 m a lap."""
    path = [("S", None), ("A", 2.0, 90.0), ("S", 3.0), ("A", 0.8, 180.0), ("S", 3.0), ("A", 0.8, -180.0),
            ("S", 3.0), ("A", 2.0, 90.0), ("S", 3.0), ("A", 2.0, 90.0), ("S", None), ("A", 2.0, 90.0)]
    return Track.from_points("hairpin", _turtle(path), width=width)


def _peanut(width: float) -> Track:
    """A pinched loop: two long left bends joined by right-hand bends at the waist, ~45 m a lap."""
    th = np.linspace(0.0, 2 * math.pi, 4000, endpoint=False)
    r = 6.0 * (1.0 - 0.42 * np.cos(2 * th)) + 0.4 * np.sin(th)
    return Track.from_points("peanut", np.stack([1.25 * r * np.sin(th), r * np.cos(th) * 0.8 - 0.0], axis=1)[::-1],
                             width=width)


def _narrows(width: float) -> Track:
    """A lopsided loop whose road narrows to 70 % and widens to 140 % of ``width`` three times a lap, ~50 m."""
    th = np.linspace(0.0, 2 * math.pi, 4000, endpoint=False)
    r = 7.5 + 1.2 * np.sin(2 * th + 1.0) + 0.6 * np.cos(3 * th)
    widths = width * (1.05 + 0.35 * np.sin(3 * th + 0.5))
    return Track.from_points("narrows", np.stack([r * np.cos(th), 0.85 * r * np.sin(th)], axis=1), width=widths)


TRACKS = {"oval": _oval, "winding": _winding, "chicane": _chicane, "hairpin": _hairpin, "peanut": _peanut,
          "narrows": _narrows}
REVERSE_SUFFIX = "-rev"


def track_names(directions: bool = False) -> tuple[str, ...]:
    """Names of the built-in tracks; with ``directions``, each followed by its ``-rev`` twin."""
    if not directions:
        return tuple(TRACKS)
    return tuple(n for base in TRACKS for n in (base, base + REVERSE_SUFFIX))


def make_track(name: str, width: float = DEFAULT_ROAD_WIDTH_M) -> Track:
    """A built-in track by name (see :func:`track_names`); ``NAME-rev`` drives it the other way."""
    base = name[: -len(REVERSE_SUFFIX)] if name.endswith(REVERSE_SUFFIX) else name
    try:
        builder = TRACKS[base]
    except KeyError:
        raise ConfigError(
            f"unknown track {name!r}; use --track with one of: {', '.join(TRACKS)} "
            f"(add {REVERSE_SUFFIX} to drive one the other way, e.g. oval-rev)"
        ) from None
    track = builder(width)
    return track.reversed() if base != name else track


def parse_tracks(text: str) -> list[str]:
    """'oval,winding' → ['oval', 'winding']; 'all' → every track in both directions. Checks each name."""
    names: list[str] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        for name in track_names(directions=True) if part == "all" else [part]:
            make_track(name)  # raises ConfigError naming the choices
            if name not in names:
                names.append(name)
    if not names:
        raise ConfigError(f"no track in {text!r}; give names separated by commas, e.g. oval,winding-rev, or all")
    return names


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
