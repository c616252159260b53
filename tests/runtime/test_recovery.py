"""RecoveringBackend on a fake clock: when a device that dropped out is retried, when it is given up,
what each inference gives meanwhile (an error, so neutral; or the CPU fallback's chunk), and the events."""

from __future__ import annotations

import numpy as np
import pytest
from runtime_fakes import SPEC, ConstantBackend

from edgeact.errors import ConfigError, DeviceLostError
from edgeact.runtime.recovery import GAVE_UP, LOST, OK, RecoveringBackend, RecoveryConfig


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


class FlakyDevice(ConstantBackend):
    """Answers ``ok_calls`` times, then drops out; ``reopen()`` fails ``reopen_failures`` times, then works."""

    name = "flaky-npu"

    def __init__(self, ok_calls=3, reopen_failures=0, **kw):
        super().__init__(steering=0.5, **kw)
        self.ok_calls, self.reopen_failures = ok_calls, reopen_failures
        self.up = True
        self.reopen_calls = 0

    def predict_chunk(self, image, state):
        if self.up and self.calls >= self.ok_calls:
            self.up = False
        if not self.up:
            raise DeviceLostError("HAILO_COMMUNICATION_CLOSED")
        return super().predict_chunk(image, state)

    def reopen(self):
        self.reopen_calls += 1
        if self.reopen_calls <= self.reopen_failures:
            raise DeviceLostError("HAILO_OUT_OF_PHYSICAL_DEVICES")
        self.up, self.ok_calls = True, 10**9


def frame():
    return np.zeros((*SPEC.image_size, 3), np.uint8), np.zeros(2, np.float32)


def wrap(device, fallback=None, **config):
    clock = FakeClock()
    events = []
    backend = RecoveringBackend(device, fallback, RecoveryConfig(**config), clock=clock, background=False)
    backend.on_event = lambda kind, message: events.append((round(clock.t - 100.0, 3), kind))
    return backend, clock, events


def run_until(backend, clock, end_s, step_s=0.01):
    """Advance the fake clock in steps, polling as the recovery thread would; returns attempt times."""
    while clock.t - 100.0 < end_s - 1e-9:
        clock.t += step_s
        backend.poll()


def test_backoff_schedule_and_give_up_time():
    config = RecoveryConfig(attempts=5, backoff_s=0.5, max_backoff_s=4.0)
    assert config.delays() == [0.5, 1.0, 2.0, 4.0, 4.0] and config.give_up_after_s == 11.5
    for bad in ({"attempts": 0}, {"backoff_s": 0}, {"backoff_s": 9.0, "max_backoff_s": 8.0}):
        with pytest.raises(ConfigError):
            RecoveryConfig(**bad)


def test_the_failed_inference_raises_then_the_device_is_reopened_on_schedule():
    device = FlakyDevice(ok_calls=2, reopen_failures=2)
    backend, clock, events = wrap(device, attempts=5, backoff_s=0.5, max_backoff_s=8.0)
    for _ in range(2):
        assert backend.predict_chunk(*frame())[0, 0] == 0.5
    with pytest.raises(DeviceLostError, match="COMMUNICATION_CLOSED"):  # this tick's inference: a fault
        backend.predict_chunk(*frame())
    assert backend.state == LOST
    with pytest.raises(DeviceLostError, match=r"reopen attempt 1/5 in 0\.5 s"):  # no fallback: every try fails
        backend.predict_chunk(*frame())
    run_until(backend, clock, 0.49)
    assert device.reopen_calls == 0  # nothing before the first backoff
    run_until(backend, clock, 3.6)  # attempts at 0.5 (fails), 1.5 (fails), 3.5 (works)
    assert backend.state == OK and device.reopen_calls == 3
    assert [e for e in events if e[1] != "device-reopen"] == [
        (0.0, "device-lost"), (0.5, "device-reopen-failed"), (1.5, "device-reopen-failed"), (3.5, "device-reopened")]
    assert backend.recovery_s == [pytest.approx(3.5)]
    assert backend.predict_chunk(*frame())[0, 0] == 0.5  # the device answers again
    assert backend.stats()["reopened"] == 1 and backend.stats()["failed_attempts"] == 2


def test_a_device_that_never_comes_back_is_given_up_after_the_last_attempt():
    device = FlakyDevice(ok_calls=0, reopen_failures=10**9)
    backend, clock, events = wrap(device, attempts=3, backoff_s=0.5, max_backoff_s=1.0)
    with pytest.raises(DeviceLostError):
        backend.predict_chunk(*frame())
    run_until(backend, clock, 2.49)
    assert backend.state == LOST  # attempts at 0.5 and 1.5; the last is due at 2.5
    run_until(backend, clock, 2.5)
    assert backend.state == GAVE_UP and backend.gave_up and device.reopen_calls == 3
    assert events[-1] == (2.5, "device-gave-up")
    run_until(backend, clock, 60.0)
    assert device.reopen_calls == 3  # bounded: no attempt after giving up
    with pytest.raises(DeviceLostError, match="did not come back after 3 reopen attempts"):
        backend.predict_chunk(*frame())


def test_with_a_fallback_the_cpu_answers_while_the_device_is_away():
    device = FlakyDevice(ok_calls=1, reopen_failures=1)
    cpu = ConstantBackend(steering=-0.25)
    backend, clock, events = wrap(device, cpu, attempts=4, backoff_s=0.2, max_backoff_s=1.0)
    assert backend.predict_chunk(*frame())[0, 0] == 0.5
    with pytest.raises(DeviceLostError):  # the inference that met the loss still fails: that tick is neutral
        backend.predict_chunk(*frame())
    assert backend.predict_chunk(*frame())[0, 0] == -0.25  # then the CPU model's chunks
    run_until(backend, clock, 0.61)  # attempts at 0.2 (fails) and 0.6 (works)
    assert backend.state == OK and backend.predict_chunk(*frame())[0, 0] == 0.5
    kinds = [k for _, k in events]
    assert kinds == ["device-lost", "fallback-start", "device-reopen", "device-reopen-failed", "device-reopen",
                     "device-reopened", "fallback-stop"]
    assert backend.stats()["fallback_chunks"] == 1 and backend.stats()["fallback"] == "constant"


def test_the_background_thread_reopens_on_the_real_clock():
    from polling import wait_for

    device = FlakyDevice(ok_calls=0, reopen_failures=1)
    backend = RecoveringBackend(device, None, RecoveryConfig(attempts=3, backoff_s=0.01, max_backoff_s=0.02))
    with pytest.raises(DeviceLostError):
        backend.predict_chunk(*frame())
    assert wait_for(lambda: backend.state == OK, 5.0)
    backend.close()
    assert device.closed and device.reopen_calls == 2
