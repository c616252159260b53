"""Front-camera renderer: a textured ground plane seen through a pinhole camera.

How it is fast: the camera is rigidly mounted on the rover and the ground is flat, so the
point of the ground each pixel sees is fixed *in the rover frame*. Those coordinates are
computed once per camera (:class:`CameraGeometry`). Each frame then needs only

1. one affine transform of the precomputed coordinates into texture pixels
   (rotate by the rover's yaw, translate by its position, scale to texels: ``cv2.transform``),
2. one ``cv2.remap`` from a large top-down ground texture into the rows below the horizon,
3. a copy of the precomputed sky into the rows above it, and a small fog blend near the
   horizon (it hides the aliasing of far-away ground).

The ground texture (asphalt road with edge lines and a dashed centre line, grass/dirt
off-road, stains, shadows, noise) is generated per appearance seed, with randomized
colours, lighting, tint and line style, so a policy cannot memorise pixels. Lighting is
baked into the texture and the sky, so it costs nothing per frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from edgeact.sim.track import Track

REFERENCE_ASPECT = 16 / 9  # width / height of the frame hfov_deg refers to


@dataclass(frozen=True)
class Camera:
    """A pinhole camera on the rover: height above the ground, downward pitch, horizontal FOV.

    ``hfov_deg`` is the FOV of a 16:9 frame. A narrower frame (e.g. 96x128, 4:3) shows the
    centre of that 16:9 view, exactly what ``edgeact.frames.fit_frame`` makes of
    a 16:9 camera frame: data recorded at one size and a policy run at another see the same
    scene.
    """

    height_m: float = 0.20
    pitch_deg: float = 17.0
    hfov_deg: float = 100.0
    forward_m: float = 0.10  # mounted ahead of the rover's centre
    fog_start_m: float = 5.0
    far_m: float = 25.0


@dataclass(frozen=True)
class Appearance:
    """Everything randomized per episode about how the world looks."""

    asphalt: tuple[float, float, float] = (92.0, 92.0, 96.0)
    grass: tuple[float, float, float] = (70.0, 112.0, 52.0)
    dirt: tuple[float, float, float] = (128.0, 104.0, 76.0)
    dirt_amount: float = 0.3  # 0 all grass, 1 all dirt
    line_color: tuple[float, float, float] = (235.0, 235.0, 230.0)
    centre_color: tuple[float, float, float] = (230.0, 200.0, 60.0)
    centre_line: bool = True
    dash_m: tuple[float, float] = (0.30, 0.30)  # dash, gap
    line_width_m: float = 0.05
    edge_inset_m: float = 0.05
    line_wear: float = 0.2
    noise: float = 8.0  # per-texel luminance noise (std, 0..255 scale)
    stains: int = 12
    shadows: int = 6
    brightness: float = 1.0
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    contrast: float = 1.0
    sky_top: tuple[float, float, float] = (110.0, 150.0, 215.0)
    sky_horizon: tuple[float, float, float] = (200.0, 212.0, 225.0)
    camera: Camera = field(default_factory=Camera)

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Appearance:
        """A random but plausible look; a different seed gives a visibly different world."""

        def jitter(base, spread):
            return tuple(float(np.clip(b + rng.uniform(-spread, spread), 0, 255)) for b in base)

        grey = rng.uniform(55, 125)
        asphalt = tuple(float(grey + rng.uniform(-6, 6)) for _ in range(3))
        yellow = rng.random() < 0.5
        cam = Camera(
            height_m=float(rng.uniform(0.185, 0.215)),
            pitch_deg=float(rng.uniform(15.0, 19.0)),
            hfov_deg=float(rng.uniform(96.0, 104.0)),
        )
        return cls(
            asphalt=asphalt,
            grass=jitter((70.0, 112.0, 52.0), 22),
            dirt=jitter((128.0, 104.0, 76.0), 22),
            dirt_amount=float(rng.uniform(0.0, 1.0)),
            line_color=jitter((235.0, 235.0, 228.0), 15),
            centre_color=(230.0, 200.0, 60.0) if yellow else (235.0, 235.0, 230.0),
            centre_line=bool(rng.random() < 0.8),
            dash_m=(float(rng.uniform(0.2, 0.5)), float(rng.uniform(0.2, 0.5))),
            line_width_m=float(rng.uniform(0.035, 0.065)),
            edge_inset_m=float(rng.uniform(0.02, 0.08)),
            line_wear=float(rng.uniform(0.0, 0.5)),
            noise=float(rng.uniform(4.0, 14.0)),
            stains=int(rng.integers(0, 30)),
            shadows=int(rng.integers(0, 14)),
            brightness=float(rng.uniform(0.65, 1.3)),
            tint=tuple(float(rng.uniform(0.88, 1.12)) for _ in range(3)),
            contrast=float(rng.uniform(0.8, 1.2)),
            sky_top=jitter((110.0, 150.0, 215.0), 40),
            sky_horizon=jitter((200.0, 212.0, 225.0), 25),
            camera=cam,
        )


# ---------------------------------------------------------------------- camera geometry
class CameraGeometry:
    """Per-pixel ground coordinates in the rover frame (x forward, y left), computed once.

    Rows ``horizon_row:`` see the ground; rows above it see the sky (the camera has no roll,
    so the horizon is a row).
    """

    def __init__(self, camera: Camera, image_size: tuple[int, int]) -> None:
        h, w = image_size
        self.camera, self.image_size = camera, (h, w)
        sensor_w = max(w, h * REFERENCE_ASPECT)  # a narrower frame is a centre crop of the 16:9 view
        f = (sensor_w / 2) / math.tan(math.radians(camera.hfov_deg) / 2)
        th = math.radians(camera.pitch_deg)
        u = (np.arange(w, dtype=np.float64) + 0.5 - w / 2) / f
        v = (np.arange(h, dtype=np.float64) + 0.5 - h / 2) / f
        dz_rows = -math.sin(th) - v * math.cos(th)  # vertical component of each row's rays
        ground = np.nonzero(dz_rows < -1e-4)[0]
        self.horizon_row = int(ground[0]) if len(ground) else h
        vv = v[self.horizon_row :, None]
        dx = math.cos(th) - vv * math.sin(th)
        dy = -u[None, :]
        dz = -math.sin(th) - vv * math.cos(th)
        t = camera.height_m / -dz
        horiz = t * np.sqrt(dx**2 + dy**2)
        scale = np.minimum(1.0, camera.far_m / horiz)  # clamp the far field
        t = t * scale
        dist = horiz * scale
        gx = camera.forward_m + t * dx
        gy = t * dy
        self.ground = np.ascontiguousarray(np.stack([gx, gy], axis=-1).astype(np.float32))  # (Hg, W, 2)
        fog = np.clip((dist - camera.fog_start_m) / (camera.far_m - camera.fog_start_m), 0.0, 1.0) ** 0.8
        rows = np.nonzero(fog.max(axis=1) > 1e-3)[0]
        self.fog_rows = int(rows[-1]) + 1 if len(rows) else 0  # ground rows [0, fog_rows) get fog
        self.fog = np.ascontiguousarray(fog[: self.fog_rows].astype(np.float32))
        # ground footprint of one pixel 1.5 m ahead, for choosing the texture's mip level
        self.footprint_m = 1.5 / f


# ---------------------------------------------------------------------- ground texture
def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _value_noise(rng: np.random.Generator, shape: tuple[int, int], cell_px: int) -> np.ndarray:
    """Smooth noise in [0, 1] with features about ``cell_px`` texels wide."""
    h, w = shape
    small = rng.random((max(2, h // cell_px + 2), max(2, w // cell_px + 2))).astype(np.float32)
    big = cv2.resize(small, (w + 2 * cell_px, h + 2 * cell_px), interpolation=cv2.INTER_CUBIC)
    return np.clip(big[cell_px : cell_px + h, cell_px : cell_px + w], 0.0, 1.0)


@dataclass
class GroundTexture:
    """A top-down RGB image of the ground: texel (row, col) centre is at world
    ``(x0 + (col + .5) * res, y1 - (row + .5) * res)``; ``levels`` is its image pyramid."""

    levels: list[np.ndarray]
    x0: float
    y1: float
    res: float

    @property
    def image(self) -> np.ndarray:
        return self.levels[0]


class _TrackRaster:
    """The parts of the texture that depend only on the track: distance to the centre line."""

    def __init__(self, track: Track, res: float, margin_m: float) -> None:
        xmin, ymin, xmax, ymax = track.bounds(margin=margin_m)
        self.x0, self.y1, self.res = xmin, ymax, res
        self.shape = (int(math.ceil((ymax - ymin) / res)), int(math.ceil((xmax - xmin) / res)))
        self.track = track
        pts = self.to_px(np.vstack([track.points, track.points[:1]]))
        line = np.full(self.shape, 255, np.uint8)
        cv2.polylines(line, [np.round(pts * 16).astype(np.int32)], False, 0, 1, cv2.LINE_8, shift=4)
        dist = cv2.distanceTransform(line, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        self.dist_m = dist * res  # metres to the centre line (float32)

    def to_px(self, xy: np.ndarray) -> np.ndarray:
        """World metres → texture pixel coordinates (float, pixel centres at integer + .5)."""
        return np.stack([(xy[:, 0] - self.x0) / self.res, (self.y1 - xy[:, 1]) / self.res], axis=1)


def build_texture(raster: _TrackRaster, app: Appearance, rng: np.random.Generator) -> GroundTexture:
    track, res = raster.track, raster.res
    h, w = raster.shape
    dist = raster.dist_m
    half = track.width / 2
    # off-road: grass and dirt mixed by a smooth field
    mix = _value_noise(rng, (h, w), max(4, int(1.5 / res)))
    dirt_w = _smoothstep(1.0 - app.dirt_amount - 0.15, 1.0 - app.dirt_amount + 0.15, mix)[..., None]
    off = (1 - dirt_w) * np.array(app.grass, np.float32) + dirt_w * np.array(app.dirt, np.float32)
    off *= 0.8 + 0.4 * _value_noise(rng, (h, w), max(2, int(0.25 / res)))[..., None]
    # road: asphalt with stains
    road = np.broadcast_to(np.array(app.asphalt, np.float32), (h, w, 3)).copy()
    road *= 0.9 + 0.2 * _value_noise(rng, (h, w), max(2, int(0.6 / res)))[..., None]
    if app.stains:
        stain = np.zeros((h, w), np.float32)
        for _ in range(app.stains):
            s = track.point_at(rng.uniform(0, track.length))
            c = raster.to_px(np.array([[s[0], s[1]]]))[0]
            c = c + rng.normal(0, half / res / 2, 2)
            axes = (int(rng.uniform(0.05, 0.4) / res) + 1, int(rng.uniform(0.05, 0.25) / res) + 1)
            angle, value = float(rng.uniform(0, 180)), float(rng.uniform(0.1, 0.35))
            cv2.ellipse(stain, (int(c[0]), int(c[1])), axes, angle, 0, 360, value, -1)
        stain = cv2.GaussianBlur(stain, (0, 0), 3)
        road *= (1 - stain)[..., None]
    road_w = _smoothstep(half + res, half - res, dist)[..., None]
    img = road_w * road + (1 - road_w) * off
    # painted lines
    lw = app.line_width_m
    edge_d = np.abs(dist - (half - app.edge_inset_m - lw / 2))
    paint = _smoothstep(lw / 2 + res / 2, lw / 2 - res / 2, edge_d)
    color = np.broadcast_to(np.array(app.line_color, np.float32), (h, w, 3))
    if app.centre_line:
        dashes = np.zeros((h, w), np.uint8)
        dash, gap = app.dash_m
        pts = raster.to_px(track.points)
        s = np.arange(len(pts)) * track.spacing
        on = (s % (dash + gap)) < dash
        thick = max(1, int(round(lw / res)))
        i = 0
        n = len(pts)
        while i < n:
            if on[i]:
                j = i
                while j + 1 < n and on[j + 1]:
                    j += 1
                seg = np.round(pts[i : j + 2] * 16).astype(np.int32)
                cv2.polylines(dashes, [seg], False, 255, thick, cv2.LINE_AA, shift=4)
                i = j + 1
            else:
                i += 1
        centre = dashes.astype(np.float32) / 255.0
        color = np.where((centre > 0)[..., None], np.array(app.centre_color, np.float32), color)
        paint = np.maximum(paint, centre)
    if app.line_wear > 0:
        paint = paint * (1 - app.line_wear * _value_noise(rng, (h, w), max(2, int(0.15 / res))))
    paint = paint[..., None]
    img = img * (1 - paint) + color * paint
    # soft shadows anywhere (trees, buildings)
    if app.shadows:
        shade = np.zeros((h, w), np.float32)
        for _ in range(app.shadows):
            s = track.point_at(rng.uniform(0, track.length))
            c = raster.to_px(np.array([[s[0], s[1]]]))[0] + rng.normal(0, 1.0 / res, 2)
            axes = (int(rng.uniform(0.3, 1.5) / res) + 1, int(rng.uniform(0.2, 0.8) / res) + 1)
            angle, value = float(rng.uniform(0, 180)), float(rng.uniform(0.2, 0.45))
            cv2.ellipse(shade, (int(c[0]), int(c[1])), axes, angle, 0, 360, value, -1)
        shade = cv2.GaussianBlur(shade, (0, 0), max(1.0, 0.08 / res))
        img *= (1 - shade)[..., None]
    # texel noise, then lighting
    noise = rng.normal(0.0, app.noise, (h, w)).astype(np.float32)
    img += noise[..., None]
    img = _apply_lighting(img, app)
    base = np.clip(img, 0, 255).astype(np.uint8)
    levels = [base]
    while min(levels[-1].shape[:2]) > 64 and len(levels) < 5:
        levels.append(cv2.pyrDown(levels[-1]))
    return GroundTexture(levels=levels, x0=raster.x0, y1=raster.y1, res=res)


def _apply_lighting(img: np.ndarray, app: Appearance) -> np.ndarray:
    img = (img - 128.0) * app.contrast + 128.0
    return img * (app.brightness * np.array(app.tint, np.float32))


# ---------------------------------------------------------------------- renderer
class Renderer:
    """Renders the rover's front camera at ``image_size`` (H, W) on ``track``.

    ``set_appearance(seed, randomize)`` builds a texture and camera for one episode look;
    ``render(x, y, yaw)`` returns an HxWx3 uint8 RGB frame. The object holds no global state;
    ``render`` only reads it, so several threads may render from one object.
    """

    def __init__(
        self,
        track: Track,
        image_size: tuple[int, int] = (360, 640),
        texture_res_m: float = 0.02,
        margin_m: float = 6.0,
    ) -> None:
        self.track = track
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self._raster = _TrackRaster(track, texture_res_m, margin_m)
        self.appearance: Appearance | None = None
        self.texture: GroundTexture | None = None
        self.geometry: CameraGeometry | None = None

    def set_appearance(self, seed: int | None, randomize: bool = True, appearance: Appearance | None = None) -> None:
        rng = np.random.default_rng(seed if randomize else 0)
        if appearance is None:
            appearance = Appearance.sample(rng) if randomize else Appearance()
        self.appearance = appearance
        self.texture = build_texture(self._raster, appearance, rng)
        self.geometry = CameraGeometry(appearance.camera, self.image_size)
        self._prepare_frame_constants()

    def _prepare_frame_constants(self) -> None:
        geo, app = self.geometry, self.appearance
        h, w = self.image_size
        # mip level: texel size close to the pixel footprint 1.5 m ahead
        level = int(max(0.0, math.floor(math.log2(max(geo.footprint_m / self.texture.res, 1.0)))))
        self._level = min(level, len(self.texture.levels) - 1)
        self._tex = self.texture.levels[self._level]
        self._tex_res = self.texture.res * 2**self._level
        # sky: vertical gradient from the horizon colour up
        rows = max(geo.horizon_row, 1)
        t = np.linspace(1.0, 0.0, rows, dtype=np.float32)[:, None] ** 0.6
        sky = t * np.array(app.sky_top, np.float32) + (1 - t) * np.array(app.sky_horizon, np.float32)
        sky = _apply_lighting(sky, replace(app, contrast=1.0))
        self._horizon_color = np.clip(sky[-1], 0, 255)
        self._sky = np.ascontiguousarray(
            np.broadcast_to(np.clip(sky, 0, 255).astype(np.uint8)[:, None, :], (rows, w, 3))[: geo.horizon_row]
        )
        if geo.fog_rows:
            self._fog_img = np.ascontiguousarray(
                np.broadcast_to(self._horizon_color.astype(np.uint8), (geo.fog_rows, w, 3))
            )
            self._fog_w = geo.fog
            self._keep_w = np.ascontiguousarray(1.0 - geo.fog)

    def texture_matrix(self, x: float, y: float, yaw: float) -> np.ndarray:
        """2x3 affine map from rover-frame ground metres to texture pixels at the current mip level."""
        c, s, r = math.cos(yaw), math.sin(yaw), self._tex_res
        tex = self.texture
        return np.array(
            [
                [c / r, -s / r, (x - tex.x0) / r - 0.5],
                [-s / r, -c / r, (tex.y1 - y) / r - 0.5],
            ],
            dtype=np.float64,
        )

    def render(self, x: float, y: float, yaw: float, out: np.ndarray | None = None) -> np.ndarray:
        if self.texture is None:
            self.set_appearance(0, randomize=False)
        geo = self.geometry
        h, w = self.image_size
        if out is None:
            out = np.empty((h, w, 3), np.uint8)
        hr = geo.horizon_row
        out[:hr] = self._sky
        if hr < h:
            tex_map = cv2.transform(geo.ground, self.texture_matrix(x, y, yaw))
            ground = out[hr:]
            cv2.remap(self._tex, tex_map, None, cv2.INTER_LINEAR, dst=ground, borderMode=cv2.BORDER_REFLECT_101)
            if geo.fog_rows:
                band = ground[: geo.fog_rows]
                band[...] = cv2.blendLinear(band, self._fog_img, self._keep_w, self._fog_w)
        return out
