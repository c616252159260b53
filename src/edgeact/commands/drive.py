"""`edgeact drive`: drive by hand from a phone or a gamepad, record episodes, let the policy drive, take over.

    edgeact drive --camera 0 --arduino_port /dev/ttyUSB0 --record episodes/ --web 0.0.0.0:8887
    edgeact drive --camera sim --actuator sim --model bundle/ --record episodes/    # no rover needed

Prints the page's URL (with its token) and a QR code; open it on a phone. Beyond this
machine the page is served over HTTPS with a certificate made on the rover (its SHA-256
fingerprint is printed beside the URL and carried in the QR code).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from edgeact.errors import ConfigError


def register(subparsers) -> None:
    from edgeact.drive import Parts
    from edgeact.runtime.config import RuntimeConfig
    from edgeact.runtime.limits import Limits
    from edgeact.teleop.pilot import PilotConfig
    from edgeact.teleop.session import ON_RECORD_ERROR, DriveConfig

    drive, pilot, limits = DriveConfig(), PilotConfig(), Limits()
    p = subparsers.add_parser(
        "drive",
        help="drive the rover from a web page or a gamepad, record episodes, watch the policy and take over",
        description="The runtime of `edgeact run` (same safety, limits, telemetry) with a pilot per tick: user "
        "(a person drives), auto-steer (the policy steers, the person sets the throttle) or auto (the policy "
        "drives; any input takes over and hands back when released). Starts in user mode with zero throttle. "
        "The page needs the token printed at start.",
    )
    p.add_argument("--camera", "--camera_id", dest="camera", required=True, metavar="SRC",
                   help="device index (0), video file or URL, picamera2[:N], replay:EPISODE_DIR, sim[:TRACK]")
    p.add_argument("--actuator", "--arduino_port", dest="actuator", required=True, metavar="DST",
                   help="serial port (/dev/ttyUSB0), a pyserial URL, 'sim' (simulated Arduino on a pty) or 'none'")
    p.add_argument("--model", "--checkpoint", dest="model", default=None, metavar="BUNDLE",
                   help="policy for auto-steer and auto (bundle, checkpoint or 'fake[:MS]'); "
                   "without it, user mode only")
    p.add_argument("--backend", default=None, metavar="NAME", help="backend for --model (default auto)")
    p.add_argument("--record", default=None, metavar="DIR", help="record episodes into DIR (toggled from the page, "
                   "the gamepad or R)")
    p.add_argument("--record-fps", type=float, default=None, metavar="FPS",
                   help="episode rate (default: the policy's fps, 30 without a model)")
    p.add_argument("--auto-record", action="store_true",
                   help="with --record: an episode starts when the rover moves and ends after 1 s stopped")
    p.add_argument("--on-record-error", choices=ON_RECORD_ERROR, default=drive.on_record_error,
                   help="when a recording write fails (disk full, a failing card): hold the rover neutral until a "
                   "person acts, or keep driving (default %(default)s); the episode in progress is discarded either "
                   "way and the page says why")
    p.add_argument("--web", default=f"{drive.host}:{drive.port}", metavar="HOST:PORT",
                   help=f"where the page listens (default %(default)s, this machine only; 0.0.0.0:{drive.port} "
                   "for a phone)")
    p.add_argument("--https", action=argparse.BooleanOptionalAction, default=drive.https,
                   help="serve the page over HTTPS with a self-signed certificate made on first use (default: "
                   "HTTPS when --web is reachable from other machines, HTTP on 127.0.0.1); --no-https keeps plain "
                   "HTTP on the network, with a warning: the token then crosses the Wi-Fi in clear text")
    p.add_argument("--cert-dir", default=drive.cert_dir, metavar="DIR",
                   help="where the certificate and its key are kept (default ~/.config/edgeact/tls)")
    p.add_argument("--gamepad", default=None, metavar="DEVICE", help="evdev gamepad on the Pi (/dev/input/eventN)")
    p.add_argument("--rate", type=float, default=RuntimeConfig.rate_hz, metavar="HZ",
                   help="control rate (default %(default)g)")
    p.add_argument("--max-throttle", type=float, default=limits.max_throttle, metavar="X",
                   help=f"|throttle| limit in [0, 1] (default %(default)g); the page's slider starts at "
                   f"min({pilot.max_throttle:g}, X)")
    p.add_argument("--heartbeat", type=float, default=pilot.heartbeat_s * 1e3, metavar="MS",
                   help="neutral when the page in control is silent this long (default %(default)g)")
    p.add_argument("--video-fps", type=float, default=drive.video_fps, metavar="FPS",
                   help="the page's video rate cap (default %(default)g)")
    p.add_argument("--size", default="360x640", metavar="HxW",
                   help="camera frame size without --model (default 360x640)")
    p.add_argument("--token", default=None, help="the page's token (default: a fresh random one)")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    p.add_argument("--telemetry", default=None, metavar="FILE.jsonl", help="ticks, stages and events as JSON lines")
    p.add_argument("--watchdog", type=float, default=Parts.watchdog_s * 1e3, metavar="MS",
                   help="simulated Arduino's watchdog (default %(default)g)")
    p.add_argument("--seed", type=int, default=Parts.seed, help="simulator appearance seed (--camera sim)")
    p.add_argument("--threads", type=int, default=None, help="inference threads (default: physical cores - 1)")
    p.add_argument("--no-qr", action="store_true", help="print the URL without the QR code")
    p.add_argument("--no-realtime", action="store_true", help="do not try SCHED_FIFO for the control thread")
    p.set_defaults(func=run)


def parse_web(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"--web {text!r}: use HOST:PORT, e.g. 127.0.0.1:8887 or 0.0.0.0:8887")
    return host.strip("[]") or "127.0.0.1", int(port)


def parse_size(text: str) -> tuple[int, int]:
    h, sep, w = text.lower().partition("x")
    if not sep or not h.isdigit() or not w.isdigit() or int(h) < 16 or int(w) < 16:
        raise ConfigError(f"--size {text!r}: use HxW, e.g. 360x640")
    return int(h), int(w)


def policy_label(model: str) -> str:
    """What recorded episodes say drove in the auto modes: the model's real folder (``~/edgeact/current``
    resolves to the deployed bundle), or the stand-in's name."""
    return model if model.startswith("fake") else str(Path(model).expanduser().resolve())


