"""`edgeact hailo emulate`: fake quantization as the NPU holds numbers, and the report per precision."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from edgeact.backends.hailo_part import read_part
from edgeact.cli import main
from edgeact.hailo.calib import load_calibration
from edgeact.hailo.emulate import (
    A8_W8,
    A16_W16,
    Emulator,
    _quantize_weight,
    emulate_bundle,
    quant_params,
    quant_points,
)


def test_quant_params_cover_zero_on_an_unsigned_grid():
    scale, zp = quant_params(-1.0, 3.0, 8)
    assert scale == pytest.approx(4 / 255) and zp == round(1 / scale)
    scale, zp = quant_params(0.5, 2.0, 16)  # range extended to 0
    assert zp == 0 and scale == pytest.approx(2 / 65535)


def test_per_tensor_weights_lose_small_channels_per_channel_keeps_them():
    w = np.stack([np.full((3, 1, 1), 1.0), np.full((3, 1, 1), 0.001)]).astype(np.float32)
    assert np.all(_quantize_weight(w, 8, "per-tensor", 0)[1] == 0)
    np.testing.assert_allclose(_quantize_weight(w, 8, "per-channel", 0)[1], 0.001, rtol=1e-2)


def test_relu_is_fused_into_the_layer_it_follows(hailo_exported):
    bundle, _, _ = hailo_exported
    npu = onnx.load(str(read_part(bundle).path("npu")))
    points = {p.tensor: p for p in quant_points(npu)}
    consumers = {}
    for n in npu.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    assert "image" in points  # the normalization layer's output is quantized too
    fused = 0
    for n in npu.graph.node:
        users = consumers.get(n.output[0], [])
        if n.op_type == "Conv" and [u.op_type for u in users] == ["Relu"]:
            assert n.output[0] not in points and points[users[0].output[0]].layer == n.name
            fused += 1
    assert fused >= 5


def test_sixteen_bits_is_near_float_and_eight_bits_is_not(hailo_exported, episodes):
    from edgeact.bundle import spec_from_manifest
    from edgeact.export.calibration import observations_for
    from edgeact.hailo.emulate import action_error

    bundle, _, calib = hailo_exported
    part = read_part(bundle)
    emulator = Emulator(part, load_calibration(calib["split"], part))
    _, held = observations_for(spec_from_manifest(part.manifest), episodes, 0, 6)
    e8 = action_error(emulator, emulator.session(A8_W8), held, part.manifest["policy"]).worst_mean_pct
    e16 = action_error(emulator, emulator.session(A16_W16), held, part.manifest["policy"]).worst_mean_pct
    assert e16 < 0.05 and e8 > 5 * e16


def test_report_per_precision_with_a_closed_loop_drive(hailo_exported, episodes, tmp_path, capsys):
    bundle, _, calib = hailo_exported
    out = tmp_path / "emulate.json"
    assert (
        main(
            [
                "hailo",
                "emulate",
                str(bundle),
                "--calib",
                str(calib["split"]),
                "--episodes",
                str(episodes),
                "--heldout",
                "6",
                "--sim",
                "oval",
                "--sim-seconds",
                "2",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "| a8_w8 |" in text and "| a16_w16 |" in text and "| mixed |" in text and "| fp32 | reference |" in text
    import json

    results = json.loads(out.read_text())
    assert set(results) == {"a8_w8", "a16_w16", "mixed", "fp32"}
    assert results["a16_w16"]["sim"]["oval"]["steps"] > 0


def test_full_mode_emulates_the_transformer_too(hailo_exported, episodes):
    bundle, _, calib = hailo_exported
    results = emulate_bundle(
        bundle, calib["full"], ("a8_w8", "a16_w16"), mode="full", episodes=episodes, heldout=4, log=lambda s: None
    )
    assert results["a16_w16"].action_error.worst_mean_pct < results["a8_w8"].action_error.worst_mean_pct
