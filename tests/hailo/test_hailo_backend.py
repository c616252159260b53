"""``hailo-split`` and ``hailo`` through the HailoRT double (which runs the HEF's NPU graph for real
and returns quantized NHWC outputs), and every error a user on the Pi can meet."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
from hailohelpers import compile_for

import edgeact
from edgeact.backends.hailo_part import read_part
from edgeact.backends.registry import default_backend
from edgeact.errors import BackendError
from edgeact.hailo.graphs import normalize_pixels


def quiet(_):
    pass


@pytest.fixture
def compiled(hailo_bundle, monkeypatch):
    """compile(precision, mode, hw_arch) -> bundle path, through the DFC double of the board's major."""
    bundle, calib = hailo_bundle

    def build(precision="a8_w8", mode="split", hw_arch="hailo8l", dfc=None):
        compile_for(monkeypatch, bundle, calib[mode], hw_arch, precision, mode, dfc)
        return bundle

    return build


def observations(bundle, episodes, n=4):
    from edgeact.bundle import spec_from_manifest
    from edgeact.export.calibration import observations_for

    spec = spec_from_manifest(json.loads((bundle / "manifest.json").read_text()))
    return observations_for(spec, episodes, 0, n)[1]


def test_hailo_split_equals_the_host_graph_on_the_dequantized_uint8_feature_map(compiled, hailort, episodes):
    bundle = compiled("a8_w8")
    hp = hailort()
    policy = edgeact.load_policy(str(bundle), backend="hailo-split")
    part = read_part(bundle, "split")
    npu = ort.InferenceSession(str(part.path("npu")))
    host = ort.InferenceSession(str(part.path("host")))
    stream = policy.npu.outputs[policy.output_stream]
    assert policy.npu.api == "InferModel" and policy.npu.output_formats[policy.output_stream] == "UINT8"
    qi = stream.quant_infos[0]
    norm = part.block["normalization"]
    reference = edgeact.load_policy(str(bundle), backend="onnx")
    for cams, state in observations(bundle, episodes):
        chunk = policy.predict_chunk(cams[0], state)
        features = npu.run(None, {"image": normalize_pixels(cams[0][None], norm["mean"], norm["std"])})[0]
        q = np.clip(np.round(features / qi.qp_scale + qi.qp_zp), 0, 255)
        inside = (features >= qi.limvals_min) & (features <= qi.limvals_max)  # outside: clipped, as on the chip
        assert np.max(np.abs((q - qi.qp_zp) * qi.qp_scale - features)[inside]) <= qi.qp_scale / 2 + 1e-6  # half a step
        expected = host.run(
            None, {"features": ((q - qi.qp_zp) * qi.qp_scale).astype(np.float32), "state": state.reshape(1, -1)}
        )[0][0]
        np.testing.assert_allclose(chunk, expected, atol=1e-5)
        span = (
            np.asarray(part.manifest["policy"]["action_range"]["max"]) - part.manifest["policy"]["action_range"]["min"]
        )
        assert np.max(np.abs(chunk - reference.predict_chunk(cams[0], state)) / span) < 0.05
    assert [name for name, _ in hp.calls].count("run") == 4
    policy.close()


def test_uint16_outputs_are_closer_to_fp32_than_uint8(compiled, hailort, hailo_bundle):
    frames = np.load(hailo_bundle[1]["split"])[:4].astype(np.uint8)  # inside the calibrated range: no clipping
    state = np.zeros(2, np.float32)
    errors = {}
    for precision in ("a8_w8", "a16_w16"):
        bundle = compiled(precision)
        hailort()
        policy = edgeact.load_policy(str(bundle), backend="hailo-split")
        reference = edgeact.load_policy(str(bundle), backend="onnx")
        errors[precision] = max(
            float(np.max(np.abs(policy.predict_chunk(f, state) - reference.predict_chunk(f, state)))) for f in frames
        )
        assert policy.npu.output_formats[policy.output_stream] == ("UINT8" if precision == "a8_w8" else "UINT16")
        policy.close()
    assert errors["a16_w16"] < errors["a8_w8"] / 10


def test_vstreams_api_before_4_18_gives_the_same_chunk(compiled, hailort, episodes):
    bundle = compiled("a8_w8", dfc="3.27.0")  # the DFC paired with HailoRT 4.17
    obs = list(observations(bundle, episodes, 2))
    hailort()
    new = [edgeact.load_policy(str(bundle), backend="hailo-split").predict_chunk(c[0], s) for c, s in obs]
    hailort(version="4.17.0", infer_model_api=False)
    old_api = edgeact.load_policy(str(bundle), backend="hailo-split")
    assert old_api.npu.api == "vstreams"
    for (c, s), expected in zip(obs, new):
        np.testing.assert_allclose(old_api.predict_chunk(c[0], s), expected, atol=1e-5)


