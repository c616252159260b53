"""`edgeact bench` on a tiny bundle: runs, writes JSON and PNG, reports every backend."""

from __future__ import annotations

import json

import pytest
import torch

from edgeact.config import ACTConfig, rover_features

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    from edgeact.bench import random_checkpoint
    from edgeact.export.onnx_export import export_bundle
    from edgeact.export.quantize_onnx import quantize_bundle

    inputs, outputs = rover_features((64, 96))
    config = ACTConfig(input_features=inputs, output_features=outputs, pretrained_backbone_weights=None,
                       dim_model=32, n_heads=4, dim_feedforward=64, n_encoder_layers=1, n_decoder_layers=1,
                       n_vae_encoder_layers=1, latent_dim=8, chunk_size=10, n_action_steps=10)
    root = tmp_path_factory.mktemp("bench")
    ckpt = random_checkpoint(config, root / "ckpt")
    bundle = export_bundle(ckpt, root / "bundle", n_parity=1, log=lambda s: None).bundle
    quantize_bundle(bundle, None, frames=2, heldout=2, target="x86", log=lambda s: None)
    return bundle


def test_bench_command_writes_json_and_png(tiny_bundle, tmp_path, capsys):
    from edgeact.cli import main

    out_json, out_png = tmp_path / "bench.json", tmp_path / "bench.png"
    rc = main(["bench", str(tiny_bundle), "--runs", "4", "--warmup", "1", "--n-frames", "2", "--threads", "1",
               "--no-peak", "--json", str(out_json), "--png", str(out_png)])
    assert rc == 0
    text = capsys.readouterr().out
    for name in ("torch", "onnx", "onnx-int8", "p50 ms", "vs torch", "GOP/s", "% peak", "synthetic frames",
                 "load average", "throttling"):
        assert name in text
    report = json.loads(out_json.read_text())
    rows = {r["backend"]: r for r in report["rows"]}
    assert list(rows) == ["torch", "onnx", "onnx-int8"]  # torch-int8 was never built
    assert rows["torch"]["speedup_vs_reference"] == 1.0 and report["reference"] == "torch"
    assert rows["onnx-int8"]["precision"] == "int8" and rows["onnx"]["precision"] == "fp32"
    for r in rows.values():
        # the peak assumes the clock /proc/cpuinfo states; a VM's boosting CPU can run above it
        assert r["threads"] == 1 and (r["peak_pct"] is None or r["peak_pct"] > 0)
        assert (r["peak_pct"] or 0) <= 100 or "over 100 % of the peak" in text
        assert r["runs"] == 4 and len(r["latencies_ms"]) == 4
        assert 0 < r["p50_ms"] <= r["p99_ms"]
        assert r["rate_hz"] == pytest.approx(1000 / r["p50_ms"])
        assert r["gflops"] > 0 and r["size_mb"] > 0
        assert len(r["error_pct"]) == 2
    assert rows["onnx"]["error_pct"][0] < 1e-3
    assert "synthetic" in report["error_source"]
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_matmul_peaks():
    from edgeact.bench import matmul_peaks

    peaks = matmul_peaks(1, size=128, seconds=0.05)
    assert peaks["fp32_gflops"] >= peaks["fp32_torch_gflops"] > 0
    assert peaks.get("int8_gops", 1) > 0


def test_bench_rejects_unknown_backend(tiny_bundle):
    from edgeact.bench import bench_bundle
    from edgeact.errors import BackendError

    with pytest.raises(BackendError, match="unknown backend"):
        bench_bundle(tiny_bundle, ["onnx", "tensorrt"], runs=1, log=lambda s: None)


def test_bench_closes_every_backend_when_a_stage_fails(tiny_bundle, monkeypatch):
    import edgeact
    from edgeact import bench

    opened = []
    load = edgeact.load_policy

    def load_and_track(*args, **kwargs):
        backend = load(*args, **kwargs)
        close = backend.close
        opened.append([backend.name, False])
        entry = opened[-1]

        def tracked_close():
            entry[1] = True
            close()

        backend.close = tracked_close
        return backend

    def broken(*args, **kwargs):
        raise RuntimeError("stage failed")

    monkeypatch.setattr(edgeact, "load_policy", load_and_track)
    monkeypatch.setattr(bench, "_action_errors", broken)
    with pytest.raises(RuntimeError, match="stage failed"):
        bench.bench_bundle(tiny_bundle, ["onnx"], runs=1, warmup=0, n_frames=2, peak=False, log=lambda s: None)
    assert opened == [["torch", True], ["onnx", True]]


def test_bench_cli_needs_a_bundle_or_workload(capsys):
    from edgeact.cli import main

    assert main(["bench"]) == 2
    assert "--workload lerobot-default" in capsys.readouterr().err


def test_lerobot_default_workload_config():
    from edgeact.bench import lerobot_default_config

    c = lerobot_default_config()
    assert (c.dim_model, c.n_heads, c.dim_feedforward, c.n_encoder_layers, c.n_decoder_layers) == (512, 8, 3200, 4, 1)
    got = (c.chunk_size, c.vision_backbone, c.image_size, c.state_dim, c.action_dim)
    assert got == (100, "resnet18", (360, 640), 2, 2)


def test_bench_runs_without_torch_at_each_thread_count(tiny_bundle, tmp_path):
    """The Pi owner's command: no torch, ONNX Runtime fp32 is the reference, one row per backend and thread count,
    with this CPU's peak and the thermal state in the JSON."""
    from without_torch import run_without

    out = tmp_path / "pi.json"
    code = ("from edgeact.cli import main\n"
            "raise SystemExit(main(['bench', sys.argv[1], '--runs', '2', '--warmup', '1', '--n-frames', '2', "
            "'--threads', '1-2', '--json', sys.argv[2]]))\n")
    done = run_without(code, str(tiny_bundle), str(out), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["reference"] == "onnx"
    assert [(r["backend"], r["threads"]) for r in report["rows"]] == [
        ("onnx", 1), ("onnx-int8", 1), ("onnx", 2), ("onnx-int8", 2)]
    assert "before" in report["thermal"] and "after" in report["thermal"]
    assert report["cpu_peak"]["per_core"].keys() == {"int8", "fp16", "fp32"}
    assert "vs onnx" in done.stdout and "throttling" in done.stdout


def test_thread_list_parsing():
    import argparse

    from edgeact.commands.bench import _thread_list

    assert _thread_list("4") == [4] and _thread_list("1,2,4") == [1, 2, 4] and _thread_list("1-4") == [1, 2, 3, 4]
    with pytest.raises(argparse.ArgumentTypeError, match="1-4"):
        _thread_list("four")
