"""`edgeact hailo check`: on the Pi, is everything in place to run a HEF?

The doctor's Hailo checks (:func:`edgeact.doctor.check_hailo`: the board, the apt package set,
the kernel driver, HailoRT and numpy, the firmware, the PCIe link, each against the others) and,
with a bundle, for each Hailo part: is there a HEF for this board, intact, from a DFC this
HailoRT reads.
"""

from __future__ import annotations

from pathlib import Path

from edgeact.doctor import FAIL, OK, WARN, Check, SystemView, check_hailo


def run_check(bundle: str | Path | None = None, system: SystemView | None = None) -> list[Check]:
    """The checks, in the order a person fixes things; any FAIL means the HEF will not run."""
    from edgeact.backends.hailort import DEVICE_HINT, INSTALL_HINT

    system = system or SystemView()
    checks = check_hailo(system)
    if [c.name for c in checks] == ["hailo"]:  # nothing Hailo at all: here that is the failure
        return [Check(FAIL, "hailo", "no Hailo device, driver or HailoRT found", f"{INSTALL_HINT}; {DEVICE_HINT}")]
    if bundle is not None:
        version, devices, _ = system.hailort()
        checks += bundle_checks(Path(bundle), devices, version)
    return checks


def bundle_checks(bundle: Path, devices: list, version: str | None) -> list[Check]:
    from edgeact.backends.hailo_part import MODES, read_part, verified_file, version_tuple
    from edgeact.backends.hailort import choose_hef
    from edgeact.errors import BackendError

    checks = []
    for mode in MODES:
        try:
            part = read_part(bundle, mode)
        except BackendError:
            continue
        name = f"HEF ({mode})"
        if not part.hefs:
            checks.append(Check(WARN, name, "not compiled",
                                f"edgeact hailo compile {bundle} --mode {mode} --calib CALIB --hw-arch BOARD"))
            continue
        if not devices or version is None:
            checks.append(Check(WARN, name, f"HEFs for {', '.join(sorted(part.hefs))}; no device to match them to"))
            continue
        try:
            hw_arch, entry, warning = choose_hef(part, devices[0], version_tuple(version))
            verified_file(part, entry["file"], "copy the bundle again")
        except BackendError as err:
            checks.append(Check(FAIL, name, str(err)))
            continue
        detail = (f"{hw_arch}, {entry['precision']}, DFC {entry['dfc_version']} (for HailoRT "
                  f"{entry.get('hailort') or '?'}), {entry['file']}")
        checks.append(Check(WARN, name, detail, warning) if warning else Check(OK, name, detail))
    if not checks:
        checks.append(Check(FAIL, "HEF", f"{bundle} has no Hailo part", f"edgeact hailo export {bundle}"))
    return checks
