"""ACT's transformer: post-norm (or pre-norm) encoder and decoder layers, sequence-first.

Parameter names follow LeRobot's ``ACTEncoderLayer`` / ``ACTDecoderLayer`` (which use
``nn.MultiheadAttention``: ``in_proj_weight``, ``in_proj_bias``, ``out_proj``). The
attention here is our own module with those names, so that the exported graph is plain
MatMul/Softmax on static 4-D shapes, which both ONNX Runtime and Hailo's parser accept.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgeact.config import ACTConfig


class MultiheadAttention(nn.Module):
    """Sequence-first multi-head attention, state-dict compatible with ``nn.MultiheadAttention``."""

    def __init__(self, dim: int, n_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dim, self.n_heads, self.dropout = dim, n_heads, dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        """query (Lq, B, D), key/value (Lk, B, D), key_padding_mask (B, Lk) True = ignore."""
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3)
        q = self._heads(F.linear(query, w_q, b_q))
        k = self._heads(F.linear(key, w_k, b_k))
        v = self._heads(F.linear(value, w_v, b_v))
        mask = None
        if key_padding_mask is not None:
            mask = ~key_padding_mask[:, None, None, :]  # SDPA: True = attend
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        lq, batch = query.shape[0], query.shape[1]
        out = out.permute(2, 0, 1, 3).reshape(lq, batch, self.dim)
        return self.out_proj(out)

    def _heads(self, x: Tensor) -> Tensor:
        """(L, B, D) -> (B, heads, L, D/heads)."""
        length, batch = x.shape[0], x.shape[1]
        return x.reshape(length, batch, self.n_heads, self.dim // self.n_heads).permute(1, 2, 0, 3)


class Dropout(nn.Module):
    """``nn.Dropout`` whose CPU mask comes from uniform draws: the same distribution, drawn faster.

    Each element is kept with probability ``1 - p`` and scaled by ``1 / (1 - p)``, as in
    ``nn.Dropout``, and the module has no parameters, so names and state dicts are unchanged.
    Outside Intel CPUs PyTorch draws ``bernoulli_`` element by element through a slower path
    than ``rand``: this mask costs half (3 ms of a 100 ms tiny-preset step on 2 cores). Other
    devices keep PyTorch's fused dropout kernel.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self.p, training=True)
        # float32 draws whatever x's dtype: bf16 has too few bits to resolve p exactly
        keep = torch.rand(x.shape, dtype=torch.float32).ge_(self.p)
        return x * keep.to(x.dtype).mul_(1.0 / (1.0 - self.p))


def _activation(name: str):
    return {"relu": F.relu, "gelu": F.gelu, "glu": F.glu}[name]


class ACTEncoderLayer(nn.Module):
    def __init__(self, config: ACTConfig) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(config.dim_model, config.n_heads, dropout=config.dropout)
        self.linear1 = nn.Linear(config.dim_model, config.dim_feedforward)
        self.dropout = Dropout(config.dropout)
        self.linear2 = nn.Linear(config.dim_feedforward, config.dim_model)
        self.norm1 = nn.LayerNorm(config.dim_model)
        self.norm2 = nn.LayerNorm(config.dim_model)
        self.dropout1 = Dropout(config.dropout)
        self.dropout2 = Dropout(config.dropout)
        self.activation = _activation(config.feedforward_activation)
        self.pre_norm = config.pre_norm

    def forward(self, x: Tensor, pos_embed: Tensor | None = None, key_padding_mask: Tensor | None = None) -> Tensor:
        skip = x
        if self.pre_norm:
            x = self.norm1(x)
        q = k = x if pos_embed is None else x + pos_embed
        x = skip + self.dropout1(self.self_attn(q, k, x, key_padding_mask=key_padding_mask))
        if self.pre_norm:
            skip = x
            x = self.norm2(x)
        else:
            x = self.norm1(x)
            skip = x
        x = skip + self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))
        if not self.pre_norm:
            x = self.norm2(x)
        return x


class ACTEncoder(nn.Module):
    def __init__(self, config: ACTConfig, is_vae_encoder: bool = False) -> None:
        super().__init__()
        n_layers = config.n_vae_encoder_layers if is_vae_encoder else config.n_encoder_layers
        self.layers = nn.ModuleList([ACTEncoderLayer(config) for _ in range(n_layers)])
        self.norm = nn.LayerNorm(config.dim_model) if config.pre_norm else nn.Identity()

    def forward(self, x: Tensor, pos_embed: Tensor | None = None, key_padding_mask: Tensor | None = None) -> Tensor:
        for layer in self.layers:
            x = layer(x, pos_embed=pos_embed, key_padding_mask=key_padding_mask)
        return self.norm(x)


