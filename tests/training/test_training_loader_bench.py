"""`edgeact bench --loader`: both pipelines timed on the same episodes, stage by stage."""

from __future__ import annotations

from edgeact.cli import main
from edgeact.sim.record import record_episodes


def test_loader_bench_prints_both_pipelines_stage_by_stage(tmp_path, capsys):
    record_episodes(tmp_path / "episodes", 2, image_size=(72, 128), seconds=1.0, seed=4)
    assert main(["bench", "--loader", str(tmp_path / "episodes"), "--size", "36x64", "--batch-size", "8"]) == 0
    out = capsys.readouterr().out
    assert "loader at 36x64, batch 8, 0 worker(s)" in out
    for stage in ("| read |", "| decode |", "| resize |", "| collate |", "| index the cache |", "| labels + draws |"):
        assert stage in out
    rates = [line for line in out.splitlines() if line.startswith(("| per-sample loader", "| cached"))]
    assert len(rates) == 3 and all(float(line.split("|")[2].replace(",", "")) > 0 for line in rates)
    assert "| bytes to the device | 27,648 (float32) | 6,912 (uint8) |" in out
    assert main(["bench", "--loader", str(tmp_path / "episodes"), "--size", "big"]) != 0
    assert "write it as HxW" in capsys.readouterr().err
