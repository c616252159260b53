"""The pilot: modes, who is in control, the heartbeat, interventions (a fake clock, no threads)."""

from __future__ import annotations

import pytest

from edgeact.teleop.pilot import Mode, PersonInput, Pilot, PilotConfig

POLICY = (0.3, 0.8)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def make(**kw) -> tuple[Pilot, Clock]:
    clock = Clock()
    events: list[tuple[str, str]] = []
    pilot = Pilot(PilotConfig(**kw), clock=clock, on_event=lambda k, m: events.append((k, m)))
    pilot.events = events  # type: ignore[attr-defined]
    return pilot, clock


def press(pilot: Pilot, source: str, steering: float = 0.0, throttle: float = 0.0, active: bool = True) -> None:
    pilot.person_input(PersonInput(source, steering, throttle, active))


def test_starts_in_user_mode_neutral_until_a_person_acts():
    pilot, clock = make()
    d = pilot.decide(clock.t, POLICY)
    assert pilot.mode is Mode.USER and d.command is None and "waiting for a person" in d.hold
    press(pilot, "page 1", 0.5, 1.0)
    d = pilot.decide(clock.t, POLICY)
    assert d.command == (0.5, 0.5) and not d.uses_policy  # throttle scaled by the 0.5 max throttle


def test_heartbeat_loss_goes_neutral_and_stays_until_a_person_acts():
    pilot, clock = make(heartbeat_s=0.25)
    press(pilot, "page 1", 0.0, 1.0)
    clock.t += 0.2
    pilot.person_input(PersonInput("page 1", 0.0, 1.0, True))  # keeps speaking
    clock.t += 0.2
    assert pilot.decide(clock.t, POLICY).command == (0.0, 0.5)
    clock.t += 0.26  # silent past the heartbeat
    d = pilot.decide(clock.t, POLICY)
    assert d.command is None and "silent" in d.hold and pilot.controller is None
    # the page comes back idle (a heartbeat without a person acting): still neutral
    press(pilot, "page 1", active=False)
    assert pilot.decide(clock.t, POLICY).command is None
    press(pilot, "page 1", 0.0, 0.4)  # a person acts
    assert pilot.decide(clock.t, POLICY).command == (0.0, 0.2)
    clock.t += 0.3
    assert pilot.decide(clock.t, POLICY).command is None
    # back from silence with the key still down (a frozen tab): not a person acting again
    press(pilot, "page 1", 0.0, 1.0)
    assert pilot.decide(clock.t, POLICY).command is None and pilot.controller is None
    press(pilot, "page 1", active=False)
    press(pilot, "page 1", 0.0, 1.0)  # released and pressed again
    assert pilot.decide(clock.t, POLICY).command == (0.0, 0.5)
    assert any(k == "control-lost" for k, _ in pilot.events)


def test_control_belongs_to_the_page_where_a_person_last_acted():
    pilot, clock = make()
    press(pilot, "page 1", 0.2, 1.0)
    press(pilot, "page 2", active=False)  # an idle watcher: heard, but never drives
    assert pilot.controller == "page 1"
    assert pilot.decide(clock.t, POLICY).command == (0.2, 0.5)
    press(pilot, "page 2", -0.4, 0.0)
    assert pilot.controller == "page 2"
    press(pilot, "page 1", 0.2, 1.0)  # page 1 still holding its key: holding on is not starting to act
    assert pilot.controller == "page 2"
    press(pilot, "page 1", 0.9, 1.0, active=False)  # page 1 now only watches: its idle values are ignored
    assert pilot.decide(clock.t, POLICY).command == (-0.4, 0.0)
    pilot.lost("page 1", "page 1 closed")  # not in control: nothing changes
    assert pilot.controller == "page 2"
    pilot.lost("page 2", "page 2 closed")
    d = pilot.decide(clock.t, POLICY)
    assert d.command is None and "page 2 closed" in d.hold


