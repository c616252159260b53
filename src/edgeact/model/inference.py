"""The whole inference path as one module: uint8 frames and raw state in, real-unit chunk out.

This is what the torch backends run and what the ONNX export traces, so every backend
starts from the same graph: scale to [0, 1], normalize, ACT, unnormalize.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from edgeact.config import ACTION, OBS_ENV_STATE, OBS_STATE, ACTConfig
from edgeact.model.act import ACTPolicy
from edgeact.normalization import Stats, make_normalizers


class InferenceModel(nn.Module):
    """forward(*frames, state) -> (B, chunk_size, action_dim) in real units.

    frames: one (B, H, W, 3) uint8 RGB tensor per camera, in ``config.image_features`` order;
    state: (B, state_dim) float32 raw (present when the config has a state feature).
    """

    def __init__(self, policy: ACTPolicy, stats: Stats) -> None:
        super().__init__()
        self.policy = policy.eval()
        self.config: ACTConfig = policy.config
        self.normalizers = make_normalizers(self.config, stats)
        self.camera_keys = list(self.config.image_features)

    def forward(self, *inputs: Tensor) -> Tensor:
        n_cam = len(self.camera_keys)
        frames, rest = inputs[:n_cam], list(inputs[n_cam:])
        images = [self._prepare_image(frame, key) for frame, key in zip(frames, self.camera_keys)]
        state = self._norm(OBS_STATE, rest.pop(0)) if self.config.state_dim else None
        env_state = self._norm(OBS_ENV_STATE, rest.pop(0)) if self.config.env_state_feature else None
        chunk = self.policy(images, state, env_state)
        return self.normalizers[ACTION].inverse(chunk)

    def _prepare_image(self, frame: Tensor, key: str) -> Tensor:
        image = frame.permute(0, 3, 1, 2).to(torch.float32) / 255.0
        return self._norm(key, image)

    def _norm(self, key: str, x: Tensor) -> Tensor:
        return self.normalizers[key.replace(".", "_")](x)
