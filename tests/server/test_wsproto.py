"""Properties of the sans-I/O WebSocket protocol (server/wsproto.py), fed byte strings.

The server tests (tests/server/test_wsconn.py) prove the socket layer against a real Jupyter
server; these check what is impractical to try over sockets a thousand times, with no
socket and no event loop: that however a byte stream is cut into reads, the same
messages come out in the same order, and that no byte sequence makes the protocol raise
instead of answering with a close frame.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.support.rawws import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_TEXT, frame

from nbchat.server.wsproto import CLOSED, CLOSING, DRAINING, OPEN, WsProtocol

MAX = 4096


def cut(data: bytes, points: list[int]) -> list[bytes]:
    """``data`` split at ``points`` (positions modulo its length)."""
    at = sorted({p % (len(data) + 1) for p in points} | {0, len(data)})
    return [data[a:b] for a, b in zip(at, at[1:], strict=False) if b > a]


text_message = st.text(max_size=300)
binary_message = st.binary(max_size=300)


@st.composite
def message_stream(draw: Any) -> tuple[bytes, list[str | bytes]]:
    """Valid client frames (some fragmented, with pings between fragments) and the
    messages they carry."""
    wire = b""
    expected: list[str | bytes] = []
    for _ in range(draw(st.integers(1, 6))):
        message: str | bytes = draw(st.one_of(text_message, binary_message))
        data = message.encode() if isinstance(message, str) else message
        opcode = OP_TEXT if isinstance(message, str) else OP_BINARY
        pieces = cut(data, draw(st.lists(st.integers(0, 400), max_size=3))) or [b""]
        for i, piece in enumerate(pieces):
            wire += frame(opcode if i == 0 else OP_CONT, piece, fin=i == len(pieces) - 1)
            if draw(st.booleans()) and i < len(pieces) - 1:
                wire += frame(OP_PING, b"p")
        expected.append(message)
    return wire, expected


@settings(max_examples=300, deadline=None)
@given(message_stream(), st.lists(st.integers(0, 5000), max_size=12))
def test_any_cut_of_a_valid_stream_yields_the_same_messages(stream, points):
    wire, expected = stream
    proto = WsProtocol(MAX)
    got: list[str | bytes] = []
    for chunk in cut(wire, points):
        got += proto.feed(chunk)
    assert got == expected
    assert proto.state == OPEN
    assert proto.buffered == 0
    # Every ping between fragments was answered with a pong carrying its payload.
    assert all(out[:1] == b"\x8a" and out[2:] == b"p" for out in proto.outgoing)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.lists(st.integers(0, 700), max_size=8))
def test_no_byte_sequence_makes_the_protocol_raise(garbage, points):
    proto = WsProtocol(MAX)
    for chunk in cut(garbage, points):
        proto.feed(chunk)  # every outcome is a message, a wait for more bytes, or a close
    assert proto.buffered <= len(garbage)
    if proto.state != OPEN:
        assert proto.state in (DRAINING, CLOSED)
        assert proto.buffered == 0  # nothing more is held once it closes


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(
        [
            (frame(OP_TEXT, b"x", mask=False), 1002),
            (frame(OP_TEXT, b"\xc3\x28"), 1007),
            (frame(OP_CONT, b"x"), 1002),
            (frame(OP_PING, b"x" * 126), 1002),
            (frame(0xB, b""), 1002),
            (frame(OP_TEXT, b"x" * (MAX + 1)), 1009),
            (frame(OP_CLOSE, b"\x03"), 1002),
        ]
    ),
    st.lists(st.integers(0, 200), max_size=4),
)
def test_a_broken_frame_closes_once_with_its_code_and_nothing_after_it_is_read(case, points):
    bad, code = case
    proto = WsProtocol(MAX)
    got: list[str | bytes] = []
    for chunk in cut(frame(OP_TEXT, "before") + bad + frame(OP_TEXT, "never read"), points):
        got += proto.feed(chunk)
    assert got == ["before"]
    assert proto.state == DRAINING
    [reply] = proto.outgoing  # one close frame says why
    assert reply[:1] == bytes([0x80 | OP_CLOSE])
    assert int.from_bytes(reply[2:4], "big") == code


def test_the_close_handshake_both_ways() -> None:
    ours = WsProtocol(MAX)
    sent = ours.close(1001, "going away")
    assert sent is not None and sent[2:4] == (1001).to_bytes(2, "big")
    assert ours.state == CLOSING and ours.send_text("late") is None
    assert ours.feed(frame(OP_TEXT, "after our close")) == []  # no longer read
    ours.feed(frame(OP_CLOSE, (1001).to_bytes(2, "big")))
    assert ours.state == CLOSED and ours.ended

    theirs = WsProtocol(MAX)
    theirs.feed(frame(OP_CLOSE, (1000).to_bytes(2, "big") + b"bye"))
    assert theirs.state == DRAINING
    [echo] = theirs.outgoing
    assert echo == bytes([0x80 | OP_CLOSE, 2]) + (1000).to_bytes(2, "big")
