"""`edgeact deploy SOURCE pi@HOST`: checkpoint or bundle to a Pi that drives it, over your own ssh.

    edgeact deploy outputs/train/best pi@raspberrypi --calib episodes --setup --service
    edgeact deploy bundle pi@raspberrypi            # redeploy: only what changed is sent
    edgeact deploy --rollback pi@raspberrypi        # back to the bundle deployed before
    edgeact deploy --list pi@raspberrypi
    edgeact deploy --status pi@raspberrypi          # the service and its log
    edgeact deploy --doctor pi@raspberrypi          # `edgeact doctor` on the Pi
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edgeact.commands.ssh_options import add_connection_options, ssh_target
from edgeact.errors import ConfigError


def register(subparsers) -> None:
    from edgeact.deploy.remote import DEFAULT_KEEP, DEFAULT_ROOT
    from edgeact.deploy.service import ServiceConfig

    p = subparsers.add_parser(
        "deploy",
        help="deploy a checkpoint or bundle to the Pi over SSH: verified, atomic, versioned, smoke-tested; "
        "--setup, --service, --rollback, --list, --status, --doctor",
        description="Uses your OpenSSH client (~/.ssh/config, agent, keys) without password prompts. A checkpoint "
        "is exported and quantized for the Pi 5 first (--calib). Files are hashed here and again on the Pi, copied "
        "into REMOTE_DIR/bundles/<name>-<id> under a temporary name, smoke-tested there, and only then does "
        "REMOTE_DIR/current switch to them (an atomic symlink swap). The last --keep bundles stay for --rollback.",
    )
    p.add_argument("targets", nargs="+", metavar="[SOURCE] HOST",
                   help="SOURCE: export bundle or checkpoint (LeRobot dir, edgeact train output, .pth with --config); "
                   "HOST: the Pi as for ssh (pi@raspberrypi or a Host from ~/.ssh/config)")
    action = p.add_mutually_exclusive_group()
    action.add_argument("--rollback", action="store_true", help="switch current back to the bundle deployed before it")
    action.add_argument("--list", action="store_true", help="list the bundles on the Pi")
    action.add_argument("--status", action="store_true", help="current bundle, the service's state and its log")
    action.add_argument("--doctor", action="store_true", help="run `edgeact doctor` on the Pi")
    src = p.add_argument_group("source")
    src.add_argument("--calib", metavar="EPISODES", help="episodes to quantize a checkpoint with (target pi5)")
    src.add_argument("--config", help="config.json for a weights-only .pth checkpoint")
    src.add_argument("--bundle-out", type=Path, metavar="DIR",
                     help="where a checkpoint's bundle is written (default <checkpoint>-bundle beside it)")
    src.add_argument("--backend", default=None,
                     help="backend the Pi runs and smoke-tests: onnx-int8, onnx, torch-int8, torch (default: int8 "
                     "when the bundle is quantized, else onnx)")
    con = p.add_argument_group("connection")
    add_connection_options(con)
    con.add_argument("--remote-dir", default=DEFAULT_ROOT, metavar="DIR",
                     help=f"root on the Pi (default {DEFAULT_ROOT})")
    con.add_argument("--keep", type=int, default=DEFAULT_KEEP, help=f"bundles kept on the Pi (default {DEFAULT_KEEP})")
    pi = p.add_argument_group("Pi setup")
    pi.add_argument("--setup", action="store_true",
                    help="install or upgrade the runtime in REMOTE_DIR/venv (a wheel built here; no torch unless "
                    "the backend needs it); does nothing when already current")
    pi.add_argument("--wheel", type=Path, help="install this edgeact wheel instead of building one")
    pi.add_argument("--service", action="store_true",
                    help="install and start the systemd unit that drives from REMOTE_DIR/current on boot")
    service = ServiceConfig()
    pi.add_argument("--camera", default=service.camera, help=f"service: camera (default {service.camera})")
    pi.add_argument("--actuator", default=service.actuator,
                    help=f"service: Arduino serial port (default {service.actuator})")
    pi.add_argument("--rate", type=float, default=service.rate_hz,
                    help=f"service: control rate in Hz (default {service.rate_hz:g})")
    pi.add_argument("--max-throttle", type=float, default=service.max_throttle,
                    help=f"service: |throttle| cap (default {service.max_throttle:g})")
    pi.add_argument("--log-lines", type=int, default=30, help="--status: log lines to show (default 30)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgeact.ssh import SshSession

    if len(args.targets) > 2:
        raise ConfigError("give at most SOURCE and HOST (e.g. edgeact deploy bundle pi@raspberrypi)")
    source, host = (args.targets[0], args.targets[1]) if len(args.targets) == 2 else (None, args.targets[0])
    acting = args.rollback or args.list or args.status or args.doctor
    if source and acting:
        raise ConfigError("--rollback, --list, --status and --doctor take only HOST, not a SOURCE")
    if not (source or acting or args.setup or args.service):
        raise ConfigError(f"nothing to do for {host}: give a SOURCE to deploy, or --setup, --service, --rollback, "
                          "--list, --status or --doctor")
    bundle = _local_bundle(args, source) if source else None  # refused here, before any connection
    session = SshSession(ssh_target(host, args))
    with session:
        code = _on_pi(args, session, bundle)
    if bundle is not None and session.bytes_sent is not None:
        print(f"ssh sent {session.bytes_sent / 1e3:.1f} kB, received {(session.bytes_received or 0) / 1e3:.1f} kB")
    return code


def _local_bundle(args: argparse.Namespace, source: str):
    from edgeact.deploy.bundles import choose_backend, prepare_source, verify_local

    path = prepare_source(source, args.calib, args.backend, args.bundle_out, config=args.config)
    bundle = verify_local(path)
    choose_backend(bundle, args.backend)
    return bundle


def _on_pi(args: argparse.Namespace, session, bundle) -> int:
    from edgeact.deploy import pipeline, remote
    from edgeact.deploy.runtime_setup import setup_runtime

    if args.list:
        print(pipeline.format_list(*pipeline.list_bundles(session, args.remote_dir)))
        return 0
    if args.rollback:
        pipeline.rollback(session, args.remote_dir)
        return 0
    if args.status:
        from edgeact.deploy.service import service_status

        print(service_status(session, args.remote_dir, args.log_lines), end="")
        return 0
    if args.doctor:
        return _remote_doctor(session, args.remote_dir)
    if args.setup:
        setup = setup_runtime(session, args.remote_dir, args.backend, wheel=args.wheel)
        print(f"setup: {'installed' if setup.changed else 'unchanged'} in {setup.seconds:.1f} s")
    if bundle is not None:
        options = pipeline.DeployOptions(root=args.remote_dir, backend=args.backend, keep=args.keep,
                                         bwlimit_kbps=args.bwlimit)
        report = pipeline.deploy_bundle(session, bundle, options)
        print(report.format())
    host = args.targets[-1]
    if args.service:
        from edgeact.deploy.service import ServiceConfig, install_service

        install_service(session, remote.probe(session, args.remote_dir),
                        ServiceConfig(backend=args.backend or "auto", camera=args.camera, actuator=args.actuator,
                                      rate_hz=args.rate, max_throttle=args.max_throttle))
        print(f"service edgeact (re)started on {host}; `edgeact deploy --status {host}` shows it and its log")
    elif bundle is not None:
        print(f"drive on the Pi: {report.root}/venv/bin/edgeact run --model {report.root}/current --camera 0 "
              "--actuator /dev/ttyUSB0, or add --service (a running service picks up the new bundle on "
              "`sudo systemctl restart edgeact`)")
    return 0


def _remote_doctor(session, root: str) -> int:
    from edgeact.deploy import remote
    from edgeact.errors import DeployError

    info = remote.probe(session, root)
    if not info.runtime:
        raise DeployError(f"edgeact is not installed for {info.python or 'python3'} on the Pi: add --setup first")
    script = '"$1" -c "import sys; from edgeact.cli import main; sys.exit(main([\'doctor\']))"'
    result = session.run(script, info.python, check=False)
    print(result.stdout, end="")
    return result.returncode
