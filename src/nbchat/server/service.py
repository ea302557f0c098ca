"""The signaling service: one object that owns the realm, the open sockets, the clock and
the settings. The Jupyter extension and the standalone ``nbchat-signaling`` are thin
adapters over it (they authenticate, then call in here); it knows no handler."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jupyter_core.paths import jupyter_data_dir
from tornado.ioloop import PeriodicCallback

from .._version import __version__
from ..core.session import SessionConfig
from ..protocol import ID_TAKEN_FRAME, Identity, error_frame, room_key, room_key_prefix
from .broker import make_broker
from .certs import CertAuthority, KeyRefused
from .realm import Accepted, Client, Delivery, Realm, Refused, Subscriber, encode
from .settings import SignalingSettings
from .wsconn import Hub

__all__ = ["RoomRefused", "SignalingService", "deliver", "debug_shown"]


#: Seconds a tick may come late before the gap counts as time the loop did not run.
STALL = 1.0


class RoomRefused(Exception):
    """The caller may not use this room (the room policy); the message says why."""


def deliver(deliveries: list[Delivery]) -> None:
    """Write each frame to its socket; a socket that closed meanwhile is simply skipped."""
    for transport, text in deliveries:
        transport.send_frame(text)


def debug_shown(log: logging.Logger | logging.LoggerAdapter[Any]) -> bool:
    """Whether a debug record would reach any handler. Jupyter's logger is set to DEBUG
    and its handler to INFO, so ``isEnabledFor`` says yes and every debug call builds a
    record that is then thrown away: measurable per connect with thousands of sockets."""
    logger: logging.Logger | None = (
        log.logger if isinstance(log, logging.LoggerAdapter) else log
    )  # unwrap an adapter
    if logger is None or not logger.isEnabledFor(logging.DEBUG):
        return False
    while logger is not None:
        if any(h.level <= logging.DEBUG for h in logger.handlers):
            return True
        logger = logger.parent if logger.propagate else None
    return logging.lastResort is not None and logging.lastResort.level <= logging.DEBUG


class SignalingService:
    """Signaling and presence for nbchat rooms, whoever serves the sockets."""

    def __init__(
        self,
        settings: SignalingSettings,
        log: logging.Logger | logging.LoggerAdapter[Any],
        *,
        default_audience: str = "",
    ) -> None:
        self.settings = settings
        self.log = log
        self.default_audience = default_audience
        self.realm = Realm(settings.limits())
        self.hub = Hub(self.max_frame_bytes, settings.send_buffer_limit, owner=self)
        #: The Jupyter extension's ``fastpath.FastUpgrade`` (None elsewhere).
        self.fast_upgrade: Any = None
        self._ticker = PeriodicCallback(self._tick, settings.tick_interval * 1000)
        self._last_tick = time.monotonic()
        #: (start, end) of recent times the loop did not run (see _tick), oldest first.
        self._stalls: deque[tuple[float, float]] = deque()
        #: Who else shares these rooms: nobody (in-process, the default) or the other
        #: processes on one Redis (``broker = "redis://…"``).
        self.broker = make_broker(settings.broker, self)
        self._broker_task: asyncio.Task[None] | None = None
        #: Sockets whose id is being claimed from the broker: frames they send meanwhile.
        self._claiming: dict[Any, list[str | bytes]] = {}
        #: Presence sockets waiting for the broker's barrier before their roster.
        self._presence_waiting: set[Any] = set()
        # The room policy as key prefixes, worked out once (it is checked on every connect).
        self._reserved = [
            (room_key_prefix(prefix), list(groups))
            for prefix, groups in settings.room_groups.items()
        ]

    @property
    def max_frame_bytes(self) -> int:
        """Largest WebSocket message read at all. Frames up to 4x ``max_message_bytes``
        are read so that the sender gets a clear ERROR for an oversized frame; beyond
        that the socket is closed with 1009."""
        return self.settings.max_message_bytes * 4

    # ---- room policy -------------------------------------------------------------------
    def groups_for(self, key: str) -> list[str] | None:
        """The groups a room is reserved to (None: open to every authenticated user)."""
        allowed: list[str] | None = None
        for prefix, groups in self._reserved:
            if key.startswith(prefix):
                allowed = [*(allowed or []), *groups]
        return allowed

    def check_room(self, key: str, groups: Sequence[str] | None) -> None:
        """Raise RoomRefused unless a user in ``groups`` may use the room ``key``."""
        allowed = self.groups_for(key)
        if allowed is None or set(allowed) & set(groups or ()):
            return
        names = ", ".join(sorted(set(allowed)))
        raise RoomRefused(
            f"this room is reserved to members of the JupyterHub group(s) {names}; "
            "ask your hub's admin to add you, or choose another room"
        )

    def audience(self, key: str) -> str:
        allowed = self.groups_for(key)
        if allowed is not None:
            return "members of " + ", ".join(sorted(set(allowed)))
        return self.settings.audience or self.default_audience

    # ---- HTTP ------------------------------------------------------------------------
    def session(
        self, room: str, user: Identity, path: str, groups: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """What a browser or Python peer needs to join ``room`` (docs/protocol.md §1)."""
        key = room_key(room)
        self.check_room(key, groups)
        s = self.settings
        ice = s.session_ice(s.ice_servers, user["username"], time.time())
        return SessionConfig(
            room=room,
            key=key,
            path=path,
            ice_servers=ice["ice_servers"],
            ice_transport_policy=ice["ice_transport_policy"],
            user=user,
            # Advertise a heartbeat well inside alive_timeout, whatever the two settings
            # say: a client beating at the advertised rate must never be evicted.
            ping_interval=int(min(s.ping_interval, s.alive_timeout / 3) * 1000),
            alive_timeout=int(s.alive_timeout * 1000),
            max_message_bytes=s.max_message_bytes,
            audience=self.audience(key),
            repair_interval=int(s.repair_interval * 1000),
            version=__version__,
            server_keys=[self.certs.public_key],
        ).to_json()

    @functools.cached_property
    def certs(self) -> CertAuthority:
        """Signs peers' certificates; its key file is read (or made) on first use."""
        path = self.settings.signing_key_file or str(
            Path(jupyter_data_dir()) / "nbchat" / "signing-key.pem"
        )
        return CertAuthority.from_file(path)

    async def certify(
        self,
        key: str,
        peer_id: str,
        user: Identity,
        public_key: str,
        groups: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """A certificate binding ``public_key`` to ``user``'s peer ``peer_id`` in room
        ``key`` (docs/protocol.md §1); KeyRefused unless that id is the caller's."""
        self.check_room(key, groups)
        owner = self.realm.owner(key, peer_id)
        if owner is None and self.broker.shared:
            owner = await self.broker.owner(key, peer_id)  # issued by another process
        if owner != user["username"]:
            raise KeyRefused(
                f"peer id {peer_id} is not yours in this room: ask for an id first", 403
            )
        return dict(self.certs.certify(key, peer_id, user, public_key))

    async def reserve_id(
        self, key: str, user: Identity, groups: Sequence[str] | None = None
    ) -> str:
        self.check_room(key, groups)
        while True:
            peer_id = self.realm.reserve_id(key, user["username"], time.monotonic())
            if not self.broker.shared or await self.broker.reserve(key, peer_id, user["username"]):
                return peer_id

    def peer_ids(self, key: str, groups: Sequence[str] | None = None) -> list[str]:
        self.check_room(key, groups)
        ids = self.realm.peer_ids(key)
        if self.broker.shared:
            ids.extend(p["peer_id"] for p in self.broker.remote_presences(key))
        return ids

    def stats(self) -> dict[str, int]:
        return self.realm.stats()

    # ---- sockets ---------------------------------------------------------------------
    # A transport is a WsConn (the lean path) or the tornado handler itself; it has
    # ``send_frame(text)``, ``close(code, reason)`` and a ``client``/``subscriber`` slot.

    def signaling_open(
        self,
        transport: Any,
        key: Any,
        peer_id: Any,
        token: Any,
        user: Identity,
        groups: Sequence[str] | None = None,
    ) -> None:
        self.ensure_ticking()
        refusal = self._room_refusal(key, groups)
        if refusal is None and self.broker.shared:
            refusal = self.realm.invalid(key, peer_id, token)
            room = self.realm.rooms.get(key) if refusal is None else None
            if refusal is None and (room is None or peer_id not in room.clients):
                # (An id connected here already: the realm decides, reconnect or taken.)
                # The id registry is shared: ask the broker first (an await), and keep
                # what the socket sends meanwhile.
                self._claiming[transport] = []
                loop = asyncio.get_running_loop()
                loop.create_task(self._claim_then_open(transport, key, peer_id, token, user))
                return
        outcome = refusal or self.realm.connect(
            key, peer_id, token, user, transport, time.monotonic()
        )
        self._opened(transport, outcome)

    async def _claim_then_open(
        self, transport: Any, key: str, peer_id: str, token: str, user: Identity
    ) -> None:
        try:
            mine = await self.broker.claim(key, peer_id, token, user)
        except Exception:
            self.log.exception("nbchat: claiming id %s in room %s failed", peer_id, key)
            mine = False
        pending = self._claiming.pop(transport, None)
        if pending is None:  # the socket closed meanwhile
            if mine:
                self.broker.release(key, peer_id, user["username"])
            return
        if not mine:
            outcome: Accepted | Refused = Refused(encode(ID_TAKEN_FRAME))
        else:
            outcome = self.realm.connect(key, peer_id, token, user, transport, time.monotonic())
            if isinstance(outcome, Refused):
                self.broker.release(key, peer_id, user["username"])
        self._opened(transport, outcome)
        for message in pending:
            self.signaling_message(transport, message)

    def _opened(self, transport: Any, outcome: Accepted | Refused) -> None:
        if isinstance(outcome, Refused):
            transport.send_frame(outcome.frame)
            transport.close(1008, "refused")
            return
        transport.client = outcome.client
        replaced = outcome.replaced
        if replaced is not None and replaced is not transport:
            replaced.client = None
            replaced.close(1000, "replaced by a reconnect")
        if debug_shown(self.log):
            self.log.debug(
                "nbchat: peer %s joined room %s", outcome.client.peer_id, outcome.client.key
            )
        deliver(outcome.deliveries)
        if self.broker.shared and outcome.replaced is None:
            self.broker.joined(outcome.client)

    def signaling_message(self, transport: Any, message: str | bytes) -> None:
        client = transport.client
        if client is not None:
            deliver(self.realm.receive(client, message, time.monotonic()))
        elif self._claiming:
            pending = self._claiming.get(transport)
            if pending is not None:
                pending.append(message)

    def signaling_closed(self, transport: Any) -> None:
        client, transport.client = transport.client, None
        if client is not None:
            if debug_shown(self.log):
                self.log.debug("nbchat: peer %s left room %s", client.peer_id, client.key)
            self._disconnect(client, transport)
        elif self._claiming:
            self._claiming.pop(transport, None)

    def _disconnect(self, client: Client, transport: Any) -> None:
        shared = self.broker.shared and self.realm.holds(client, transport)
        deliver(self.realm.disconnect(client, transport, time.monotonic()))
        if shared:
            self.broker.left(client)

    # ---- from other processes (a shared broker) --------------------------------------
    def moved_away(self, key: str, peer_id: str) -> None:
        """Our peer ``peer_id`` reconnected to another process: drop its old socket here
        without announcing a departure (it is still in the room) or freeing its id."""
        room = self.realm.rooms.get(key)
        client = room.clients.get(peer_id) if room else None
        if client is None:
            return
        transport = client.transport
        transport.client = None
        self.realm.disconnect(client, transport, time.monotonic())  # no USER_DISCONNECTED
        transport.close(1000, "replaced by a reconnect")

    def remote_presence(self, key: str, text: str) -> None:
        """A presence frame about a peer on another process, for our subscribers of ``key``."""
        room = self.realm.rooms.get(key)
        if room is not None:
            for sub in room.subscribers:
                sub.transport.send_frame(text)

    def presence_open(
        self, transport: Any, key: Any, user: Identity, groups: Sequence[str] | None = None
    ) -> None:
        self.ensure_ticking()
        refusal = self._room_refusal(key, groups)
        if refusal is None and self.broker.shared:
            # Serve the roster once we know every peer announced elsewhere before now.
            self._presence_waiting.add(transport)
            loop = asyncio.get_running_loop()
            loop.create_task(self._subscribe_after_barrier(transport, key, user))
            return
        self._subscribe(transport, refusal or self.realm.subscribe(key, user, transport))

    async def _subscribe_after_barrier(self, transport: Any, key: Any, user: Identity) -> None:
        await self.broker.barrier()
        if transport in self._presence_waiting:
            self._presence_waiting.discard(transport)
            self._subscribe(transport, self.realm.subscribe(key, user, transport))

    def _subscribe(self, transport: Any, outcome: Subscriber | Refused) -> None:
        if isinstance(outcome, Refused):
            transport.send_frame(outcome.frame)
            transport.close(1008, "refused")
            return
        transport.subscriber = outcome
        others = self.broker.remote_presences(outcome.key) if self.broker.shared else None
        transport.send_frame(self.realm.roster(outcome.key, others))

    def presence_closed(self, transport: Any) -> None:
        self._presence_waiting.discard(transport)
        sub, transport.subscriber = transport.subscriber, None
        if sub is not None:
            self.realm.unsubscribe(sub)

    def _room_refusal(self, key: Any, groups: Sequence[str] | None) -> Refused | None:
        if not isinstance(key, str):
            return None  # the realm refuses a missing or invalid key itself
        try:
            self.check_room(key, groups)
        except RoomRefused as refused:
            self.realm.count_refused("room_policy")
            return Refused(encode(error_frame(str(refused))))
        return None

    # ---- time ------------------------------------------------------------------------
    def ensure_ticking(self) -> None:
        """Start the clock on first use, inside the running loop."""
        if not self._ticker.is_running():
            self._last_tick = time.monotonic()
            # In an empty context: started from a request, the timer would otherwise
            # carry (and keep alive) that request's handler in Jupyter's CallContext.
            contextvars.Context().run(self._ticker.start)
        if self._broker_task is None and self.broker.shared:
            self._broker_task = contextvars.Context().run(
                asyncio.get_running_loop().create_task, self.broker.start()
            )

    async def start(self) -> None:
        """Start the clock and connect the broker (a service about to serve)."""
        self.ensure_ticking()
        if self._broker_task is not None:
            await self._broker_task

    def _tick(self) -> None:
        real = time.monotonic()
        gap = real - self._last_tick
        self._last_tick = real
        interval = self.settings.tick_interval
        if gap > interval + STALL:
            # The loop did not run for a while. What peers sent meanwhile sits unread in
            # the sockets; after a SIGSTOP the first select() even returns nothing
            # (epoll_wait fails with EINTR, and Python gives up once the timeout has
            # passed), so this tick would run before any of it is read. That time does
            # not count as silence, nor toward a queued frame's expiry.
            self._stalls.append((real - gap + interval, real))
            self.log.warning(
                "nbchat: the server's loop did not run for %.1f s (starved of CPU, stopped "
                "or blocked); that time does not count toward alive_timeout or "
                "expire_timeout",
                gap,
            )
        now = real
        limits = self.realm.limits
        horizon = now - 2 * max(limits.alive_timeout, limits.expire_timeout)
        while self._stalls and self._stalls[0][1] < horizon:
            self._stalls.popleft()
        self.hub.sweep(now)
        deliveries, evict = self.realm.tick(now, self._stalls)
        deliver(deliveries)
        for client in evict:
            # Last chance: a HEARTBEAT may wait unread in its socket (read it now).
            read_pending = getattr(client.transport, "read_pending", None)
            if (
                read_pending is not None
                and read_pending()
                and client.last_seen > now - (self.realm.limits.alive_timeout)
            ):
                continue
            if client.transport.client is not client:
                continue  # it closed while we read
            self.log.info("nbchat: evicting silent peer %s in room %s", client.peer_id, client.key)
            client.transport.close(1001, "no heartbeat within alive_timeout")
            # The socket's on_close runs later; announce the departure now.
            self._disconnect(client, client.transport)

    def stop(self, reason: str = "server shutting down") -> None:
        """Tell every peer we are going (close 1001) and stop the clock."""
        self._ticker.stop()
        self.hub.close_all(1001, reason)

    async def stop_broker(self) -> None:
        """Tell the other processes our peers are gone, and disconnect from the broker."""
        if self._broker_task is not None:
            await self.broker.stop()

    def metrics(self) -> Mapping[str, Any]:
        """Counts for /metrics: no ids, no names."""
        return {
            **self.realm.stats(),
            "relayed": self.realm.relayed,
            "refused": dict(self.realm.refused),
            **self.broker.metrics(),
        }

    def health(self) -> dict[str, Any]:
        """For ``/health``: ``{"status": "ok"}``, or ``"degraded"`` with the broker's words
        while peers on other processes cannot be reached."""
        return {"status": "ok", **self.broker.health()}
