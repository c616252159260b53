"""Training end to end on a few tiny simulator episodes (seconds, CPU)."""

import json

import numpy as np
import pytest

import edgeact
from edgeact.errors import ConfigError, DataError
from edgeact.sim.record import record_episodes
from edgeact.training.loop import TrainConfig, train

SMALL = {"dim_model": 32, "n_heads": 4, "dim_feedforward": 64, "n_encoder_layers": 1,
         "n_vae_encoder_layers": 1, "latent_dim": 8, "chunk_size": 8, "n_action_steps": 8}


@pytest.fixture(scope="module")
def episodes(tmp_path_factory):
    root = tmp_path_factory.mktemp("episodes")
    record_episodes(root, 3, image_size=(96, 128), seconds=1.5, seed=3)
    return root


def small_train(episodes, out, **kw):
    cfg = TrainConfig(data=episodes, out=out, steps=kw.pop("steps", 6), eval_every=3, batch_size=4,
                      overrides=SMALL, **kw)
    return train(cfg, progress=lambda _: None)


def test_train_writes_lerobot_dirs_log_and_plot(episodes, tmp_path):
    result = small_train(episodes, tmp_path / "run")
    out = tmp_path / "run"
    for name in ("best", "last"):
        assert (out / name / "model.safetensors").is_file()
        assert (out / name / "policy_preprocessor.json").is_file()
    assert (out / "loss.png").stat().st_size > 1000
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [3, 6]
    assert result.best_step in (3, 6) and np.isfinite(result.best_val_l1)
    # the training output loads as a policy (best/), with the data's fps
    policy = edgeact.load_policy(str(out))
    assert policy.spec.fps == 30 and policy.spec.image_size == (96, 128)
    chunk = policy.predict_chunk(np.zeros((96, 128, 3), np.uint8), np.zeros(2, np.float32))
    assert chunk.shape == (8, 2) and np.all(np.isfinite(chunk))


def test_resume_continues_from_last(episodes, tmp_path):
    small_train(episodes, tmp_path / "run", steps=3)
    result = small_train(episodes, tmp_path / "run", steps=6, resume=True)
    assert result.steps == 6
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert steps == [3, 6]
    with pytest.raises(ConfigError, match="already at step 6"):
        small_train(episodes, tmp_path / "run", steps=6, resume=True)


def test_resume_without_state_says_so(episodes, tmp_path):
    with pytest.raises(ConfigError, match="--resume"):
        small_train(episodes, tmp_path / "nothing", resume=True)


def test_resume_on_data_of_another_size_is_refused_before_training(episodes, tmp_path):
    small_train(episodes, tmp_path / "run", steps=3)
    other = tmp_path / "other"
    record_episodes(other, 2, image_size=(64, 96), seconds=1.0)
    with pytest.raises(DataError, match="64x96 frames but the checkpoint"):
        train(TrainConfig(data=other, out=tmp_path / "run", steps=6, resume=True, preset="rover"),
              progress=lambda _: None)


def test_one_episode_is_not_enough(tmp_path):
    record_episodes(tmp_path / "one", 1, image_size=(64, 96), seconds=1.0)
    with pytest.raises(DataError, match="at least 2"):
        small_train(tmp_path / "one", tmp_path / "run")


def test_train_cli(episodes, tmp_path, capsys):
    from edgeact.cli import main

    code = main(["train", "--data_dir", str(episodes), "--out", str(tmp_path / "cli"), "--steps", "2",
                 "--eval-every", "2", "--batch-size", "4"])
    assert code == 0
    assert (tmp_path / "cli" / "best" / "config.json").is_file()


def test_train_at_another_input_size(episodes, tmp_path, capsys):
    """--size fits the 96x128 episodes to 48x64 (centre crop to 4:3, resize): the model takes 48x64."""
    import json

    from edgeact.cli import main

    code = main(["train", "--data", str(episodes), "--out", str(tmp_path / "small"), "--steps", "2",
                 "--eval-every", "2", "--batch-size", "4", "--size", "48x64"])
    assert code == 0 and "resized as they are decoded" in capsys.readouterr().out
    config = json.loads((tmp_path / "small" / "best" / "config.json").read_text())
    assert config["input_features"]["observation.images.cam_front"]["shape"] == [3, 48, 64]
    assert main(["train", "--data", str(episodes), "--out", str(tmp_path / "bad"), "--size", "48by64"]) == 2


@pytest.mark.slow
def test_training_bench_times_every_speed_up_on_the_same_batches(episodes):
    import torch

    from edgeact.training.benchmark import BF16, VARIANTS, bench_training, format_table
    from edgeact.training.step import native_bf16

    timings = bench_training(episodes, steps=1, rounds=1, progress=lambda _: None)
    assert [t.variant for t in timings] == list(VARIANTS)
    # every variant runs but bf16 autocast on a CPU without native bf16 (an AVX2-only EPYC); the ones
    # after it then run in fp32
    skipped = [t.variant for t in timings if t.skipped]
    assert skipped == ([] if native_bf16(torch.device("cpu")) else [BF16])
    assert all(t.seconds_per_step > 0 for t in timings if not t.skipped)
    table = format_table(timings, 1)
    assert "| reference: fp32" in table and "1.00x" in table and "decoded-frame cache" in table
def test_intervention_weight_draws_takeover_steps_more_often(tmp_path):
    from edgeact.data.dataset import EpisodeDataset
    from edgeact.data.episodes import EpisodeWriter, load_episodes
    from edgeact.training.loop import intervention_weights
    from edgeact.training.sampler import GlobalBatchSampler

    for e in range(2):
        with EpisodeWriter(tmp_path / f"episode_{e:03d}", fps=30, intervention_column=True) as w:
            for i in range(20):
                w.add(np.full((16, 16, 3), i, np.uint8), [0.0, 0.1], intervention=e == 0 and i < 2)
    data = EpisodeDataset(load_episodes(tmp_path), chunk_size=4)
    flags = data.intervention_mask()
    assert flags.sum() == 2 and flags[:2].all()
    said = []
    sampler = GlobalBatchSampler(len(data), 8, seed=0, weights=intervention_weights(data, 10.0, said.append))
    drawn = np.concatenate([sampler.indices(step) for step in range(15)])
    share = np.isin(drawn, np.flatnonzero(flags)).mean()
    assert share > 0.2  # 2 of 40 steps (5%) weighted 10x: about 36% of the draws
    assert "2 of 40 training steps are interventions, drawn 10x" in said[0]
    assert intervention_weights(data, 1.0) is None
    with pytest.raises(ConfigError, match="positive"):
        intervention_weights(data, 0.0)
