"""A room bigger than the full-mesh size: Python peers (aiortc) on a bounded overlay.

Every peer keeps at most MAX_LINKS links (core/mesh.py's overlay); messages reach the
peers their author has no link to by forwarding, with the log's dedupe. The server runs
in-process (pytest-jupyter) and shares the loop with all the peers.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from tests.conftest import TEST_NBCHAT_CONFIG
from tests.support.peers import Inbox, until

from nbchat.core import sync
from nbchat.core.mesh import MAX_LINKS, MESH_SIZE
from nbchat.peer import ChatPeer, chatpeer

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def nbchat_config() -> dict[str, Any]:
    # One test user holds every peer's sockets; fifty peers in one loop with the server
    # may stall the loop past the tests' short heartbeat timeout.
    return {
        **TEST_NBCHAT_CONFIG,
        "max_connections_per_user": 1000,
        "alive_timeout": 60.0,
        "expire_timeout": 5.0,
    }


def overlay_formed(peers: list[ChatPeer]) -> bool:
    """Every peer has exactly the links the overlay of its roster asks for."""
    for peer in peers:
        mesh = peer._mesh
        assert mesh is not None
        if peer.peers != mesh.policy.wanted([u["peer_id"] for u in peer.users]):
            return False
    return True


class LinkWatch:
    """The most open links any peer had, sampled on every loop turn."""

    def __init__(self, peers: list[ChatPeer]) -> None:
        self.peers = peers
        self.most = 0
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            self.most = max([self.most, *(len(p.peers) for p in self.peers if not p._closed)])
            await asyncio.sleep(0)

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def test_fifty_peers_get_every_message_once_in_order_over_a_bounded_overlay(
    jp_serverapp: Any, jp_fetch: Any, server_base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """50 peers (full mesh would be 1,225 links): each keeps at most MAX_LINKS, yet every
    message reaches everyone exactly once and in the same order; then a quarter of the
    room leaves at once, the overlay heals, and what the rest send meanwhile still
    reaches all of them. Repair rounds are off at first, so only forwarding can bring a
    message to a peer its author has no link to."""
    repair_ms = sync.ANTI_ENTROPY_MS
    # Whatever the session's repair_interval says: an hour.
    monkeypatch.setattr(
        chatpeer,
        "RoomSync",
        lambda log, max_bytes, now, _repair: sync.RoomSync(log, max_bytes, now, 3_600_000),
    )
    token = jp_serverapp.identity_provider.token
    size = 50
    assert size > MESH_SIZE
    async with contextlib.AsyncExitStack() as stack:
        peers: list[ChatPeer] = []
        for _ in range(0, size, 10):  # ten at a time: the server shares this loop
            peers += await asyncio.gather(
                *(
                    stack.enter_async_context(ChatPeer(server_base, "big", token=token))
                    for _ in range(10)
                )
            )
        watch = LinkWatch(peers)
        await until(lambda: all(len(p.users) == size for p in peers), 60)
        await until(lambda: overlay_formed(peers), 90)
        links = sum(len(p.peers) for p in peers) // 2
        assert links <= size * MAX_LINKS // 2
        inboxes = {p.id: Inbox(p) for p in peers}

        sent = [await p.send(f"hello from {i}") for i, p in enumerate(peers)]
        ids = sorted(m["id"] for m in sent)
        for peer in peers:
            own = {m["id"] for m in sent if m["author"] == peer.id}
            await inboxes[peer.id].wait(size - 1, 60)
            got = [m["id"] for m in inboxes[peer.id].items]
            assert len(got) == len(set(got)) == size - 1, "each message once"
            assert sorted(set(got) | own) == ids
        order = [m["id"] for m in peers[0].history]
        assert all([m["id"] for m in p.history] == order for p in peers), "one order"

        # A quarter of the room goes at once; the others send while the overlay heals.
        # Repair rounds are back: a copy forwarded along a path that was just breaking
        # (the rosters still listed the peers that left) comes with the next one.
        for peer in peers:
            assert peer._sync is not None
            peer._sync.repair_ms = repair_ms
            peer._sync._next_repair = peer._now() + repair_ms
            peer._sync_wake.set()
        gone, staying = peers[: size // 4], peers[size // 4 :]
        await asyncio.gather(*(p.leave() for p in gone))
        during = [await p.send(f"while healing {i}") for i, p in enumerate(staying)]
        await until(lambda: all(len(p.users) == len(staying) for p in staying), 30)
        await until(lambda: overlay_formed(staying), 60)
        everything = {m["id"] for m in sent + during}
        await until(lambda: all({m["id"] for m in p.history} == everything for p in staying), 60)
        order = [m["id"] for m in staying[0].history]
        assert all([m["id"] for m in p.history] == order for p in staying)
        for peer in staying:
            got = [m["id"] for m in inboxes[peer.id].items]
            assert len(got) == len(set(got)), "nothing twice, even through the healing"
        await watch.stop()
        assert watch.most <= MAX_LINKS, f"a peer held {watch.most} links"
        for inbox in inboxes.values():
            inbox.stop()
