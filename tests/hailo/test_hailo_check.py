"""`edgeact hailo check` and the doctor's Hailo checks on fake Pi trees (sysfs, procfs, /dev, dpkg) with
the HailoRT double: each board healthy, and each mismatch a user meets with its fix."""

from __future__ import annotations

import pytest
from fake_system import fake_hailo
from hailohelpers import compile_for

from edgeact.cli import main
from edgeact.doctor import FAIL, OK, WARN, SystemView, format_checks
from edgeact.hailo.check import run_check

BOARDS = {  # board -> (HailoRT, device architecture, Python)
    "hailo8l": ("4.23.0", "HAILO8L", "3.11.2"),
    "hailo8": ("4.23.0", "HAILO8", "3.11.2"),
    "hailo10h": ("5.2.0", "HAILO10H", "3.13.5"),
}


def system(root, board="hailo8l", numpy="1.26.4"):
    return SystemView(root=root, user="pi", run=lambda cmd: None, version={"numpy": numpy}.get,
                      python_version=BOARDS[board][2])


def by_name(checks):
    return {c.name: c for c in checks}


@pytest.mark.parametrize("board", BOARDS)
def test_each_board_in_good_shape(every_board, hailort, tmp_path, board):
    version, arch, _ = BOARDS[board]
    hailort(devices=[("0000:01:00.0", arch)], version=version)
    root = fake_hailo(tmp_path, board, driver=version)
    checks = run_check(every_board, system(root, board, numpy="2.2.0" if board == "hailo10h" else "1.26.4"))
    text = format_checks(checks)
    assert {c.status for c in checks} == {OK}, text
    got = by_name(checks)
    module = "hailo1x_pci" if board == "hailo10h" else "hailo_pci"
    assert got["hailo driver"].detail == f"{module} {version} = HailoRT {version}"
    assert "8.0 GT/s PCIe, x1" in got["hailo pcie"].detail and version in got["hailo firmware"].detail
    assert got["HEF (split)"].detail.startswith(f"{board}, a16_w16") and got["HEF (full)"].status == OK
    assert ("hailo-h10-all" if board == "hailo10h" else "hailo-all") in got["hailo packages"].detail


def test_a_hailo8_with_only_a_hailo8l_hef_runs_it_with_a_warning(hailo_bundle, hailort, monkeypatch, tmp_path):
    bundle, calib = hailo_bundle
    compile_for(monkeypatch, bundle, calib["split"], "hailo8l")
    hailort(devices=[("0000:01:00.0", "HAILO8")])
    line = by_name(run_check(bundle, system(fake_hailo(tmp_path / "pi", "hailo8"))))["HEF (split)"]
    assert line.status == WARN and "--hw-arch hailo8" in line.fix


MISMATCHES = {
    # name: (board in the tree, tree options, device arch, HailoRT, double state) -> failing line, words of the fix
    "hailo-all on an AI HAT+ 2": ("hailo10h", {"module": "hailo_pci", "driver": "4.23.0",
                                               "packages": {"hailo-all": "4.23.0"}}, "HAILO10H", "4.23.0", {},
                                  {"hailo packages": "hailo-h10-all", "hailo driver": "hailo1x_pci",
                                   "hailort": "needs HailoRT 5.x"}),
    "hailo-h10-all on a Hailo-8L": ("hailo8l", {"module": "hailo1x_pci", "driver": "5.2.0",
                                                "packages": {"hailo-h10-all": "5.2.0"}}, "HAILO8L", "5.2.0", {},
                                    {"hailo packages": "sudo apt install dkms hailo-all"[-9:],
                                     "hailort": "needs HailoRT 4.x"}),
    "both package sets": ("hailo8l", {"packages": {"hailo-all": "4.23.0", "hailo-h10-all": "5.2.0"}}, "HAILO8L",
                          "4.23.0", {}, {"hailo packages": "sudo apt remove hailo-h10-all"}),
    "driver differs from the library": ("hailo8l", {"driver": "4.20.0"}, "HAILO8L", "4.23.0",
                                        {"driver_version": "4.20.0"},
                                        {"hailo driver": "--reinstall hailo-all", "hailort": "must match exactly"}),
    "firmware differs from the library": ("hailo8l", {}, "HAILO8L", "4.23.0", {"firmware": "4.20.0"},
                                          {"hailo firmware": "--reinstall hailo-all"}),
    "no driver loaded": ("hailo8l", {"module": "snd_dummy"}, "HAILO8L", "4.23.0", {},
                         {"hailo driver": "dmesg"}),
    "held by another process": ("hailo8l", {}, "HAILO8L", "4.23.0", {"held": True},
                                {"hailort": "sudo systemctl stop edgeact"}),
}


@pytest.mark.parametrize("case", MISMATCHES)
def test_each_mismatch_fails_with_its_fix(hailo_bundle, hailort, tmp_path, case):
    board, tree, arch, version, state, expected = MISMATCHES[case]
    hp = hailort(devices=[("0000:01:00.0", arch)], version=version)
    for key, value in state.items():
        setattr(hp.device, key, value)
    checks = by_name(run_check(None, system(fake_hailo(tmp_path, board, **tree), board)))
    text = format_checks(list(checks.values()))
    for name, words in expected.items():
        assert checks[name].status == FAIL and words in checks[name].detail + checks[name].fix, text


def test_gen2_link_is_a_warning(hailort, tmp_path):
    hailort()
    line = by_name(run_check(None, system(fake_hailo(tmp_path, link="5.0 GT/s PCIe"))))["hailo pcie"]
    assert line.status == WARN and "pciex1_gen=3" in line.fix


def test_nothing_hailo_is_a_plain_ok_for_the_doctor_and_a_failure_for_hailo_check(no_hailort, tmp_path):
    from edgeact.doctor import check_hailo

    (tmp_path / "dev").mkdir()
    assert [(c.status, c.name) for c in check_hailo(system(tmp_path))] == [(OK, "hailo")]
    (line,) = run_check(None, system(tmp_path))
    assert line.status == FAIL and "hailo-h10-all" in line.fix and "hailortcli scan" in line.fix


def test_cli_exit_status(hailort, capsys, monkeypatch, tmp_path):
    hailort(devices=[])
    assert main(["hailo", "check"]) == 1  # this machine: no Hailo device for HailoRT to find
    out = capsys.readouterr().out
    assert "FAIL" in out and "hailo" in out
