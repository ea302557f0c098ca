"""The lean socket layer (server/wsconn.py) against a real Jupyter server, frame by frame.

After Jupyter's auth and the handshake, nbchat serves each socket itself instead of
keeping a tornado handler per socket; these tests hold it to RFC 6455 and to what a
user of the chat would notice: messages whole, peers announced when they go, a stuck
client dropped instead of growing the server.
"""

from __future__ import annotations

import asyncio
import gc
import json
import struct
from typing import Any
from urllib.parse import urlencode

import pytest
from tests.conftest import TEST_NBCHAT_CONFIG, User
from tests.support.rawws import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    RawWs,
    frame,
)

from nbchat.server.handlers import PresenceHandler, SignalingHandler


async def raw_signal(
    user: User, key: str = "room", after_handshake: bytes = b"", rcvbuf: int | None = None
) -> tuple[RawWs, str]:
    peer_id = await user.new_id(key)
    url = user.base + "nbchat/peerjs?" + urlencode({"key": key, "id": peer_id, "token": "t"})
    ws = await RawWs.connect(url, user.cookie, after_handshake, rcvbuf=rcvbuf)
    return ws, peer_id


async def raw_presence(user: User, key: str = "room") -> RawWs:
    return await RawWs.connect(user.base + "nbchat/presence?key=" + key, user.cookie)


def offer(dst: str, payload: Any) -> str:
    return json.dumps({"type": "OFFER", "dst": dst, "payload": payload})


async def expect_open(ws: RawWs) -> None:
    assert await ws.recv_data() == (OP_TEXT, b'{"type":"OPEN"}')


async def next_json(ws: RawWs, timeout: float = 5.0) -> dict[str, Any]:
    got = await ws.recv_data(timeout)
    assert got is not None and got[0] == OP_TEXT, got
    return json.loads(got[1])


