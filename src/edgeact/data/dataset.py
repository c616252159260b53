"""A torch Dataset over rover episodes that yields what LeRobot's ACT training consumes.

Item ``t`` (a frame of some episode)::

    "observation.images.cam_front": (3, H, W) float32 in [0, 1]
    "observation.state":            (S,) float32
    "action":                       (chunk_size, 2) float32, actions t .. t+chunk_size-1; past the
                                    episode's end the last action is repeated
    "action_is_pad":                (chunk_size,) bool, True where the action is such padding
    "episode_index", "frame_index", "index": int64; "timestamp": float32

as LeRobot's ``delta_timestamps`` for ACT (action offsets 0 .. chunk_size-1 frames, clamped to
the episode, with ``action_is_pad``) produce them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from edgeact.data.episodes import Episode, check_consistent, load_episodes
from edgeact.errors import DataError

CAMERA_KEY = "observation.images.cam_front"
STATE_KEY = "observation.state"
ACTION_KEY = "action"

T = TypeVar("T")


@dataclass(frozen=True)
class ImageAugment:
    """Photometric jitter and small shifts for training (never for validation).

    Each factor is drawn uniformly per sample: brightness ×[1-b, 1+b], contrast ×[1-c, 1+c]
    around the mean grey, saturation ×[1-s, 1+s], per-channel gains ×[1-h, 1+h] (a cheap hue
    and white-balance shift), and a translation of up to ``shift_x``/``shift_y`` of the width/
    height (edge pixels repeated). Horizontal shifts stay small: they look like a heading change,
    which the steering label does not follow.
    """

    brightness: float = 0.25
    contrast: float = 0.25
    saturation: float = 0.3
    hue: float = 0.06
    shift_x: float = 0.02
    shift_y: float = 0.05

    def __call__(self, img: np.ndarray, rand: np.ndarray | None = None) -> np.ndarray:
        """Augment one HxWx3 uint8 RGB image; ``rand``: 8 numbers in [0, 1) (torch's RNG if None,
        so DataLoader workers get different draws)."""
        r = torch.rand(8).numpy() if rand is None else np.asarray(rand, dtype=np.float64)
        u = 1.0 + np.array([self.brightness, self.contrast, self.saturation, self.hue, self.hue, self.hue]) * (
            2.0 * r[:6] - 1.0
        )
        out = cv2.transform(img, _colour_jitter_matrix(img, *u))  # rounds and saturates to uint8
        h, w = img.shape[:2]
        dx = (2 * r[6] - 1) * self.shift_x * w
        dy = (2 * r[7] - 1) * self.shift_y * h
        if abs(dx) >= 0.5 or abs(dy) >= 0.5:
            m = np.array([[1, 0, dx], [0, 1, dy]], dtype=np.float32)
            out = cv2.warpAffine(out, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return out

    def batch(self, frames: torch.Tensor, rand: torch.Tensor) -> torch.Tensor:
        """The same augmentation of a batch, on the batch's device in a few tensor ops.

        ``frames``: (B, H, W, 3) uint8 RGB; ``rand``: (B, 8) draws in [0, 1), one row per image as
        ``__call__`` takes them. Returns (B, 3, H, W) float32 grey levels, rounded and clipped to
        0..255 after the colour map and after the shift as ``__call__`` does; OpenCV computes the
        colour map in fixed point, so a grey level may differ by one.
        """
        h, w = frames.shape[1], frames.shape[2]
        x = frames.permute(0, 3, 1, 2).float()
        # Constants enter as Python numbers, never as tensors made here: copying those to a GPU
        # would make the host wait for it (and break CUDA graph capture). Products and sums are
        # written out, not matmul: TF32 matmuls on a GPU would round the grey levels.
        u = [1.0 + amount * (2.0 * rand[:, k] - 1.0) for k, amount in enumerate(
            (self.brightness, self.contrast, self.saturation, self.hue, self.hue, self.hue))]
        brightness, contrast, saturation = u[0], u[1], u[2]
        gains = torch.stack(u[3:6], dim=1)
        mean = x.mean(dim=(2, 3))
        mean_grey = mean[:, 0] * _GREY[0] + mean[:, 1] * _GREY[1] + mean[:, 2] * _GREY[2]
        grey = torch.stack([torch.full_like(saturation, float(g)) for g in _GREY], dim=1)  # (B, 3)
        saturate = (saturation[:, None, None] * torch.eye(3, device=x.device)
                    + (1.0 - saturation)[:, None, None] * grey[:, None, :])
        matrix = gains[:, :, None] * saturate * (brightness * contrast)[:, None, None]
        offset = gains * ((1.0 - contrast) * mean_grey * brightness)[:, None]
        out = offset[:, :, None, None] + matrix[:, :, 0, None, None] * x[:, None, 0]
        for j in (1, 2):
            out = out + matrix[:, :, j, None, None] * x[:, None, j]
        out = out.round_().clamp_(0.0, 255.0)
        dx = (2 * rand[:, 6] - 1) * self.shift_x * w
        dy = (2 * rand[:, 7] - 1) * self.shift_y * h
        still = (dx.abs() < 0.5) & (dy.abs() < 0.5)  # __call__ leaves these images where they are
        out = _translate(out, torch.where(still, 0.0, dx), torch.where(still, 0.0, dy))
        return out.round_()


_GREY = np.array([0.299, 0.587, 0.114])  # ITU-R 601 luma weights (sum to 1)


def _colour_jitter_matrix(img: np.ndarray, brightness: float, contrast: float, saturation: float,
                          r_gain: float, g_gain: float, b_gain: float) -> np.ndarray:
    """The 3x4 affine colour map ``[A | b]`` that applies, in order, brightness ×k, contrast
    around the mean grey, saturation around each pixel's grey, and per-channel gains.

    Each step is affine in RGB, so their composition is one matrix applied in one pass
    (``cv2.transform``), instead of a float copy of the image rewritten once per step.
    """
    mean_grey = float(np.dot(cv2.mean(img)[:3], _GREY)) * brightness
    saturate = saturation * np.eye(3) + (1.0 - saturation) * np.outer(np.ones(3), _GREY)
    gains = np.array([r_gain, g_gain, b_gain])
    matrix = gains[:, None] * saturate * (brightness * contrast)
    # saturate maps grey to itself (the weights sum to 1), so the contrast offset only meets the gains
    offset = gains * (1.0 - contrast) * mean_grey
    return np.hstack([matrix, offset[:, None]]).astype(np.float32)


def _translate(images: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) images moved by (dx[b], dy[b]) pixels, bilinear, edge pixels repeated:
    ``cv2.warpAffine`` with ``[[1, 0, dx], [0, 1, dy]]`` and ``BORDER_REPLICATE``, as one pass per axis."""
    return _shift_axis(_shift_axis(images, dx, dim=3), dy, dim=2)


