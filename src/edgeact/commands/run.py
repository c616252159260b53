"""`edgeact run`: drive the rover (or the simulator) with a policy.

    edgeact run --model bundle/ --backend onnx-int8 --camera 0 --actuator /dev/ttyUSB0 --rate 50
    edgeact run --model fake:40 --camera sim --actuator sim --rate 100 --duration 20   # the benchmark

The guide's flags work too: --checkpoint (= --model), --camera_id (= --camera),
--arduino_port (= --actuator). At exit it prints the summary table; with --telemetry
FILE.jsonl it also writes every tick and fault there and a timeline plot beside it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from edgeact.drive import Parts
from edgeact.errors import EdgeactError
from edgeact.runtime.config import OutputConfig, ProcessConfig, RuntimeConfig
from edgeact.runtime.limits import Limits
from edgeact.runtime.recovery import RecoveryConfig
from edgeact.runtime.safety import SafetyConfig

EXIT_OK = 0  # a normal end: duration, Ctrl-C/SIGTERM/q, the end of a finite camera source
EXIT_NOT_NEUTRAL = 1  # the last command was not neutral
EXIT_ERROR = 2  # a bad argument or input (an EdgeactError)
EXIT_FAULT = 3  # stopped by a fault: the camera or the backend failed, or the NPU dropped out for good


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "run",
        help="drive a rover (or the simulator) with a policy at a fixed control rate",
        description="Camera, inference and control run decoupled: commands go out at --rate on an absolute "
        "schedule from the action chunks in hand, whatever the inference latency. Neutral on stale chunks, "
        "camera stalls, backend errors, serial loss, Ctrl-C/SIGTERM; SIGUSR1 or the space bar is a latched "
        "emergency stop. With --camera sim --actuator sim it is the runtime benchmark.",
    )
    limits, safety = Limits(), SafetyConfig()
    p.add_argument("--model", "--checkpoint", dest="model", required=True, metavar="PATH",
                   help="export bundle, checkpoint (LeRobot pretrained dir or .pth) or 'fake[:MS[:BUSY]]' for a "
                   "stand-in policy taking MS per inference (default 40), BUSY of it on the CPU (default 0.75)")
    p.add_argument("--config", default=None, metavar="CONFIG.json",
                   help="config.json for a weights-only .pth checkpoint (default: the one beside it)")
    p.add_argument("--backend", default=None, metavar="NAME",
                   help="torch, onnx, onnx-int8, torch-int8, litert-int8, litert-fp16, litert (default auto: a "
                   "bundle's HEF when a Hailo device is present, else its fastest model for this CPU, "
                   "litert-int8 on a Pi 5, onnx-int8 on x86; torch for a checkpoint)")
    p.add_argument("--camera", "--camera_id", dest="camera", required=True, metavar="SRC",
                   help="device index (0), video file or URL, picamera2[:N], replay:EPISODE_DIR, sim[:TRACK]")
    p.add_argument("--actuator", "--arduino_port", dest="actuator", required=True, metavar="DST",
                   help="serial port (/dev/ttyUSB0, /dev/ttyACM0), any pyserial URL (loop://), "
                   "'sim' (simulated Arduino on a pseudo-terminal) or 'none' (dry run)")
    p.add_argument("--rate", type=float, default=RuntimeConfig.rate_hz, metavar="HZ",
                   help="control rate (default %(default)g)")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds (default: run "
                   "until Ctrl-C)")
    p.add_argument("--telemetry", default=None, metavar="FILE.jsonl",
                   help="write ticks, stage latencies and faults as JSON lines (and FILE.png, the timelines)")
    p.add_argument("--plot", default=None, metavar="FILE.png", help="timeline plot path (default: beside --telemetry)")
    p.add_argument("--no-plot", action="store_true", help="no timeline plot")
    p.add_argument("--sync", action="store_true",
                   help="capture -> infer -> act each tick, as the guide's script (for comparison)")
    p.add_argument("--max-throttle", type=float, default=limits.max_throttle, metavar="X",
                   help="|throttle| limit in [0, 1] (default %(default)g)")
    p.add_argument("--ensemble", type=float, default=None, metavar="COEFF",
                   help="temporal ensembling across overlapping chunks, weights exp(-COEFF*i) (LeRobot: 0.01)")
    p.add_argument("--steering-rate", type=float, default=limits.steering_rate, metavar="U_PER_S",
                   help="steering slew limit, units/s (default %(default)g; 0 = none)")
    p.add_argument("--throttle-rate", type=float, default=limits.throttle_rate, metavar="U_PER_S",
                   help="throttle slew limit, units/s (default %(default)g; 0 = none)")
    p.add_argument("--max-chunk-age", type=float, default=safety.max_chunk_age_s * 1e3, metavar="MS",
                   help="neutral when the newest chunk's frame is older than this (default %(default)g)")
    p.add_argument("--stall", type=float, default=safety.camera_stall_s * 1e3, metavar="MS",
                   help="neutral when the camera gives no new frame for this long (default %(default)g)")
    p.add_argument("--watchdog", type=float, default=Parts.watchdog_s * 1e3, metavar="MS",
                   help="watchdog of the simulated Arduino (--actuator sim; the sketch's is WATCHDOG_MS, "
                   "default %(default)g)")
    p.add_argument("--baud", type=int, default=Parts.baudrate, help="serial baud rate (default %(default)d)")
    p.add_argument("--seed", type=int, default=Parts.seed, help="simulator appearance seed (--camera sim)")
    p.add_argument("--threads", type=int, help="inference threads (default: physical cores - 1, so that "
                   "control, camera and serial keep a core)")
    recovery = RecoveryConfig()
    p.add_argument("--fallback", default=None, metavar="BACKEND",
                   help="with a Hailo backend: the bundle's CPU backend (onnx-int8, onnx) that drives while the NPU "
                   "is being reopened after it dropped out (default: neutral until it is back)")
    p.add_argument("--reopen-attempts", type=int, default=recovery.attempts, metavar="N",
                   help="reopen attempts for an NPU that dropped out, %(default)s by default, waits doubling from "
                   f"{recovery.backoff_s:g} s; then the run stops (exit 3) or drives on --fallback")
    p.add_argument("--no-keys", action="store_true", help="no keyboard emergency stop even in a terminal")
    p.add_argument("--no-realtime", action="store_true",
                   help="do not try SCHED_FIFO for the control thread (tried by default; needs root or an "
                   "rtprio limit)")
    p.add_argument("--status", type=float, default=2.0, metavar="S", help="status line every S seconds (0: off)")
    p.add_argument("--json", default=None, metavar="FILE", help="write the run report as JSON")
    p.set_defaults(func=run)


def runtime_config(args: argparse.Namespace) -> RuntimeConfig:
    """The run's settings from the command line."""
    plot = None
    if not args.no_plot:
        plot = args.plot or (str(Path(args.telemetry).with_suffix(".png")) if args.telemetry else None)
    return RuntimeConfig(
        rate_hz=args.rate,
        duration_s=args.duration,
        sync=args.sync,
        ensemble_coeff=args.ensemble,
        limits=Limits(max_throttle=args.max_throttle, steering_rate=args.steering_rate or None,
                      throttle_rate=args.throttle_rate or None),
        safety=SafetyConfig(max_chunk_age_s=args.max_chunk_age / 1e3, camera_stall_s=args.stall / 1e3),
        process=ProcessConfig(keyboard=not args.no_keys, realtime=not args.no_realtime),
        output=OutputConfig(telemetry_path=args.telemetry, plot_path=plot, status_every_s=args.status),
    )


