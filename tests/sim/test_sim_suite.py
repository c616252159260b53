"""Generalization evaluation: per-track table, one figure, and a holdout that never lies."""

from __future__ import annotations

import json

import pytest

from edgeact.cli import main
from edgeact.errors import ConfigError
from edgeact.sim.coverage import OTHER_DIRECTION, SEEN, UNSEEN, TrainingCoverage, coverage_of_episodes
from edgeact.sim.record import record_episodes
from edgeact.training.loop import TrainConfig, train

SMALL = {"dim_model": 32, "n_heads": 4, "dim_feedforward": 64, "n_encoder_layers": 1, "n_vae_encoder_layers": 1,
         "latent_dim": 8, "chunk_size": 8, "n_action_steps": 8}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("suite")
    record_episodes(root / "eps", 2, track=["oval", "winding-rev"], image_size=(96, 128), seconds=0.5, seed=9)
    train(TrainConfig(data=root / "eps", out=root / "model", steps=2, eval_every=2, batch_size=4, overrides=SMALL),
          progress=lambda _: None)
    return root


def test_coverage_statuses_and_refusals():
    cov = TrainingCoverage(("oval", "winding-rev"), frozenset({5, 6}), "test")
    assert cov.status("oval") == SEEN and cov.status("winding") == OTHER_DIRECTION and cov.status("peanut") == UNSEEN
    held = cov.held_out(None)
    assert "oval" not in held and "winding" not in held and "peanut-rev" in held
    with pytest.raises(ConfigError, match="winding is not held out"):
        cov.held_out(["peanut", "winding"])
    assert cov.unseen_seed(5) == 7 and cov.unseen_seed(9) == 9


def test_training_records_its_coverage_and_eval_reads_it(trained):
    meta = json.loads((trained / "model" / "best" / "edgeact.json").read_text())
    assert meta["training_data"]["tracks"] == ["oval", "winding-rev"]
    seeds = coverage_of_episodes(trained / "eps").appearance_seeds
    assert set(meta["training_data"]["appearance_seeds"]) == seeds


def test_eval_tracks_table_json_and_figure(trained, tmp_path, capsys):
    args = ["sim", "eval", "--model", str(trained / "model"), "--tracks", "oval,peanut-rev", "--seconds", "1",
            "--json", str(tmp_path / "r.json"), "--plot", str(tmp_path / "r.png")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "| oval | seen |" in out and "| peanut-rev | unseen |" in out and "| all tracks | 2 |" in out
    result = json.loads((tmp_path / "r.json").read_text())
    assert [t["track"] for t in result["tracks"]] == ["oval", "peanut-rev"]
    assert result["tracks"][0]["seed"] not in coverage_of_episodes(trained / "eps").appearance_seeds
    assert (tmp_path / "r.png").stat().st_size > 5000


def test_holdout_evaluates_only_unseen_tracks_and_refuses_seen_ones(trained, tmp_path, capsys):
    assert main(["sim", "eval", "--model", str(trained / "model"), "--holdout", "--seconds", "0.3",
                 "--json", str(tmp_path / "h.json")]) == 0
    tracks = [t["track"] for t in json.loads((tmp_path / "h.json").read_text())["tracks"]]
    assert tracks and not {"oval", "oval-rev", "winding", "winding-rev"} & set(tracks) and "narrows-rev" in tracks
    assert all(t["training"] == UNSEEN for t in json.loads((tmp_path / "h.json").read_text())["tracks"])
    capsys.readouterr()
    assert main(["sim", "eval", "--model", str(trained / "model"), "--tracks", "winding", "--holdout"]) == 2
    assert "winding is not held out" in capsys.readouterr().err
