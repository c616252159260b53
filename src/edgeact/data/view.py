"""`edgeact data view DIR`: one self-contained HTML page to check recordings before training.

At the top, a table per track (simulator episodes) or per drive session (``edgeact drive``
episodes: one run of the command, with the policy that drove in auto modes). Per episode: a
strip of frames across it, steering and throttle against time with the steps where a person
took over (the ``intervention`` column) shaded, and a few numbers.
An episode that does not read is shown with its error instead of stopping the report.
Frames are embedded as small JPEGs and plots as inline SVG: the file opens from disk in
any browser, with no server and nothing to download.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgeact.data.episodes import Episode, episode_dirs, read_episode
from edgeact.errors import DataError
from edgeact.fileio import atomic_write_text

STRIP_FRAMES = 8
THUMB_WIDTH = 160
PLOT_W, PLOT_H = 760, 150


def write_report(root: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Write the report of the episodes under ``root`` to ``out`` (default ROOT/view.html); return its path."""
    root = Path(root)
    dirs = episode_dirs(root)
    cards, totals = [], {"episodes": 0, "steps": 0, "seconds": 0.0, "interventions": 0, "broken": 0}
    episodes = []
    for d in dirs:
        try:
            ep = read_episode(d)
        except DataError as err:
            totals["broken"] += 1
            cards.append(f'<section class="ep broken"><h2>{_e(d.name)}</h2><p class="err">{_e(str(err))}</p></section>')
            continue
        episodes.append(ep)
        totals["episodes"] += 1
        totals["steps"] += len(ep)
        totals["seconds"] += ep.duration_s
        totals["interventions"] += int(ep.interventions.sum()) if ep.interventions is not None else 0
        cards.append(_episode_card(ep))
    path = Path(out) if out else root / "view.html"
    atomic_write_text(path, _page(root, totals, [_groups_table(group_episodes(episodes)), *cards]))
    return path


@dataclass(frozen=True)
class Group:
    """Episodes of one track (simulator) or one drive session (``edgeact drive``), summed."""

    name: str  # "track oval", "session 2025-06-01 14:02 UTC", or "other"
    episodes: int
    frames: int
    seconds: float
    takeovers: int  # separate stretches where a person took over from the policy
    intervention_steps: int
    policy: str  # who drove in the auto modes (the model's folder name); "" when driven by hand


def group_of(ep: Episode) -> str:
    meta = ep.meta
    if "track" in meta:
        return f"track {meta['track']}"
    if "session" in meta:
        return f"session {str(meta['session']).replace('T', ' ').removesuffix('Z')[:16]} UTC"
    return "other"


def group_episodes(episodes: Sequence[Episode]) -> list[Group]:
    """One row per track or session, in the order they first appear."""
    members: dict[str, list[Episode]] = {}
    for ep in episodes:
        members.setdefault(group_of(ep), []).append(ep)
    rows = []
    for name, eps in members.items():
        flags = [ep.interventions for ep in eps if ep.interventions is not None]
        policies = sorted({Path(str(ep.meta["policy"])).name for ep in eps if ep.meta.get("policy")})
        rows.append(Group(name, len(eps), sum(len(ep) for ep in eps), sum(ep.duration_s for ep in eps),
                          sum(takeovers(f) for f in flags), int(sum(f.sum() for f in flags)), ", ".join(policies)))
    return rows


GROUP_COLUMNS = ("", "episodes", "min", "frames", "takeovers", "takeover steps", "policy")


def _group_cells(g: Group) -> tuple[str, ...]:
    return (g.name, str(g.episodes), f"{g.seconds / 60:.1f}", str(g.frames), str(g.takeovers),
            str(g.intervention_steps), g.policy or "-")


def format_groups(rows: Sequence[Group]) -> str:
    """The per-track / per-session table as text."""
    table = [GROUP_COLUMNS, *(_group_cells(g) for g in rows)]
    widths = [max(len(r[i]) for r in table) for i in range(len(GROUP_COLUMNS))]
    return "\n".join("  ".join(c.ljust(w) if i in (0, 6) else c.rjust(w) for i, (c, w) in
                               enumerate(zip(r, widths))).rstrip() for r in table)


def _groups_table(rows: Sequence[Group]) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{_e(c)}</th>" for c in GROUP_COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in _group_cells(g)) + "</tr>" for g in rows)
    return f'<table class="groups"><tr>{head}</tr>{body}</table>'


def _episode_card(ep: Episode) -> str:
    steering, throttle = ep.actions[:, 0], ep.actions[:, 1]
    flags = ep.interventions if ep.interventions is not None else np.zeros(len(ep), dtype=bool)
    neutral = float(np.mean((np.abs(steering) < 1e-3) & (np.abs(throttle) < 1e-3)))
    facts = [f"{len(ep)} steps", f"{ep.duration_s:.1f} s at {ep.fps:g} fps", f"{ep.image_size[1]}x{ep.image_size[0]}",
             f"steering mean {steering.mean():+.2f} sd {steering.std():.2f}", f"throttle mean {throttle.mean():+.2f}",
             f"{neutral:.0%} neutral"]
    if ep.interventions is not None:
        facts.append(f"{int(flags.sum())} intervention steps ({flags.mean():.0%})")
    cadence = ep.meta.get("cadence") if isinstance(ep.meta.get("cadence"), dict) else None
    if cadence:
        facts.append(f"recorded at {cadence.get('achieved_hz', 0):.1f} Hz, {cadence.get('dropped', 0)} dropped")
    return (f'<section class="ep"><h2>{_e(ep.name)}</h2><p class="facts">{" · ".join(_e(f) for f in facts)}</p>'
            f'<div class="strip">{_strip(ep)}</div>{_plot(ep.timestamps - ep.timestamps[0], steering, throttle, flags)}'
            "</section>")


