"""The signaling service: one object that owns the realm, the open sockets, the clock and
the settings. The Jupyter extension and the standalone ``nbchat-signaling`` are thin
adapters over it (they authenticate, then call in here); it knows no handler."""

from __future__ import annotations

import contextvars
import functools
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jupyter_core.paths import jupyter_data_dir
from tornado.ioloop import PeriodicCallback

from .._version import __version__
from ..core.session import SessionConfig
from ..protocol import Identity, error_frame, room_key, room_key_prefix
from .certs import CertAuthority, KeyRefused
from .realm import Delivery, Realm, Refused, encode
from .settings import SignalingSettings
from .wsconn import Hub

__all__ = ["RoomRefused", "SignalingService", "deliver", "debug_shown"]


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
        self._ticker = PeriodicCallback(self._tick, settings.tick_interval * 1000)
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

    def certify(
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
        if self.realm.owner(key, peer_id) != user["username"]:
            raise KeyRefused(
                f"peer id {peer_id} is not yours in this room: ask for an id first", 403
            )
        return dict(self.certs.certify(key, peer_id, user, public_key))

    def reserve_id(self, key: str, user: Identity, groups: Sequence[str] | None = None) -> str:
        self.check_room(key, groups)
        return self.realm.reserve_id(key, user["username"], time.monotonic())

    def peer_ids(self, key: str, groups: Sequence[str] | None = None) -> list[str]:
        self.check_room(key, groups)
        return self.realm.peer_ids(key)

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
        outcome = refusal or self.realm.connect(
            key, peer_id, token, user, transport, time.monotonic()
        )
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

    def signaling_message(self, transport: Any, message: str | bytes) -> None:
        client = transport.client
        if client is not None:
            deliver(self.realm.receive(client, message, time.monotonic()))

    def signaling_closed(self, transport: Any) -> None:
        client, transport.client = transport.client, None
        if client is not None:
            if debug_shown(self.log):
                self.log.debug("nbchat: peer %s left room %s", client.peer_id, client.key)
            deliver(self.realm.disconnect(client, transport, time.monotonic()))

    def presence_open(
        self, transport: Any, key: Any, user: Identity, groups: Sequence[str] | None = None
    ) -> None:
        self.ensure_ticking()
        outcome = self._room_refusal(key, groups) or self.realm.subscribe(key, user, transport)
        if isinstance(outcome, Refused):
            transport.send_frame(outcome.frame)
            transport.close(1008, "refused")
            return
        transport.subscriber = outcome
        transport.send_frame(self.realm.roster(outcome.key))

    def presence_closed(self, transport: Any) -> None:
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
            # In an empty context: started from a request, the timer would otherwise
            # carry (and keep alive) that request's handler in Jupyter's CallContext.
            contextvars.Context().run(self._ticker.start)

    def _tick(self) -> None:
        now = time.monotonic()
        self.hub.sweep(now)
        deliveries, evict = self.realm.tick(now)
        deliver(deliveries)
        for client in evict:
            self.log.info("nbchat: evicting silent peer %s in room %s", client.peer_id, client.key)
            client.transport.close(1001, "no heartbeat within alive_timeout")
            # The socket's on_close runs later; announce the departure now.
            deliver(self.realm.disconnect(client, client.transport, time.monotonic()))

    def stop(self, reason: str = "server shutting down") -> None:
        """Tell every peer we are going (close 1001) and stop the clock."""
        self._ticker.stop()
        self.hub.close_all(1001, reason)

    def metrics(self) -> Mapping[str, Any]:
        """Counts for /metrics: no ids, no names."""
        return {
            **self.realm.stats(),
            "relayed": self.realm.relayed,
            "refused": dict(self.realm.refused),
        }