def _backend(args: argparse.Namespace):
    if args.model is None:
        from edgeact.teleop.no_policy import NoPolicy

        return NoPolicy(parse_size(args.size), fps=args.record_fps or 30.0)
    from edgeact.drive import open_policy

    return open_policy(args.model, args.backend, args.threads)


def run(args: argparse.Namespace) -> int:
    from edgeact.drive import Parts, open_parts
    from edgeact.runtime.config import OutputConfig, ProcessConfig, RuntimeConfig
    from edgeact.runtime.limits import Limits
    from edgeact.teleop.pilot import PilotConfig
    from edgeact.teleop.recorder import format_cadence
    from edgeact.teleop.session import DriveConfig, DriveSession, check_record_dir

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    host, port = parse_web(args.web)
    check_record_dir(args.record)
    config = DriveConfig(
        runtime=RuntimeConfig(rate_hz=args.rate, duration_s=args.duration,
                              limits=Limits(max_throttle=args.max_throttle),
                              process=ProcessConfig(keyboard=True, realtime=not args.no_realtime),
                              output=OutputConfig(telemetry_path=args.telemetry)),
        pilot=PilotConfig(heartbeat_s=args.heartbeat / 1e3,
                          max_throttle=min(PilotConfig.max_throttle, args.max_throttle)),
        record_dir=args.record, record_fps=args.record_fps, auto_record=args.auto_record,
        record_meta={"policy": policy_label(args.model)} if args.model else {},
        on_record_error=args.on_record_error, host=host, port=port,
        https=args.https, cert_dir=args.cert_dir, token=args.token, video_fps=args.video_fps, gamepad=args.gamepad)
    backend = _backend(args)
    try:
        parts = Parts(camera=args.camera, actuator=args.actuator, watchdog_s=args.watchdog / 1e3, seed=args.seed)
        camera, actuator = open_parts(parts, backend.spec.image_size)
        session = DriveSession(backend, camera, actuator, config, has_policy=args.model is not None)
        session.start()
        try:
            announce(session.url, qr=not args.no_qr, certificate=session.certificate)
            while not session.wait(0.5):
                pass
        finally:
            report = session.stop("stopped")
    finally:
        backend.close()
    print(report.run.format_table())
    if args.record:
        print(f"\nepisodes recorded in {Path(args.record)}:\n{format_cadence(report.cadence)}")
        if report.record_error:
            print(report.record_error)
    print(f"interventions: {report.interventions}")
    if report.video_latency_ms.get("n"):
        lat = report.video_latency_ms
        print(f"video latency (capture → shown, measured in the page): p50 {lat['p50']:.0f} ms, "
              f"p99 {lat['p99']:.0f} ms over {lat['n']:.0f} frames")
    # the exit codes of `edgeact run`: 0 a normal end, 1 not neutral at exit, 3 stopped by a fault
    if not report.run.neutral_at_exit:
        print("edgeact drive: WARNING: the last command was not neutral", file=sys.stderr)
        return 1
    return 0 if report.run.stop_kind.normal else 3


def announce(url: str, qr: bool = True, stream=None, certificate=None) -> None:
    """Print the page's URL and, with segno installed, its QR code for a phone's camera. Over HTTPS,
    the certificate's SHA-256 fingerprint beside the URL and, as ``#sha256=…``, in the QR code's URL
    (a fragment: the phone shows it and never sends it), so the person can check the certificate
    the phone's browser shows against it."""
    out = stream or sys.stdout
    print(f"\nedgeact drive: open {url}", file=out)
    payload = url
    if certificate is not None:
        payload = f"{url}#sha256={certificate.sha256}"
        state = f"new: {certificate.made}" if certificate.made else "reused"
        print(f"certificate SHA-256 {certificate.sha256}\n"
              f"  (check it in the phone's browser before accepting; {certificate.cert_path}, {state}, "
              f"valid until {certificate.not_after:%Y-%m-%d})", file=out)
    print(file=out, flush=True)
    if not qr:
        return
    try:
        import segno
    except ImportError:
        print("(pip install 'edgeact[drive]' for a QR code of this URL)", file=out)
        return
    segno.make(payload, error="l").terminal(out=out, compact=True)
    out.flush()