class ACTDecoderLayer(nn.Module):
    def __init__(self, config: ACTConfig) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(config.dim_model, config.n_heads, dropout=config.dropout)
        self.multihead_attn = MultiheadAttention(config.dim_model, config.n_heads, dropout=config.dropout)
        self.linear1 = nn.Linear(config.dim_model, config.dim_feedforward)
        self.dropout = Dropout(config.dropout)
        self.linear2 = nn.Linear(config.dim_feedforward, config.dim_model)
        self.norm1 = nn.LayerNorm(config.dim_model)
        self.norm2 = nn.LayerNorm(config.dim_model)
        self.norm3 = nn.LayerNorm(config.dim_model)
        self.dropout1 = Dropout(config.dropout)
        self.dropout2 = Dropout(config.dropout)
        self.dropout3 = Dropout(config.dropout)
        self.activation = _activation(config.feedforward_activation)
        self.pre_norm = config.pre_norm

    def forward(self, x: Tensor, encoder_out: Tensor, decoder_pos_embed: Tensor, encoder_pos_embed: Tensor) -> Tensor:
        skip = x
        if self.pre_norm:
            x = self.norm1(x)
        q = k = x + decoder_pos_embed
        x = skip + self.dropout1(self.self_attn(q, k, x))
        if self.pre_norm:
            skip = x
            x = self.norm2(x)
        else:
            x = self.norm1(x)
            skip = x
        x = self.multihead_attn(x + decoder_pos_embed, encoder_out + encoder_pos_embed, encoder_out)
        x = skip + self.dropout2(x)
        if self.pre_norm:
            skip = x
            x = self.norm3(x)
        else:
            x = self.norm2(x)
            skip = x
        x = skip + self.dropout3(self.linear2(self.dropout(self.activation(self.linear1(x)))))
        if not self.pre_norm:
            x = self.norm3(x)
        return x


class ACTDecoder(nn.Module):
    def __init__(self, config: ACTConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList([ACTDecoderLayer(config) for _ in range(config.n_decoder_layers)])
        self.norm = nn.LayerNorm(config.dim_model)

    def forward(self, x: Tensor, encoder_out: Tensor, decoder_pos_embed: Tensor, encoder_pos_embed: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x, encoder_out, decoder_pos_embed=decoder_pos_embed, encoder_pos_embed=encoder_pos_embed)
        return self.norm(x)


def sinusoidal_1d(num_positions: int, dim: int) -> Tensor:
    """(num_positions, dim) table of the original Transformer (as LeRobot's VAE encoder uses)."""
    position = np.arange(num_positions, dtype=np.float64)[:, None]
    exponent = 2 * (np.arange(dim) // 2) / dim
    table = position / np.power(10000, exponent)[None, :]
    table[:, 0::2] = np.sin(table[:, 0::2])
    table[:, 1::2] = np.cos(table[:, 1::2])
    return torch.from_numpy(table).float()


def sinusoidal_2d(height: int, width: int, dim_model: int, device: torch.device | None = None) -> Tensor:
    """(1, dim_model, H, W) 2-D position embedding of a feature map, as DETR / LeRobot's ACT.

    Half the channels encode y, half x, each normalised to (0, 2*pi]. Depends only on the
    feature map's size, so it is a constant in the exported graph. Computed on ``device``: a
    table made on the CPU and copied to a GPU in every forward pass would make the host wait
    for the GPU there (and cannot be captured in a CUDA graph).
    """
    half = dim_model // 2
    eps, two_pi = 1e-6, 2 * math.pi
    y = torch.arange(1, height + 1, dtype=torch.float32, device=device)[None, :, None].expand(1, height, width)
    x = torch.arange(1, width + 1, dtype=torch.float32, device=device)[None, None, :].expand(1, height, width)
    y = y / (height + eps) * two_pi
    x = x / (width + eps) * two_pi
    inverse_frequency = 10000 ** (2 * (torch.arange(half, dtype=torch.float32, device=device) // 2) / half)
    x = x.unsqueeze(-1) / inverse_frequency
    y = y.unsqueeze(-1) / inverse_frequency
    pos_x = torch.stack((x[..., 0::2].sin(), x[..., 1::2].cos()), dim=-1).flatten(3)
    pos_y = torch.stack((y[..., 0::2].sin(), y[..., 1::2].cos()), dim=-1).flatten(3)
    return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)