def run(args: argparse.Namespace) -> int:
    from edgeact.drive import drive, open_policy

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    config = runtime_config(args)
    parts = Parts(camera=args.camera, actuator=args.actuator, baudrate=args.baud, watchdog_s=args.watchdog / 1e3,
                  seed=args.seed)
    backend = open_policy(args.model, args.backend, args.threads, config_path=args.config, fallback=args.fallback,
                          recovery=RecoveryConfig(attempts=args.reopen_attempts))
    try:
        spec = backend.spec
        print(f"edgeact run: {backend.name} {tuple(spec.image_size)} chunk {spec.chunk_size} @ {spec.fps:g} fps | "
              f"camera {args.camera} | actuator {args.actuator} | {config.mode} {args.rate:g} Hz | "
              f"max throttle {args.max_throttle:g}", file=sys.stderr)
        report = drive(backend, parts, config)
    finally:
        backend.close()
    print(report.format_table())
    if args.json:
        from edgeact.fileio import atomic_write_json

        atomic_write_json(Path(args.json), report.to_dict())
    if not report.neutral_at_exit:
        print("edgeact run: WARNING: the last command was not neutral", file=sys.stderr)
        return EXIT_NOT_NEUTRAL
    return EXIT_OK if report.stop_kind.normal else EXIT_FAULT


def main(argv: list[str] | None = None) -> int:
    """Run this command alone (``python -m edgeact.commands.run ...``)."""
    parser = argparse.ArgumentParser(prog="edgeact")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["run", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args) or 0)
    except EdgeactError as err:
        print(f"edgeact run: error: {err}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
