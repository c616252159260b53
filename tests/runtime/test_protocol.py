import pytest

from edgeact.runtime import protocol as P


def test_drive_line_roundtrip_and_format():
    line = P.encode_drive(0.25, -1.0, 7)
    assert line.startswith(b"A,250,-1000,7*") and line.endswith(b"\n")
    assert P.decode_pi_line(line) == P.Drive(250, -1000, 7)
    # the checksum is the XOR of the bytes before '*', two hex digits
    payload = line.split(b"*")[0]
    x = 0
    for b in payload:
        x ^= b
    assert line.split(b"*")[1].strip() == b"%02X" % x


def test_values_are_clamped_and_seq_wraps():
    assert P.decode_pi_line(P.encode_drive(3.0, -7.0, 65537)) == P.Drive(1000, -1000, 1)
    assert P.decode_pi_line(P.encode_drive(float("nan"), 0.0, 0)).steering == 0


def test_neutral_and_arduino_messages():
    assert P.encode_neutral() == b"N*4E\n"
    assert P.decode_pi_line(b"N*4E\r\n") == P.Neutral()
    assert P.encode_ready() == P.frame(f"READY,{P.PROTOCOL_VERSION}")
    assert P.decode_arduino_line(P.encode_ready()) == P.Ready(P.PROTOCOL_VERSION)
    assert P.decode_arduino_line(P.encode_ack(65535)) == P.Ack(65535)
    assert P.decode_arduino_line(P.encode_failsafe()) == P.Failsafe()
    with pytest.raises(P.ProtocolError):  # hex digits are upper case: a flipped case bit is a corruption too
        P.decode_arduino_line(b"ACK,8*5d\n")


@pytest.mark.parametrize("line,decode", [
    (P.encode_drive(0.5, 0.3, 1234), P.decode_pi_line),
    (P.encode_neutral(), P.decode_pi_line),
    (P.encode_ack(4321), P.decode_arduino_line),
    (P.encode_ready(), P.decode_arduino_line),
    (P.encode_ready(None), P.decode_arduino_line),
    (P.encode_failsafe(), P.decode_arduino_line),
])
def test_every_single_byte_corruption_is_rejected(line, decode):
    body = line[:-1]  # without the newline
    for i in range(len(body)):
        for flip in (0x01, 0x02, 0x10, 0x20, 0x40):
            bad = bytearray(body)
            bad[i] ^= flip
            with pytest.raises(P.ProtocolError):
                decode(bytes(bad) + b"\n")


@pytest.mark.parametrize("bad", [
    b"A,1,2,3\n",  # no checksum
    b"A,1,2*00\n",  # wrong field count (and checksum)
    P.frame("A,1001,0,1"),  # out of range with a valid checksum
    P.frame("A,1,2,70000"),  # seq out of range
    P.frame("A,1.5,2,3"),  # not an integer
    P.frame("B,1,2,3"),  # unknown command
    P.frame("ACK,x"),
    b"A,1,2,3*G1\n",
    b"x" * 100 + b"\n",
])
def test_malformed_lines_are_rejected(bad):
    with pytest.raises(P.ProtocolError):
        P.decode_pi_line(bad)
    with pytest.raises(P.ProtocolError):
        P.decode_arduino_line(bad)


def test_line_buffer_splits_and_drops_overlong_lines():
    buf = P.LineBuffer()
    assert buf.feed(b"AC") == []
    assert buf.feed(b"K,1*00\nREA") == [b"ACK,1*00"]
    assert buf.feed(b"DY\n" + b"z" * 200 + b"\nN*4E\n") == [b"READY", b"N*4E"]
    assert buf.overflows == 1


def test_protocol_version_is_checked_and_an_old_sketch_named():
    assert P.version_problem(P.decode_arduino_line(P.encode_ready())) is None
    old = P.version_problem(P.decode_arduino_line(b"READY*4B\n"))  # what sketches before version 2 sent
    assert old is not None and "old rover_bridge sketch" in old and "edgeact firmware flash" in old
    newer = P.version_problem(P.decode_arduino_line(P.encode_ready(P.PROTOCOL_VERSION + 1)))
    assert newer is not None and f"version {P.PROTOCOL_VERSION + 1}" in newer
    with pytest.raises(P.ProtocolError):
        P.decode_arduino_line(P.frame("READY,two"))


def test_the_sketch_announces_this_protocol_version():
    from pathlib import Path

    sketch = Path(__file__).resolve().parents[2] / "firmware" / "rover_bridge" / "rover_bridge.ino"
    assert f"#define PROTOCOL_VERSION {P.PROTOCOL_VERSION} " in sketch.read_text()
