"""The compile driver: model script, the DFC call sequence (through the recording double), the command
lines without a DFC, and registering a HEF compiled by hand."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from edgeact.backends.hailo_part import read_part
from edgeact.cli import main
from edgeact.errors import DataError
from edgeact.hailo.compile import SdkMissing, compile_bundle, import_hef


def quiet(_):
    pass


def test_without_the_dfc_it_writes_the_script_and_prints_the_command_lines(hailo_bundle, no_dfc):
    bundle, calib = hailo_bundle
    with pytest.raises(SdkMissing) as info:
        compile_bundle(bundle, calib["split"], "a16_w16", log=quiet)
    text = str(info.value)
    part = read_part(bundle, "split")
    assert "hailo parser onnx" in text and "hailo optimize" in text and "hailo compiler" in text
    assert "--calib-set-path" in text and "--model-script" in text and "--hw-arch hailo8l" in text
    for name in part.block["npu"]["start_node_names"] + part.block["npu"]["end_node_names"]:
        assert name in text
    for wrong in ("--output-name", "--calib-dataset", "--quantization-mode"):  # the guide's flags
        assert wrong not in text
    script = (bundle / "hailo/split/model.alls").read_text()
    assert "normalization1 = normalization([" in script and "precision_mode=a16_w16" in script
    assert part.manifest["files"]["hailo/split/model.alls"]["sha256"]
    assert "hailo-split" not in part.manifest["models"]


def test_cli_exits_2_without_the_dfc(hailo_bundle, no_dfc, capsys):
    bundle, calib = hailo_bundle
    assert main(["hailo", "compile", str(bundle), "--calib", str(calib["split"])]) == 2
    err = capsys.readouterr().err
    assert "hailo_dataflow_compiler" in err and "hailo parser onnx" in err


def test_compile_through_the_dfc_double(hailo_bundle, dfc, episodes):
    bundle, calib = hailo_bundle
    result = compile_bundle(bundle, calib["split"], "a16_w16", "hailo8l", episodes=episodes, emulate=True, log=quiet)
    calls = dict(dfc.calls)
    part = read_part(bundle, "split")
    npu = onnx.load(str(part.path("npu")))
    assert calls["ClientRunner"]["hw_arch"] == "hailo8l"
    translate = calls["translate_onnx_model"]
    assert translate["net_name"] == "edgeact_act"
    assert set(translate["start_node_names"] + translate["end_node_names"]) <= {n.name for n in npu.graph.node}
    h, w = part.manifest["policy"]["image_size"]
    assert translate["net_input_shapes"] == {"image": [1, 3, h, w]}
    assert calls["optimize"]["shapes"] == [(32, h, w, 3)] and calls["optimize"]["dtypes"] == ["float32"]
    lo, hi = calls["optimize"]["range"][0]
    assert lo >= 0 and 1 < hi <= 255  # raw pixels: the script normalizes
    assert "normalization(" in calls["load_model_script"]["model_script"]
    assert calls["infer"]["context"] == "SDK_QUANTIZED"
    assert result.emulation["worst_mean_pct"] < 2.0
    assert result.hef.is_file() and (bundle / "hailo/split/model.har").is_file()
    entry = part.manifest["models"]["hailo-split"]
    assert entry == {
        "file": "hailo/split/model.hef",
        "precision": "a16_w16",
        "hw_arch": "hailo8l",
        "dfc_version": "3.33.1",
    }
    assert part.manifest["files"]["hailo/split/model.hef"]["sha256"]


def test_mixed_names_layers_the_parsed_network_has(hailo_bundle, dfc, episodes):
    bundle, calib = hailo_bundle
    result = compile_bundle(bundle, calib["split"], "mixed", episodes=episodes, log=quiet)
    script = (bundle / "hailo/split/model.alls").read_text()
    if result.sixteen_bit_layers:  # the double rejects a script naming a layer it does not have
        assert f"quantization_param([{result.sixteen_bit_layers[0]}" in script
    assert "{output_layer*}" in script


def test_full_mode_calibrates_with_a_dict_of_input_layers(hailo_bundle, dfc):
    bundle, calib = hailo_bundle
    assert calib["full"].suffix == ".npz"
    compile_bundle(bundle, calib["full"], "a16_w16", mode="full", log=quiet)
    assert read_part(bundle, "full").manifest["models"]["hailo"]["file"] == "hailo/full/model.hef"


@pytest.mark.parametrize(
    "bad, message",
    [
        (lambda a: a.transpose(0, 3, 1, 2).copy(), "NCHW"),
        (lambda a: a.astype(np.uint8), "float32"),
        (lambda a: (a / 255.0).astype(np.float32), "0-255"),
        (lambda a: a[:, :-2], "expected"),
    ],
)
def test_bad_calibration_is_refused_before_the_dfc(hailo_bundle, dfc, tmp_path, bad, message):
    bundle, calib = hailo_bundle
    path = tmp_path / "bad.npy"
    np.save(path, bad(np.load(calib["split"])))
    with pytest.raises(DataError, match=message):
        compile_bundle(bundle, path, log=quiet)
    assert not any(name == "ClientRunner" for name, _ in dfc.calls)


def test_register_a_hef_compiled_by_hand(hailo_bundle, tmp_path):
    bundle, _ = hailo_bundle
    hef = tmp_path / "edgeact_act.hef"
    hef.write_bytes(b"\x01hef")
    import_hef(bundle, hef, "split", "hailo8l", "a16_w16", log=quiet)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["models"]["hailo-split"]["precision"] == "a16_w16"
    assert manifest["files"]["hailo/split/model.hef"]["bytes"] == 4
