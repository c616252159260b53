"""The compile driver: model script, the DFC call sequence (through the recording double), the command
lines without a DFC, and registering a HEF compiled by hand."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from edgeact.backends.hailo_part import read_part
from edgeact.cli import main
from edgeact.errors import BackendError, ConfigError, DataError
from edgeact.hailo.compile import SdkMissing, compile_bundle, import_hef


def quiet(_):
    pass


def test_without_the_dfc_it_writes_the_script_and_prints_the_command_lines(hailo_bundle, no_dfc):
    bundle, calib = hailo_bundle
    with pytest.raises(SdkMissing) as info:
        compile_bundle(bundle, calib["split"], "a16_w16", mode="split", log=quiet)
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
    assert main(["hailo", "compile", str(bundle), "--calib", str(calib["split"]), "--mode", "split"]) == 2
    err = capsys.readouterr().err
    assert "hailo_dataflow_compiler" in err and "hailo parser onnx" in err


def test_compile_through_the_dfc_double(hailo_bundle, dfc, episodes):
    bundle, calib = hailo_bundle
    result = compile_bundle(bundle, calib["split"], "a16_w16", "hailo8l", mode="split", episodes=episodes,
                            emulate=True, log=quiet)
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
    assert result.hef.is_file() and (bundle / "hailo/split/hailo8l/model.har").is_file()
    entry = part.manifest["models"]["hailo-split"]["hefs"]["hailo8l"]
    assert entry == {
        "file": "hailo/split/hailo8l/model.hef",
        "har": "hailo/split/hailo8l/model.har",
        "precision": "a16_w16",
        "dfc_version": "3.33.1",
        "hailort": "4.23",  # the HailoRT DFC 3.33 compiles for: what the Pi needs
    }
    assert part.manifest["files"]["hailo/split/hailo8l/model.hef"]["sha256"]


def test_mixed_names_layers_the_parsed_network_has(hailo_bundle, dfc, episodes):
    bundle, calib = hailo_bundle
    result = compile_bundle(bundle, calib["split"], "mixed", mode="split", episodes=episodes, log=quiet)
    script = (bundle / "hailo/split/model.alls").read_text()
    if result.sixteen_bit_layers:  # the double rejects a script naming a layer it does not have
        assert f"quantization_param([{result.sixteen_bit_layers[0]}" in script
    assert "{output_layer*}" in script


def test_full_mode_calibrates_with_a_dict_of_input_layers(hailo_bundle, dfc):
    bundle, calib = hailo_bundle
    assert calib["full"].suffix == ".npz"
    compile_bundle(bundle, calib["full"], "a16_w16", mode="full", log=quiet)
    assert read_part(bundle, "full").hefs["hailo8l"]["file"] == "hailo/full/hailo8l/model.hef"
    translate = dict(dfc.calls)["translate_onnx_model"]  # the double refuses a start node fed by a computed tensor
    assert len(translate["start_node_names"]) == 2


def test_one_bundle_holds_a_hef_per_board(every_board):
    """hailo8l and hailo8 from DFC 3.x (HailoRT 4.23), hailo10h from DFC 5.x (HailoRT 5.2), both parts."""
    for mode, backend in (("split", "hailo-split"), ("full", "hailo")):
        part = read_part(every_board, mode)
        assert {k: (v["dfc_version"], v["hailort"]) for k, v in part.hefs.items()} == {
            "hailo8l": ("3.33.1", "4.23"), "hailo8": ("3.33.1", "4.23"), "hailo10h": ("5.2.0", "5.2")}
        assert part.manifest["models"][backend]["hefs"] == part.hefs
        for hw_arch, entry in part.hefs.items():
            assert entry["file"] == f"hailo/{mode}/{hw_arch}/model.hef" and part.manifest["files"][entry["file"]]


@pytest.mark.parametrize("hw_arch, installed, needs", [("hailo10h", "3.33.1", "5.x"), ("hailo8", "5.2.0", "3.x")])
def test_the_dfc_must_be_the_boards_major(hailo_bundle, monkeypatch, hw_arch, installed, needs):
    import dfc_double

    bundle, calib = hailo_bundle
    module = dfc_double.make_module(version=installed)
    monkeypatch.setitem(__import__("sys").modules, "hailo_sdk_client", module)
    with pytest.raises(ConfigError, match=f"Dataflow Compiler {needs}"):
        compile_bundle(bundle, calib["split"], "a16_w16", hw_arch, mode="split", log=quiet)
    assert not any(name == "ClientRunner" for name, _ in module.calls)


def test_without_the_dfc_the_lines_name_the_board_and_the_dfc_to_install(hailo_bundle, no_dfc):
    bundle, calib = hailo_bundle
    with pytest.raises(SdkMissing) as info:
        compile_bundle(bundle, calib["split"], "a16_w16", "hailo10h", mode="split", log=quiet)
    text = str(info.value)
    assert "AI HAT+ 2" in text and "Dataflow Compiler 5.x" in text and "hailo_dataflow_compiler 5.2.0" in text
    assert text.count("--hw-arch hailo10h") == 4 and "hailo/split/hailo10h" in text and "--dfc-version 5.2.0" in text
    assert "--hw-arch hailo8l" not in text


def test_the_mode_comes_from_a_bundle_with_one_hailo_part(hailo_bundle, dfc, tmp_path):
    import json
    import shutil

    bundle, calib = hailo_bundle
    assert compile_bundle(bundle, calib["split"], "a8_w8", log=quiet).mode == "split"  # both parts: the default cut
    one = tmp_path / "one"
    shutil.copytree(bundle, one)
    manifest = json.loads((one / "manifest.json").read_text())
    del manifest["hailo"]["split"]
    (one / "manifest.json").write_text(json.dumps(manifest))
    assert compile_bundle(one, calib["full"], "a8_w8", log=quiet).mode == "full"  # the only part
    with pytest.raises(DataError, match="input_layer2"):  # calib and emulate resolve it the same way
        compile_bundle(one, calib["split"], "a8_w8", log=quiet)
    del manifest["hailo"]["full"]
    (one / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BackendError, match="edgeact hailo export"):
        compile_bundle(one, calib["split"], "a8_w8", log=quiet)


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
        compile_bundle(bundle, path, mode="split", log=quiet)
    assert not any(name == "ClientRunner" for name, _ in dfc.calls)


def test_register_a_hef_compiled_by_hand(hailo_bundle, tmp_path):
    bundle, _ = hailo_bundle
    hef = tmp_path / "edgeact_act.hef"
    hef.write_bytes(b"\x01hef")
    import_hef(bundle, hef, "split", "hailo10h", "a16_w16", dfc_version="5.2.0", log=quiet)
    manifest = json.loads((bundle / "manifest.json").read_text())
    entry = manifest["models"]["hailo-split"]["hefs"]["hailo10h"]
    assert entry["precision"] == "a16_w16" and entry["hailort"] == "5.2"
    assert manifest["files"]["hailo/split/hailo10h/model.hef"]["bytes"] == 4
    with pytest.raises(ConfigError, match="DFC 3.33.1"):  # a DFC 3 HEF is not a Hailo-10H one
        import_hef(bundle, hef, "split", "hailo10h", "a16_w16", dfc_version="3.33.1", log=quiet)
