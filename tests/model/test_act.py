import numpy as np
import torch

from edgeact.model.act import ACTPolicy
from edgeact.model.backbone import ResNetBackbone
from edgeact.model.transformer import MultiheadAttention
from factories import tiny_config


def test_backbone_keys_are_torchvision_layout_without_fc_or_counters():
    keys = set(ResNetBackbone("resnet18").state_dict())
    assert {"conv1.weight", "bn1.weight", "bn1.running_var", "layer1.0.conv1.weight",
            "layer2.0.downsample.0.weight", "layer2.0.downsample.1.running_mean", "layer4.1.bn2.bias"} <= keys
    assert not any(k.startswith("fc.") or k.endswith("num_batches_tracked") for k in keys)
    assert len(keys) == 100  # torchvision resnet18 minus fc (2) and 20 counters


def test_backbone_downsamples_by_32():
    out = ResNetBackbone("resnet18")(torch.zeros(1, 3, 64, 96))
    assert out.shape == (1, 512, 2, 3)


def test_attention_matches_torch_multihead_attention():
    torch.manual_seed(0)
    ours = MultiheadAttention(32, 4)
    ref = torch.nn.MultiheadAttention(32, 4)
    ref.load_state_dict(ours.state_dict())
    q, k = torch.randn(5, 2, 32), torch.randn(7, 2, 32)
    pad = torch.zeros(2, 7, dtype=torch.bool)
    pad[1, 5:] = True
    expected = ref(q, k, k, key_padding_mask=pad)[0]
    assert torch.allclose(ours(q, k, k, key_padding_mask=pad), expected, atol=1e-5)


def test_policy_state_dict_uses_lerobot_names():
    keys = set(ACTPolicy(tiny_config()).state_dict())
    for key in ["model.backbone.conv1.weight", "model.encoder.layers.0.self_attn.in_proj_weight",
                "model.decoder.layers.0.multihead_attn.out_proj.weight", "model.encoder_img_feat_input_proj.weight",
                "model.decoder_pos_embed.weight", "model.action_head.weight", "model.vae_encoder_cls_embed.weight",
                "model.vae_encoder_pos_enc", "model.encoder_1d_feature_pos_embed.weight",
                "model.encoder_robot_state_input_proj.weight", "model.encoder_latent_input_proj.bias"]:
        assert key in keys, key


def test_inference_ignores_the_vae_and_is_deterministic():
    torch.manual_seed(0)
    policy = ACTPolicy(tiny_config()).eval()
    images, state = [torch.rand(2, 3, 64, 96)], torch.randn(2, 2)
    a, b = policy(images, state), policy(images, state)
    assert a.shape == (2, 10, 2)
    assert torch.equal(a, b)


def test_training_loss_uses_the_vae_and_masks_padding():
    torch.manual_seed(0)
    policy = ACTPolicy(tiny_config()).train()
    images, state = [torch.rand(2, 3, 64, 96)], torch.randn(2, 2)
    actions = torch.randn(2, 10, 2)
    pad = torch.zeros(2, 10, dtype=torch.bool)
    loss, logs = policy.compute_loss(images, state, actions, pad)
    assert {"l1_loss", "kld_loss", "loss"} <= set(logs)
    loss.backward()
    assert policy.model.vae_encoder_cls_embed.weight.grad is not None
    # padded steps contribute nothing: changing their targets leaves the L1 term unchanged
    policy.eval()
    pad_all_but_first = torch.ones(2, 10, dtype=torch.bool)
    pad_all_but_first[:, 0] = False
    torch.manual_seed(1)
    _, logs_a = policy.compute_loss(images, state, actions, pad_all_but_first)
    actions_b = actions.clone()
    actions_b[:, 1:] += 5
    torch.manual_seed(1)
    _, logs_b = policy.compute_loss(images, state, actions_b, pad_all_but_first)
    assert np.isclose(logs_a["l1_loss"], logs_b["l1_loss"])


def test_two_cameras_and_env_state():
    from edgeact.config import PolicyFeature

    config = tiny_config()
    config.input_features["observation.images.cam_rear"] = PolicyFeature("VISUAL", (3, 64, 96))
    config.input_features["observation.environment_state"] = PolicyFeature("ENV", (4,))
    policy = ACTPolicy(config).eval()
    out = policy([torch.rand(1, 3, 64, 96)] * 2, torch.randn(1, 2), torch.randn(1, 4))
    assert out.shape == (1, 10, 2)
    assert policy.model.encoder_1d_feature_pos_embed.weight.shape[0] == 3
