"""Python peers (aiortc) in one room through a real Jupyter server with nbchat.

The server runs in-process (pytest-jupyter); the peers share its event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest
from tests.conftest import TEST_NBCHAT_CONFIG
from tests.support.peers import Inbox, until

from nbchat.core.msglog import Message
from nbchat.peer import ChatPeer, PresenceEvent

pytestmark = pytest.mark.timeout(120)


async def test_two_peers_see_each_other_and_talk_both_ways(connect: Any) -> None:
    async with connect("room-two") as a, connect("room-two") as b:
        assert await a.wait_for_peers(1) and await b.wait_for_peers(1)
        assert {p["peer_id"] for p in a.users} == {a.id, b.id}
        assert {p["peer_id"] for p in b.users} == {a.id, b.id}
        # Each login with the token is its own anonymous Jupyter user.
        assert a.user["username"] != b.user["username"]
        inbox_a, inbox_b = Inbox(a), Inbox(b)
        sent_a = await a.send("hello from **a**")
        sent_b = await b.send("hi from b — ünïcode ✓")
        [got_b] = await inbox_b.wait(1)
        [got_a] = await inbox_a.wait(1)
        assert got_b == sent_a
        assert got_a == sent_b
        # The author shown is the identity the server bound to the sender.
        assert got_b["user"] == a.user and got_a["user"] == b.user
        assert [m["id"] for m in a.history] == [m["id"] for m in b.history]
        inbox_a.stop()
        inbox_b.stop()


async def test_eight_peers_full_mesh_same_order_exactly_once(connect: Any) -> None:
    room = "room-eight"
    async with contextlib.AsyncExitStack() as stack:
        peers = [await stack.enter_async_context(connect(room)) for _ in range(8)]
        inboxes = [Inbox(p) for p in peers]
        results = await asyncio.gather(*(p.wait_for_peers(7, 60) for p in peers))
        assert all(results), [len(p.peers) for p in peers]
        ids = {p.id for p in peers}
        for peer in peers:
            assert peer.peers == ids - {peer.id}
            assert {u["peer_id"] for u in peer.users} == ids
        # Everyone talks at once, twice.
        sent: list[Message] = []
        for round_ in range(2):
            sent += await asyncio.gather(*(p.send(f"round {round_} from {p.id}") for p in peers))
        expected = {m["id"] for m in sent}
        for peer, inbox in zip(peers, inboxes, strict=True):
            got = await inbox.wait(14)
            ids_got = [m["id"] for m in got]
            assert len(ids_got) == len(set(ids_got)) == 14, "each message exactly once"
            assert set(ids_got) == expected - {m["id"] for m in sent if m["author"] == peer.id}
        orders = [[m["id"] for m in p.history] for p in peers]
        assert all(order == orders[0] for order in orders)
        assert set(orders[0]) == expected
        for inbox in inboxes:
            inbox.stop()


async def test_peers_joining_at_once_dial_each_pair_once_from_the_smaller_id(
    connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seven peers join at the same moment: each finds most of the others in its roster,
    yet every pair is dialed exactly once, by the smaller id (the newcomer-dials rule made
    both dial, and the tie-break threw one of the two connections away)."""
    from nbchat.peer import mesh as mesh_module

    made: list[Any] = []

    class Counted(mesh_module.DataConnection):  # type: ignore[misc, name-defined]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(mesh_module, "DataConnection", Counted)
    room = "room-at-once"
    size = 7
    async with contextlib.AsyncExitStack() as stack:
        peers = await asyncio.gather(
            *(stack.enter_async_context(connect(room)) for _ in range(size))
        )
        results = await asyncio.gather(*(p.wait_for_peers(size - 1, 60) for p in peers))
        assert all(results), [len(p.peers) for p in peers]
        ids = {p.id for p in peers}
        assert len(made) == size * (size - 1), "one connection at each end of each link"
        for connection in made:
            assert not connection.closed.is_set()
        owners = {id(c): p.id for p in peers for c in p._mesh.connections.values()}
        for connection in made:
            own = owners[id(connection)]
            # The dialing end is the smaller id's.
            assert connection.originator == (own < connection.peer), (own, connection.peer)
        for peer in peers:
            assert peer.peers == ids - {peer.id}


