"""The main job end to end on tiny sizes: every stage real, through the realtime runtime."""

import json

import pytest

from edgeact.demo import DemoConfig, run_demo


@pytest.mark.slow
def test_quick_demo_runs_every_stage_and_reports(tmp_path):
    cfg = DemoConfig.quick(tmp_path / "demo")
    report = run_demo(cfg, log=lambda _: None)
    out = tmp_path / "demo"
    assert json.loads((out / "report.json").read_text()) == json.loads(json.dumps(report))
    assert set(report["backends"]) == {"onnx", "onnx-int8"}
    for name, drive in report["backends"].items():
        # how many commands a loaded machine manages is the benchmark's business, not a test's
        assert drive["commands_sent"] > 0, name
        assert drive["inference_p50_ms"] is not None
        assert not drive["arduino_failsafe"]
        for plot in drive["plots"].values():
            assert (tmp_path / plot).is_file()
    assert report["quantization"]["accuracy_vs_fp32"]["worst_mean_pct"] >= 0
    md = (out / "report.md").read_text()
    assert "| onnx-int8 |" in md and "drive-onnx/trajectory.png" in md