def test_full_mode_runs_the_whole_policy_on_the_npu(compiled, hailort, episodes):
    bundle = compiled("a16_w16", mode="full")
    hailort()
    policy = edgeact.load_policy(str(bundle), backend="hailo")
    reference = edgeact.load_policy(str(bundle), backend="onnx")
    part = read_part(bundle, "full")
    span = np.asarray(part.manifest["policy"]["action_range"]["max"]) - part.manifest["policy"]["action_range"]["min"]
    for cams, state in observations(bundle, episodes):
        chunk = policy.predict_chunk(cams[0], state)
        assert chunk.shape == (policy.spec.chunk_size, policy.spec.action_dim) and chunk.dtype == np.float32
        assert np.max(np.abs(chunk - reference.predict_chunk(cams[0], state)) / span) < 0.02


def test_auto_picks_the_hef_only_when_a_device_is_present(compiled, hailort):
    bundle = compiled("a8_w8")
    hailort(devices=[])
    assert default_backend(bundle) == "onnx"
    hailort()
    assert default_backend(bundle) == "hailo-split"


# --------------------------------------------------------------------------------------
# errors, each naming the fix
def test_no_hailo_platform(compiled, no_hailort):
    bundle = compiled()
    with pytest.raises(BackendError, match="hailo-all") as info:
        edgeact.load_policy(str(bundle), backend="hailo-split")
    assert "--system-site-packages" in str(info.value) and "numpy<2" in str(info.value)


def test_no_device(compiled, hailort):
    bundle = compiled()
    hailort(devices=[])
    with pytest.raises(BackendError, match="hailortcli scan"):
        edgeact.load_policy(str(bundle), backend="hailo-split")


def test_hef_for_hailo8_on_a_hailo8l(compiled, hailort):
    bundle = compiled(hw_arch="hailo8")
    hailort(devices=[("0000:01:00.0", "HAILO8L")])
    with pytest.raises(BackendError, match="--hw-arch hailo8l"):
        edgeact.load_policy(str(bundle), backend="hailo-split")


def test_hailo8l_hef_on_a_hailo8_runs_with_a_warning(compiled, hailort):
    bundle = compiled(hw_arch="hailo8l")
    hailort(devices=[("0000:01:00.0", "HAILO8")])
    assert "hailo8" in edgeact.load_policy(str(bundle), backend="hailo-split").warning


def test_altered_or_missing_hef(compiled, hailort):
    bundle = compiled()
    hailort()
    hef = bundle / "hailo/split/hailo8l/model.hef"
    hef.write_bytes(hef.read_bytes() + b"x")
    with pytest.raises(BackendError, match="sha256"):
        edgeact.load_policy(str(bundle), backend="hailo-split")
    hef.unlink()
    with pytest.raises(BackendError, match="missing"):
        edgeact.load_policy(str(bundle), backend="hailo-split")


@pytest.mark.parametrize("version, message", [("4.10.0", "too old"), ("5.2.0", "needs HailoRT 4.x")])
def test_hailort_version(compiled, hailort, version, message):
    bundle = compiled()
    hailort(version=version)
    with pytest.raises(BackendError, match=message):
        edgeact.load_policy(str(bundle), backend="hailo-split")


def test_not_compiled_and_not_exported(hailo_bundle, bundle, hailort):
    hailort()
    with pytest.raises(BackendError, match="edgeact hailo compile"):
        edgeact.load_policy(str(hailo_bundle[0]), backend="hailo-split")
    with pytest.raises(BackendError, match="edgeact hailo export"):
        edgeact.load_policy(str(bundle), backend="hailo")


def test_hailo_split_needs_no_torch(compiled):
    """The Pi runs hailo-split with numpy, onnxruntime and hailo_platform only."""
    from pathlib import Path

    from without_torch import run_without

    bundle = compiled("a8_w8")
    doubles = Path(__file__).parent / "doubles"
    code = f"""
sys.path.insert(0, {str(doubles)!r})
import hailort_double
sys.modules['hailo_platform'] = hailort_double.make_module()
import numpy as np, edgeact
policy = edgeact.load_policy({str(bundle)!r}, backend='hailo-split')
h, w = policy.spec.image_size
chunk = policy.predict_chunk(np.zeros((h, w, 3), np.uint8), np.zeros(2, np.float32))
assert chunk.shape == (policy.spec.chunk_size, 2)
print('ok')
"""
    out = run_without(code, blocked=("torch", "onnx"))
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr
