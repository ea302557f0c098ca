"""Several ``nbchat-signaling`` processes on one real ``redis-server`` behave as one
server: one id registry, one presence list per room, relays and queued frames between
processes, room isolation, and a /health that says when Redis is gone."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from tests.support.balancer import Balancer
from tests.support.lab import make_lab
from tests.support.peers import Inbox
from tests.support.redis import RedisServer, redis_server  # noqa: F401  (fixture)
from tests.support.signaling import TOKEN, Service, get, start_service

from nbchat.peer import ChatPeer

SECRET = "0123456789abcdef" * 4
ALIVE = 4.0  # seconds: short, so liveness is observable in a test (TTL 2 s)
EXPIRE = 2.5
HEADERS = {"Authorization": f"token {TOKEN}"}


def start_instances(tmp: Path, redis: RedisServer, count: int, *extra: str) -> list[Service]:
    tmp.mkdir(parents=True, exist_ok=True)
    urls = [redis.unix_url, redis.url]  # both kinds of URL, one Redis
    return [
        start_service(
            tmp,
            f"--token={TOKEN}",
            f"--broker={urls[i % 2]}",
            f"--SignalingApp.cookie_secret={SECRET}",
            # Processes that share rooms share the key that certifies peers' keys.
            f"--SignalingApp.signing_key_file={tmp.parent / 'signing-key.pem'}",
            f"--SignalingApp.alive_timeout={ALIVE}",
            f"--SignalingApp.expire_timeout={EXPIRE}",
            "--SignalingApp.tick_interval=0.1",
            *extra,
        )
        for i in range(count)
    ]


def stop_instances(services: list[Service]) -> None:
    for s in services:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait(10)


@pytest.fixture
def pair(tmp_path: Path, redis_server: RedisServer) -> Iterator[list[Service]]:  # noqa: F811
    services = start_instances(tmp_path, redis_server, 2)
    yield services
    stop_instances(services)


def user_cookie(service: Service) -> str:
    """A cookie naming one token holder (the same person on every instance)."""
    _, _, headers = get(service.url + "nbchat/session?room=r", token=TOKEN)
    return str(headers["Set-Cookie"].split(";")[0])


def connect(service: Service, key: str, peer_id: str, token: str = "t", cookie: str = "") -> Any:
    headers = dict(HEADERS)
    if cookie:
        headers["Cookie"] = cookie
    url = f"{service.ws}nbchat/peerjs?key={key}&id={peer_id}&token={token}"
    return websockets.connect(url, additional_headers=headers)


def presence(service: Service, key: str) -> Any:
    return websockets.connect(f"{service.ws}nbchat/presence?key={key}", additional_headers=HEADERS)


async def recv(ws: Any, timeout: float = 5.0) -> dict[str, Any]:
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if frame.get("type") != "HEARTBEAT":
            return frame  # type: ignore[no-any-return]


async def recv_until(
    ws: Any, match: Callable[[dict[str, Any]], bool], timeout: float = 5.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        frame = await recv(ws, max(deadline - time.monotonic(), 0.01))
        if match(frame):
            return frame


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def wait_present(watch: Any, present: set[str], expected: set[str]) -> set[str]:
    """Follow ROSTER / USER_CONNECTED / USER_DISCONNECTED on ``watch`` until the peers
    present are ``expected`` (a peer that joined elsewhere a moment ago may come in a
    USER_CONNECTED just after the roster)."""
    while present != expected:
        frame = await recv(watch, timeout=ALIVE + 5)
        if frame["type"] == "ROSTER":
            present = {p["peer_id"] for p in frame["peers"]}
        elif frame["type"] == "USER_CONNECTED":
            present.add(frame["peer"]["peer_id"])
        elif frame["type"] == "USER_DISCONNECTED":
            present.discard(frame["peer"]["peer_id"])
    return present


class Watch:
    """A presence socket read in the background: who is present, who was announced gone."""

    def __init__(self, ws: Any) -> None:
        self.present: set[str] = set()
        self.gone: list[str] = []
        self._task = asyncio.get_running_loop().create_task(self._read(ws))

    async def _read(self, ws: Any) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            await self._follow(ws)

    async def _follow(self, ws: Any) -> None:
        async for text in ws:
            frame = json.loads(text)
            if frame["type"] == "ROSTER":
                self.present = {p["peer_id"] for p in frame["peers"]}
            elif frame["type"] == "USER_CONNECTED":
                self.present.add(frame["peer"]["peer_id"])
            elif frame["type"] == "USER_DISCONNECTED":
                self.present.discard(frame["peer"]["peer_id"])
                self.gone.append(frame["peer"]["peer_id"])

    async def until(self, check: Callable[[], bool], timeout: float = 10.0) -> None:
        await eventually(check, timeout)

    def stop(self) -> None:
        self._task.cancel()


def test_an_id_taken_on_one_instance_is_refused_on_the_other(pair: list[Service]) -> None:
    one, two = pair

    async def main() -> None:
        alice = user_cookie(one)
        async with connect(one, "room", "taken-id", cookie=alice) as a:
            assert await recv(a) == {"type": "OPEN"}
            # Someone else, on the other process: refused.
            async with connect(two, "room", "taken-id") as b:
                assert (await recv(b))["type"] == "ID-TAKEN"
            # Alice again with another PeerJS token on the same process: refused too,
            # and the peer that holds the id stays in the room everywhere.
            async with connect(one, "room", "taken-id", token="other", cookie=alice) as again:
                assert (await recv(again))["type"] == "ID-TAKEN"
            await asyncio.sleep(0.3)  # a wrong departure would have reached two by now
            _, body, _ = get(two.url + "nbchat/room/peers", token=TOKEN)
            assert json.loads(body) == ["taken-id"]
        # Alice rebinds her id on the other process once it has seen her leave: OPEN.
        await eventually(
            lambda: "taken-id" not in json.loads(get(two.url + "nbchat/room/peers", token=TOKEN)[1])
        )
        async with connect(two, "room", "taken-id", token="t2", cookie=alice) as a2:
            assert await recv(a2) == {"type": "OPEN"}
        # An id issued on one instance is bound to its user on the other too.
        status, issued, _ = get(one.url + "nbchat/room/id", cookie=alice)
        assert status == 200
        async with connect(two, "room", issued) as stranger:
            assert (await recv(stranger))["type"] == "ID-TAKEN"
        async with connect(two, "room", issued, cookie=alice) as owner:
            assert await recv(owner) == {"type": "OPEN"}

    asyncio.run(main())


def test_peers_on_two_instances_see_one_presence_list_and_relay(pair: list[Service]) -> None:
    one, two = pair

    async def main() -> None:
        async with connect(one, "room", "a1") as a, presence(two, "room") as watch:
            await recv(a)
            await wait_present(watch, set(), {"a1"})
            async with connect(two, "room", "b2") as b:
                await recv(b)
                joined = await recv(watch)
                assert (joined["type"], joined["peer"]["peer_id"]) == ("USER_CONNECTED", "b2")
                # The list is one list on both instances.
                await eventually(
                    lambda: (
                        sorted(json.loads(get(one.url + "nbchat/room/peers", token=TOKEN)[1]))
                        == ["a1", "b2"]
                    )
                )
                # Relays both ways, in order.
                for i in range(200):
                    await a.send(json.dumps({"type": "OFFER", "dst": "b2", "payload": {"n": i}}))
                got = [await recv(b) for _ in range(200)]
                assert [f["payload"]["n"] for f in got] == list(range(200))
                assert {f["src"] for f in got} == {"a1"}
                await b.send(json.dumps({"type": "ANSWER", "dst": "a1", "payload": {"ok": 1}}))
                assert await recv(a) == {
                    "type": "ANSWER",
                    "src": "b2",
                    "dst": "a1",
                    "payload": {"ok": 1},
                }
            left = await recv(watch)
            assert (left["type"], left["peer"]["peer_id"]) == ("USER_DISCONNECTED", "b2")

    asyncio.run(main())


def test_a_frame_queued_on_one_instance_is_delivered_on_the_other_or_expires(
    pair: list[Service],
) -> None:
    one, two = pair

    async def main() -> None:
        async with connect(one, "room", "sender") as a:
            await recv(a)

            async def beat() -> None:  # as a real client does: the test's alive_timeout is 3 s
                while True:
                    await a.send(json.dumps({"type": "HEARTBEAT"}))
                    await asyncio.sleep(0.5)

            beating = asyncio.get_running_loop().create_task(beat())
            offer = {"type": "OFFER", "dst": "late", "payload": {"sdp": "x"}}
            await a.send(json.dumps(offer))
            await asyncio.sleep(0.2)  # the peer connects a moment later, elsewhere
            async with connect(two, "room", "late") as late:
                assert await recv(late) == {"type": "OPEN"}
                assert await recv(late) == {**offer, "src": "sender"}
            # Nobody ever comes for this one: the sender hears EXPIRE.
            await a.send(json.dumps({"type": "OFFER", "dst": "never", "payload": {}}))
            expired = await recv(a, timeout=EXPIRE + 3)
            beating.cancel()
            assert expired == {"type": "EXPIRE", "src": "never", "dst": "sender"}

    asyncio.run(main())


def test_rooms_stay_isolated_across_instances(pair: list[Service]) -> None:
    one, two = pair

    async def main() -> None:
        async with (
            connect(one, "room-a", "alpha") as a,
            connect(two, "room-b", "bravo") as b,
            presence(two, "room-b") as watch_b,
        ):
            await recv(a), await recv(b)
            await wait_present(watch_b, set(), {"bravo"})
            # alpha names bravo, but bravo is in another room: queued, then EXPIRE.
            await a.send(json.dumps({"type": "OFFER", "dst": "bravo", "payload": {}}))
            assert (await recv(a, timeout=EXPIRE + 3))["type"] == "EXPIRE"
            with pytest.raises(asyncio.TimeoutError):
                await recv(b, timeout=0.5)
            status, body, _ = get(two.url + "nbchat/room-a/peers", token=TOKEN)
            assert json.loads(body) == ["alpha"]

    asyncio.run(main())


# ---- whole processes: Python peers, a killed instance, a restarted Redis -------------


def peer_id(peer: ChatPeer) -> str:
    assert peer._signaling is not None
    return peer._signaling.peer_id


def room_key(peer: ChatPeer) -> str:
    assert peer.config is not None
    return peer.config.key


def test_python_peers_on_two_instances_chat(pair: list[Service]) -> None:
    one, two = pair

    async def main() -> None:
        async with (
            ChatPeer(one.url, "standup", token=TOKEN) as a,
            ChatPeer(two.url, "standup", token=TOKEN) as b,
        ):
            assert await a.wait_for_peers(1, timeout=20)
            inbox = Inbox(b)
            await a.send("hello across processes")
            [got] = await inbox.wait(1)
            assert got["text"] == "hello across processes"
            assert got["user"]["username"] == a.user["username"]
            inbox.stop()

    asyncio.run(main())


def test_sigkill_one_instance_mid_chat(tmp_path: Path, redis_server: RedisServer) -> None:  # noqa: F811
    """Three instances behind a round-robin balancer (no sticky sessions). One is killed:
    a peer only it served is announced gone on the others within alive_timeout; peers
    whose sockets it held reconnect through the balancer to a survivor, keep their id
    and their place in the room, and the chat goes on with nothing lost."""
    services = start_instances(tmp_path, redis_server, 3)
    first, _, third = services
    balancer = Balancer([s.port for s in services])
    url = balancer.url(first.base)

    async def main() -> None:
        async with (
            ChatPeer(url, "standup", token=TOKEN) as a,
            ChatPeer(url, "standup", token=TOKEN) as b,
        ):
            assert await a.wait_for_peers(1, timeout=20)
            inbox = Inbox(b)
            await a.send("before")
            await inbox.wait(1)
            key = room_key(a)
            ids = {peer_id(a), peer_id(b)}
            async with connect(first, key, "doomed") as doomed, presence(third, key) as ws:
                watch = Watch(ws)
                await recv(doomed)
                await watch.until(lambda: watch.present == ids | {"doomed"})
                killed_at = time.monotonic()
                first.proc.kill()
                await watch.until(lambda: "doomed" in watch.gone, timeout=ALIVE + 5)
                assert time.monotonic() - killed_at < ALIVE
                for i in range(5):
                    await a.send(f"after {i}")
                texts = [m["text"] for m in await inbox.wait(6)]
                assert texts == ["before"] + [f"after {i}" for i in range(5)]
                # A newcomer (through the balancer, so on a survivor) meets both: signaling
                # reaches a and b wherever their sockets are now.
                async with ChatPeer(url, "standup", token=TOKEN) as c:
                    newcomer_id = peer_id(c)
                    assert await c.wait_for_peers(2, timeout=20)
                    newcomer = Inbox(c)
                    await b.send("welcome")
                    await eventually(lambda: "welcome" in [m["text"] for m in newcomer.items])
                    newcomer.stop()
                # One presence list: a and b never left it (their sockets moved).
                await watch.until(lambda: watch.present == ids)
                assert watch.gone == ["doomed", newcomer_id]
                watch.stop()
            inbox.stop()
        assert "stopped answering; announced its" in third.log()

    try:
        asyncio.run(main())
    finally:
        balancer.close()
        stop_instances(services)


def test_redis_restarted_mid_chat(pair: list[Service], redis_server: RedisServer) -> None:  # noqa: F811
    """Redis goes away: /health and the log say degraded, peers on one process keep being
    served; Redis comes back (empty): the instances recover by themselves, and peers
    on different instances meet again."""
    one, two = pair

    async def main() -> None:
        async with (
            ChatPeer(one.url, "standup", token=TOKEN) as a,
            ChatPeer(two.url, "standup", token=TOKEN) as b,
        ):
            assert await a.wait_for_peers(1, timeout=20)
            inbox = Inbox(b)
            redis_server.stop()
            await eventually(
                lambda: json.loads(get(one.url + "health")[1])["status"] == "degraded",
                timeout=10,
            )
            health = json.loads(get(one.url + "health")[1])
            assert "Redis unreachable" in health["broker"]
            assert "still served" in health["broker"]
            await eventually(lambda: "DEGRADED" in one.log(), timeout=10)
            assert "nbchat_broker_up 0.0" in get(one.url + "metrics", token=TOKEN)[1]
            # Same-process peers are still served while Redis is down.
            async with connect(one, "local", "l1") as l1, connect(one, "local", "l2") as l2:
                await recv(l1), await recv(l2)
                await l1.send(json.dumps({"type": "OFFER", "dst": "l2", "payload": {}}))
                assert (await recv(l2))["src"] == "l1"
            # The data channel between a and b never needed the server.
            await a.send("while redis is down")
            redis_server.start()
            for s in pair:
                await eventually(
                    lambda s=s: json.loads(get(s.url + "health")[1]) == {"status": "ok"},
                    timeout=15,
                )
            await eventually(lambda: "is back" in one.log())
            assert "nbchat_broker_up 1.0" in get(one.url + "metrics", token=TOKEN)[1]
            # A newcomer on instance 2 meets a on instance 1: cross-process signaling is back.
            async with ChatPeer(two.url, "standup", token=TOKEN) as c:
                assert await c.wait_for_peers(2, timeout=20)
                newcomer = Inbox(c)
                await a.send("after redis came back")
                await eventually(
                    lambda: "after redis came back" in [m["text"] for m in newcomer.items],
                    timeout=10,
                )
                newcomer.stop()
            texts = [m["text"] for m in await inbox.wait(2)]
            assert texts[:2] == ["while redis is down", "after redis came back"]
            inbox.stop()

    asyncio.run(main())


def test_the_jupyter_extension_with_a_broker_joins_the_shared_rooms(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """``NbChatApp.broker``: a Jupyter server's own signaling shares its rooms with a
    standalone instance on the same Redis; an aiortc peer on each chat."""
    [service] = start_instances(tmp_path / "standalone", redis_server, 1)
    lab = make_lab(
        tmp_path / "lab",
        {
            "broker": redis_server.url,
            "alive_timeout": ALIVE,
            "signing_key_file": str(tmp_path / "signing-key.pem"),  # the instances' one
        },
    )
    lab.start()

    async def main() -> None:
        async with (
            ChatPeer(lab.url, "standup", token=lab.token) as on_lab,
            ChatPeer(service.url, "standup", token=TOKEN) as on_service,
        ):
            assert room_key(on_lab) == room_key(on_service)
            assert await on_lab.wait_for_peers(1, timeout=20)
            inbox = Inbox(on_service)
            await on_lab.send("from the Jupyter server")
            [got] = await inbox.wait(1)
            assert got["text"] == "from the Jupyter server"
            assert got["user"]["username"] == on_lab.user["username"]
            inbox.stop()

    try:
        asyncio.run(main())
        assert "sharing rooms through Redis" in lab.log()
    finally:
        lab.stop()
        stop_instances([service])


def test_a_broker_url_that_is_not_redis_is_refused_in_words(tmp_path: Path) -> None:
    service = start_service(tmp_path, f"--token={TOKEN}", "--broker=http://redis:6379", wait=False)
    assert service.proc.wait(20) != 0
    assert "unsupported broker URL 'http://redis:6379': use redis://" in service.log()
