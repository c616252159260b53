"""Training speed of this checkout against an earlier revision, on this machine, in one run.

Both versions train the tiny preset with their own ``edgeact train`` on the same recorded
episodes. Each training is run at two lengths and the difference is divided by the extra
steps, so start-up, data loading, the final validation and checkpoint writing cancel out and
what remains is the time of one training step as each version runs it (batch building
included). Runs alternate between the versions, so load from other processes on a shared
machine falls on both; the table gives every round and the ratio of medians.

    python scripts/compare_training_speed.py                 # against 5d004e1 (before issue 12)
    python scripts/compare_training_speed.py --before REV --short 40 --long 240 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BEFORE = "5d004e1"  # the last revision before issue 12's training speed-ups


def run_edgeact(src: Path, args: list[str]) -> None:
    """``python -m edgeact.cli ARGS`` with the package from ``src``; exits naming the command if it fails."""
    cmd = [sys.executable, "-m", "edgeact.cli", *args]
    proc = subprocess.run(cmd, env={**os.environ, "PYTHONPATH": str(src)}, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"failed ({src}): edgeact {' '.join(args)}\n{proc.stderr[-2000:]}")


def export_source(rev: str, dest: Path) -> Path:
    """``src/`` of ``rev`` unpacked under ``dest`` (no worktree left behind)."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "src"], capture_output=True)
    if archive.returncode != 0:
        sys.exit(f"cannot read revision {rev!r} of {REPO}: {archive.stderr.decode().strip()} "
                 "(give a commit, tag or branch of this repository with --before)")
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest / "src"


def train_seconds(src: Path, data: Path, out: Path, steps: int) -> float:
    started = time.perf_counter()
    run_edgeact(src, ["train", "--data", str(data), "--out", str(out), "--steps", str(steps),
                      "--eval-every", str(10 * steps)])
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default=BEFORE, help=f"revision to compare against (default {BEFORE})")
    parser.add_argument("--short", type=int, default=40, help="steps of the short run (default 40)")
    parser.add_argument("--long", type=int, default=240, help="steps of the long run (default 240)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (default 2)")
    args = parser.parse_args()
    if not 1 <= args.short < args.long or args.rounds < 1:
        parser.error("need 1 <= --short < --long and --rounds >= 1")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        versions = {args.before: export_source(args.before, root / "before"), "this checkout": REPO / "src"}
        data = root / "episodes"
        print("recording 24 episodes (the demo's recipe before issue 12: one track, 96x128 frames) ...", flush=True)
        run_edgeact(REPO / "src", ["sim", "record", "--out", str(data), "--episodes", "24", "--size", "96x128",
                                   "--seconds", "20"])
        for src in versions.values():  # untimed: a version that caches decoded frames builds its cache here
            train_seconds(src, data, root / "out", 2)
        per_step: dict[str, list[float]] = {name: [] for name in versions}
        for r in range(1, args.rounds + 1):
            for name, src in versions.items():
                short = train_seconds(src, data, root / "out", args.short)
                long = train_seconds(src, data, root / "out", args.long)
                per_step[name].append((long - short) / (args.long - args.short))
                print(f"round {r}/{args.rounds}: {name}: {per_step[name][-1] * 1000:.0f} ms/step", flush=True)
    medians = {name: statistics.median(v) for name, v in per_step.items()}
    ref = medians[args.before]
    print("\n| version | ms/step (rounds) | steps/s | speed-up |\n|---|---|---|---|")
    for name, rounds in per_step.items():
        each = ", ".join(f"{t * 1000:.0f}" for t in rounds)
        median = medians[name]
        print(f"| {name} | {median * 1000:.0f} ({each}) | {1 / median:.2f} | {ref / median:.2f}x |")


if __name__ == "__main__":
    main()
