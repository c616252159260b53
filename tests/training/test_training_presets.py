"""The presets: what each builds."""

import pytest

from edgeact.errors import ConfigError
from edgeact.training.presets import model_config


def test_presets():
    tiny = model_config("tiny", (96, 128), 2, 2, pretrained=False)
    rover = model_config("rover", (360, 640), 2, 2, pretrained=True)
    assert tiny.dim_model < rover.dim_model and rover.chunk_size == 30
    assert rover.pretrained_backbone_weights == "ResNet18_Weights.IMAGENET1K_V1"
    with pytest.raises(ConfigError, match="unknown preset"):
        model_config("huge", (96, 128), 2, 2, pretrained=False)