async def test_presence_follows_peers_coming_and_going(connect: Any) -> None:
    room = "room-presence"
    async with connect(room) as a:
        events: list[PresenceEvent] = []

        async def watch() -> None:
            async for event in a.presence():
                events.append(event)

        watcher = asyncio.get_running_loop().create_task(watch())
        async with connect(room) as b:
            await until(lambda: any(e.type == "USER_CONNECTED" for e in events))
            assert events[0].peer["peer_id"] == b.id
            assert events[0].peer["user"] == b.user
            async with connect(room) as c:
                await until(lambda: len(a.peers) == 2)
                assert {u["peer_id"] for u in c.users} == {a.id, b.id, c.id}
                c_id = c.id
            await until(lambda: any(e.type == "USER_DISCONNECTED" for e in events))
            gone = [e for e in events if e.type == "USER_DISCONNECTED"]
            assert [e.peer["peer_id"] for e in gone] == [c_id]
            await until(lambda: c_id not in a.peers and c_id not in b.peers)
            assert {u["peer_id"] for u in a.users} == {a.id, b.id}
            b_id = b.id
        await until(lambda: b_id not in {u["peer_id"] for u in a.users} and not a.peers)
        assert [(e.type, e.peer["peer_id"]) for e in events] == [
            ("USER_CONNECTED", b_id),
            ("USER_CONNECTED", c_id),
            ("USER_DISCONNECTED", c_id),
            ("USER_DISCONNECTED", b_id),
        ]
        watcher.cancel()


async def test_late_joiner_receives_history_in_order(connect: Any) -> None:
    room = "room-history"
    async with connect(room) as a, connect(room) as b:
        assert await a.wait_for_peers(1)
        for i in range(5):
            await a.send(f"a{i}")
            await b.send(f"b{i}")
        await until(lambda: len(a.history) == len(b.history) == 10)
        async with connect(room) as late:
            await until(lambda: len(late.history) == 10)
            assert [m["id"] for m in late.history] == [m["id"] for m in a.history]
            # Relayed messages keep their authors' bound identities.
            by_author = {m["author"]: m["user"] for m in late.history}
            assert by_author == {a.id: a.user, b.id: b.user}


async def test_late_joiner_gets_the_newest_first_then_everything_once_in_order(
    jp_serverapp: Any, connect: Any, server_base: str
) -> None:
    """Newest-first sync between aiortc peers: the first history to arrive holds the newest
    message, the oldest comes last, a live message is not held up behind the history, and
    in the end the joiner's log is the same, each message once, in the same order."""
    room = "room-newest-first"
    count = 3_000
    async with connect(room) as a:
        for i in range(count):
            await a.send(f"old {i:05d} " + "x" * 120)
        late = ChatPeer(server_base, room, token=jp_serverapp.identity_provider.token)
        arrived: list[str] = []

        async def collect() -> None:
            async for message in late.messages():
                arrived.append(message["text"])

        collector = asyncio.create_task(collect())
        await asyncio.sleep(0)  # the iterator is listening before the history can arrive
        async with late:
            await until(lambda: len(arrived) > 0, timeout=30)
            await a.send("live while the history crosses")
            await until(lambda: len(late.history) == count + 1, timeout=60)
            # What the log holds reaches messages() a little later (its queue).
            await until(lambda: len(arrived) >= count + 1, timeout=30)
            # The first batch (one data-channel frame, in log order) ends with the newest.
            first_batch = arrived[:100]
            assert any(t.startswith(f"old {count - 1:05d}") for t in first_batch), arrived[:3]
            assert not any(t.startswith("old 00000") for t in first_batch)
            assert arrived.index("live while the history crosses") < arrived.index(
                "old 00000 " + "x" * 120
            )
            assert len(arrived) == len(set(arrived)) == count + 1
            assert [m["id"] for m in late.history] == [m["id"] for m in a.history]
        collector.cancel()


