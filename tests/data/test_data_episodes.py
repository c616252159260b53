from __future__ import annotations

import json
import math

import numpy as np
import pytest
from datahelpers import make_actions, smooth_frame, synthetic_writer

from edgeact.data.episodes import (
    EpisodeWriter,
    episode_dirs,
    load_episodes,
    read_episode,
    validate_frames,
    write_episode,
)
from edgeact.errors import DataError


@pytest.fixture
def write_synthetic(tmp_path):
    return synthetic_writer(tmp_path)


def test_write_read_round_trip(write_synthetic):
    path, actions = write_synthetic(n=8)
    ep = read_episode(path)
    assert ep.name == "episode_000" and len(ep) == 8
    assert ep.fps == 30 and ep.image_size == (24, 32)
    np.testing.assert_allclose(ep.actions, actions, atol=1e-5)
    np.testing.assert_allclose(ep.timestamps, np.arange(8) / 30, atol=1e-6)
    # no state columns: state[t] = command at t-1, zeros at t = 0
    np.testing.assert_array_equal(ep.states[0], [0, 0])
    np.testing.assert_allclose(ep.states[1:], ep.actions[:-1])
    assert not ep.state_from_columns
    for i in (0, 7):
        frame = ep.load_frame(i)
        assert frame.dtype == np.uint8 and frame.shape == (24, 32, 3)
        assert np.abs(frame.astype(int) - smooth_frame(i)).mean() < 4  # JPEG, RGB order kept
    meta = json.loads((path / "meta.json").read_text())
    assert meta["fps"] == 30 and meta["image_size"] == [24, 32]


def test_state_columns_round_trip(tmp_path):
    actions = make_actions(5)
    states = np.stack([np.arange(5) * 0.1, -np.arange(5) * 0.2], axis=1)
    path = write_episode(
        tmp_path / "ep", (smooth_frame(i) for i in range(5)), actions, fps=15, states=states, state_names=["a", "b"]
    )
    header = (path / "data.csv").read_text().splitlines()[0]
    assert header == "frame,timestamp,steering,throttle,state_a,state_b"
    ep = read_episode(path)
    assert ep.state_from_columns and ep.state_names == ("a", "b")
    np.testing.assert_allclose(ep.states, states, atol=1e-6)


def test_failed_write_leaves_nothing(tmp_path):
    def frames():
        yield smooth_frame(0)
        yield smooth_frame(1)
        raise RuntimeError("camera died")

    with pytest.raises(RuntimeError):
        write_episode(tmp_path / "episode_000", frames(), make_actions(4), fps=30)
    assert list(tmp_path.iterdir()) == []  # no episode, no temp dir


def test_writer_refuses_bad_input(tmp_path):
    with pytest.raises(DataError, match=r"outside \[-1, 1\]"):
        write_episode(tmp_path / "e", [smooth_frame(0)], [[1.5, 0.0]], fps=30)
    with pytest.raises(DataError, match="frames for"):
        write_episode(tmp_path / "e", [smooth_frame(0)], make_actions(3), fps=30)
    with EpisodeWriter(tmp_path / "e2", fps=30) as w:
        w.add(smooth_frame(0), [0, 0])
        with pytest.raises(DataError, match="earlier frames"):
            w.add(smooth_frame(1, size=(10, 10)), [0, 0])
    assert read_episode(tmp_path / "e2").image_size == (24, 32)
    assert [p.name for p in tmp_path.iterdir()] == ["e2"]


def _csv(path):
    return path / "data.csv"


def _rewrite_csv(path, fn):
    lines = _csv(path).read_text().splitlines()
    _csv(path).write_text("\n".join(fn(lines)) + "\n")


def _set_cell(path, row, col, value):
    def fn(lines):
        cells = lines[row + 1].split(",")
        cells[col] = value
        lines[row + 1] = ",".join(cells)
        return lines

    _rewrite_csv(path, fn)


