"""When the Redis broker's publishes go out: a loop turn's relays at once when frames
trickle in, gathered over ``COALESCE`` under load; in order either way. Pure timing
logic of ``RedisBroker.publish``, so the data wire is a fake that records each write
(the real wire is covered against a real ``redis-server`` in test_redis_broker.py)."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from tests.support.limits import limits

from nbchat.server import redis_broker
from nbchat.server.realm import Realm
from nbchat.server.redis_broker import RS, RedisBroker


class FakeWire:
    def __init__(self) -> None:
        self.writes: list[list[tuple[bytes, bytes]]] = []

    def publish_many(self, messages: list[tuple[bytes, bytes]]) -> None:
        self.writes.append(messages)

    def records(self) -> list[str]:
        return [
            r
            for write in self.writes
            for _, data in write
            for r in data.decode().split(RS)[1:]  # the first field names the process
        ]


def broker() -> tuple[RedisBroker, FakeWire]:
    service: Any = SimpleNamespace(realm=Realm(limits()), log=logging.getLogger("test"))
    b = RedisBroker("redis://127.0.0.1:1/0", service)
    wire = FakeWire()
    b._pub = wire  # type: ignore[assignment]
    b.up = True
    return b, wire


async def turns(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def test_a_trickle_of_frames_goes_out_on_the_next_loop_turn() -> None:
    async def main() -> None:
        b, wire = broker()
        for i in range(5):  # one frame per turn, back to back: no load, no waiting
            b.publish("chan", f"R{i}")
            await turns(2)
            assert wire.records() == [f"R{k}" for k in range(i + 1)]
        assert len(wire.writes) == 5

    asyncio.run(main())


def test_under_load_the_turns_within_the_window_share_one_publish(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(redis_broker, "COALESCE", 0.3)  # long enough to see on any machine

    async def main() -> None:
        b, wire = broker()
        for i in range(redis_broker.COALESCE_MIN):  # a busy turn
            b.publish("chan", f"R{i}")
        await turns(2)
        assert len(wire.writes) == 1  # the first batch is not held
        n = redis_broker.COALESCE_MIN
        for i in range(n, n + 5):  # five more turns, each with one frame
            b.publish("chan", f"R{i}")
            await turns(1)
        assert len(wire.writes) == 1  # held: the previous batch is fresh and was big
        deadline = asyncio.get_running_loop().time() + 5
        while len(wire.writes) < 2 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        assert len(wire.writes) == 2  # all five in one PUBLISH, in order
        assert wire.records() == [f"R{k}" for k in range(n + 5)]
        await asyncio.sleep(0.35)  # a quiet spell: the next frame goes at once again
        b.publish("chan", "last")
        await turns(2)
        assert wire.records()[-1] == "last"

    asyncio.run(main())


def test_without_the_window_every_turn_publishes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis_broker, "COALESCE", 0.0)  # NBCHAT_REDIS_COALESCE_MS=0

    async def main() -> None:
        b, wire = broker()
        for i in range(10):
            for k in range(redis_broker.COALESCE_MIN):
                b.publish("chan", f"R{i}.{k}")
            await turns(2)
        assert len(wire.writes) == 10

    asyncio.run(main())
