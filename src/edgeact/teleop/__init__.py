"""Teleoperation: drive, record and take over from a phone or a gamepad (``edgeact drive``).

    pilot.py      who drives each tick (user / auto-steer / auto, interventions, heartbeat)
    messages.py   what the page and the gamepad may ask, parsed and checked
    recorder.py   episodes while driving (atomic per episode, intervention flags, cadence)
    gamepad.py    a gamepad on the Pi (evdev)
    session.py    the runtime with the pilot, the recorder, the page and the gamepad, wired
    web/          the drive page: aiohttp server and the static page
    headless.py   a headless Chromium on the page (benchmark, tests); bench.py: the page's cost
"""
