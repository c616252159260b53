"""What the page may send: every malformed message is a MessageError naming the problem."""

from __future__ import annotations

import json

import pytest

from edgeact.teleop.messages import (
    MAX_MESSAGE_BYTES,
    Button,
    Control,
    LatencyReport,
    MessageError,
    SetMaxThrottle,
    SetMode,
    parse_message,
)


def test_valid_messages():
    assert parse_message('{"type": "control", "steering": -0.5, "throttle": 1, "active": true}') == \
        Control(-0.5, 1.0, True)
    assert parse_message('{"type": "mode", "mode": "auto"}') == SetMode("auto")
    assert parse_message('{"type": "max_throttle", "value": 0.3}') == SetMaxThrottle(0.3)
    assert parse_message('{"type": "estop_toggle"}') == Button("estop_toggle")
    assert parse_message('{"type": "latency", "ms": [12.5, 30]}') == LatencyReport((12.5, 30.0))


@pytest.mark.parametrize("raw, problem", [
    ("not json", "not JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"type": "teleport"}', "unknown message type 'teleport'"),
    ('{"type": "control", "steering": 2, "throttle": 0}', "'steering' must be in"),
    ('{"type": "control", "steering": "left", "throttle": 0}', "'steering' must be a number"),
    ('{"type": "control", "steering": NaN, "throttle": 0}', "'steering' must be a number"),
    ('{"type": "control", "steering": 0, "throttle": true}', "'throttle' must be a number"),
    ('{"type": "control", "steering": 0, "throttle": 0, "active": "yes"}', "'active' must be true or false"),
    ('{"type": "mode", "mode": 3}', "'mode' must be a mode name"),
    ('{"type": "max_throttle", "value": 1.5}', "'value' must be in"),
    ('{"type": "latency", "ms": "fast"}', "'ms' must be a list"),
])
def test_malformed_messages_say_what_is_wrong(raw, problem):
    with pytest.raises(MessageError, match=problem):
        parse_message(raw)


def test_oversized_messages_are_refused_before_parsing():
    raw = json.dumps({"type": "control", "steering": 0, "throttle": 0, "pad": "x" * MAX_MESSAGE_BYTES})
    with pytest.raises(MessageError, match="limit"):
        parse_message(raw)
