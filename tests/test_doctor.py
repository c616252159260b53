"""`edgeact doctor` on fake sysfs/procfs/dev trees (a Pi 5 in good and bad shape), not this machine."""

from __future__ import annotations

import os
from pathlib import Path

from edgeact.doctor import FAIL, OK, WARN, SystemView, format_checks, run_checks

PI5_CPUINFO = "".join(f"processor\t: {i}\nBogoMIPS\t: 108.00\nCPU part\t: 0xd0b\n\n" for i in range(4)) + \
    "Revision\t: d04170\nModel\t\t: Raspberry Pi 5 Model B Rev 1.0\n"
MEMINFO = "MemTotal:        8245424 kB\nMemFree:         7000000 kB\nMemAvailable:    {avail} kB\n"
VERSIONS = {"numpy": "1.26.4", "onnxruntime": "1.20.1", "opencv-python-headless": "4.10.0.84", "pyserial": "3.5",
            "safetensors": "0.4.5", "edgeact": "0.1.0"}


def write(root: Path, path: str, text: str) -> Path:
    file = root / path.lstrip("/")
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(text)
    return file


def fake_pi(root: Path, *, governor="performance", temp_mc=48000, avail_kb=6_000_000, serial_mode=0o660,
            in_dialout=True, hailo=False) -> Path:
    write(root, "/proc/cpuinfo", PI5_CPUINFO)
    write(root, "/proc/meminfo", MEMINFO.format(avail=avail_kb))
    for cpu in range(4):
        write(root, f"/sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor", governor + "\n")
        write(root, f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list", f"{cpu}\n")
    write(root, "/sys/class/thermal/thermal_zone0/temp", f"{temp_mc}\n")
    tty = write(root, "/dev/ttyUSB0", "")
    tty.chmod(serial_mode)
    video = write(root, "/dev/video0", "")
    video.chmod(0o660)
    if hailo:
        write(root, "/dev/hailo0", "")
    # The devices' real group (whatever this test runs as) plays dialout and video.
    gid = os.stat(tty).st_gid
    members = "pi" if in_dialout else ""
    write(root, "/etc/passwd", "root:x:0:0:root:/root:/bin/bash\npi:x:1000:1000::/home/pi:/bin/bash\n")
    write(root, "/etc/group", f"pi:x:1000:\ndialout:x:{gid}:{members}\n")
    return root


def view(root: Path, throttled="throttled=0x0\n", versions=VERSIONS, rtprio=0, hailort=(None, [], None),
         free_gb=40.0) -> SystemView:
    return SystemView(root=root, user="pi", run=lambda cmd: throttled if cmd[0] == "vcgencmd" else None,
                      version=versions.get, rtprio_limit=lambda: rtprio, python_version="3.11.2",
                      hailort=lambda: hailort, disk_free=lambda path: int(free_gb * 1e9))


def by_name(checks):
    return {c.name: c for c in checks}


def test_a_healthy_pi(tmp_path):
    checks = by_name(run_checks(view(fake_pi(tmp_path), rtprio=50)))
    assert checks["cpu"].detail == "Raspberry Pi 5 Model B Rev 1.0, 4 cores (4 physical)"
    assert "3 threads" in checks["ort threads"].detail
    assert {c.status for c in checks.values()} == {OK}
    assert checks["serial"].detail == "/dev/ttyUSB0"
    assert "numpy 1.26.4" in checks["packages"].detail


def test_a_pi_in_trouble_says_what_to_do(tmp_path):
    root = fake_pi(tmp_path, governor="ondemand", temp_mc=83500, avail_kb=300_000, in_dialout=False, hailo=True)
    versions = {**VERSIONS, "onnxruntime": None, "numpy": "2.1.0"}
    checks = by_name(run_checks(view(root, throttled="throttled=0x50005\n", versions=versions,
                                     hailort=("4.20.0", [], None))))
    expected = {"governor": (WARN, "scaling_governor"), "temperature": (FAIL, "Active Cooler"),
                "throttling": (FAIL, "27 W"), "memory": (WARN, "close other programs"),
                "packages": (FAIL, "edgeact deploy --setup"), "serial": (FAIL, "usermod -aG dialout pi"),
                "realtime": (WARN, "LimitRTPRIO"), "hailort": (FAIL, "numpy<2"),
                "hailo driver": (FAIL, "sudo apt install dkms hailo-all"), "hailo packages": (WARN, "hailo-all")}
    for name, (status, fix) in expected.items():
        assert (checks[name].status, fix in checks[name].fix) == (status, True), checks[name]
    assert "under-voltage" in checks["throttling"].detail
    text = format_checks(list(checks.values()))
    assert "fix: sudo usermod -aG dialout pi" in text
    # the camera too (it has the same group here), and the Hailo node without a PCIe device or driver
    assert text.splitlines()[-1].startswith("8 FAIL")


def test_throttling_since_boot_and_missing_devices_are_warnings(tmp_path):
    root = fake_pi(tmp_path)
    for dev in ("ttyUSB0", "video0"):
        (root / "dev" / dev).unlink()
    checks = by_name(run_checks(view(root, throttled="throttled=0x50000\n", rtprio=50)))
    assert checks["throttling"].status == WARN and "since boot" in checks["throttling"].detail
    assert checks["serial"].status == WARN and "ttyACM0" in checks["serial"].fix
    assert checks["camera"].status == WARN


def test_world_writable_port_and_missing_vcgencmd(tmp_path):
    root = fake_pi(tmp_path, serial_mode=0o666, in_dialout=False)
    checks = by_name(run_checks(view(root, throttled=None, rtprio=50)))
    assert checks["serial"].status == OK
    assert checks["throttling"].status == OK and "not checked" in checks["throttling"].detail


def test_doctor_command_exit_status(tmp_path, capsys):
    from edgeact.cli import main

    root = fake_pi(tmp_path, temp_mc=90000)
    assert main(["doctor", "--root", str(root), "--user", "pi"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  temperature" in out and "90.0 °C" in out


def test_room_to_record_is_checked_against_the_minutes_asked(tmp_path):
    from edgeact.doctor import RecordingPlan

    root = fake_pi(tmp_path)
    ok = by_name(run_checks(view(root, free_gb=40.0), RecordingPlan(minutes=30)))["recording space"]
    assert ok.status == OK and "for /home/pi" in ok.detail and "estimated for 360x640 frames" in ok.detail
    short = by_name(run_checks(view(root, free_gb=1.0), RecordingPlan(minutes=30)))["recording space"]
    assert short.status == WARN and "less than 30 min" in short.detail and "larger card" in short.fix
    minutes = int(short.detail.split(": ")[1].split(" min")[0])
    assert 5 <= minutes <= 15  # 1 GB at 30 fps of 360x640 frames: ~100 MB a minute


def test_room_to_record_is_measured_on_the_episodes_already_there(tmp_path):
    import numpy as np

    from edgeact.data.episodes import write_episode
    from edgeact.doctor import RecordingPlan

    root = fake_pi(tmp_path)
    rng = np.random.default_rng(0)
    for i in range(2):  # noise frames: far bigger JPEGs than the estimate assumes
        write_episode(root / "home/pi/eps" / f"episode_{i:03d}", rng.integers(0, 256, (10, 360, 640, 3), np.uint8),
                      np.zeros((10, 2)), fps=30, jpeg_quality=90)
    check = by_name(run_checks(view(root, free_gb=1.0), RecordingPlan(folder="/home/pi/eps", minutes=5)))
    detail = check["recording space"].detail
    assert "measured on its 2 newest episode(s)" in detail
    mb_per_min = int(detail.split("(")[1].split(" MB/min")[0])
    assert mb_per_min > 300  # ~210 KB a noise frame at 30 fps, against the estimate's ~110 MB/min
    assert check["recording space"].status == WARN  # 1 GB holds less than 5 minutes of it
