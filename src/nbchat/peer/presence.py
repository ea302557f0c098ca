"""Presence topics client: the room's roster, then USER_CONNECTED / USER_DISCONNECTED."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ..core.msglog import InvalidMessage, normalize_identity
from ..protocol import FrameType, Presence, is_peer_id
from .errors import NbChatError, SignalingError
from .session import ServerSession, SessionConfig
from .websocket import ReconnectingWebSocket

__all__ = ["PresenceClient", "PresenceEvent"]

log = logging.getLogger(__name__)

EventType = Literal["USER_CONNECTED", "USER_DISCONNECTED"]


@dataclass(frozen=True)
class PresenceEvent:
    type: EventType
    peer: Presence
    #: Inferred by comparing the roster that follows a reconnect with the one before. A peer
    #: missing from it may only be slower to reconnect (after a server restart the roster
    #: lists only who is back so far), so its data link should not be dropped at once.
    from_roster: bool = False


def _parse_presence(value: object) -> Presence | None:
    if not isinstance(value, dict) or not is_peer_id(value.get("peer_id")):
        return None
    try:
        return Presence(peer_id=value["peer_id"], user=normalize_identity(value.get("user")))
    except InvalidMessage:
        return None


class PresenceClient:
    """Keeps ``roster`` (peer id → Presence) current and reports each change once.

    After a reconnect the new ROSTER is compared with the old one, so peers that came
    or went while the socket was down are still reported.
    """

    def __init__(
        self,
        session: ServerSession,
        config: SessionConfig,
        on_event: Callable[[PresenceEvent], None],
    ) -> None:
        self.key = config.key
        self.on_event = on_event
        self.roster: dict[str, Presence] = {}
        self.has_roster = asyncio.Event()
        self._refusal: str | None = None
        self._refused = asyncio.Event()
        url = session.ws_url(config.path + "presence", {"key": config.key})
        self.socket = ReconnectingWebSocket(session, url, "presence", self._on_frame)

    async def connect(self, timeout: float = 15.0) -> None:
        """Connect and wait for the first ROSTER."""
        await self.socket.connect()
        roster = asyncio.create_task(self.has_roster.wait())
        refused = asyncio.create_task(self._refused.wait())
        _, pending = await asyncio.wait(
            {roster, refused}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        for task in pending:
            task.cancel()
        if not self.has_roster.is_set():
            await self.socket.close()
            if self._refusal is not None:
                raise SignalingError(f"presence: {self._refusal}")
            raise NbChatError("the presence socket sent no roster in time")

    def _on_frame(self, frame: dict[str, object]) -> None:
        kind = frame.get("type")
        if kind == FrameType.ROSTER.value:
            peers = frame.get("peers")
            fresh: dict[str, Presence] = {}
            for raw in peers if isinstance(peers, list) else []:
                presence = _parse_presence(raw)
                if presence is not None:
                    fresh[presence["peer_id"]] = presence
            old, self.roster = self.roster, fresh
            if self.has_roster.is_set():
                for peer_id, presence in old.items():
                    if peer_id not in fresh:
                        self.on_event(PresenceEvent("USER_DISCONNECTED", presence, True))
                for peer_id, presence in fresh.items():
                    if peer_id not in old:
                        self.on_event(PresenceEvent("USER_CONNECTED", presence, True))
            self.has_roster.set()
        elif kind in (FrameType.USER_CONNECTED.value, FrameType.USER_DISCONNECTED.value):
            presence = _parse_presence(frame.get("peer"))
            if presence is None:
                log.warning("nbchat presence (room %s): dropped a malformed frame", self.key)
                return
            peer_id = presence["peer_id"]
            if kind == FrameType.USER_CONNECTED.value:
                if peer_id in self.roster:
                    return
                self.roster[peer_id] = presence
                self.on_event(PresenceEvent("USER_CONNECTED", presence))
            else:
                if self.roster.pop(peer_id, None) is None:
                    return
                self.on_event(PresenceEvent("USER_DISCONNECTED", presence))
        elif kind == FrameType.ERROR.value:
            payload = frame.get("payload")
            msg = payload.get("msg") if isinstance(payload, dict) else None
            self._refusal = str(msg or "error")
            if not self.has_roster.is_set():
                self._refused.set()
            log.warning("nbchat presence (room %s): %s", self.key, self._refusal)

    async def close(self) -> None:
        await self.socket.close()