def _shift_axis(images: torch.Tensor, d: torch.Tensor, dim: int) -> torch.Tensor:
    n = images.shape[dim]
    src = (torch.arange(n, device=images.device) - d[:, None]).clamp(0, n - 1)  # (B, n): where each pixel reads
    lo = src.floor()
    weight = src - lo
    lo_i = lo.long()
    hi_i = (lo_i + 1).clamp(max=n - 1)
    shape = [images.shape[0], 1, 1, 1]
    shape[dim] = n
    a = images.gather(dim, lo_i.view(shape).expand_as(images))
    b = images.gather(dim, hi_i.view(shape).expand_as(images))
    return a + (b - a) * weight.view(shape)


MIRRORED_NAMES = ("steering",)  # values whose sign flips when the world is mirrored left-right


def mirror_signs(names: Sequence[str]) -> np.ndarray | None:
    """Per-value sign under a left-right mirror (-1 for steering, +1 otherwise), or None when a
    name is not one whose mirror image is known: then flipping would teach wrong labels."""
    known = {*MIRRORED_NAMES, "throttle"}
    if not all(n in known for n in names):
        return None
    return np.array([-1.0 if n in MIRRORED_NAMES else 1.0 for n in names], np.float32)


class EpisodeDataset(Dataset):
    """Frames of ``episodes`` with their state, action chunk and padding mask.

    ``image_size`` (H, W): resize frames on decode (e.g. record at 360x640, train at 96x128).
    ``augment``: True for :class:`ImageAugment` defaults, or an instance; False for validation.
    ``flip``: mirror half the samples left-right (image flipped, steering in the action chunk
    and the state negated). The rover's world has no handedness (no lane to keep to), so a
    mirrored sample is as true as the original and every left bend teaches a right one. Only
    for episodes whose action and state names are steering/throttle (:func:`mirror_signs`);
    a ``DataError`` otherwise.
    ``cache``: keep decoded (resized) uint8 frames in memory: True, False, or "auto" (on when
    all frames fit in ``cache_limit_mb``). Call :meth:`preload` before creating DataLoader
    workers so they share the decoded frames instead of each decoding its own.
    """

    def __init__(
        self,
        episodes: Sequence[Episode] | str | os.PathLike,
        chunk_size: int = 100,
        *,
        image_size: tuple[int, int] | None = None,
        augment: bool | ImageAugment = False,
        flip: bool = False,
        cache: bool | str = "auto",
        cache_limit_mb: float = 2048.0,
        camera_key: str = CAMERA_KEY,
    ) -> None:
        if isinstance(episodes, (str, os.PathLike)):
            episodes = load_episodes(episodes)
        self.episodes = list(episodes)
        check_consistent(self.episodes)
        if chunk_size < 1:
            raise DataError(f"chunk_size must be >= 1, got {chunk_size}")
        self.chunk_size = int(chunk_size)
        self.camera_key = camera_key
        src_h, src_w = self.episodes[0].image_size
        self.image_size = (int(image_size[0]), int(image_size[1])) if image_size else (src_h, src_w)
        self.augment = ImageAugment() if augment is True else (augment or None)
        self._action_signs = self._state_signs = None
        if flip:
            from edgeact.data.episodes import ACTION_NAMES

            self._action_signs = mirror_signs(ACTION_NAMES)
            self._state_signs = mirror_signs(self.episodes[0].state_names)
            if self._action_signs is None or self._state_signs is None:
                raise DataError(
                    f"cannot mirror these episodes: state {list(self.episodes[0].state_names)} holds values with no "
                    "known left-right mirror (only steering and throttle); train without flip (--no-flip)"
                )
        lengths = [len(ep) for ep in self.episodes]
        self._ep_index = np.repeat(np.arange(len(self.episodes)), lengths)
        self._frame_index = np.concatenate([np.arange(n) for n in lengths])
        # every item's labels in flat arrays (item i is row i), so a batch's are gathered at once
        self._states = np.concatenate([ep.states for ep in self.episodes]).astype(np.float32)
        self._actions = np.concatenate([ep.actions for ep in self.episodes]).astype(np.float32)
        self._last_row = np.repeat(np.cumsum(lengths) - 1, lengths)  # the last row of each item's episode
        h, w = self.image_size
        total_mb = len(self._ep_index) * h * w * 3 / 2**20
        if cache == "auto":
            cache = total_mb <= cache_limit_mb
        self.cache_enabled = bool(cache)
        self._cache: dict[int, np.ndarray] = {}

    # ------------------------------------------------------------------ shape info
    @property
    def fps(self) -> float:
        return self.episodes[0].fps

    @property
    def state_dim(self) -> int:
        return int(self.episodes[0].states.shape[1])

    @property
    def action_dim(self) -> int:
        return int(self.episodes[0].actions.shape[1])

    def __len__(self) -> int:
        return len(self._ep_index)

    @property
    def mirror(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(state signs, action signs) that mirror a sample left-right when ``flip`` is on, else None."""
        if self._state_signs is None or self._action_signs is None:
            return None
        return self._state_signs, self._action_signs

    def labels(self, indices: np.ndarray | Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """State (B, S), action chunk (B, chunk_size, A) and padding mask (B, chunk_size) of items
        ``indices``: actions t .. t+chunk_size-1 of the item's episode, the last one repeated past its end."""
        idx = np.asarray(indices, dtype=np.int64)
        rows = idx[:, None] + np.arange(self.chunk_size)
        last = self._last_row[idx][:, None]
        pad = rows > last
        return self._states[idx], self._actions[np.minimum(rows, last)], pad

    def intervention_mask(self) -> np.ndarray:
        """(len,) bool: True where the item's step was a person's takeover (``intervention`` column)."""
        return np.concatenate([ep.interventions if ep.interventions is not None else np.zeros(len(ep), dtype=bool)
                               for ep in self.episodes])

    # ------------------------------------------------------------------ frames
    def location(self, index: int) -> tuple[Episode, int]:
        """The episode and frame number of item ``index``."""
        return self.episodes[int(self._ep_index[index])], int(self._frame_index[index])

    def frame(self, index: int) -> np.ndarray:
        """Decoded (resized, not augmented) HxWx3 uint8 RGB frame of dataset item ``index``."""
        cached = self._cache.get(index)
        if cached is not None:
            return cached
        ep = self.episodes[self._ep_index[index]]
        img = ep.fitted_frame(int(self._frame_index[index]), self.image_size)
        if self.cache_enabled:
            self._cache[index] = img
        return img

    def preload(self) -> None:
        """Decode every frame into the cache now (turns the cache on)."""
        self.cache_enabled = True
        for i in range(len(self)):
            self.frame(i)

    # ------------------------------------------------------------------ items
    def __getitem__(self, index: int) -> dict[str, Any]:
        index = int(index)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        ep = self.episodes[self._ep_index[index]]
        t = int(self._frame_index[index])
        img = self.frame(index)
        if self.augment is not None:
            img = self.augment(img)
        states, chunks, pads = self.labels([index])
        state, actions, pad = states[0], chunks[0], pads[0]
        if self._action_signs is not None and float(torch.rand(())) < 0.5:
            img = img[:, ::-1]
            state *= self._state_signs
            actions *= self._action_signs
        image = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div_(255.0)
        return {
            self.camera_key: image,
            STATE_KEY: torch.from_numpy(state),
            ACTION_KEY: torch.from_numpy(actions),
            "action_is_pad": torch.from_numpy(pad),
            "episode_index": torch.tensor(int(self._ep_index[index])),
            "frame_index": torch.tensor(t),
            "index": torch.tensor(index),
            "timestamp": torch.tensor(float(ep.timestamps[t]), dtype=torch.float32),
        }


def split_episodes(episodes: Sequence[T], val_fraction: float = 0.1, seed: int = 0) -> tuple[list[T], list[T]]:
    """Split by episode (never by frame, so no validation frame has a near-twin in training).

    Returns (train, val). At least one episode goes to each side when there are two or more
    and ``val_fraction`` > 0; order within each side follows the input.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n = len(episodes)
    if n == 0:
        raise DataError("no episodes to split")
    n_val = int(round(n * val_fraction))
    if val_fraction > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    else:
        n_val = 0
    order = np.random.default_rng(seed).permutation(n)
    val_set = set(order[:n_val].tolist())
    train = [e for i, e in enumerate(episodes) if i not in val_set]
    val = [e for i, e in enumerate(episodes) if i in val_set]
    return train, val

