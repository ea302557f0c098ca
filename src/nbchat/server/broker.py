"""The broker seam: what the signaling service shares with other processes.

A :class:`SignalingService` owns one realm (the peers on *its* sockets) and one broker.
The broker decides what is shared beyond the process:

- :class:`LocalBroker` (the default): nothing. One process is the whole server; the
  realm's own registry, queues and presence are all there is, and the relay path does
  not even look at the broker.
- :class:`~nbchat.server.redis_broker.RedisBroker` (``broker = "redis://…"`` or
  ``"unix:///…"``): several processes on one Redis behave as one server: the id
  registry, presence per room and relays to peers on other processes go through Redis.

The service calls the broker at a handful of points (claim an id, a peer joined, a peer
left, a room's roster, health); the broker calls back into the service for what arrives
from other processes (a relay for a local peer, presence of remote peers, a peer that
moved to another process).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..protocol import Identity, Presence

if TYPE_CHECKING:
    from .realm import Client
    from .service import SignalingService

__all__ = ["Broker", "LocalBroker", "check_broker_url", "make_broker"]


class Broker:
    """What the service asks of a broker; :class:`LocalBroker` is the trivial one."""

    #: False: the realm is the whole server (no awaits on connect, no remote routing).
    shared = False

    async def start(self) -> None:
        """Connect (in the running loop); returns at once, retrying in the background."""

    async def stop(self) -> None:
        """Say goodbye to the other processes and close connections."""

    def health(self) -> dict[str, Any]:
        """What ``/health`` says about the broker (``{}``: nothing to say)."""
        return {}

    def metrics(self) -> dict[str, Any]:
        return {}

    # ---- ids ---------------------------------------------------------------------------
    async def reserve(self, key: str, peer_id: str, username: str) -> bool:
        """Bind a freshly issued id to ``username`` everywhere; False if it exists."""
        return True

    async def claim(self, key: str, peer_id: str, token: str, user: Identity) -> bool:
        """Bind ``peer_id`` to this process for a connecting socket; False: ID-TAKEN."""
        return True

    def release(self, key: str, peer_id: str, username: str) -> None:
        """A claim whose socket never became a peer (refused or closed meanwhile)."""

    # ---- presence ----------------------------------------------------------------------
    def joined(self, client: Client) -> None:
        """``client`` is now connected here."""

    def left(self, client: Client) -> None:
        """``client`` disconnected from here (closed, evicted)."""

    async def barrier(self) -> None:
        """Wait until what other processes announced before now is known here."""

    def remote_presences(self, key: str) -> list[Presence]:
        """Peers of room ``key`` on other processes."""
        return []


class LocalBroker(Broker):
    """One process, nothing shared: the default."""


def check_broker_url(url: str) -> None:
    """Raise ValueError, in words, unless ``url`` is empty or a Redis URL."""
    url = url.strip()
    if url and url.split(":", 1)[0].lower() not in ("redis", "rediss", "unix"):
        raise ValueError(
            f"unsupported broker URL {url!r}: use redis://HOST:PORT/DB, rediss://… or "
            "unix:///path/to/redis.sock (or leave it empty for one process)"
        )


def make_broker(url: str, service: SignalingService) -> Broker:
    """The broker for the ``broker`` setting: empty → in-process; ``redis://``,
    ``rediss://`` or ``unix://`` → Redis (redis-py is imported only then)."""
    check_broker_url(url)
    url = url.strip()
    if not url:
        return LocalBroker()
    from .redis_broker import RedisBroker

    return RedisBroker(url, service)
