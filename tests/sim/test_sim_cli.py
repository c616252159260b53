from __future__ import annotations

import json

import pytest

import edgeact
from edgeact.cli import main
from edgeact.data.episodes import load_episodes
from edgeact.sim.expert import ExpertBackend
from edgeact.sim.track import make_track


def test_sim_record_writes_readable_episodes(tmp_path, capsys):
    out = tmp_path / "eps"
    args = ["sim", "record", "--out", str(out), "--episodes", "2", "--size", "24x32", "--seconds", "0.5",
            "--track", "winding", "--seed", "4"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "[2/2]" in text and "done" in text
    eps = load_episodes(out, validate=True)
    assert [e.name for e in eps] == ["episode_000", "episode_001"]
    for ep in eps:
        assert len(ep) == 15 and ep.image_size == (24, 32) and ep.fps == 30
        assert ep.meta["track"] == "winding" and abs(ep.actions).max() <= 1
    assert eps[0].meta["appearance_seed"] != eps[1].meta["appearance_seed"]
    assert main(args[:5] + ["1", "--size", "24x32", "--seconds", "0.2"]) == 0  # appends
    assert [e.name for e in load_episodes(out)][-1] == "episode_002"
    assert main(args[:5] + ["1", "--size", "48x64", "--seconds", "0.2"]) == 2  # mixed sizes refused
    assert "--size" in capsys.readouterr().err


def test_sim_eval_with_a_policy(tmp_path, monkeypatch, capsys):
    loaded = {}

    def fake_load_policy(path, backend="torch", **kw):
        loaded.update(path=path, backend=backend)
        return ExpertBackend(make_track("oval"), image_size=(24, 32), chunk_size=5)

    monkeypatch.setattr(edgeact, "load_policy", fake_load_policy)
    js, png = tmp_path / "r.json", tmp_path / "p.png"
    rc = main(["sim", "eval", "--model", "m.pt", "--backend", "onnx", "--seconds", "3", "--replan-every", "5",
               "--json", str(js), "--plot", str(png)])
    assert rc == 0 and loaded == {"path": "m.pt", "backend": "onnx"}
    data = json.loads(js.read_text())
    assert {"laps", "mean_cross_track_m", "max_cross_track_m", "off_track_events"} <= set(data)
    assert data["off_track_events"] == 0 and data["replan_every"] == 5
    assert png.exists() and "laps" in capsys.readouterr().out


def test_sim_bench(capsys):
    assert main(["sim", "bench", "--size", "24x32", "--seconds", "0.02"]) == 0
    out = capsys.readouterr().out
    assert "render fps" in out and "24x32" in out


@pytest.mark.parametrize(
    "args,expected",
    [
        (["sim", "bench", "--size", "big"], "HxW"),
        (["sim", "record", "--out", "x", "--episodes", "1", "--track", "spa"], "oval, winding"),
        (["sim", "eval", "--model", "m", "--track", "spa"], "--track"),
        (["sim", "record", "--out", "x", "--episodes", "0"], "--episodes"),
    ],
)
def test_bad_arguments_name_the_fix(args, expected, capsys):
    assert main(args) == 2
    assert expected in capsys.readouterr().err


def test_help(capsys):
    for cmd in (["sim"], ["sim", "record"], ["sim", "eval"], ["sim", "bench"], ["data"], ["data", "stats"],
                ["data", "import-lerobot"]):
        with pytest.raises(SystemExit) as e:
            main([*cmd, "--help"])
        assert e.value.code == 0
    assert "usage" in capsys.readouterr().out
