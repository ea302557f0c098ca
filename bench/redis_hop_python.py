"""The Python cost of a relay between processes, without sockets: what the broker adds.

Three loops over the same 20,000 OFFER frames (300-byte SDP, the load generator's shape),
best of 9, in µs per relay:

- ``local``: ``Realm.receive`` + delivery to a peer on this process (a no-op transport);
- ``cross, sender``: the same for a peer on another process: the record queued by the
  Redis broker and its batch encoded as RESP PUBLISH (a fake data wire), one batch per
  8 relays;
- ``cross, receiver``: those batches fed to the subscriber as Redis would push them
  (hiredis parse, split, lookup, delivery to a no-op transport).

The socket writes (WebSocket and Redis), the loop turns and Redis's own CPU are not in
it: ``bench/redis_scale.py`` measures the whole. This one is stable on a busy machine.

    PYTHONPATH=src python bench/redis_hop_python.py
"""

from __future__ import annotations

import asyncio
import logging
import time
from types import SimpleNamespace
from typing import Any

import hiredis

from nbchat.server.realm import Realm
from nbchat.server.redis_broker import RedisBroker, RemotePeer, _resp, _Wire
from nbchat.server.service import deliver
from nbchat.server.settings import SignalingSettings

N = 20_000
BATCH = 8
SDP = (
    "v=0 o=- 4611731400430051336 2 IN IP4 127.0.0.1 s=- t=0 0 a=group:BUNDLE 0 "
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel c=IN IP4 0.0.0.0 a=ice-ufrag:"
) * 4


class Sink:
    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def send_frame(self, text: str) -> None:
        self.count += 1


class FakeWire:
    def __init__(self) -> None:
        self.out: list[bytes] = []

    def publish_many(self, messages: list[tuple[bytes, bytes]]) -> None:
        self.out.append(b"".join(_resp(b"PUBLISH", c, d) for c, d in messages))


def best_of(runs: int, fn: Any) -> float:
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best / N * 1e6


async def main() -> None:
    settings = SignalingSettings(
        rate_limit=1e9, rate_burst=1e9, concurrent_limit=10**6, max_connections_per_user=10**6
    )
    realm = Realm(settings.limits())
    service: Any = SimpleNamespace(realm=realm, log=logging.getLogger("bench"))
    broker = RedisBroker("redis://127.0.0.1:1/0", service)
    wire = FakeWire()
    broker._pub = wire  # type: ignore[assignment]
    broker.up = True
    now = time.monotonic()
    user: Any = {"username": "u"}
    mine = []
    for i in range(500):
        accepted: Any = realm.connect("bench", f"b{i}xabcdef", "t", user, Sink(), now)
        mine.append(accepted.client)
    broker.directory["bench"] = {
        f"r{i}xabcdef": RemotePeer(broker, "other", "bench", f"r{i}xabcdef", {"peer_id": "x"})  # type: ignore[typeddict-item]
        for i in range(500)
    }

    def frames(prefix: str) -> list[tuple[Any, str]]:
        return [
            (
                mine[i % 500],
                f'{{"type":"OFFER","dst":"{prefix}{(i * 7) % 500}xabcdef",'
                f'"payload":{{"sdp":"{SDP[:300]}","t":{i}.5,"p":1,"s":{i}}}}}',
            )
            for i in range(N)
        ]

    local, cross = frames("b"), frames("r")

    def run_local() -> None:
        for client, text in local:
            deliver(realm.receive(client, text, now))

    def run_sender() -> None:
        wire.out.clear()
        for k, (client, text) in enumerate(cross):
            deliver(realm.receive(client, text, now))
            if k % BATCH == BATCH - 1:
                broker._flush()
        broker._flush()

    print(f"local relay:           {best_of(9, run_local):.2f} µs")
    print(f"cross, sender side:    {best_of(9, run_sender):.2f} µs")
    # What Redis pushes to the subscriber for those PUBLISHes, addressed to our peers.
    reader = hiredis.Reader()
    reader.feed(b"".join(wire.out))
    pushes = []
    while (command := reader.gets()) is not False:
        channel, data = command[1], command[2].replace(b"\x1fr", b"\x1fb")
        broker.my_channel = channel.decode()
        pushes.append(
            b"*3\r\n$7\r\nmessage\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n"
            % (len(channel), channel, len(data), data)
        )
    raw = b"".join(pushes)

    def run_receiver() -> None:
        sub = _Wire(broker._on_push)
        for k in range(0, len(raw), 65536):
            sub.data_received(raw[k : k + 65536])

    before = sum(c.transport.count for c in mine)
    print(f"cross, receiver side:  {best_of(9, run_receiver):.2f} µs")
    assert sum(c.transport.count for c in mine) - before == 9 * N, "not all delivered"


if __name__ == "__main__":
    asyncio.run(main())
