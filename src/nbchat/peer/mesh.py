"""The mesh: one DataConnection per peer the overlay links us to, dialed, accepted,
redialed and pruned (a full mesh in small rooms, a bounded partial mesh in big ones)."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from aiortc import RTCConfiguration
from aiortc.exceptions import InvalidStateError

from ..core.frames import MAX_MESSAGE_BYTES
from ..core.mesh import MAX_LINKS, MESH_SIZE, LinkState, MeshPolicy
from ..core.ratelimit import IncomingLimits
from ..protocol import FrameType, Presence
from .dataconnection import SERIALIZATION, DataConnection, Signal

__all__ = ["Mesh"]

log = logging.getLogger(__name__)

Spawn = Callable[[Coroutine[Any, Any, Any], str], None]


class Mesh:
    """Routes signaling frames to connections and keeps one live link per peer the
    overlay links us to (every present peer in a room of up to ``mesh_size``).

    Who links to whom, who dials, the tie-break for simultaneous dials, the redial backoff
    and what to forward are the widget's too: :class:`nbchat.core.mesh.MeshPolicy`
    decides, this carries it out.
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
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        wants_part: Callable[[str, str], bool] | None = None,
        mesh_size: int = MESH_SIZE,
        max_links: int = MAX_LINKS,
    ) -> None:
        self.self_id = self_id
        self._wants_part = wants_part
        self.max_message_bytes = max_message_bytes  # the room's, for chunk reassembly
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
        self.policy = MeshPolicy(self_id, mesh_size, max_links)
        self._redialing: set[str] = set()  # peers with a redial waiting
        self._current: dict[str, DataConnection] = {}  # peer id → its latest opened connection
        self._locks: dict[str, asyncio.Lock] = {}
        # Calls refused at the link bound, by caller: (loop time, connection id, OFFER).
        self._refused: dict[str, tuple[float, str, dict[str, Any]]] = {}
        self.closed = False

    @property
    def peers(self) -> set[str]:
        """Peer ids with an open connection."""
        return {c.peer for c in self.connections.values() if c.open}

    def open_connections(self) -> list[DataConnection]:
        return [c for c in self.connections.values() if c.open]

    def connection_to(self, peer: str) -> DataConnection | None:
        """The open connection to ``peer`` that opened last (the one the peer uses)."""
        current = self._current.get(peer)
        if current is not None and current.open:
            return current
        return next((c for c in self.connections.values() if c.peer == peer and c.open), None)

    def _live(self, peer: str) -> bool:
        return any(c.peer == peer for c in self.connections.values())

    def _linked(self) -> set[str]:
        return {c.peer for c in self.connections.values()}

    def _wanted(self, peer: str) -> bool:
        """Whether ``peer`` is present and the overlay links us to it."""
        roster = self._roster()
        return peer in roster and peer in self.policy.wanted(list(roster))

    def forward_to(self, author: str, came_from: str) -> list[DataConnection]:
        """The open links to forward a message new to our log on (see MeshPolicy)."""
        targets = self.policy.forward_to(author, came_from, self.peers, list(self._roster()))
        found = (self.connection_to(peer) for peer in targets)
        return [c for c in found if c is not None]

    def on_roster_changed(self) -> None:
        """Someone joined or left: dial the links that are ours to dial (a newcomer with a
        bigger id; in a partial mesh the overlay moves), take up the calls we refused at
        the bound whose link the overlay now wants, and close the links it no longer
        wants."""
        if self.closed:
            return
        present = list(self._roster())
        for other in self.policy.dials_on_change(present, self._linked()):
            self.dial(other)
        self._take_up_refused(present)
        for other in self.policy.prune(present, self._linked()):
            log.debug("nbchat room %s: the overlay no longer links us to %s", self.room, other)
            self.drop(other)

    def _bound(self) -> None:
        """Close links the overlay does not want while we hold more than max_links."""
        linked = self._linked()
        excess = len(linked) - self.policy.max_links
        if excess <= 0:
            return
        for peer in self.policy.prune(list(self._roster()), linked)[:excess]:
            log.debug("nbchat room %s: over the link bound, closing %s", self.room, peer)
            self.drop(peer)

    def dial(self, other: str) -> None:
        connection = DataConnection(
            other,
            self._relay,
            self._rtc_config,
            self._on_frame,
            limits=self._limits(),
            max_message_bytes=self.max_message_bytes,
            wants_part=self._wants_part,
        )
        self._register(connection)
        self._spawn(
            self._unless_closed(connection, connection.start()),
            f"nbchat-offer-{connection.connection_id}",
        )
        self._bound()

    def dial_unless_linked(self, other: str) -> None:
        """Dial ``other`` if no connection to it exists or is being made."""
        if other != self.self_id and not self._live(other) and not self.closed:
            self.dial(other)

    def dial_missing(self) -> None:
        """On joining and after a reconnect: dial the overlay's peers (everyone present, in
        a full mesh) with a bigger id and no connection; the smaller ids dial us. Calls we
        refused before our roster listed their callers are taken up as in
        :meth:`on_roster_changed`."""
        present = list(self._roster())
        for other in self.policy.dials_on_roster(present, self._linked()):
            self.dial(other)
        self._take_up_refused(present)

    def _take_up_refused(self, present: list[str]) -> None:
        """A caller we refused at the link bound (our roster did not list it yet, or the
        overlay did not link us to it) whose link the overlay now wants: answer its call
        if it is recent (the caller still waits for our ANSWER: its dial is pending, and
        it would refuse a call from us meanwhile if its id is the smaller), else dial it
        back whatever the ids (the tie-break settles a double dial)."""
        refused, self._refused = self._refused, {}
        if not refused:
            return
        wanted = self.policy.wanted(present)
        now = asyncio.get_running_loop().time()
        for other in sorted(refused):
            at, connection_id, payload = refused[other]
            if other not in wanted:
                # Not yet (a roster still filling moves the overlay, or does not list the
                # caller yet): a later change may want it while the caller still waits.
                if now - at < self.open_timeout / 2:
                    self._refused[other] = refused[other]
                continue
            if self._live(other) or self.closed:
                continue
            if now - at < self.open_timeout / 2:
                log.debug("nbchat room %s: answering %s's call after all", self.room, other)
                self._accept(other, connection_id, payload)
            else:
                self.dial(other)

    def repair(self) -> None:
        """A repair round: dial the overlay's peers that are ours to dial and have no link,
        and close the links it no longer wants (partial mesh)."""
        if self.closed:
            return
        present = list(self._roster())
        for other in self.policy.repair_dials(present, self._linked(), self._redialing):
            self.dial(other)
        for other in self.policy.prune(present, self._linked()):
            log.debug("nbchat room %s: the overlay no longer links us to %s", self.room, other)
            self.drop(other)

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
        """Track ``connection``; once its channel opens it becomes the peer's link, and if
        it has not opened after ``open_timeout`` it is closed. (Callbacks and one timer per
        connection, not a task waiting on two more: a mesh forming makes hundreds.)"""
        self.connections[connection.connection_id] = connection
        connection.on_close(self._closed_connection)
        connection.on_open(self._opened)
        timer = asyncio.get_running_loop().call_later(
            self.open_timeout, self._open_timed_out, connection
        )
        connection.on_close(lambda _: timer.cancel())

    def _open_timed_out(self, connection: DataConnection) -> None:
        if connection.closed.is_set() or connection.opened.is_set():
            return
        log.warning(
            "nbchat room %s: connection %s to peer %s did not open in %ss",
            self.room,
            connection.connection_id,
            connection.peer,
            self.open_timeout,
        )
        self._spawn(connection.close(), "nbchat-close")

    def _opened(self, connection: DataConnection) -> None:
        # One closed meanwhile (pruned, refused, the peer left) is not a link.
        if connection.closed.is_set() or self.closed:
            return
        # The first of two connections to a peer to open is the link (see _accept).
        for other in list(self.connections.values()):
            if other is not connection and other.peer == connection.peer and not other.open:
                self._spawn(other.close(), "nbchat-close")
        self.policy.on_link_open(connection.peer)
        self._current[connection.peer] = connection
        self._on_open(connection)

    def _closed_connection(self, connection: DataConnection) -> None:
        if self.connections.get(connection.connection_id) is connection:
            del self.connections[connection.connection_id]
            self._locks.pop(connection.connection_id, None)
        if self._current.get(connection.peer) is connection:
            del self._current[connection.peer]
        if self.closed:
            return
        self._on_closed(connection)
        other = connection.peer
        if self._live(other) or other in self._redialing:
            return
        # aiortc has no ICE "disconnected": a silent path closes through its consent checks
        # (peer/ice.py), indistinguishable here from a link the other side closed.
        delay = self.policy.on_link_lost(
            other,
            was_open=connection.was_open,
            silent=False,
            present=self._wanted(other),
            random=random.random(),
        )
        if delay is not None:
            self._redialing.add(other)
            self._spawn(self._redial(other, delay), f"nbchat-redial-{other}")

    async def _redial(self, other: str, delay_ms: int) -> None:
        try:
            await asyncio.sleep(delay_ms / 1000)
        finally:
            self._redialing.discard(other)
        if not self.closed and self._wanted(other) and not self._live(other):
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
                await self._unless_closed(connection, step)

    @staticmethod
    async def _unless_closed(connection: DataConnection, step: Coroutine[Any, Any, None]) -> None:
        """Run an offer/answer step; a link closed meanwhile (pruned, or the peer left) makes
        aiortc raise InvalidStateError, which is then expected, not a failure."""
        try:
            await step
        except InvalidStateError:
            if not connection.closed.is_set():
                raise

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
        others = [c for c in self.connections.values() if c.peer == src]
        existing = None
        if others:
            existing = LinkState(
                open=any(c.open for c in others), dialed_by_us=any(c.originator for c in others)
            )
        links = len(self._linked() - {src})
        if not self.policy.accept_incoming(src, existing, list(self._roster()), links):
            # Both sides dialed at once (both keep the connection dialed by the smaller id),
            # or we are at the link bound and the overlay does not link us to the caller.
            log.debug("nbchat room %s: refusing %s's call", self.room, src)
            if self.policy.accept_incoming(src, existing):  # refused only at the bound
                loop = asyncio.get_running_loop()
                self._refused[src] = (loop.time(), connection_id, payload)
            return
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
            max_message_bytes=self.max_message_bytes,
            wants_part=self._wants_part,
        )
        self._register(connection)
        # The caller dialed again (or won a double dial): its end of any older link is gone.
        # Our own dial still being made stays until one of the two opens (_opened): the
        # caller may have dropped its dial before this OFFER reached us (the overlay moved
        # while forming) and answered ours meanwhile; dropping ours then left both ends
        # waiting on connections the other had closed, for the whole dial timeout.
        for old in others:
            if old.open or not old.originator:
                self._spawn(old.close(), "nbchat-close")
        self._spawn(
            self._in_order(connection, connection.accept(sdp)), f"nbchat-answer-{connection_id}"
        )
        self._bound()
