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
