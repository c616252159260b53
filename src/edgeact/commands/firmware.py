"""`edgeact firmware build|flash|bench`: the Arduino sketch for the rover's servo and ESC.

    edgeact firmware build --board uno
    edgeact firmware flash --port /dev/ttyACM0 --board nano
    edgeact firmware bench          # on an emulated Uno: pulse widths, latency, watchdog
"""

from __future__ import annotations

import argparse

BOARD_CHOICES = ("uno", "nano", "nano-old")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "firmware",
        help="build the Arduino sketch (rover_bridge) for an Uno/Nano, or build and flash it",
        description="Builds firmware/rover_bridge with avr-gcc and the Arduino AVR core (Debian: gcc-avr "
        "binutils-avr avr-libc arduino-core-avr make) and reports its flash/RAM use; 'flash' then uploads it "
        "with avrdude through the board's bootloader.",
    )
    sub = p.add_subparsers(dest="firmware_command", required=True, metavar="ACTION")
    bench = sub.add_parser("bench", help="run the sketch on an emulated Uno (simavr) and measure its pulses, "
                           "command-to-pulse latency and watchdog")
    bench.add_argument("--out", default=None, metavar="DIR", help="keep the builds and the board's log here")
    for name, help_text in (("build", "build the .hex and report its size"),
                            ("flash", "build, then upload to the board on --port")):
        q = sub.add_parser(name, help=help_text)
        q.add_argument("--board", choices=BOARD_CHOICES, default="uno",
                       help="uno (default), nano, or nano-old (Nanos with the old 57600-baud bootloader)")
        q.add_argument("--out", default=None, metavar="DIR", help="build folder (default firmware/build)")
        q.add_argument("--firmware-dir", default=None, metavar="DIR",
                       help="the firmware folder (default: the one in this edgeact checkout)")
        if name == "flash":
            q.add_argument("--port", required=True, metavar="DEV", help="the board's serial port (/dev/ttyACM0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgeact.firmware import build as firmware

    if args.firmware_command == "bench":
        from edgeact.firmware.bench import format_result, run_bench

        print("building and driving the emulated board (about 3 s) ...", flush=True)
        print(format_result(run_bench(args.out)))
        return 0
    if args.firmware_command == "flash":
        firmware.check_flash_target(args.port)  # before a build, not after it
    result = firmware.build(args.board, args.out, firmware=args.firmware_dir)
    print(f"built {result.hex}")
    print(f"flash {result.flash_bytes} bytes ({100 * result.flash_bytes / firmware.FLASH_LIMIT:.1f}% of "
          f"{firmware.FLASH_LIMIT}), RAM {result.ram_bytes} bytes ({100 * result.ram_bytes / firmware.RAM_LIMIT:.1f}% "
          f"of {firmware.RAM_LIMIT}, the rest is stack)")
    if args.firmware_command == "flash":
        print(f"flashing {args.port} ({firmware.BOARDS[args.board].notes}) ...", flush=True)
        firmware.flash(result.hex, args.port, args.board)
        print(f"flashed {args.port}: the board reboots and announces READY,{_protocol_version()}")
    return 0


def _protocol_version() -> int:
    from edgeact.runtime.protocol import PROTOCOL_VERSION

    return PROTOCOL_VERSION
