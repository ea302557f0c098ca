"""The Python peer: join an nbchat room from scripts, bots and the terminal (aiortc)."""

from __future__ import annotations

from .chatpeer import ChatPeer
from .errors import (
    AuthenticationFailed,
    NbChatError,
    NotAnNbchatServer,
    ServerUnreachable,
    SignalingError,
    TurnError,
    TurnRefused,
    TurnUnreachable,
)
from .presence import PresenceEvent
from .sealed import Rejection

__all__ = [
    "AuthenticationFailed",
    "ChatPeer",
    "NbChatError",
    "NotAnNbchatServer",
    "PresenceEvent",
    "Rejection",
    "ServerUnreachable",
    "SignalingError",
    "TurnError",
    "TurnRefused",
    "TurnUnreachable",
]
