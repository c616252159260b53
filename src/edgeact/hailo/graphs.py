"""The ACT policy cut into the parts the Hailo path runs (PyTorch modules, traced by the export).

- ``split``: :class:`NpuBackbone` (normalized image → backbone → 1×1 projection, the feature
  map) on the NPU, :class:`HostTransformer` (feature map + raw state → real-unit chunk) on the
  CPU with ONNX Runtime.
- ``full``: :class:`NpuFullPolicy` (normalized image + state token → real-unit chunk) on the
  NPU, :class:`HostStateToken` (raw state → state token, one small Linear without its bias) on
  the CPU. The bias is added on the NPU: that Add reads only the state-token input (and a
  constant), so it is the parser's start node for that input; the token join, which also reads
  the backbone's tokens, must not be one (see :func:`edgeact.hailo.export.start_nodes`).

Input normalization is not in any NPU graph: the model script's ``normalization(...)`` layer
does it on the chip, so the compiled network takes raw 0–255 pixels (see
:func:`pixel_normalization`). The token logic mirrors :class:`edgeact.model.act.ACT`'s
inference path; the export's parity check against :class:`InferenceModel` guards the two.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from edgeact.config import ACTION, OBS_STATE
from edgeact.model.inference import InferenceModel
from edgeact.model.transformer import sinusoidal_2d


def pixel_normalization(model: InferenceModel) -> tuple[list[float], list[float]]:
    """(mean, std) per RGB channel in 0–255 pixel units such that (pixel - mean) / std is what
    the policy feeds its backbone; works for every normalization mode (all are affine)."""
    normalizer = model.normalizers[model.camera_keys[0].replace(".", "_")]
    with torch.no_grad():  # the policy sees pixel / 255, normalized (InferenceModel); the export's parity checks this
        black = normalizer(torch.zeros(1, 3, 1, 1)).reshape(3).double()
        white = normalizer(torch.ones(1, 3, 1, 1)).reshape(3).double()
    slope = (white - black) / 255.0  # normalized units per pixel step
    mean = (-black / slope).tolist()
    std = (1.0 / slope).tolist()
    return [float(m) for m in mean], [float(s) for s in std]


def normalize_pixels(frames_nhwc: np.ndarray, mean: list[float], std: list[float]) -> np.ndarray:
    """Raw 0–255 NHWC frames → the NPU graph's float32 NCHW input (what the model script's
    normalization layer computes on the chip)."""
    x = (np.asarray(frames_nhwc, np.float32) - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


class NpuBackbone(nn.Module):
    """forward(image (1, 3, H, W) normalized) → feature map (1, dim_model, h, w)."""

    def __init__(self, model: InferenceModel) -> None:
        super().__init__()
        act = model.policy.model
        self.backbone = act.backbone
        self.projection = act.encoder_img_feat_input_proj

    def forward(self, image: Tensor) -> Tensor:
        return self.projection(self.backbone(image))


class _Tokens(nn.Module):
    """Encoder, decoder and action head from the encoder's tokens (shared by both cuts)."""

    latent_token: Tensor
    pos: Tensor
    queries: Tensor
    query_pos: Tensor

    def __init__(self, model: InferenceModel, feature_hw: tuple[int, int]) -> None:
        super().__init__()
        act = model.policy.model
        config = model.config
        self.encoder, self.decoder, self.action_head = act.encoder, act.decoder, act.action_head
        self.unnormalize = model.normalizers[ACTION.replace(".", "_")]
        d = config.dim_model
        with torch.no_grad():
            latent = act.encoder_latent_input_proj(torch.zeros(1, config.latent_dim))
            cam_pos = sinusoidal_2d(feature_hw[0], feature_hw[1], d).flatten(2).permute(2, 0, 1)
            pos = torch.cat([act.encoder_1d_feature_pos_embed.weight.unsqueeze(1), cam_pos], dim=0)
        # inference-time constants, folded into the graph
        self.register_buffer("latent_token", latent.reshape(1, 1, d).clone(), persistent=False)
        self.register_buffer("pos", pos.clone(), persistent=False)
        self.register_buffer("queries", torch.zeros(config.chunk_size, 1, d), persistent=False)
        self.register_buffer("query_pos", act.decoder_pos_embed.weight.detach().unsqueeze(1).clone(), persistent=False)

    def chunk(self, state_token: Tensor, features: Tensor) -> Tensor:
        """state_token (1, 1, D), features (1, D, h, w) → real-unit chunk (1, chunk, A)."""
        image_tokens = features.flatten(2).permute(2, 0, 1)  # (h*w, 1, D)
        tokens = torch.cat([self.latent_token, state_token, image_tokens], dim=0)
        encoded = self.encoder(tokens, pos_embed=self.pos)
        decoded = self.decoder(self.queries, encoded, decoder_pos_embed=self.query_pos, encoder_pos_embed=self.pos)
        return self.unnormalize.inverse(self.action_head(decoded.transpose(0, 1)))


class HostStateToken(nn.Module):
    """forward(state (1, S) raw) → state token (1, 1, dim_model); ``bias=False``: without the
    projection's bias (``full`` mode adds it on the NPU)."""

    def __init__(self, model: InferenceModel, bias: bool = True) -> None:
        super().__init__()
        self.normalize = model.normalizers[OBS_STATE.replace(".", "_")]
        self.projection = model.policy.model.encoder_robot_state_input_proj
        self.bias = bias

    def forward(self, state: Tensor) -> Tensor:
        x = self.normalize(state)
        token = self.projection(x) if self.bias else torch.nn.functional.linear(x, self.projection.weight)
        return token.unsqueeze(0)


class HostTransformer(nn.Module):
    """forward(features (1, D, h, w), state (1, S) raw) → real-unit chunk (1, chunk, A)."""

    def __init__(self, model: InferenceModel, feature_hw: tuple[int, int]) -> None:
        super().__init__()
        self.state_token = HostStateToken(model)
        self.tokens = _Tokens(model, feature_hw)

    def forward(self, features: Tensor, state: Tensor) -> Tensor:
        return self.tokens.chunk(self.state_token(state), features)


class NpuFullPolicy(nn.Module):
    """forward(image (1, 3, H, W) normalized, state_token (1, 1, D) without the projection's bias)
    → real-unit chunk (1, chunk, A)."""

    state_bias: Tensor

    def __init__(self, model: InferenceModel, feature_hw: tuple[int, int]) -> None:
        super().__init__()
        self.features = NpuBackbone(model)
        self.tokens = _Tokens(model, feature_hw)
        bias = model.policy.model.encoder_robot_state_input_proj.bias.detach()
        self.register_buffer("state_bias", bias.reshape(1, 1, -1).clone(), persistent=False)

    def forward(self, image: Tensor, state_token: Tensor) -> Tensor:
        return self.tokens.chunk(state_token + self.state_bias, self.features(image))


def feature_size(model: InferenceModel, image_size: tuple[int, int]) -> tuple[int, int, int]:
    """(channels, h, w) of the NPU backbone's feature map for an (H, W) frame."""
    with torch.no_grad():
        out = NpuBackbone(model)(torch.zeros(1, 3, *image_size))
    return int(out.shape[1]), int(out.shape[2]), int(out.shape[3])
