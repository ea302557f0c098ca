"""Rooms with a passphrase: real aiortc peers through a real (and a tampering) Jupyter server."""

from __future__ import annotations

import base64
import contextlib
import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from tests.support.peers import Inbox, until

from nbchat.peer import ChatPeer

pytestmark = pytest.mark.timeout(120)

Connect = Callable[..., contextlib.AbstractAsyncContextManager[ChatPeer]]


@pytest.fixture
def connect(jp_serverapp: Any, jp_fetch: Any, server_base: str) -> Connect:
    token = jp_serverapp.identity_provider.token

    @contextlib.asynccontextmanager
    async def _connect(room: str, passphrase: str | None = None) -> AsyncIterator[ChatPeer]:
        async with ChatPeer(
            server_base, room, token=token, passphrase=passphrase, connect_timeout=8
        ) as peer:
            yield peer

    return _connect


@pytest.fixture
def relayed(
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[[Callable[[dict[str, Any]], None]], list[str]]:
    """Make the signaling server pass every frame through ``edit`` (in place) before relaying
    it: a compromised server. Returns the frames as the server received them."""
    from nbchat.server.service import SignalingService

    def install(edit: Callable[[dict[str, Any]], None]) -> list[str]:
        seen: list[str] = []
        original = SignalingService.signaling_message

        def tampering(service: Any, transport: Any, message: str | bytes) -> None:
            text = message if isinstance(message, str) else message.decode()
            seen.append(text)
            frame = json.loads(text)
            if isinstance(frame, dict):
                edit(frame)
                text = json.dumps(frame)
            original(service, transport, text)

        monkeypatch.setattr(SignalingService, "signaling_message", tampering)
        return seen

    return install


async def test_peers_with_the_same_passphrase_chat_and_the_server_sees_no_sdp(
    connect: Connect, relayed: Any
) -> None:
    seen = relayed(lambda frame: None)
    room, word = "room-sealed", "tea at five"
    async with connect(room, word) as a, connect(room, word) as b:
        assert a.protected and b.protected
        assert await a.wait_for_peers(1) and await b.wait_for_peers(1)
        inbox = Inbox(b)
        await a.send("sealed hello")
        [got] = await inbox.wait(1)
        assert got["text"] == "sealed hello"
        assert a.rejected == [] and b.rejected == []
        assert a.config is not None
        limit = a.config.max_message_bytes
        inbox.stop()
    offers = [json.loads(t) for t in seen if '"OFFER"' in t]
    assert offers and all(set(f["payload"]) == {"sealed", "iv", "data"} for f in offers)
    # Nothing of the SDP (fingerprints, candidates, ufrag) is left for the server to read.
    assert not any("fingerprint" in t or "candidate:" in t or "a=ice" in t for t in seen)
    # Sealed signaling fits the room's frame limit (8 KiB in these tests).
    assert max(len(t.encode()) for t in seen) < limit


async def test_different_passphrases_form_no_link_and_both_sides_report_it(
    connect: Connect,
) -> None:
    async with connect("room-mismatch", "tea at five") as a:
        async with connect("room-mismatch", "coffee at six") as b:
            await until(lambda: bool(a.rejected) and bool(b.rejected))
            assert {r.peer_id for r in a.rejected} == {b.id}
            assert {r.peer_id for r in b.rejected} == {a.id}
            assert all("authentication failed" in r.reason for r in a.rejected + b.rejected)
            # Refused offers never became connections, so nothing can open.
            assert not a.peers and not b.peers
            assert a._mesh is not None
            accepted = [c for c in a._mesh.connections.values() if not c.originator]
            assert not any(c.peer == b.id for c in accepted)


async def test_a_peer_without_the_passphrase_cannot_join_the_mesh(connect: Connect) -> None:
    async with connect("room-open", "tea at five") as a, connect("room-open") as b:
        await until(lambda: bool(a.rejected) and bool(b.rejected))
        assert "no room passphrase" in a.rejected[0].reason
        assert "we have none" in b.rejected[0].reason
        assert not a.peers and not b.peers


def _flip_a_sealed_byte(frame: dict[str, Any]) -> None:
    payload = frame.get("payload")
    if frame.get("type") == "OFFER" and isinstance(payload, dict) and "data" in payload:
        data = bytearray(base64.b64decode(payload["data"]))
        data[len(data) // 2] ^= 0x01
        payload["data"] = base64.b64encode(bytes(data)).decode()


FINGERPRINT = re.compile(r"(a=fingerprint:sha-256 )([0-9A-F]{2})")


def _swap_the_fingerprint(frame: dict[str, Any]) -> None:
    """What a man in the middle does: put its own DTLS fingerprint in the offer."""
    payload = frame.get("payload")
    sdp = payload.get("sdp") if isinstance(payload, dict) else None
    if frame.get("type") == "OFFER" and isinstance(sdp, dict):
        sdp["sdp"] = FINGERPRINT.sub(lambda m: m[1] + ("00" if m[2] != "00" else "11"), sdp["sdp"])


async def test_a_tampering_server_is_detected_and_no_link_forms(
    connect: Connect, relayed: Any
) -> None:
    relayed(_flip_a_sealed_byte)
    room, word = "room-tamper", "tea at five"
    async with connect(room, word) as a, connect(room, word) as b:
        await until(lambda: bool(a.rejected) or bool(b.rejected))
        rejected = a.rejected + b.rejected
        assert all(r.type == "OFFER" and "changed in transit" in r.reason for r in rejected)
        assert not a.peers and not b.peers


async def test_without_a_passphrase_a_swapped_fingerprint_goes_unnoticed(
    connect: Connect, relayed: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The threat this feature answers: the server rewrites the offer's DTLS fingerprint and
    the callee takes it as the caller's. (Here DTLS then fails, because the server holds no
    matching key; a real man in the middle would hold one and read everything.)"""
    from nbchat.peer.dataconnection import DataConnection

    accepted: list[str] = []
    original = DataConnection.accept

    async def spy(self: DataConnection, sdp: dict[str, Any]) -> None:
        accepted.append(sdp["sdp"])
        await original(self, sdp)

    monkeypatch.setattr(DataConnection, "accept", spy)
    relayed(_swap_the_fingerprint)
    async with connect("room-mitm") as a, connect("room-mitm") as b:
        await until(lambda: bool(accepted))
        assert re.search(r"a=fingerprint:sha-256 (00|11):", accepted[0])
        assert a.rejected == [] and b.rejected == []  # nobody noticed
