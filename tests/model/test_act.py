import numpy as np
import torch

from edgeact.bench import randomize_frozen_bn
from edgeact.model.act import ACTPolicy
from edgeact.model.backbone import FrozenBatchNorm2d, ResNetBackbone
from edgeact.model.transformer import Dropout, MultiheadAttention
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


def _reference_backbone(backbone: ResNetBackbone, x: torch.Tensor) -> torch.Tensor:
    """torchvision's ResNet forward with the frozen norm as a separate op (LeRobot's layout)."""
    def bn(m: FrozenBatchNorm2d, y: torch.Tensor) -> torch.Tensor:
        scale = m.weight * (m.running_var + m.eps).rsqrt()
        return y * scale.reshape(1, -1, 1, 1) + (m.bias - m.running_mean * scale).reshape(1, -1, 1, 1)

    def block(b, y):
        identity = y if b.downsample is None else bn(b.downsample[1], b.downsample[0](y))
        out = torch.relu(bn(b.bn1, b.conv1(y)))
        return torch.relu(bn(b.bn2, b.conv2(out)) + identity)

    y = backbone.maxpool(torch.relu(bn(backbone.bn1, backbone.conv1(x))))
    for stage in (backbone.layer1, backbone.layer2, backbone.layer3, backbone.layer4):
        for b in stage:
            y = block(b, y)
    return y


def test_frozen_norm_inside_the_convolution_computes_the_separate_norm():
    # training folds it into the kernels of the early stages and applies it to layer4's small
    # maps; eval folds it everywhere; the training layout (channels-last, layer4 NCHW) changes
    # no value: all are the same function
    torch.manual_seed(0)
    backbone = ResNetBackbone("resnet18")
    randomize_frozen_bn(backbone, seed=1)
    x = torch.rand(2, 3, 96, 128)
    with torch.no_grad():
        expected = _reference_backbone(backbone, x)
        trained = backbone.train()(x)
        evaluated = backbone.eval()(x)
        backbone.use_channels_last((96, 128), "cpu")
        laid_out = backbone.train()(x.contiguous(memory_format=torch.channels_last))
    scale = float(expected.abs().max())
    for out in (trained, evaluated, laid_out):
        assert float((out - expected).abs().max()) < 1e-5 * scale


def test_training_layout_keeps_only_the_smallest_maps_nchw_and_only_on_the_cpu():
    def layer4_channels_last(image_size: tuple[int, int], device_type: str) -> bool:
        backbone = ResNetBackbone("resnet18")
        backbone.use_channels_last(image_size, device_type)
        assert backbone.layer3[1].conv2.weight.is_contiguous(memory_format=torch.channels_last)
        return backbone.layer4[1].conv2.weight.is_contiguous(memory_format=torch.channels_last)

    assert not layer4_channels_last((96, 128), "cpu")  # 3x4 maps, under NHWC_MIN_POSITIONS
    assert layer4_channels_last((360, 640), "cpu")  # 12x20
    assert layer4_channels_last((96, 128), "cuda")  # the rule is measured for oneDNN only


def test_dropout_keeps_each_element_with_probability_one_minus_p_and_rescales():
    torch.manual_seed(0)
    drop = Dropout(0.1)
    x = (torch.rand(400, 500) + 1.0).requires_grad_()
    y = drop.train()(x)
    kept = y != 0
    # 200,000 draws: the kept fraction's standard deviation is 0.00067
    assert abs(float(kept.float().mean()) - 0.9) < 0.004
    assert torch.allclose(y[kept], x[kept] / 0.9)
    y.sum().backward()
    assert torch.allclose(x.grad, kept.float() / 0.9)
    assert not torch.equal(drop(x), drop(x))  # fresh draws each call
    assert drop.eval()(x) is x
    half = drop.train()(x.detach().bfloat16())
    assert half.dtype == torch.bfloat16 and abs(float((half != 0).float().mean()) - 0.9) < 0.004


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
    assert np.isclose(float(logs_a["l1_loss"]), float(logs_b["l1_loss"]))


def test_two_cameras_and_env_state():
    from edgeact.config import PolicyFeature

    config = tiny_config()
    config.input_features["observation.images.cam_rear"] = PolicyFeature("VISUAL", (3, 64, 96))
    config.input_features["observation.environment_state"] = PolicyFeature("ENV", (4,))
    policy = ACTPolicy(config).eval()
    out = policy([torch.rand(1, 3, 64, 96)] * 2, torch.randn(1, 2), torch.randn(1, 4))
    assert out.shape == (1, 10, 2)
    assert policy.model.encoder_1d_feature_pos_embed.weight.shape[0] == 3
