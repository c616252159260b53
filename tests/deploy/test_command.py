"""`edgeact deploy` as a user types it, against the loopback Pi."""

from __future__ import annotations

import pytest
from deployhelpers import current_of, variant

from edgeact.cli import main
from edgeact.deploy.bundles import verify_local


def cli(pi, root, *args):
    return main(["deploy", *args, "--ssh-config", str(pi.config), "--remote-dir", str(root)])


def test_deploy_redeploy_list_rollback(loopback_pi, pi_root, pi_bundle, capsys):
    pi = loopback_pi.alias
    assert cli(loopback_pi, pi_root, str(pi_bundle), pi) == 0
    out = capsys.readouterr().out
    first = verify_local(pi_bundle).bundle_id
    assert f"current -> bundles/{first}" in out and "smoke check on the Pi: onnx loads" in out
    assert "ssh sent" in out

    assert cli(loopback_pi, pi_root, str(pi_bundle), pi) == 0
    assert "already current" in capsys.readouterr().out

    assert cli(loopback_pi, pi_root, "--list", pi) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[1].startswith(f"*  {first}") and " onnx " in listing[1]

    assert cli(loopback_pi, pi_root, "--rollback", pi) == 2
    assert "nothing to roll back to" in capsys.readouterr().err
    assert current_of(pi_root) == f"bundles/{first}"


def test_a_tampered_bundle_is_refused_before_connecting(loopback_pi, tmp_path, pi_bundle, capsys):
    tampered = variant(pi_bundle, tmp_path / "tampered", "tampered")
    (tampered / "model.onnx").write_bytes((tampered / "model.onnx").read_bytes()[:-10])
    before = loopback_pi.connections()
    root = tmp_path / "pi" / "edgeact"
    assert cli(loopback_pi, root, str(tampered), loopback_pi.alias) == 2
    assert "model.onnx (sha256 differs) since export; nothing was sent" in capsys.readouterr().err
    assert loopback_pi.connections() == before and not root.exists()


def test_doctor_through_ssh(loopback_pi, pi_root, capsys):
    code = cli(loopback_pi, pi_root, "--doctor", loopback_pi.alias)
    out = capsys.readouterr().out
    assert code in (0, 1) and "OK    python" in out and out.splitlines()[-1].endswith("OK")


@pytest.mark.parametrize("args, message", [
    (["pi@rover"], "nothing to do"),
    (["bundle", "pi@rover", "--list"], "take only HOST"),
])
def test_usage_errors(args, message, capsys):
    assert main(["deploy", *args]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_a_checkpoint_is_exported_and_quantized_for_the_pi_first(loopback_pi, pi_root, tiny_ckpt, episodes,
                                                                   tmp_path, capsys):
    out = tmp_path / "rover-bundle"
    assert cli(loopback_pi, pi_root, str(tiny_ckpt), loopback_pi.alias, "--calib", str(episodes),
               "--bundle-out", str(out)) == 0
    text = capsys.readouterr().out
    # the LiteRT models are built beside the ONNX Runtime ones; this loopback "Pi" is an x86 machine,
    # where ONNX Runtime's int8 is the faster one (on a Pi 5's aarch64, LiteRT int8: test_pipeline)
    assert "smoke check on the Pi: onnx-int8 loads" in text
    assert {"onnx-int8", "litert-int8", "litert-fp16", "litert"} <= set(verify_local(out).models)
    assert current_of(pi_root) == f"bundles/{verify_local(out).bundle_id}"


def test_a_checkpoint_without_calib_is_refused(tiny_ckpt, capsys):
    assert main(["deploy", str(tiny_ckpt), "pi@rover"]) == 2
    assert "give --calib EPISODES" in capsys.readouterr().err


def test_a_pi_without_the_runtime_is_told_to_set_up_before_any_copy(bare_pi, pi_bundle, tmp_path, capsys):
    root = tmp_path / "pi" / "edgeact"  # no venv, and the "Pi"'s python3 has the standard library only
    assert cli(bare_pi, root, "--doctor", bare_pi.alias) == 2
    assert "add --setup" in capsys.readouterr().err
    assert cli(bare_pi, root, str(pi_bundle), bare_pi.alias) == 2
    assert "add --setup" in capsys.readouterr().err
    assert list((root / "bundles").iterdir()) == []
