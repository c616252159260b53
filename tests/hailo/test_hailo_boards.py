"""Each Hailo backend on each board's runtime (HailoRT 4.23 + Hailo-8L, 4.23 + Hailo-8, 5.2 + Hailo-10H)
through the HailoRT double, from one bundle holding a HEF per board, and each stack mismatch with its fix."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hailohelpers import compile_for

import edgeact
from edgeact.bundle import spec_from_manifest
from edgeact.errors import BackendError
from edgeact.export.calibration import observations_for
from edgeact.hailo.compile import import_hef

RUNTIMES = {"4.23 + Hailo-8L": ("4.23.0", "HAILO8L", "hailo8l"), "4.23 + Hailo-8": ("4.23.0", "HAILO8", "hailo8"),
            "5.2 + Hailo-10H": ("5.2.0", "HAILO10H", "hailo10h")}


def observations(bundle, episodes, n=3):
    spec = spec_from_manifest(json.loads((bundle / "manifest.json").read_text()))
    return observations_for(spec, episodes, 0, n)[1]


@pytest.mark.parametrize("backend", ["hailo-split", "hailo"])
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_each_backend_runs_its_boards_hef_through_infer_model(every_board, hailort, episodes, runtime, backend):
    version, arch, hw_arch = RUNTIMES[runtime]
    hp = hailort(devices=[("0000:01:00.0", arch)], version=version)
    # the library defaults differ (4.x's Python forces no scheduler, 5.x keeps round robin) ...
    assert hp.VDevice.create_params().scheduling_algorithm == (1 if version.startswith("5") else 0)
    policy = edgeact.load_policy(str(every_board), backend=backend)
    # ... so the runner sets it: with none, the double (as HailoRT) refuses to run an unactivated model
    assert policy.npu.vdevice._params.scheduling_algorithm == hp.HailoSchedulingAlgorithm.ROUND_ROBIN.value
    assert policy.hw_arch == hw_arch and policy.warning is None and policy.npu.api == "InferModel"
    assert policy.hef_path.endswith(f"hailo/{'split' if backend == 'hailo-split' else 'full'}/{hw_arch}/model.hef")
    reference = edgeact.load_policy(str(every_board), backend="onnx")
    action_range = reference.manifest["policy"]["action_range"]
    span = np.asarray(action_range["max"]) - action_range["min"]
    for cams, state in observations(every_board, episodes):
        chunk = policy.predict_chunk(cams[0], state)
        assert chunk.shape == (policy.spec.chunk_size, policy.spec.action_dim) and chunk.dtype == np.float32
        assert np.max(np.abs(chunk - reference.predict_chunk(cams[0], state)) / span) < 0.05
    assert [name for name, _ in hp.calls].count("run") == 3
    policy.close()


def test_hailort_5_has_no_vstreams_on_a_hailo10h_and_dropped_the_old_names(hailort, every_board):
    hp = hailort(devices=[("0000:01:00.0", "HAILO10H")], version="5.2.0")
    assert not hasattr(hp, "PcieDevice") and not hasattr(hp, "UDPRateLimiter")
    with hp.VDevice() as vdevice, pytest.raises(hp.HailoRTException, match="HAILO_NOT_IMPLEMENTED"):
        vdevice.configure(hp.HEF(str(every_board / "hailo/split/hailo10h/model.hef")))
    params = hp.VDevice.create_params()
    params.multi_process_service = True  # not on a Hailo-10H (it shares itself between processes)
    with pytest.raises(hp.HailoRTException, match="HAILO_INVALID_OPERATION"):
        hp.VDevice(params)


MISMATCHES = {  # name: (HailoRT, device arch, state set on the double, words of the error)
    "HailoRT 4 with a Hailo-10H": ("4.23.0", "HAILO10H", {},
                                   ["needs HailoRT 5.x", "sudo apt install dkms hailo-h10-all"]),
    "HailoRT 5 with a Hailo-8L": ("5.2.0", "HAILO8L", {}, ["needs HailoRT 4.x", "sudo apt install dkms hailo-all"]),
    "HailoRT 5 with a Hailo-8": ("5.2.0", "HAILO8", {}, ["needs HailoRT 4.x"]),
    "driver and library differ": ("4.23.0", "HAILO8L", {"driver_version": "4.20.0"},
                                  ["must match exactly", "--reinstall hailo-all", "reboot"]),
    "device held by another process": ("4.23.0", "HAILO8L", {"held": True},
                                       ["another process holds the device", "sudo fuser", "systemctl stop edgeact"]),
    "HEF from a DFC newer than the runtime": ("4.20.0", "HAILO8L", {},
                                              ["DFC 3.33.1 for HailoRT 4.23", "this Pi has HailoRT 4.20.0",
                                               "full-upgrade"]),
}


@pytest.mark.parametrize("case", MISMATCHES)
@pytest.mark.parametrize("backend", ["hailo-split", "hailo"])
def test_each_mismatch_names_its_fix(every_board, hailort, case, backend):
    version, arch, state, words = MISMATCHES[case]
    hp = hailort(devices=[("0000:01:00.0", arch)], version=version)
    for key, value in state.items():
        setattr(hp.device, key, value)
    with pytest.raises(BackendError) as info:
        edgeact.load_policy(str(every_board), backend=backend)
    for word in words:
        assert word in str(info.value), str(info.value)


def test_a_hef_for_another_board(hailo_bundle, hailort, monkeypatch):
    bundle, calib = hailo_bundle
    compile_for(monkeypatch, bundle, calib["split"], "hailo10h")
    hailort(devices=[("0000:01:00.0", "HAILO8L")])
    with pytest.raises(BackendError, match=r"HEFs for hailo10h, none that runs on this HAILO8L.*--hw-arch hailo8l"):
        edgeact.load_policy(str(bundle), backend="hailo-split")


def test_a_hef_by_hand_from_a_newer_dfc_is_refused_by_hailort_with_the_fix(every_board, hailo_bundle, hailort):
    """Registered without --dfc-version the bundle cannot tell; HailoRT refuses it (HAILO_HEF_NOT_SUPPORTED)."""
    bundle, _ = hailo_bundle
    import_hef(bundle, every_board / "hailo/split/hailo8l/model.hef", "split", "hailo8l", "a8_w8", log=lambda s: None)
    hailort(version="4.20.0")
    with pytest.raises(BackendError, match=r"HAILO_HEF_NOT_SUPPORTED.*newer.*DFC 3.x for 4.x"):
        edgeact.load_policy(str(bundle), backend="hailo-split")


def test_the_pis_smoke_check_runs_the_hef_of_its_board(every_board, hailort):
    from edgeact.deploy.smoke import smoke_check

    hailort(devices=[("0000:01:00.0", "HAILO10H")], version="5.2.0")
    result = smoke_check(every_board, "hailo-split")
    assert result["hw_arch"] == "hailo10h" and result["chunk"] == [result["chunk"][0], 2]
