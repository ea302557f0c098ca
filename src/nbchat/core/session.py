"""The session config (docs/protocol.md §1, ``GET nbchat/session``): one definition for the
server that builds it and the peers that read it.

Pure; mirrored by js/core/session.ts and pinned by tests/fixtures/session.json. Times are
milliseconds, as on the wire.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..protocol import Identity, is_room_key
from .frames import MAX_MESSAGE_BYTES, MAX_SAFE_INTEGER
from .msglog import InvalidMessage, normalize_identity

__all__ = ["ICE_TRANSPORT_POLICIES", "InvalidSession", "SessionConfig"]

ICE_TRANSPORT_POLICIES = ("all", "relay")
#: What a client assumes for a key the server left out (an older server).
_DEFAULT_PING_INTERVAL = 5_000
_DEFAULT_ALIVE_TIMEOUT = 60_000


class InvalidSession(ValueError):
    """A session config that is not what an nbchat server sends."""


def _positive(data: dict[str, Any], name: str, default: float) -> float:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidSession(f"{name} must be a number")
    if not (math.isfinite(value) and value > 0):
        raise InvalidSession(f"{name} must be positive")
    return value


def _optional_text(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidSession(f"{name} must be a string")
    return value


@dataclass(frozen=True)
class SessionConfig:
    """What a browser or Python peer needs to join a room."""

    room: str
    key: str
    #: Where the signaling endpoints are, ending in ``/``.
    path: str
    ice_servers: list[dict[str, Any]]
    user: Identity
    ping_interval: float  # ms between HEARTBEATs
    alive_timeout: float  # ms of silence before the server evicts a peer
    max_message_bytes: int = MAX_MESSAGE_BYTES
    version: str = ""
    #: "relay": every peer uses TURN-relayed candidates only.
    ice_transport_policy: str = "all"
    #: Who can join the room, in words.
    audience: str | None = None
    #: The shared signaling service a JupyterHub single-user server relays to.
    service: str | None = field(default=None)
    #: The server's public keys (base64url Ed25519) that sign peers' certificates.
    server_keys: list[str] = field(default_factory=list)
    #: ms between a peer's repair rounds (core/sync); None: ``ANTI_ENTROPY_MS``.
    repair_interval: float | None = None

    @classmethod
    def from_json(cls, data: object) -> SessionConfig:
        """Validate a session config as a server sent it; raises ``InvalidSession``."""
        if not isinstance(data, dict):
            raise InvalidSession("session config is not a JSON object")
        room, key, path = data.get("room"), data.get("key"), data.get("path")
        if not isinstance(room, str):
            raise InvalidSession("room must be a string")
        if not is_room_key(key):
            raise InvalidSession("key is not a room key")
        if not isinstance(path, str) or not path.startswith("/"):
            raise InvalidSession("path must start with /")
        ice = data.get("ice_servers")
        ice = [] if ice is None else ice
        if not isinstance(ice, list) or not all(isinstance(s, dict) for s in ice):
            raise InvalidSession("ice_servers must be a list of objects")
        policy = data.get("ice_transport_policy", "all")
        if policy not in ICE_TRANSPORT_POLICIES:
            raise InvalidSession("ice_transport_policy must be all or relay")
        try:
            user = normalize_identity(data.get("user"))
        except InvalidMessage as error:
            raise InvalidSession(str(error)) from error
        max_bytes = data.get("max_message_bytes", MAX_MESSAGE_BYTES)
        if type(max_bytes) is float and max_bytes.is_integer():
            max_bytes = int(max_bytes)  # JSON 65536.0 is the number 65536 in JavaScript
        if type(max_bytes) is not int or not 0 < max_bytes <= MAX_SAFE_INTEGER:
            raise InvalidSession("max_message_bytes must be a positive integer")
        version = data.get("version", "")
        if not isinstance(version, str):
            raise InvalidSession("version must be a string")
        server_keys = data.get("server_keys", [])
        if not isinstance(server_keys, list) or not all(isinstance(k, str) for k in server_keys):
            raise InvalidSession("server_keys must be a list of strings")
        return cls(
            room=room,
            key=key,
            path=path if path.endswith("/") else path + "/",
            ice_servers=ice,
            user=user,
            ping_interval=_positive(data, "ping_interval", _DEFAULT_PING_INTERVAL),
            alive_timeout=_positive(data, "alive_timeout", _DEFAULT_ALIVE_TIMEOUT),
            max_message_bytes=max_bytes,
            version=version,
            ice_transport_policy=policy,
            audience=_optional_text(data, "audience"),
            service=_optional_text(data, "service"),
            server_keys=server_keys,
            repair_interval=(
                _positive(data, "repair_interval", 0) if "repair_interval" in data else None
            ),
        )

    def to_json(self) -> dict[str, Any]:
        """The wire form, keys in the documented order; absent optional keys left out."""
        data: dict[str, Any] = {
            "room": self.room,
            "key": self.key,
            "path": self.path,
            "ice_servers": self.ice_servers,
            "ice_transport_policy": self.ice_transport_policy,
            "user": self.user,
            "ping_interval": self.ping_interval,
            "alive_timeout": self.alive_timeout,
            "max_message_bytes": self.max_message_bytes,
        }
        if self.audience is not None:
            data["audience"] = self.audience
        if self.service is not None:
            data["service"] = self.service
        if self.server_keys:
            data["server_keys"] = self.server_keys
        if self.repair_interval is not None:
            data["repair_interval"] = self.repair_interval
        data["version"] = self.version
        return data
