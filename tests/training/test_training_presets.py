"""The presets: what each builds."""

import pytest

from edgeact.errors import ConfigError
from edgeact.training.presets import get_preset, model_config


def test_presets():
    tiny = model_config("tiny", (96, 128), 2, 2, pretrained=False)
    rover = model_config("rover", (360, 640), 2, 2, pretrained=True)
    assert tiny.dim_model < rover.dim_model and rover.chunk_size == 30
    assert rover.pretrained_backbone_weights == "ResNet18_Weights.IMAGENET1K_V1"
    # rover-96x128: the rover model itself (LeRobot-loadable, same width) at the input-size study's pick
    small = model_config("rover-96x128", get_preset("rover-96x128").image_size, 2, 2, pretrained=True)
    assert {k: v for k, v in vars(small).items() if k != "input_features"} == {
        k: v for k, v in vars(rover).items() if k != "input_features"}
    assert small.input_features["observation.images.cam_front"].shape == (3, 96, 128)
    assert get_preset("rover-96x128").batch_size == get_preset("rover").batch_size
    with pytest.raises(ConfigError, match="unknown preset"):
        model_config("huge", (96, 128), 2, 2, pretrained=False)
