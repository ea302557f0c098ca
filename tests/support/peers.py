"""Helpers for tests with Python peers: condition waits and message collectors."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from nbchat.core.msglog import Message
from nbchat.core.signing import sign_entry
from nbchat.peer import ChatPeer
from nbchat.peer.dataconnection import DataConnection


async def until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    """Wait for a condition by polling the loop (the state changes come from callbacks)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def connection_to(peer: ChatPeer, other: str, timeout: float = 30.0) -> DataConnection:
    """``peer``'s open data connection to ``other`` (for sending raw or forged frames)."""

    def find() -> DataConnection | None:
        mesh = peer._mesh
        found = [c for c in mesh.open_connections() if c.peer == other] if mesh else []
        return found[0] if found else None

    await until(lambda: find() is not None, timeout)
    connection = find()
    assert connection is not None
    return connection


class Inbox:
    """Collects what ``peer.messages()`` yields, from the moment it is created."""

    def __init__(self, peer: ChatPeer) -> None:
        self.items: list[Message] = []
        self._iterator = peer.messages()
        self._task = asyncio.get_running_loop().create_task(self._collect())

    async def _collect(self) -> None:
        async for message in self._iterator:
            self.items.append(message)

    async def wait(self, count: int, timeout: float = 20.0) -> list[Message]:
        await until(lambda: len(self.items) >= count, timeout)
        return self.items

    def stop(self) -> None:
        self._task.cancel()


def selected_candidate_types(connection: DataConnection) -> tuple[str, str]:
    """(local, remote) candidate types of the ICE pair ``connection`` uses, e.g.
    ``("relay", "relay")``; aiortc has no getStats for this, so ask its aioice agent."""
    sctp = connection.pc.sctp
    assert sctp is not None
    agent = sctp.transport.transport._connection
    [pair] = agent._nominated.values()
    return pair.local_candidate.type, pair.remote_candidate.type


def vouch(peer: ChatPeer, link: DataConnection) -> None:
    """Send ``peer``'s certificate on ``link``, as its own frames would carry it first."""
    book = peer._certs
    cert = book.cert(peer.id) if book is not None else None
    if cert is not None:
        link.send({"type": "certs", "certs": [cert]})


def signed(peer: ChatPeer, message: dict[str, Any]) -> dict[str, Any]:
    """``message`` signed with ``peer``'s own certified key, as ``peer`` would write it:
    what a hostile peer sends its victims is whatever it likes, signed by itself (it holds
    its key). Its ``author`` is ``peer``; send :func:`vouch` on the link first."""
    book = peer._certs
    entry = {**message, "author": peer.id}
    if book is not None:
        entry["sig"] = sign_entry(peer._signing_key, book.room, entry)
    return entry
