"""Human-readable summary of a checkpoint (used by ``edgeact inspect``)."""

from __future__ import annotations

from pathlib import Path

from edgeact.checkpoint import build_policy, load_checkpoint
from edgeact.normalization import feature_mode


def describe(path: str | Path, config_path=None, stats_path=None, flops: bool = True) -> str:
    from edgeact.model.inference import InferenceModel
    from edgeact.model.profile import count_gflops, count_params, dummy_inputs

    ckpt = load_checkpoint(path, config_path, stats_path)
    config = ckpt.config
    policy = build_policy(ckpt)
    total, inference = count_params(policy)
    lines = [
        f"checkpoint      {ckpt.source}",
        f"policy          ACT, {config.vision_backbone} backbone, dim_model {config.dim_model}, "
        f"{config.n_heads} heads, ff {config.dim_feedforward}",
        f"layers          encoder {config.n_encoder_layers}, decoder {config.n_decoder_layers}, "
        f"VAE encoder {config.n_vae_encoder_layers if config.use_vae else 'off'} (training only)",
        f"chunk           {config.chunk_size} steps, n_action_steps {config.n_action_steps}, "
        f"fps {ckpt.fps:g} ({config.chunk_size / ckpt.fps:.2f} s horizon)",
        f"temporal ens.   {config.temporal_ensemble_coeff}",
        "features:",
    ]
    for key, feature in [*config.input_features.items(), *config.output_features.items()]:
        stats = ckpt.stats.get(key, {})
        summary = ", ".join(f"{s} {_short(v)}" for s, v in stats.items() if s in ("mean", "std", "min", "max"))
        lines.append(f"  {key:<32} {feature.type:<7} {str(list(feature.shape)):<14} "
                     f"{feature_mode(config, key):<9} {summary}")
    lines += [
        f"stats from      {ckpt.stats_source}",
        f"parameters      {total / 1e6:.2f} M total, {inference / 1e6:.2f} M used at inference",
    ]
    if flops:
        model = InferenceModel(policy, ckpt.stats)
        gflops = count_gflops(model, dummy_inputs(policy))
        h, w = config.image_size
        lines.append(f"compute         {gflops:.2f} GFLOP per inference at {h}x{w}")
    return "\n".join(lines)


def _short(value) -> str:
    flat = value.reshape(-1)
    text = ", ".join(f"{x:.3g}" for x in flat[:4])
    return f"[{text}{', ...' if flat.size > 4 else ''}]"
