"""The full mesh: one DataConnection per remote peer, dialed, accepted and redialed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from aiortc import RTCConfiguration

from ..core.ratelimit import IncomingLimits
from ..protocol import FrameType, Presence
from .dataconnection import SERIALIZATION, DataConnection, Signal

__all__ = ["Mesh"]

log = logging.getLogger(__name__)

MAX_REDIALS = 6
REDIAL_BASE_DELAY = 0.5
REDIAL_MAX_DELAY = 10.0

Spawn = Callable[[Coroutine[Any, Any, Any], str], None]


class Mesh:
    """Routes signaling frames to connections and keeps one live link per present peer.

    Rules shared with the widget: the newcomer dials everyone (``dial_missing``);
    after an open link is lost only the smaller id dials again, while a link that
    never opened is retried by either side, with backoff. Two links to one peer are
    harmless (the message log drops duplicates), so simultaneous dials need no
    tie-break here.
    """

    def __init__(
        self,
        self_id: str,
        room: str,
        relay: Signal,
        rtc_config: RTCConfiguration,
        roster: Callable[[], Mapping[str, Presence]],
        on_frame: Callable[[DataConnection, dict[str, Any]], None],
        on_open: Callable[[DataConnection], None],
        on_closed: Callable[[DataConnection], None],
        spawn: Spawn,
        open_timeout: float,
        limits: Callable[[], IncomingLimits | None] = IncomingLimits,
    ) -> None:
        self.self_id = self_id
        self.room = room
        self._relay = relay
        self._rtc_config = rtc_config
        self._roster = roster
        self._on_frame = on_frame
        self._on_open = on_open
        self._on_closed = on_closed
        self._spawn = spawn
        self.open_timeout = open_timeout
        self._limits = limits
        self.connections: dict[str, DataConnection] = {}  # by connection id
        self._redials: dict[str, int] = {}  # peer id → dial attempts since its last open link
        self._locks: dict[str, asyncio.Lock] = {}
        self.closed = False

    @property
    def peers(self) -> set[str]:
        """Peer ids with an open connection."""
        return {c.peer for c in self.connections.values() if c.open}

    def open_connections(self) -> list[DataConnection]:
        return [c for c in self.connections.values() if c.open]

    def _live(self, peer: str) -> bool:
        return any(c.peer == peer for c in self.connections.values())

    def dial(self, other: str) -> None:
        connection = DataConnection(
            other, self._relay, self._rtc_config, self._on_frame, limits=self._limits()
        )
        self._register(connection)
        self._spawn(connection.start(), f"nbchat-offer-{connection.connection_id}")

    def dial_unless_linked(self, other: str) -> None:
        """Dial ``other`` if no connection to it exists or is being made."""
        if other != self.self_id and not self._live(other) and not self.closed:
            self.dial(other)

    def dial_missing(self) -> None:
        """Dial every present peer we have no connection to (on joining, after a reconnect)."""
        for other in list(self._roster()):
            if other != self.self_id and not self._live(other):
                self.dial(other)

    def drop(self, peer: str) -> None:
        """Close every connection to ``peer`` (it left the room)."""
        for connection in list(self.connections.values()):
            if connection.peer == peer:
                self._spawn(connection.close(), "nbchat-close")

    async def close(self) -> None:
        self.closed = True
        for connection in list(self.connections.values()):
            await connection.close()

    # --- connections ----------------------------------------------------------------------

    def _register(self, connection: DataConnection) -> None:
        self.connections[connection.connection_id] = connection
        connection.on_close(self._closed_connection)
        self._spawn(self._serve(connection), f"nbchat-serve-{connection.connection_id}")

    async def _serve(self, connection: DataConnection) -> None:
        """Wait for the channel to open; close it if it never does."""
        try:
            await asyncio.wait_for(connection.opened.wait(), self.open_timeout)
        except asyncio.TimeoutError:
            log.warning(
                "nbchat room %s: connection %s to peer %s did not open in %ss",
                self.room,
                connection.connection_id,
                connection.peer,
                self.open_timeout,
            )
            await connection.close()
            return
        self._redials.pop(connection.peer, None)
        self._on_open(connection)

    def _closed_connection(self, connection: DataConnection) -> None:
        if self.connections.get(connection.connection_id) is connection:
            del self.connections[connection.connection_id]
            self._locks.pop(connection.connection_id, None)
        if self.closed:
            return
        self._on_closed(connection)
        other = connection.peer
        present = other in self._roster()
        if present and not self._live(other) and (self.self_id < other or not connection.was_open):
            attempt = self._redials.get(other, 0)
            if attempt < MAX_REDIALS:
                self._redials[other] = attempt + 1
                self._spawn(self._redial(other, attempt), f"nbchat-redial-{other}")
            else:
                log.warning("nbchat room %s: giving up on peer %s", self.room, other)

    async def _redial(self, other: str, attempt: int) -> None:
        await asyncio.sleep(min(REDIAL_BASE_DELAY * 2**attempt, REDIAL_MAX_DELAY))
        if not self.closed and other in self._roster() and not self._live(other):
            log.info("nbchat room %s: dialing peer %s again", self.room, other)
            self.dial(other)

    # --- signaling ------------------------------------------------------------------------

    def on_signal(self, frame: dict[str, Any]) -> None:
        """A relayed OFFER, ANSWER, CANDIDATE, LEAVE or EXPIRE from the signaling server."""
        kind, src, payload = frame.get("type"), frame.get("src"), frame.get("payload")
        if not isinstance(src, str) or not isinstance(kind, str):
            return
        if kind in (FrameType.LEAVE.value, FrameType.EXPIRE.value):
            for connection in list(self.connections.values()):
                if connection.peer == src and (kind == "LEAVE" or not connection.open):
                    self._spawn(connection.close(), "nbchat-close")
            return
        if not isinstance(payload, dict):
            log.warning("nbchat room %s: %s from %s without payload", self.room, kind, src)
            return
        connection_id = payload.get("connectionId")
        if not isinstance(connection_id, str):
            return
        if kind == FrameType.OFFER.value:
            self._accept(src, connection_id, payload)
            return
        known = self.connections.get(connection_id)
        if known is None or known.peer != src:
            log.debug("nbchat: %s for unknown connection %s", kind, connection_id)
            return
        self._spawn(
            self._in_order(known, known.handle_signal(kind, payload)),
            f"nbchat-{kind}-{connection_id}",
        )

    async def _in_order(self, connection: DataConnection, step: Coroutine[Any, Any, None]) -> None:
        # Signaling for one connection is applied in arrival order.
        lock = self._locks.setdefault(connection.connection_id, asyncio.Lock())
        async with lock:
            if connection.closed.is_set():
                step.close()
            else:
                await step

    def _accept(self, src: str, connection_id: str, payload: dict[str, Any]) -> None:
        if payload.get("type") != "data":
            log.info("nbchat room %s: ignoring a media call from %s", self.room, src)
            return
        if payload.get("serialization") != SERIALIZATION:
            log.warning(
                "nbchat room %s: peer %s offered serialization %r; only json is spoken",
                self.room,
                src,
                payload.get("serialization"),
            )
            return
        sdp = payload.get("sdp")
        if not isinstance(sdp, dict) or not isinstance(sdp.get("sdp"), str):
            log.warning("nbchat room %s: malformed OFFER from %s", self.room, src)
            return
        old = self.connections.get(connection_id)
        if old is not None:
            self._spawn(old.close(), "nbchat-close")
        label = payload.get("label")
        connection = DataConnection(
            src,
            self._relay,
            self._rtc_config,
            self._on_frame,
            connection_id=connection_id,
            label=label if isinstance(label, str) else None,
            reliable=bool(payload.get("reliable")),
            metadata=payload.get("metadata"),
            originator=False,
            limits=self._limits(),
        )
        self._register(connection)
        self._spawn(
            self._in_order(connection, connection.accept(sdp)), f"nbchat-answer-{connection_id}"
        )
