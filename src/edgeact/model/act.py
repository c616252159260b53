"""The ACT network and policy, with LeRobot's module names (``model.backbone...``, ``model.encoder...``).

Differences from LeRobot are in form only, for a clean export: tokens are joined with one
concatenation instead of per-token lists, and the 2-D position embedding is computed from
the feature map's size. The numbers are the same.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgeact.config import ACTConfig
from edgeact.model.backbone import ResNetBackbone
from edgeact.model.transformer import ACTDecoder, ACTEncoder, sinusoidal_1d, sinusoidal_2d


class ACT(nn.Module):
    """Action Chunking Transformer: (images, state) -> normalized action chunk.

    With ``use_vae`` and training targets, a CVAE encoder infers the style latent from the
    action chunk; at inference the latent is zero and the CVAE encoder is unused.
    """

    def __init__(self, config: ACTConfig) -> None:
        super().__init__()
        self.config = config
        state_dim = config.state_dim
        action_dim = config.action_dim
        d = config.dim_model
        if config.use_vae:
            self.vae_encoder = ACTEncoder(config, is_vae_encoder=True)
            self.vae_encoder_cls_embed = nn.Embedding(1, d)
            if state_dim:
                self.vae_encoder_robot_state_input_proj = nn.Linear(state_dim, d)
            self.vae_encoder_action_input_proj = nn.Linear(action_dim, d)
            self.vae_encoder_latent_output_proj = nn.Linear(d, config.latent_dim * 2)
            n_vae_tokens = 1 + config.chunk_size + (1 if state_dim else 0)
            self.register_buffer("vae_encoder_pos_enc", sinusoidal_1d(n_vae_tokens, d).unsqueeze(0))
        if config.image_features:
            self.backbone = ResNetBackbone(config.vision_backbone, config.replace_final_stride_with_dilation)
        self.encoder = ACTEncoder(config)
        self.decoder = ACTDecoder(config)
        if state_dim:
            self.encoder_robot_state_input_proj = nn.Linear(state_dim, d)
        if config.env_state_feature:
            self.encoder_env_state_input_proj = nn.Linear(config.env_state_feature.shape[0], d)
        self.encoder_latent_input_proj = nn.Linear(config.latent_dim, d)
        if config.image_features:
            self.encoder_img_feat_input_proj = nn.Conv2d(self.backbone.out_channels, d, kernel_size=1)
        n_1d_tokens = 1 + (1 if state_dim else 0) + (1 if config.env_state_feature else 0)
        self.encoder_1d_feature_pos_embed = nn.Embedding(n_1d_tokens, d)
        self.decoder_pos_embed = nn.Embedding(config.chunk_size, d)
        self.action_head = nn.Linear(d, action_dim)
        for p in [*self.encoder.parameters(), *self.decoder.parameters()]:
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(
        self,
        images: list[Tensor],
        state: Tensor | None,
        env_state: Tensor | None = None,
        actions: Tensor | None = None,
        action_is_pad: Tensor | None = None,
    ) -> tuple[Tensor, tuple[Tensor, Tensor] | None]:
        """Normalized inputs -> (normalized chunk (B, chunk, action_dim), (mu, log_sigma_x2) or None).

        images: one (B, 3, H, W) tensor per camera; state: (B, state_dim).
        """
        batch = images[0].shape[0] if images else env_state.shape[0]
        vae_params = None
        if self.config.use_vae and self.training and actions is not None:
            latent, vae_params = self._encode_latent(state, actions, action_is_pad)
        else:
            latent = torch.zeros(batch, self.config.latent_dim, device=self.decoder_pos_embed.weight.device)

        tokens_1d = [self.encoder_latent_input_proj(latent)]
        if self.config.state_dim:
            tokens_1d.append(self.encoder_robot_state_input_proj(state))
        if self.config.env_state_feature:
            tokens_1d.append(self.encoder_env_state_input_proj(env_state))
        tokens = [torch.stack(tokens_1d, dim=0)]
        pos = [self.encoder_1d_feature_pos_embed.weight.unsqueeze(1)]
        for image in images:
            features = self.backbone(image)
            h, w = features.shape[-2:]
            cam_pos = sinusoidal_2d(int(h), int(w), self.config.dim_model, features.device).to(features)
            features = self.encoder_img_feat_input_proj(features)
            tokens.append(features.flatten(2).permute(2, 0, 1))  # (h*w, B, D)
            pos.append(cam_pos.flatten(2).permute(2, 0, 1))  # (h*w, 1, D)
        tokens_all = torch.cat(tokens, dim=0)
        pos_all = torch.cat(pos, dim=0)

        encoder_out = self.encoder(tokens_all, pos_embed=pos_all)
        queries = torch.zeros(self.config.chunk_size, batch, self.config.dim_model, device=encoder_out.device)
        decoder_out = self.decoder(
            queries,
            encoder_out,
            decoder_pos_embed=self.decoder_pos_embed.weight.unsqueeze(1),
            encoder_pos_embed=pos_all,
        )
        return self.action_head(decoder_out.transpose(0, 1)), vae_params

    def _encode_latent(
        self, state: Tensor | None, actions: Tensor, action_is_pad: Tensor | None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        batch = actions.shape[0]
        parts = [self.vae_encoder_cls_embed.weight.expand(batch, 1, -1)]
        if self.config.state_dim:
            parts.append(self.vae_encoder_robot_state_input_proj(state).unsqueeze(1))
        parts.append(self.vae_encoder_action_input_proj(actions))
        vae_in = torch.cat(parts, dim=1).permute(1, 0, 2)
        n_prefix = len(parts) - 1
        if action_is_pad is None:
            action_is_pad = torch.zeros(actions.shape[:2], dtype=torch.bool, device=actions.device)
        prefix_pad = torch.zeros(batch, n_prefix, dtype=torch.bool, device=actions.device)
        key_padding_mask = torch.cat([prefix_pad, action_is_pad], dim=1)
        cls_out = self.vae_encoder(
            vae_in, pos_embed=self.vae_encoder_pos_enc.permute(1, 0, 2), key_padding_mask=key_padding_mask
        )[0]
        params = self.vae_encoder_latent_output_proj(cls_out)
        mu, log_sigma_x2 = params[:, : self.config.latent_dim], params[:, self.config.latent_dim :]
        latent = mu + (log_sigma_x2 / 2).exp() * torch.randn_like(mu)
        return latent, (mu, log_sigma_x2)


class ACTPolicy(nn.Module):
    """LeRobot's ``ACTPolicy`` network part: ``state_dict()`` keys are LeRobot's (``model.*``).

    Works on normalized tensors; normalization lives in :mod:`edgeact.normalization`, as in
    LeRobot >= 0.4 where it moved to the processor pipeline.
    """

    def __init__(self, config: ACTConfig) -> None:
        super().__init__()
        self.config = config
        self.model = ACT(config)

    def forward(self, images: list[Tensor], state: Tensor | None, env_state: Tensor | None = None) -> Tensor:
        """Normalized observation -> normalized action chunk (B, chunk_size, action_dim)."""
        return self.model(images, state, env_state)[0]

    def compute_loss(
        self,
        images: list[Tensor],
        state: Tensor | None,
        actions: Tensor,
        action_is_pad: Tensor,
        env_state: Tensor | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """LeRobot's training loss: L1 over non-padded steps + kl_weight * KL (when use_vae), and its parts
        as detached 0-d tensors: reading them (``float``) is left to the caller, so a training step never
        waits for the device there (and a CUDA graph can hold it)."""
        pred, vae_params = self.model(images, state, env_state, actions=actions, action_is_pad=action_is_pad)
        l1 = (F.l1_loss(pred, actions, reduction="none") * ~action_is_pad.unsqueeze(-1)).mean()
        terms = {"l1_loss": l1.detach()}
        loss = l1
        if vae_params is not None:
            mu, log_sigma_x2 = vae_params
            kld = (-0.5 * (1 + log_sigma_x2 - mu.pow(2) - log_sigma_x2.exp())).sum(-1).mean()
            terms["kld_loss"] = kld.detach()
            loss = l1 + kld * self.config.kl_weight
        terms["loss"] = loss.detach()
        return loss, terms

    def optim_param_groups(self) -> list[dict]:
        """AdamW groups as LeRobot: the backbone gets ``optimizer_lr_backbone``."""
        backbone = [p for n, p in self.named_parameters() if n.startswith("model.backbone") and p.requires_grad]
        rest = [p for n, p in self.named_parameters() if not n.startswith("model.backbone") and p.requires_grad]
        return [{"params": rest}, {"params": backbone, "lr": self.config.optimizer_lr_backbone}]