async def wait_for(condition: Any, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_open_sockets_keep_no_request_handler(login, jp_serverapp):
    """The point of the lean layer: once open, a socket holds no tornado/Jupyter handler
    (request, headers, IOStream...), only the socket and a small object."""
    app = jp_serverapp.extension_manager.extension_apps["nbchat"]
    app = next(iter(app))
    a, b = await login(), await login()
    socks = [await a.signal("room") for _ in range(5)] + [await b.signal("room")]
    subs = [await a.presence("room") for _ in range(3)]
    gc.collect()
    alive = [
        o
        for o in gc.get_objects()
        if isinstance(o, (SignalingHandler, PresenceHandler)) and o.service is app.service
    ]
    assert alive == []
    assert len(app.hub.conns) == len(socks) + len(subs)
    # ... and they still work as sockets.
    (wa, _), (wb, idb) = socks[0], socks[-1]
    await wa.send({"type": "OFFER", "dst": idb, "payload": "still here"})
    assert (await wb.recv())["payload"] == "still here"


async def test_a_message_in_fragments_with_a_ping_between_arrives_whole(login):
    a, b = await login(), await login()
    wa, ida = await raw_signal(a)
    await expect_open(wa)
    wb, idb = await b.signal("room")
    text = offer(idb, "über " * 400)
    cut = [text[:10], text[10:1000], text[1000:]]
    await wa.send(frame(OP_TEXT, cut[0], fin=False))
    await wa.send(frame(OP_PING, b"are you there"))
    assert await wa.recv() == (OP_PONG, b"are you there")
    await wa.send(frame(OP_CONT, cut[1], fin=False) + frame(OP_CONT, cut[2]))
    got = await wb.recv()
    assert got["src"] == ida and got["payload"] == "über " * 400


async def test_frames_trickled_byte_by_byte_and_sent_with_the_handshake(login):
    a, b = await login(), await login()
    wb, idb = await b.signal("room")
    first = frame(OP_TEXT, offer(idb, "came with the upgrade"))
    wa, _ = await raw_signal(a, after_handshake=first)
    await expect_open(wa)
    assert (await wb.recv())["payload"] == "came with the upgrade"
    data = frame(OP_TEXT, offer(idb, "x" * 300))  # 16-bit length: header split too
    for i in range(len(data)):
        await wa.send(data[i : i + 1])
    assert (await wb.recv())["payload"] == "x" * 300
    data = frame(OP_TEXT, offer(idb, "z" * 7000)) + frame(OP_TEXT, offer(idb, "next"))
    for i in range(0, len(data), 97):  # a large frame in small pieces, then another
        await wa.send(data[i : i + 97])
    assert (await wb.recv())["payload"] == "z" * 7000
    assert (await wb.recv())["payload"] == "next"
    await wa.send(frame(OP_BINARY, offer(idb, "binary JSON works too").encode()))
    assert (await wb.recv())["payload"] == "binary JSON works too"


@pytest.mark.parametrize(
    "bad, code",
    [
        (frame(OP_TEXT, b'{"type":"HEARTBEAT"}', mask=False), 1002),  # clients must mask
        (frame(OP_TEXT, b"\xff\xfe not utf-8"), 1007),
        (frame(OP_TEXT, b"x", rsv=4), 1002),  # compression was never negotiated
        (frame(OP_PING, b"x" * 126), 1002),  # control frames are short
        (frame(OP_PING, b"x", fin=False), 1002),  # ... and never fragmented
        (frame(0x3, b"x"), 1002),  # reserved opcode
        (frame(OP_CONT, b"x"), 1002),  # nothing to continue
        (frame(OP_TEXT, b"a", fin=False) + frame(OP_TEXT, b"b"), 1002),  # unfinished message
        (frame(OP_TEXT, b"x" * (4 * TEST_NBCHAT_CONFIG["max_message_bytes"] + 1)), 1009),
    ],
)
async def test_a_broken_frame_closes_that_socket_with_the_rfc_code(login, bad, code):
    a, b = await login(), await login()
    pb, _ = await b.presence("room")
    wb, idb = await b.signal("room")
    assert (await pb.recv())["type"] == "USER_CONNECTED"
    wa, ida = await raw_signal(a)
    await expect_open(wa)
    assert (await pb.recv())["type"] == "USER_CONNECTED"
    await wa.send(bad)
    assert await wa.closed_with() == code
    assert await wa.eof()
    left = await pb.recv()
    assert left["type"] == "USER_DISCONNECTED" and left["peer"]["peer_id"] == ida
    await wb.send({"type": "HEARTBEAT"})  # the other socket is untouched
    again, _ = await raw_signal(a)
    await expect_open(again)


async def test_a_client_close_is_echoed_and_announced(login):
    a, b = await login(), await login()
    pb, _ = await b.presence("room")
    wa, ida = await raw_signal(a)
    await expect_open(wa)
    assert (await pb.recv())["type"] == "USER_CONNECTED"
    await wa.send(frame(OP_CLOSE, struct.pack("!H", 1000) + b"bye"))
    assert await wa.closed_with() == 1000
    assert await wa.eof()
    assert (await pb.recv())["type"] == "USER_DISCONNECTED"


async def test_frames_that_arrive_with_the_close_frame_are_still_relayed(login):
    """A leaving client's last frames and its close frame can reach the server in one read
    (a server slow to read, e.g. starved of CPU, sees them together): they are relayed,
    not dropped (a starved soak lost them)."""
    a, b = await login(), await login()
    wb, idb = await b.signal("room")
    wa, _ = await raw_signal(a)
    await expect_open(wa)
    last = b"".join(frame(OP_TEXT, offer(idb, f"last {i}")) for i in range(3))
    await wa.send(last + frame(OP_CLOSE, struct.pack("!H", 1000)))
    assert await wa.closed_with() == 1000
    assert [(await wb.recv())["payload"] for _ in range(3)] == ["last 0", "last 1", "last 2"]


async def test_a_vanished_client_is_announced_as_gone(login):
    a, b = await login(), await login()
    pb, _ = await b.presence("room")
    wa, ida = await raw_signal(a)
    await expect_open(wa)
    assert (await pb.recv())["type"] == "USER_CONNECTED"
    wa.abort()  # TCP reset mid-conversation, no close frame
    left = await pb.recv(timeout=2)
    assert left["type"] == "USER_DISCONNECTED" and left["peer"]["peer_id"] == ida


@pytest.mark.parametrize(
    "nbchat_config",
    [
        {
            **TEST_NBCHAT_CONFIG,
            "send_buffer_limit": 65536,
            "rate_limit": 1e6,
            "rate_burst": 1e6,
            "alive_timeout": 60,  # so that only the send buffer can end the stuck socket
        }
    ],
)
async def test_a_client_that_stops_reading_is_dropped_not_buffered_forever(login, jp_serverapp):
    app = next(iter(jp_serverapp.extension_manager.extension_apps["nbchat"]))
    a, b = await login(), await login()
    pa, _ = await a.presence("room")
    stuck, stuck_id = await raw_signal(b, rcvbuf=4096)  # then never reads again
    assert (await pa.recv())["type"] == "USER_CONNECTED"
    wa, ida = await a.signal("room")
    assert (await pa.recv())["type"] == "USER_CONNECTED"
    chunk = "y" * 7000
    sent = 0
    while True:
        await wa.send({"type": "OFFER", "dst": stuck_id, "payload": chunk})
        sent += 1
        try:
            frame_ = await pa.recv(timeout=0.01)
        except asyncio.TimeoutError:
            assert sent < 3000, "the stuck socket was never dropped"
            continue
        assert frame_["type"] == "USER_DISCONNECTED" and frame_["peer"]["peer_id"] == stuck_id
        break
    assert len(app.hub.conns) == 2  # the presence socket and wa
    await wa.send({"type": "HEARTBEAT"})
    assert stuck_id not in json.loads((await a.get("nbchat/room/peers")).body)


# Jupyter's own keep-alive settings (milliseconds), which nbchat's sockets follow.
@pytest.mark.parametrize("tornado_settings", [{"ws_ping_interval": 200, "ws_ping_timeout": 800}])
async def test_keepalive_pings_drop_a_silent_client_and_keep_one_that_answers(login):
    a = await login()
    silent = await raw_presence(a)
    answering = await raw_presence(a)
    assert (await silent.recv())[0] == OP_TEXT  # roster
    assert (await answering.recv())[0] == OP_TEXT
    pings = 0

    async def answer() -> None:
        # The answering client answers every ping the whole time (also while we wait for
        # the silent one to be dropped: waiting first would make it silent too).
        nonlocal pings
        while True:
            got = await answering.recv(timeout=30)
            if got is None:
                raise AssertionError("an answering client was dropped")
            if got[0] == OP_PING:
                pings += 1
                await answering.send(frame(OP_PONG, got[1]))

    answerer = asyncio.ensure_future(answer())
    try:
        # A dead network: the silent client's TCP stays open, but it answers nothing.
        assert (await silent.recv(timeout=2))[0] == OP_PING
        assert await silent.eof(timeout=5)
        # The answering one is pinged too, and stays (no data frame arrives meanwhile).
        loop = asyncio.get_running_loop()
        until = loop.time() + 2.0
        while loop.time() < until and not answerer.done():
            await asyncio.sleep(0.05)  # the answerer works meanwhile; it fails if dropped
        if answerer.done():
            answerer.result()  # raises what went wrong
    finally:
        answerer.cancel()
    assert pings >= 2
