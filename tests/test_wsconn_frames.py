"""Properties of the frame parser in server/wsconn.py, fed straight from byte strings.

The server tests (tests/test_wsconn.py) prove the layer against a real Jupyter server;
these check what is impractical to try over sockets a thousand times: that however a
byte stream is cut into reads, the same messages come out in the same order, and that
no byte sequence makes the parser raise instead of closing the socket cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.support.rawws import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_TEXT, frame

from nbchat.server import wsconn
from nbchat.server.wsconn import Hub, WsConn

MAX = 4096


class Recorder(WsConn):
    __slots__ = ("got", "closed_calls")

    def __init__(self, hub: Hub, sock: socket.socket) -> None:
        super().__init__(hub, sock)
        self.got: list[str | bytes] = []
        self.closed_calls = 0

    def on_message(self, message: str | bytes) -> None:
        self.got.append(message)

    def on_closed(self) -> None:
        self.closed_calls += 1


@contextlib.contextmanager
def connected() -> Iterator[tuple[Recorder, socket.socket]]:
    """A WsConn on one end of a socket pair (the test holds the other end)."""
    loop = asyncio.new_event_loop()
    hub = Hub(MAX, 1 << 20)
    hub.loop = loop  # not running: close callbacks just queue
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.setblocking(False)
    try:
        yield Recorder(hub, ours), theirs
    finally:
        ours.close()
        theirs.close()
        loop.close()


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
    with connected() as (conn, _):
        for chunk in cut(wire, points):
            conn._receive(chunk)
        assert conn.got == expected
        assert not conn.closed
        assert conn._rbuf == b""


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.lists(st.integers(0, 700), max_size=8))
def test_no_byte_sequence_makes_the_parser_raise(garbage, points):
    failures: list[str] = []
    with connected() as (conn, _), mock.patch.object(
        wsconn.log, "exception", lambda *a, **k: failures.append(a[0])
    ):
        for chunk in cut(garbage, points):
            conn._receive(chunk)
        assert len(conn._rbuf) <= len(garbage)
    assert failures == []  # every outcome is a message, a wait for more bytes, or a close


@settings(max_examples=100, deadline=None)
@given(st.sampled_from([
    frame(OP_TEXT, b"x", mask=False),
    frame(OP_TEXT, b"\xc3\x28"),
    frame(OP_CONT, b"x"),
    frame(OP_PING, b"x" * 126),
    frame(0xB, b""),
    frame(OP_TEXT, b"x" * (MAX + 1)),
    frame(OP_CLOSE, b"\x03"),
]), st.lists(st.integers(0, 200), max_size=4))
def test_a_broken_frame_closes_once_and_nothing_after_it_is_read(bad, points):
    with connected() as (conn, theirs):
        after = frame(OP_TEXT, "never read")
        for chunk in cut(frame(OP_TEXT, "before") + bad + after, points):
            conn._receive(chunk)
        assert conn.got == ["before"]
        assert conn.closed
        reply = theirs.recv(65536)
        assert reply[:1] == bytes([0x80 | OP_CLOSE])  # a close frame says why
        code = int.from_bytes(reply[2:4], "big")
        assert code in (1002, 1007, 1009)
