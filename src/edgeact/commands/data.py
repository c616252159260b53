"""`edgeact data stats|view|pull|import-lerobot|export-lerobot`: inspect, view, pull from the rover, import
and export episode datasets."""

from __future__ import annotations

import argparse
import json

from edgeact.commands.ssh_options import add_connection_options, ssh_target
from edgeact.data.pull import DEFAULT_REMOTE_DIR


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data",
        help="episode datasets: statistics, an HTML view, LeRobotDataset v3 import",
        description="Rover episode datasets (episode_NNN/ with frames/, data.csv, meta.json).",
    )
    sub = parser.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")

    st = sub.add_parser(
        "stats",
        help="validate episodes and print counts, fps, size, duration and action statistics",
        description="Read and validate every episode under DIR, then summarize them.",
    )
    st.add_argument("dir", metavar="DIR", help="folder of episodes (or one episode folder)")
    st.add_argument("--plot", default=None, metavar="FILE.png", help="save a histogram of steering and throttle")
    st.add_argument("--json", action="store_true", help="print the summary as JSON")
    st.add_argument("--check-frames", action="store_true", help="decode every frame too (slower)")
    st.set_defaults(func=run_stats)

    view = sub.add_parser(
        "view",
        help="write a static HTML report of the episodes (frames, steering/throttle plots, interventions)",
        description="One self-contained HTML file (opens from disk, no server): per episode a strip of frames, "
        "steering and throttle against time with interventions shaded, and its numbers.",
    )
    view.add_argument("dir", metavar="DIR", help="folder of episodes (or one episode folder)")
    view.add_argument("--out", default=None, metavar="FILE.html", help="where to write it (default DIR/view.html)")
    view.set_defaults(func=run_view)

    pull = sub.add_parser(
        "pull",
        help="copy the rover's recorded episodes here over SSH: complete ones only, verified, only what is new",
        description="Copies the complete episodes of REMOTE_DIR on the Pi (what `edgeact drive --record` wrote; "
        "an episode still being recorded is skipped and named) into OUT through your OpenSSH client, as "
        "`edgeact deploy` does. Episodes already here and unchanged are not sent again; an interrupted pull "
        "resumes. Each copy is hashed on the Pi (sha256sum) and here, and must load as an episode, before it "
        "appears in OUT (atomically). Exit status 1 when an episode was refused.",
    )
    pull.add_argument("host", metavar="HOST", help="the Pi as for ssh (pi@raspberrypi or a Host from ~/.ssh/config)")
    pull.add_argument("remote_dir", nargs="?", default=DEFAULT_REMOTE_DIR, metavar="REMOTE_DIR",
                      help=f"episodes folder on the Pi (default {DEFAULT_REMOTE_DIR})")
    pull.add_argument("--out", required=True, metavar="DIR", help="episodes folder here (created if needed)")
    pull.add_argument("--delete-after-verify", action="store_true",
                      help="then delete on the Pi the episodes verified here (only those, and only if unchanged "
                      "there since), to free its card")
    add_connection_options(pull.add_argument_group("connection (as for edgeact deploy)"))
    pull.set_defaults(func=run_pull)

    imp = sub.add_parser(
        "import-lerobot",
        help="convert a LeRobotDataset v3 directory into episodes",
        description="Convert a local LeRobotDataset v3.0 (meta/info.json, data/, videos/) into "
        "episode_NNN/ folders. Actions must be [steering, throttle] in [-1, 1].",
    )
    imp.add_argument("src", metavar="SRC", help="LeRobotDataset v3 directory")
    imp.add_argument("dst", metavar="DST", help="new or empty folder for the episodes")
    imp.add_argument("--camera", default=None, metavar="KEY", help="camera feature to import if there are several")
    imp.set_defaults(func=run_import)

    exp = sub.add_parser(
        "export-lerobot",
        help="write episodes as a LeRobotDataset v3 (to train with lerobot-train)",
        description="Write the episodes under DIR as a LeRobotDataset v3.0: parquet data and metadata, and one "
        "video of all frames (H.264 by default, AV1 as LeRobot records). import-lerobot reads it back.",
    )
    exp.add_argument("dir", metavar="DIR", help="folder of episodes")
    exp.add_argument("--out", required=True, metavar="DATASET", help="new or empty folder for the dataset")
    exp.add_argument("--codec", default="h264", choices=["h264", "av1"], help="video codec (default h264)")
    exp.add_argument("--task", default=None, metavar="TEXT", help="task description stored with every episode")
    exp.set_defaults(func=run_export)


def run_stats(args: argparse.Namespace) -> int:
    from edgeact.data.episodes import load_episodes
    from edgeact.data.stats import format_summary, plot_action_histogram, summarize

    episodes = load_episodes(args.dir, validate=args.check_frames)
    summary = summarize(episodes)
    summary["root"] = str(args.dir)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{args.dir}")
        print(format_summary(summary))
    if args.plot:
        plot_action_histogram(episodes, args.plot)
        print(f"wrote {args.plot}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from edgeact.data.lerobot_export import DEFAULT_TASK, export_lerobot

    print(f"exporting {args.dir} → {args.out} (LeRobotDataset v3.0, {args.codec})", flush=True)
    export_lerobot(args.dir, args.out, codec=args.codec, task=args.task or DEFAULT_TASK,
                   progress=lambda m: print(m, flush=True))
    print(f"done: {args.out}; train on it with lerobot-train --dataset.repo_id=local/rover --dataset.root={args.out}")
    return 0


def run_view(args: argparse.Namespace) -> int:
    from edgeact.data.view import write_report

    path = write_report(args.dir, args.out)
    print(f"wrote {path} (open it in a browser)")
    return 0


def run_pull(args: argparse.Namespace) -> int:
    from edgeact.data.pull import PullOptions, pull
    from edgeact.ssh import SshSession

    session = SshSession(ssh_target(args.host, args))
    options = PullOptions(remote_dir=args.remote_dir, delete_after_verify=args.delete_after_verify,
                          bwlimit_kbps=args.bwlimit)
    with session:
        report = pull(session, args.out, options, log=lambda m: print(m, flush=True))
    print(report.format())
    if session.bytes_received is not None:
        print(f"ssh received {session.bytes_received / 1e6:.2f} MB ({session.bytes_received:,} bytes), sent "
              f"{(session.bytes_sent or 0) / 1e3:.1f} kB in {report.seconds:.1f} s")
    if report.new:
        print(f"next: edgeact data view {args.out}, then edgeact train --data {args.out} …")
    return 0 if report.ok else 1


def run_import(args: argparse.Namespace) -> int:
    from edgeact.data.lerobot_import import import_lerobot

    print(f"importing {args.src} → {args.dst}", flush=True)
    paths = import_lerobot(args.src, args.dst, camera_key=args.camera, progress=lambda m: print(m, flush=True))
    print(f"done: {len(paths)} episode(s) in {args.dst}")
    return 0
