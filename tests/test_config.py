import json

import pytest

from edgeact.config import ACTConfig, PolicyFeature
from edgeact.errors import ConfigError
from factories import tiny_config

LEROBOT_CONFIG = {
    "type": "act",
    "n_obs_steps": 1,
    "input_features": {
        "observation.state": {"type": "STATE", "shape": [2]},
        "observation.images.cam_front": {"type": "VISUAL", "shape": [3, 360, 640]},
    },
    "output_features": {"action": {"type": "ACTION", "shape": [2]}},
    "device": "cpu",
    "use_amp": False,
    "push_to_hub": True,
    "repo_id": None,
    "chunk_size": 100,
    "n_action_steps": 100,
    "normalization_mapping": {"VISUAL": "MEAN_STD", "STATE": "MEAN_STD", "ACTION": "MEAN_STD"},
    "vision_backbone": "resnet18",
    "dim_model": 512,
}


def test_defaults_are_lerobots():
    c = ACTConfig()
    assert (c.chunk_size, c.n_action_steps, c.dim_model, c.n_heads, c.dim_feedforward) == (100, 100, 512, 8, 3200)
    got = (c.n_encoder_layers, c.n_decoder_layers, c.use_vae, c.latent_dim, c.n_vae_encoder_layers)
    assert got == (4, 1, True, 32, 4)
    assert (c.kl_weight, c.dropout, c.pre_norm, c.temporal_ensemble_coeff) == (10.0, 0.1, False, None)
    assert c.pretrained_backbone_weights == "ResNet18_Weights.IMAGENET1K_V1"


def test_reads_lerobot_json_and_round_trips_unknown_keys(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(LEROBOT_CONFIG))
    config = ACTConfig.from_json(path)
    assert config.image_size == (360, 640)
    assert config.state_dim == 2 and config.action_dim == 2
    assert list(config.image_features) == ["observation.images.cam_front"]
    out = tmp_path / "out.json"
    config.to_json(out)
    written = json.loads(out.read_text())
    for key, value in LEROBOT_CONFIG.items():
        assert written[key] == value, key


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"n_obs_steps": 2}, "n_obs_steps"),
        ({"vision_backbone": "efficientnet"}, "vision_backbone"),
        ({"n_action_steps": 200}, "n_action_steps"),
        ({"dim_model": 30, "n_heads": 4}, "divisible"),
        ({"normalization_mapping": {"STATE": "ZSCORE"}}, "normalization_mapping"),
    ],
)
def test_unsupported_settings_are_named(overrides, message):
    with pytest.raises(ConfigError, match=message):
        tiny_config(**overrides)


def test_wrong_policy_type_is_refused():
    with pytest.raises(ConfigError, match="diffusion"):
        ACTConfig.from_dict({"type": "diffusion"})


def test_bad_feature_type():
    with pytest.raises(ConfigError, match="feature type"):
        PolicyFeature("IMAGE", (3, 8, 8))


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        ACTConfig.from_json(tmp_path / "nope.json")