def _strip(ep: Episode) -> str:
    picks = np.unique(np.linspace(0, len(ep) - 1, min(STRIP_FRAMES, len(ep))).round().astype(int))
    cells = []
    for i in picks:
        try:
            img = ep.load_frame(int(i))
        except DataError as err:
            cells.append(f'<figure class="missing"><figcaption>{i}: {_e(str(err))}</figcaption></figure>')
            continue
        h, w = img.shape[:2]
        thumb = cv2.resize(img, (THUMB_WIDTH, max(1, round(h * THUMB_WIDTH / w))), interpolation=cv2.INTER_AREA)
        ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(thumb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
        src = "data:image/jpeg;base64," + base64.b64encode(jpg.tobytes()).decode() if ok else ""
        mark = " person" if ep.interventions is not None and ep.interventions[i] else ""
        cells.append(f'<figure class="{mark.strip()}"><img src="{src}" alt="frame {i}"><figcaption>'
                     f"{i} · s {ep.actions[i, 0]:+.2f} t {ep.actions[i, 1]:+.2f}{' · person' if mark else ''}"
                     "</figcaption></figure>")
    return "".join(cells)


def _plot(t: np.ndarray, steering: np.ndarray, throttle: np.ndarray, flags: np.ndarray) -> str:
    """Steering and throttle in [-1, 1] against time, intervention spans shaded, as inline SVG."""
    span = float(t[-1]) if len(t) > 1 and t[-1] > 0 else 1.0
    x = lambda v: 40 + (PLOT_W - 50) * v / span  # noqa: E731
    y = lambda v: 10 + (PLOT_H - 30) * (1 - v) / 2  # noqa: E731
    parts = [f'<svg viewBox="0 0 {PLOT_W} {PLOT_H}" class="plot" role="img" aria-label="steering and throttle">']
    for start, end in _runs(flags):
        t_end = t[end] if end < len(t) else t[-1] + span / max(1, len(t))
        parts.append(f'<rect x="{x(t[start]):.1f}" y="8" width="{max(1.0, x(t_end) - x(t[start])):.1f}" '
                     f'height="{PLOT_H - 26}" class="person"/>')
    for v in (-1, 0, 1):
        parts.append(f'<line x1="40" x2="{PLOT_W - 10}" y1="{y(v):.1f}" y2="{y(v):.1f}" class="grid"/>'
                     f'<text x="34" y="{y(v) + 4:.1f}" class="tick">{v:+d}</text>')
    for name, values in (("steering", steering), ("throttle", throttle)):
        step = max(1, len(t) // 600)
        pts = " ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in zip(t[::step], values[::step]))
        parts.append(f'<polyline points="{pts}" class="{name}"/>')
    parts.append(f'<text x="40" y="{PLOT_H - 4}" class="tick">0 s</text>'
                 f'<text x="{PLOT_W - 10}" y="{PLOT_H - 4}" class="tick end">{span:.1f} s</text></svg>')
    return "".join(parts)


def takeovers(flags: np.ndarray) -> int:
    """Separate stretches where a person took over (runs of 1 in the intervention column)."""
    return len(_runs(flags))


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) index ranges where ``flags`` is True."""
    padded = np.concatenate([[False], flags.astype(bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _page(root: Path, totals: dict, cards: list[str]) -> str:
    summary = (f"{totals['episodes']} episodes · {totals['steps']} steps · {totals['seconds'] / 60:.1f} min · "
               f"{totals['interventions']} intervention steps")
    if totals["broken"]:
        summary += f" · <b class='err'>{totals['broken']} unreadable</b>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(root.name)} · edgeact data view</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 0; padding: 16px; background: #f6f7f9; color: #1c232b; }}
h1 {{ font-size: 20px; margin: 0 0 4px; }} h2 {{ font-size: 16px; margin: 0 0 4px; }}
.ep {{ background: #fff; border-radius: 10px; padding: 12px; margin: 12px 0; box-shadow: 0 1px 3px #0001; }}
.facts {{ color: #56606b; margin: 0 0 8px; }} .err {{ color: #c0182c; }}
.strip {{ display: flex; gap: 6px; overflow-x: auto; }}
figure {{ margin: 0; flex: none; }} figure img {{ width: {THUMB_WIDTH}px; border-radius: 4px; display: block; }}
figure.person img {{ outline: 3px solid #f59e0b; }}
figcaption {{ font-size: 11px; color: #56606b; }}
.plot {{ width: 100%; max-width: {PLOT_W}px; height: auto; margin-top: 8px; }}
.plot .grid {{ stroke: #e3e6ea; }} .plot .tick {{ font-size: 10px; fill: #8a939d; text-anchor: end; }}
.plot .tick.end {{ text-anchor: end; }}
.plot polyline {{ fill: none; stroke-width: 1.6; }} .plot .steering {{ stroke: #2563eb; }}
.plot .throttle {{ stroke: #16a34a; }} .plot .person {{ fill: #f59e0b33; }}
.legend span {{ margin-right: 12px; }}
.groups {{ border-collapse: collapse; background: #fff; margin: 8px 0; }}
.groups td, .groups th {{ padding: 4px 10px; border-bottom: 1px solid #e3e6ea; text-align: right; }}
.groups td:first-child, .groups td:last-child, .groups th:first-child {{ text-align: left; }}
</style></head><body>
<h1>{_e(str(root))}</h1>
<p>{summary}</p>
<p class="legend"><span style="color:#2563eb">━ steering</span><span style="color:#16a34a">━ throttle</span>
<span style="background:#f59e0b33">&nbsp;a person took over&nbsp;</span></p>
{"".join(cards)}
</body></html>
"""
