import argparse

import pytest

from edgeact.commands import run as run_cmd
from edgeact.errors import ConfigError
from edgeact.runtime import Limits, RuntimeConfig, SafetyConfig


def parse(argv):
    parser = argparse.ArgumentParser()
    run_cmd.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["run", *argv])


def test_guide_flags_are_aliases():
    a = parse(["--checkpoint", "model.pth", "--camera_id", "0", "--arduino_port", "/dev/ttyUSB0"])
    assert (a.model, a.camera, a.actuator) == ("model.pth", "0", "/dev/ttyUSB0")
    b = parse(["--model", "b/", "--backend", "onnx-int8", "--camera", "sim:oval", "--actuator", "sim", "--rate", "100",
               "--duration", "20", "--telemetry", "t.jsonl", "--sync", "--max-throttle", "0.4", "--ensemble", "0.01"])
    assert (b.backend, b.rate, b.duration, b.sync, b.max_throttle, b.ensemble) == ("onnx-int8", 100.0, 20.0, True, 0.4,
                                                                                   0.01)


def test_run_command_with_a_fake_model_prints_the_summary(episode_dir, tmp_path, capsys):
    args = parse(["--model", "fake:2:0", "--camera", f"replay:{episode_dir}", "--actuator", "sim", "--rate", "50",
                  "--duration", "0.3", "--no-keys", "--status", "0", "--json", str(tmp_path / "r.json"), "--no-plot"])
    rc = args.func(args)
    out = capsys.readouterr().out
    assert rc == 0 and "stopped: duration 0.3 s reached" in out and "neutral at exit: yes" in out
    assert (tmp_path / "r.json").read_text().count('"neutral_at_exit": true') == 1


def test_bad_values_are_user_errors():
    with pytest.raises(ConfigError):
        RuntimeConfig(rate_hz=0)
    with pytest.raises(ConfigError):
        Limits(max_throttle=2.0)
    with pytest.raises(ConfigError):
        SafetyConfig(camera_stall_s=0)
    assert run_cmd.main(["--model", "fake", "--camera", "nowhere", "--actuator", "none", "--no-keys"]) == 2
    assert run_cmd.main(["--model", "fake", "--camera", "0", "--actuator", "none", "--max-throttle", "2"]) == 2


def test_command_line_defaults_are_the_librarys():
    config = run_cmd.runtime_config(parse(["--model", "m", "--camera", "0", "--actuator", "none"]))
    assert config.limits == Limits() and config.safety == SafetyConfig()
    assert (config.rate_hz, config.duration_s, config.sync) == (RuntimeConfig().rate_hz, None, False)
    no_slew = run_cmd.runtime_config(parse(["--model", "m", "--camera", "0", "--actuator", "none",
                                            "--steering-rate", "0", "--throttle-rate", "0", "--stall", "300"]))
    assert no_slew.limits == Limits(steering_rate=None, throttle_rate=None)
    assert no_slew.safety == SafetyConfig(camera_stall_s=0.3)
