"""The runtime's command-source hook (what `edgeact drive` plugs into) and a released emergency stop."""

from __future__ import annotations

import pytest

from edgeact.errors import ConfigError
from edgeact.runtime import Runtime, RuntimeConfig, open_actuator
from edgeact.runtime.command_source import Decision
from edgeact.runtime.safety import ESTOP, wait_for

from runtime_fakes import ConstantBackend, SyntheticCamera


class Scripted:
    """A command source whose decision the test sets; records what was executed."""

    def __init__(self) -> None:
        self.decision = Decision(None, uses_policy=False, hold="nobody")
        self.seen_policy: list = []
        self.executed_log: list = []

    def decide(self, now, policy):
        self.seen_policy.append(policy)
        return self.decision

    def executed(self, now, steering, throttle, neutral, why):
        self.executed_log.append((steering, throttle, neutral, why))


def runtime(source, **kw):
    cfg = RuntimeConfig(rate_hz=50.0, handle_signals=False, realtime=False, steering_rate=None, throttle_rate=None,
                        **kw)
    act = open_actuator("none")
    return Runtime(ConstantBackend(steering=0.2, throttle=0.3), SyntheticCamera(), act, cfg, command_source=source), act


def test_the_source_replaces_the_policy_or_holds_neutral_without_a_fault():
    src = Scripted()
    rt, act = runtime(src)
    rt.start()
    try:
        assert wait_for(lambda: src.executed_log and src.executed_log[-1][3] == "nobody", 5.0)
        assert act.last_sent == (0.0, 0.0)
        assert wait_for(lambda: src.seen_policy and src.seen_policy[-1] is not None, 5.0)
        assert src.seen_policy[-1] == pytest.approx((0.2, 0.3))  # the policy's action, for the source to use
        src.decision = Decision((-0.5, 0.4), uses_policy=False)
        assert wait_for(lambda: act.last_sent == (-0.5, 0.4), 5.0)
        src.decision = Decision((0.1, 0.1), uses_policy=True)
        assert wait_for(lambda: act.last_sent == (0.1, 0.1), 5.0)
    finally:
        report = rt.stop()
    assert report.faults == []  # holding neutral for a person is not a fault
    assert report.neutral_at_exit


def test_a_source_that_follows_the_policy_keeps_the_stale_chunk_fault():
    src = Scripted()
    src.decision = Decision((0.5, 0.5), uses_policy=True)
    rt, act = runtime(src, max_chunk_age_s=0.05)
    rt.backend.latency_s = 0.2  # every chunk is already too old when it arrives
    rt.start()
    try:
        assert wait_for(lambda: "stale-chunk" in rt.safety.active, 5.0)
        assert act.last_sent == (0.0, 0.0)
    finally:
        rt.stop()


def test_emergency_stop_holds_until_released_on_purpose():
    src = Scripted()
    src.decision = Decision((0.0, 0.6), uses_policy=False)
    rt, act = runtime(src)
    rt.start()
    try:
        assert wait_for(lambda: act.last_sent == (0.0, 0.6), 5.0)
        rt.emergency_stop("test")
        assert wait_for(lambda: ESTOP in rt.safety.latched and act.last_sent == (0.0, 0.0), 5.0)
        rt.estop.release()
        assert wait_for(lambda: act.last_sent == (0.0, 0.6), 5.0)
        assert ESTOP not in rt.safety.latched
    finally:
        report = rt.stop()
    kinds = [f["kind"] for f in report.faults]
    assert kinds == [ESTOP] and report.faults[0]["t_end"] is not None


def test_a_command_source_needs_the_async_runtime():
    with pytest.raises(ConfigError, match="async"):
        Runtime(ConstantBackend(), SyntheticCamera(), open_actuator("none"),
                RuntimeConfig(sync=True, handle_signals=False), command_source=Scripted())