@pytest.mark.parametrize("nbchat_config", [{**TEST_NBCHAT_CONFIG, "max_message_bytes": 262144}])
async def test_a_message_bigger_than_a_peerjs_frame_arrives_whole(connect: Any) -> None:
    room = "room-big"
    async with connect(room) as a, connect(room) as b:
        assert await a.wait_for_peers(1)
        inbox = Inbox(b)
        text = '数据 "quoted" \\ ' * 4000  # ~70 KB of UTF-8 with escapes
        sent = await a.send(text)
        assert len(json.dumps({"type": "message", "message": sent}).encode()) > 15_000
        [got] = await inbox.wait(1)
        assert got["text"] == text
        inbox.stop()


async def test_wait_delivered_confirms_receipt(connect: Any) -> None:
    room = "room-confirm"
    async with connect(room) as a:
        sent = await a.send("anyone there?")
        assert not await a.wait_delivered(sent, timeout=0.3)
        async with connect(room) as b:
            assert await a.wait_delivered(sent, timeout=20)
            assert a.delivered_to(sent) == {b.id}
            assert sent["id"] in {m["id"] for m in b.history}


async def test_a_message_over_the_room_limit_is_refused(connect: Any) -> None:
    async with connect("room-limit") as a:
        limit = a.config.max_message_bytes
        with pytest.raises(ValueError, match="over the room's limit"):
            await a.send("x" * (limit + 1))
        assert a.history == []
        await a.send("é" * (limit // 2))  # exactly at the limit in UTF-8 bytes


async def test_mesh_recovers_after_a_signaling_socket_drops(connect: Any) -> None:
    room = "room-reconnect"
    async with connect(room) as a, connect(room) as b:
        assert await a.wait_for_peers(1) and await b.wait_for_peers(1)
        seen_by_a: list[tuple[str, str]] = []

        async def watch() -> None:
            async for event in a.presence():
                seen_by_a.append((event.type, event.peer["peer_id"]))

        watcher = asyncio.get_running_loop().create_task(watch())
        # Fault injection: cut b's signaling WebSocket under it.
        assert b._signaling is not None and b._signaling.socket._ws is not None
        await b._signaling.socket._ws.close()
        back = [("USER_DISCONNECTED", b.id), ("USER_CONNECTED", b.id)]
        await until(lambda: seen_by_a == back)
        await until(lambda: a.peers == {b.id} and b.peers == {a.id})
        inbox = Inbox(a)
        await b.send("after the reconnect")
        [got] = await inbox.wait(1)
        assert got["text"] == "after the reconnect" and got["author"] == b.id
        inbox.stop()
        watcher.cancel()


async def test_chat_text_never_reaches_the_server(
    connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nbchat.server.service import SignalingService

    seen: list[str] = []
    original = SignalingService.signaling_message  # every signaling frame a peer sends

    def spy(service: Any, transport: Any, message: str | bytes) -> None:
        seen.append(message if isinstance(message, str) else message.decode(errors="replace"))
        original(service, transport, message)

    monkeypatch.setattr(SignalingService, "signaling_message", spy)
    secret = "zebra-" + "7f3a9c" * 3
    async with connect("room-private") as a, connect("room-private") as b:
        assert await a.wait_for_peers(1)
        inbox = Inbox(b)
        await a.send(f"the secret is {secret}")
        [got] = await inbox.wait(1)
        assert secret in got["text"]
        async with connect("room-private") as late:  # history goes peer to peer too
            await until(lambda: len(late.history) == 1)
        inbox.stop()
    assert any('"OFFER"' in frame for frame in seen), "the spy saw the signaling traffic"
    assert not any(secret in frame for frame in seen)


async def test_heartbeats_keep_a_quiet_peer_present(connect: Any) -> None:
    """The test server evicts after 1.5 s of silence (its ping_interval setting is 5 s,
    but it advertises a third of alive_timeout); the peer beats at that rate, so nobody
    sees it leave."""
    async with connect("room-quiet") as a, connect("room-quiet") as b:
        assert a.config.ping_interval <= a.config.alive_timeout / 3
        events = a.presence()
        with pytest.raises(asyncio.TimeoutError):
            # alive_timeout is in ms, as on the wire
            await asyncio.wait_for(events.__anext__(), timeout=3 * a.config.alive_timeout / 1000)
        assert {u["peer_id"] for u in a.users} == {a.id, b.id}
        assert a.peers == {b.id}


def _silence(peer: ChatPeer) -> None:
    """Drop every packet ``peer``'s open links send from now on: the path goes silent
    while both sides stay present in the room (a firewall or NAT change mid-chat)."""
    mesh = peer._mesh
    assert mesh is not None
    for connection in mesh.connections.values():
        ice = connection.pc.sctp.transport.transport  # type: ignore[union-attr]
        for pair in ice._connection._nominated.values():
            pair.protocol.transport.sendto = lambda *args, **kwargs: None


async def test_a_link_that_goes_silent_is_redialed_within_seconds(connect: Any) -> None:
    """Browsers notice a silent path in a few seconds (ICE "disconnected"); a Python peer
    must too, not after aioice's default ~30 s of failed consent checks."""
    async with connect("room-silent") as a, connect("room-silent") as b:
        assert await a.wait_for_peers(1) and await b.wait_for_peers(1)
        inbox_b = Inbox(b)
        await a.send("before the silence")
        await inbox_b.wait(1)
        old = {c.connection_id for c in a._mesh.connections.values()}  # type: ignore[union-attr]
        _silence(a)
        started = asyncio.get_running_loop().time()
        await a.send("said into the silence")
        # Both sides are still in the room; the link is dead; a new one must carry this.
        [_, got] = await inbox_b.wait(2, timeout=20)
        assert got["text"] == "said into the silence"
        assert asyncio.get_running_loop().time() - started < 20
        # The silenced side gives its dead link up too (it hears no consent answers).
        ids = lambda: {c.connection_id for c in a._mesh.connections.values()}  # type: ignore[union-attr]  # noqa: E731
        await until(lambda: bool(ids()) and not ids() & old, 15)
        inbox_b.stop()


async def test_two_aiortc_peers_settle_into_one_end_checking_consent(connect: Any) -> None:
    """A round in which the other end's consent check reached us sends none: half the STUN
    traffic of an idle link (the largest part of an idle big room's CPU), and a silent path is still
    noticed by both ends (the test above)."""
    async with connect("room-consent") as a, connect("room-consent") as b:
        assert await a.wait_for_peers(1) and await b.wait_for_peers(1)

        def counts(peer: ChatPeer) -> dict[str, int]:
            [connection] = peer._mesh.open_connections()  # type: ignore[union-attr]
            ice = connection.pc.sctp.transport.transport  # type: ignore[union-attr]
            return ice._connection._nbchat_consent_rounds  # type: ignore[no-any-return]

        await until(lambda: counts(a)["rounds"] >= 8 and counts(b)["rounds"] >= 8, 30)
        rounds = counts(a)["rounds"] + counts(b)["rounds"]
        sent = counts(a)["sent"] + counts(b)["sent"]
        assert sent <= 0.7 * rounds, (counts(a), counts(b))
        assert counts(a)["sent"] + counts(b)["sent"] > 0


def mesh_on(
    me: str,
    room: str,
    relay: Any,
    roster: Any,
    opened: dict[str, list[str]],
    tasks: set[asyncio.Task[Any]],
    max_links: int = 8,
) -> Any:
    """A Mesh whose signaling goes through ``relay`` (the test delivers it), noting the
    peers of the links it opens in ``opened[me]`` and keeping its tasks in ``tasks``."""
    from nbchat.peer.ice import rtc_configuration
    from nbchat.peer.mesh import Mesh

    def spawn(coro: Any, name: str) -> None:
        task = asyncio.ensure_future(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    return Mesh(
        me,
        room,
        relay,
        rtc_configuration([]),
        roster=roster,
        on_frame=lambda *_: None,
        on_open=lambda c: opened[me].append(c.peer),
        on_closed=lambda _: None,
        spawn=spawn,
        open_timeout=20.0,
        max_links=max_links,
    )


async def test_a_call_refused_at_the_link_bound_is_answered_once_the_roster_lists_the_caller() -> (
    None
):
    """A call can beat the roster: the callee, at its link bound, refuses a caller it does
    not know yet. Once its roster lists the caller, it answers that call (the caller's
    dial is still pending; calling it back instead would be refused by the tie-break when
    the caller has the smaller id, and the link would wait for the 20 s dial timeout), also
    after a roster change in between that did not link them yet."""
    tasks: set[asyncio.Task[Any]] = set()
    meshes: dict[str, Any] = {}
    rosters: dict[str, dict[str, Any]] = {"a": {"a": {}, "x": {}}, "x": {"x": {}}}
    opened: dict[str, list[str]] = {"a": [], "x": []}

    def make(me: str, max_links: int) -> Any:
        async def relay(kind: Any, dst: str, payload: dict[str, Any]) -> None:
            meshes[dst].on_signal({"type": kind.value, "src": me, "dst": dst, "payload": payload})

        return mesh_on(me, "refused", relay, lambda: rosters[me], opened, tasks, max_links)

    meshes["a"] = make("a", 8)
    meshes["x"] = make("x", 0)  # at its bound: refuses whoever the overlay does not want
    try:
        meshes["a"].dial("x")
        await until(lambda: "a" in meshes["x"]._refused, 10)
        assert meshes["x"].connections == {}  # refused: not answered
        # A roster change that still does not link x to a keeps the call waiting (it used
        # to be forgotten: a's dial then waited out the 20 s timeout).
        rosters["x"] = {"x": {}, "y": {}}
        meshes["x"].on_roster_changed()
        assert "a" in meshes["x"]._refused
        rosters["x"] = {"a": {}, "x": {}, "y": {}}
        meshes["x"].on_roster_changed()
        await until(lambda: opened["a"] == ["x"] and opened["x"] == ["a"], 10)
        [link] = meshes["a"].connections.values()
        assert link.originator  # a's own call, answered late
    finally:
        for mesh in meshes.values():
            await mesh.close()
        for task in list(tasks):
            task.cancel()


async def test_a_stale_call_after_a_dropped_dial_does_not_leave_both_ends_waiting() -> None:
    """Seen forming 200-peer rooms: ``a`` dials ``b``, then drops that dial (its overlay
    moved) before the OFFER reaches ``b``; ``b`` dials ``a``, which answers. Then ``a``'s
    stale OFFER reaches ``b``, before ``a``'s ANSWER. ``b`` takes the smaller id's call (the
    tie-break) — and used to drop its own dial with it, the one ``a`` had answered: each end
    then waited on a connection the other had closed, for the 20 s dial timeout. ``b`` now
    keeps its dial until one of the two opens."""
    from nbchat.protocol import FrameType

    tasks: set[asyncio.Task[Any]] = set()
    meshes: dict[str, Any] = {}
    held: list[dict[str, Any]] = []
    hold_offers_from_a = True
    opened: dict[str, list[str]] = {"a": [], "b": []}

    def make(me: str) -> Any:
        async def relay(kind: Any, dst: str, payload: dict[str, Any]) -> None:
            frame = {"type": kind.value, "src": me, "dst": dst, "payload": payload}
            if me == "a" and (kind == FrameType.OFFER and hold_offers_from_a or held):
                held.append(frame)  # a's OFFER, and what follows it, wait
                return
            meshes[dst].on_signal(frame)

        return mesh_on(me, "stale", relay, lambda: {"a": {}, "b": {}}, opened, tasks)

    meshes["a"], meshes["b"] = make("a"), make("b")
    try:
        meshes["a"].dial("b")
        await until(lambda: len(held) == 1, 10)  # a's OFFER, held back
        [dropped] = meshes["a"].connections.values()
        await dropped.close()  # a's overlay moved: its dial is gone (b is not told)
        hold_offers_from_a = False
        meshes["b"].dial("a")  # b's own dial: a answers it (the ANSWER waits behind the OFFER)
        await until(lambda: len(held) >= 2, 10)
        for frame in held:  # the stale OFFER first, then a's ANSWER and candidates
            meshes["b"].on_signal(frame)
        held.clear()
        await until(lambda: opened["a"] == ["b"] and opened["b"] == ["a"], 8)
        await until(lambda: len(meshes["b"].connections) == 1, 5)  # the stale call dropped
        [link] = meshes["b"].connections.values()
        assert link.originator and link.open
    finally:
        for mesh in meshes.values():
            await mesh.close()
        for task in list(tasks):
            task.cancel()
