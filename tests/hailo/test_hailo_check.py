"""`edgeact hailo check` on the Pi, through the HailoRT double and a fake sysfs."""

from __future__ import annotations

from edgeact.cli import main
from edgeact.hailo.check import pcie_links, run_check
from edgeact.hailo.compile import import_hef


def fake_sysfs(root, address="0000:01:00.0"):
    dev = root / address
    dev.mkdir(parents=True)
    (dev / "vendor").write_text("0x1e60\n")
    (dev / "current_link_speed").write_text("8.0 GT/s PCIe\n")
    (dev / "current_link_width").write_text("1\n")
    other = root / "0000:00:00.0"
    other.mkdir()
    (other / "vendor").write_text("0x14e4\n")
    return root


def test_pcie_links_of_hailo_devices_only(tmp_path):
    assert pcie_links(fake_sysfs(tmp_path)) == {"0000:01:00.0": "8.0 GT/s PCIe, x1"}


def test_everything_in_place(hailo_bundle, hailort, tmp_path):
    bundle, _ = hailo_bundle
    hailort(devices=[("0000:01:00.0", "HAILO8L")])
    hef = tmp_path / "x.hef"
    hef.write_bytes(b"hef")
    import_hef(bundle, hef, "split", "hailo8l", "a16_w16", log=lambda s: None)
    report = run_check(bundle, fake_sysfs(tmp_path / "sys"))
    text = report.format()
    assert "HAILO8L" in text and "8.0 GT/s" in text and "4.23.0" in text and "a16_w16" in text
    assert any(line.what == "HEF (full)" and not line.ok for line in report.lines)  # full not compiled


def test_hef_for_the_wrong_arch(hailo_bundle, hailort, tmp_path):
    bundle, _ = hailo_bundle
    hailort(devices=[("0000:01:00.0", "HAILO8L")])
    hef = tmp_path / "x.hef"
    hef.write_bytes(b"hef")
    import_hef(bundle, hef, "split", "hailo8", "a16_w16", log=lambda s: None)
    line = next(x for x in run_check(bundle, tmp_path).lines if x.what == "HEF (split)")
    assert not line.ok and "--hw-arch hailo8l" in line.detail


def test_no_hailort(no_hailort, capsys):
    assert main(["hailo", "check"]) == 1
    assert "hailo-all" in capsys.readouterr().out


def test_no_device(hailort, capsys):
    hailort(devices=[])
    assert main(["hailo", "check"]) == 1
    assert "hailortcli scan" in capsys.readouterr().out