CASES = {
    "missing frame": (lambda p: (p / "frames" / "000003.jpg").unlink(), ["episode_000", "000003.jpg"]),
    "extra csv row": (lambda p: _rewrite_csv(p, lambda rows: rows + ["8,0.266667,0,0"]),
                      ["length mismatch", "data.csv", "frames"]),
    "extra frame": (
        lambda p: (p / "frames" / "000008.jpg").write_bytes((p / "frames" / "000000.jpg").read_bytes()),
        ["length mismatch", "9 images"],
    ),
    "nan": (lambda p: _set_cell(p, 2, 2, "nan"), ["data.csv", "line 4", "steering", "NaN"]),
    "out of range": (lambda p: _set_cell(p, 5, 3, "1.7"), ["data.csv", "throttle", r"outside [-1, 1]"]),
    "missing meta": (lambda p: (p / "meta.json").unlink(), ["meta.json", "missing"]),
    "bad meta": (lambda p: (p / "meta.json").write_text('{"fps": 30}'), ["meta.json", "image_size"]),
    "bad header": (
        lambda p: _rewrite_csv(p, lambda rows: ["frame,time,steering,throttle"] + rows[1:]),
        ["data.csv", "bad header", "timestamp"],
    ),
    "not a number": (lambda p: _set_cell(p, 1, 3, "fast"), ["data.csv", "line 3", "not a number"]),
    "unreadable first frame": (
        lambda p: (p / "frames" / "000000.jpg").write_bytes(b"not a jpeg"),
        ["000000.jpg", "unreadable"],
    ),
    "wrong frame size": (
        lambda p: (p / "meta.json").write_text('{"fps": 30, "image_size": [48, 64]}'),
        ["000000.jpg", "image_size"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_episode_names_file_and_problem(write_synthetic, case):
    path, _ = write_synthetic(n=8)
    corrupt, expected = CASES[case]
    corrupt(path)
    with pytest.raises(DataError) as err:
        read_episode(path)
    msg = str(err.value)
    assert "episode_000" in msg
    for part in expected:
        assert part in msg, (part, msg)


def test_unreadable_later_frame_found_by_validation_and_load(write_synthetic):
    path, _ = write_synthetic(n=6)
    (path / "frames" / "000004.jpg").write_bytes(b"\xff\xd8 truncated")
    ep = read_episode(path)  # cheap read checks existence only
    with pytest.raises(DataError, match="000004.jpg"):
        validate_frames(ep)
    with pytest.raises(DataError, match="episode_000.*000004.jpg"):
        ep.load_frame(4)


def test_mixed_image_sizes_across_episodes(write_synthetic, tmp_path):
    write_synthetic("episode_000", size=(24, 32))
    write_synthetic("episode_001", size=(24, 32))
    write_synthetic("episode_002", size=(12, 16))
    with pytest.raises(DataError) as err:
        load_episodes(tmp_path / "episodes")
    msg = str(err.value)
    assert "mixed image sizes" in msg and "episode_002" in msg and "episode_000" in msg


def test_load_episodes(write_synthetic, tmp_path):
    write_synthetic("episode_001")
    write_synthetic("episode_000")
    root = tmp_path / "episodes"
    (root / ".episode_002.abc.tmp").mkdir()  # an interrupted write is ignored
    (root / "notes").mkdir()
    assert [p.name for p in episode_dirs(root)] == ["episode_000", "episode_001"]
    assert episode_dirs(root / "episode_001") == [root / "episode_001"]
    eps = load_episodes(root)
    assert [e.name for e in eps] == ["episode_000", "episode_001"] and len(eps[1]) == 8
    assert [e.name for e in load_episodes(root, validate=True)] == ["episode_000", "episode_001"]
    with pytest.raises(DataError, match="no episodes"):
        load_episodes(tmp_path / "episodes" / "notes")
    with pytest.raises(DataError, match="not a directory"):
        episode_dirs(tmp_path / "nope")


def test_overwrite_replaces_atomically(write_synthetic):
    path, _ = write_synthetic(n=4)
    with pytest.raises(DataError, match="already exists"):
        write_episode(path, [smooth_frame(0)], [[0.0, 0.0]], fps=30)
    write_episode(path, [smooth_frame(0)], [[0.25, 0.5]], fps=10, overwrite=True)
    ep = read_episode(path)
    assert len(ep) == 1 and ep.fps == 10 and math.isclose(float(ep.actions[0, 0]), 0.25)
    assert sorted(p.name for p in path.parent.iterdir()) == ["episode_000"]


def test_intervention_column_round_trip_and_bad_values(tmp_path):
    from edgeact.data.episodes import EpisodeWriter, read_episode

    with EpisodeWriter(tmp_path / "episode_000", fps=30, intervention_column=True) as w:
        for i in range(6):
            w.add(smooth_frame(i), [0.1 * i, 0.2], intervention=2 <= i < 4)
    ep = read_episode(tmp_path / "episode_000")
    assert ep.interventions is not None and ep.interventions.tolist() == [False, False, True, True, False, False]
    assert ep.actions.shape == (6, 2) and not ep.state_from_columns  # the flag is not a state column
    csv_path = tmp_path / "episode_000" / "data.csv"
    lines = csv_path.read_text().splitlines()
    assert lines[0].endswith(",intervention")
    lines[3] = lines[3].rsplit(",", 1)[0] + ",0.5"
    csv_path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="line 4: intervention must be 0 or 1, got 0.5"):
        read_episode(tmp_path / "episode_000")