def test_auto_lets_the_policy_drive_and_a_person_takes_over_and_hands_back():
    pilot, clock = make(max_throttle=0.6)
    pilot.acted("page 1")
    pilot.set_mode("auto")
    d = pilot.decide(clock.t, POLICY)
    assert d.command == (0.3, 0.6) and d.uses_policy and not d.intervention  # policy throttle capped
    clock.t += 5.0  # nobody speaks: auto needs nobody
    assert pilot.decide(clock.t, POLICY).command == (0.3, 0.6)
    press(pilot, "page 1", -1.0, 0.0)
    d = pilot.decide(clock.t, POLICY)
    assert d.command == (-1.0, 0.0) and d.intervention and not d.uses_policy
    assert pilot.intervening and pilot.interventions == 1
    press(pilot, "page 1", active=False)  # released: the policy drives again
    d = pilot.decide(clock.t, POLICY)
    assert d.command == (0.3, 0.6) and not d.intervention
    assert [k for k, _ in pilot.events if k in ("intervention", "handback")] == ["intervention", "handback"]


def test_silence_during_an_intervention_is_neutral_until_a_person_acts():
    pilot, clock = make()
    pilot.set_mode("auto")
    press(pilot, "page 1", 0.0, 1.0)
    assert pilot.decide(clock.t, POLICY).intervention
    clock.t += 0.3
    d = pilot.decide(clock.t, POLICY)
    assert d.command is None and "silent" in d.hold
    clock.t += 1.0
    assert pilot.decide(clock.t, POLICY).command is None  # not handed back to the policy by itself
    pilot.acted("page 2")
    assert pilot.decide(clock.t, POLICY).command == (0.3, 0.5)


def test_auto_steer_takes_steering_from_the_policy_and_throttle_from_the_person():
    pilot, clock = make()
    pilot.set_mode("auto-steer")
    assert pilot.decide(clock.t, POLICY).command is None  # nobody sets the throttle yet
    press(pilot, "page 1", 0.0, 1.0)
    d = pilot.decide(clock.t, POLICY)
    assert d.command == (0.3, 0.5) and d.uses_policy and not d.intervention
    press(pilot, "page 1", -0.7, 1.0)
    d = pilot.decide(clock.t, POLICY)
    assert d.command == (-0.7, 0.5) and d.intervention
    assert pilot.decide(clock.t, None).command is None  # no policy action: the runtime's stale-chunk fault


def test_modes_cycle_unknown_ones_are_refused_and_no_policy_means_user_only():
    pilot, _ = make()
    seen = []
    for _ in range(3):
        pilot.set_mode("next")
        seen.append(pilot.mode.value)
    assert seen == ["auto-steer", "auto", "user"]
    with pytest.raises(ValueError, match="unknown mode 'turbo'.*user, auto-steer, auto"):
        pilot.set_mode("turbo")
    manual, _ = make(has_policy=False)
    with pytest.raises(ValueError, match="needs a policy.*--model"):
        manual.set_mode("auto")
    manual.set_mode("next")
    assert manual.mode is Mode.USER


def test_bad_numbers_are_clipped_or_refused():
    pilot, clock = make(max_throttle=1.0)
    press(pilot, "gamepad", float("nan"), 7.0)
    assert pilot.decide(clock.t, POLICY).command == (0.0, 1.0)
    with pytest.raises(ValueError):
        pilot.set_max_throttle(1.5)
    with pytest.raises(Exception, match="heartbeat must be positive"):
        PilotConfig(heartbeat_s=0)


def test_a_gamepad_needs_no_heartbeat_but_its_loss_is_neutral():
    pilot, clock = make()
    pilot.person_input(PersonInput("gamepad", 0.0, 1.0, True, heartbeat=False))
    clock.t += 10.0  # a held stick sends no events
    assert pilot.decide(clock.t, POLICY).command == (0.0, 0.5)
    pilot.lost("gamepad", "gamepad lost (unplugged)")
    d = pilot.decide(clock.t, POLICY)
    assert d.command is None and "unplugged" in d.hold
