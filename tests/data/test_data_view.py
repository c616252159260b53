"""`edgeact data view`: a self-contained HTML report that shows frames, plots and takeovers."""

from __future__ import annotations

import re

from datahelpers import smooth_frame

from edgeact.cli import main
from edgeact.data.episodes import EpisodeWriter


def test_report_shows_every_episode_its_frames_plots_and_takeovers(tmp_path, capsys):
    root = tmp_path / "eps"
    for e in range(2):
        with EpisodeWriter(root / f"episode_{e:03d}", fps=30, intervention_column=True) as w:
            for i in range(20):
                w.add(smooth_frame(i), [0.05 * (i - 10), 0.3], intervention=e == 1 and 5 <= i < 9)
    (root / "episode_002").mkdir()  # a broken one is shown with its error, not fatal
    (root / "episode_002" / "meta.json").write_text("{}")
    assert main(["data", "view", str(root)]) == 0
    out = root / "view.html"
    assert f"wrote {out}" in capsys.readouterr().out
    html = out.read_text()
    assert html.count('class="ep"') == 2 and 'class="ep broken"' in html and "meta.json" in html
    assert len(re.findall(r'src="data:image/jpeg;base64,', html)) == 16  # 8 frames per episode, embedded
    assert html.count("<polyline") == 4  # steering and throttle per episode
    assert html.count('<rect x=') == 1 and "4 intervention steps" in html  # one takeover span, episode 1
    assert "http" not in html.replace("http-equiv", "")  # opens from disk: nothing fetched


def test_episodes_are_summed_per_track_and_per_drive_session():
    import numpy as np

    from edgeact.data.episodes import Episode
    from edgeact.data.view import format_groups, group_episodes

    def episode(meta, flags=None, steps=30):
        return Episode("e", None, 10.0, (24, 32), np.arange(steps) / 10, np.zeros((steps, 2), np.float32),
                       np.zeros((steps, 2), np.float32), [], meta=meta, interventions=flags)

    takeovers = np.zeros(30, bool)
    takeovers[3:6] = takeovers[20:22] = True
    rows = group_episodes([
        episode({"track": "oval"}), episode({"track": "winding"}), episode({"track": "oval"}, steps=60),
        episode({"session": "2025-06-01T14:02:11Z", "policy": "/home/pi/edgeact/bundles/rover-0123456789ab"},
                takeovers),
        episode({})])
    assert [(g.name, g.episodes, g.frames, g.takeovers, g.intervention_steps, g.policy) for g in rows] == [
        ("track oval", 2, 90, 0, 0, ""), ("track winding", 1, 30, 0, 0, ""),
        ("session 2025-06-01 14:02 UTC", 1, 30, 2, 5, "rover-0123456789ab"), ("other", 1, 30, 0, 0, "")]
    table = format_groups(rows).splitlines()
    assert table[0].split() == ["episodes", "min", "frames", "takeovers", "takeover", "steps", "policy"]
    assert table[3].split() == ["session", "2025-06-01", "14:02", "UTC", "1", "0.1", "30", "2", "5",
                                "rover-0123456789ab"]
