"""Errors a Python peer raises, all under one base class.

NbChatError
 ├── ServerUnreachable     nothing answers at the server URL
 ├── NotAnNbchatServer     something answers, but not a Jupyter server with nbchat
 ├── AuthenticationFailed  the server refused the token (401/403)
 ├── SignalingError        the signaling server refused us (ERROR, ID-TAKEN)
 └── TurnError             relay-only ICE, but the TURN relay gives us no relayed address
      ├── TurnRefused       the relay refused our credentials (401: wrong secret, expired)
      └── TurnUnreachable   nothing answers at the relay's address
"""

from __future__ import annotations

__all__ = [
    "connection_failure_reason",
    "AuthenticationFailed",
    "NbChatError",
    "NotAnNbchatServer",
    "ServerUnreachable",
    "SignalingError",
    "TurnError",
    "TurnRefused",
    "TurnUnreachable",
]


class NbChatError(Exception):
    """Base class; ``str(error)`` is a one-line message fit for a user."""


class ServerUnreachable(NbChatError):
    pass


class NotAnNbchatServer(NbChatError):
    pass


class AuthenticationFailed(NbChatError):
    pass


class SignalingError(NbChatError):
    pass


class TurnError(NbChatError):
    pass


class TurnRefused(TurnError):
    pass


class TurnUnreachable(TurnError):
    pass


def connection_failure_reason(error: BaseException) -> str:
    """The short cause of a failed connection ("Connection refused"), for one-line errors."""
    os_error = getattr(error, "os_error", None)
    if isinstance(os_error, OSError) and os_error.strerror:
        return os_error.strerror
    return str(error) or type(error).__name__
