"""Wire formats shared by the server, the widget and the Python peer (docs/protocol.md)."""

from __future__ import annotations

import hashlib
import re
from enum import Enum
from typing import Any, TypedDict, TypeGuard


class FrameType(str, Enum):
    """PeerJS signaling frame types (server protocol 1.x) plus nbchat's presence topics."""

    OPEN = "OPEN"
    ERROR = "ERROR"
    ID_TAKEN = "ID-TAKEN"
    HEARTBEAT = "HEARTBEAT"
    OFFER = "OFFER"
    ANSWER = "ANSWER"
    CANDIDATE = "CANDIDATE"
    LEAVE = "LEAVE"
    EXPIRE = "EXPIRE"
    # presence topics
    ROSTER = "ROSTER"
    USER_CONNECTED = "USER_CONNECTED"
    USER_DISCONNECTED = "USER_DISCONNECTED"


#: Frames a client may relay to another peer; the server sets ``src``.
RELAYED_TYPES = frozenset({"OFFER", "ANSWER", "CANDIDATE", "LEAVE", "EXPIRE"})


class Errors:
    """User-facing error texts (the ``payload.msg`` of an ``ERROR`` frame)."""

    INVALID_KEY = "Invalid key provided: a room key matches ^[A-Za-z0-9_-]{1,128}$"
    INVALID_ID = "Invalid id provided: an id matches ^[A-Za-z0-9_-]{1,64}$"
    NO_ID_TOKEN_KEY = "No id, token, or key supplied to websocket server"
    ID_TAKEN = "ID is taken"
    CONCURRENT_LIMIT = "Server has reached its concurrent user limit"
    USER_LIMIT = "Too many connections for this user"
    ROOM_LIMIT = "Too many rooms for this user"
    MALFORMED = "Malformed frame: expected a JSON object with a string 'type'"
    UNKNOWN_TYPE = "Unknown frame type"
    MISSING_DST = "Frame needs a valid 'dst' peer id"
    TOO_BIG = "Frame too big"
    RATE_LIMIT = "Too many frames: slow down"


ROOM_KEY_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}\Z")
PEER_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}\Z")
TOKEN_RE = re.compile(r"^[A-Za-z0-9_.-]{1,128}\Z")
_SLUG_RUN = re.compile(r"[^A-Za-z0-9_]+")


def is_room_key(key: object) -> TypeGuard[str]:
    return isinstance(key, str) and ROOM_KEY_RE.match(key) is not None


def is_peer_id(peer_id: object) -> TypeGuard[str]:
    return isinstance(peer_id, str) and PEER_ID_RE.match(peer_id) is not None


def room_key(room: str) -> str:
    """Map any room name to a PeerJS key, deterministically and the same for every user.

    A name that is already a valid key is its own key; anything else (a notebook path)
    becomes a readable slug plus a hash so that distinct names never share a room.
    """
    if ROOM_KEY_RE.match(room):
        return room
    slug = _SLUG_RUN.sub("-", room).strip("-")[:40].strip("-") or "room"
    digest = hashlib.sha256(room.encode("utf-8")).hexdigest()[:16]
    return f"{slug}-{digest}"


def room_key_prefix(room_prefix: str) -> str:
    """What the key of every room whose name starts with ``room_prefix`` starts with.

    ``room_key`` keeps a URL-safe name as it is and slugs any other, keeping 40 characters
    of the slug; so a name that starts with the prefix has a key that starts with the
    prefix's slug. The converse is not true (a few other names share the key prefix):
    for a room policy, that is the safe side.
    """
    return _SLUG_RUN.sub("-", room_prefix).lstrip("-")[:40]


class Identity(TypedDict):
    """The Jupyter user bound to a connection by the server."""

    username: str
    name: str
    display_name: str
    initials: str | None
    color: str | None
    avatar_url: str | None


class Presence(TypedDict):
    peer_id: str
    user: Identity


def identity_from_user(user: Any) -> Identity:
    """Build an Identity from a jupyter_server ``User`` (or any object with its fields)."""
    return Identity(
        username=str(getattr(user, "username", "") or ""),
        name=str(getattr(user, "name", "") or getattr(user, "username", "") or ""),
        display_name=str(
            getattr(user, "display_name", "")
            or getattr(user, "name", "")
            or getattr(user, "username", "")
            or ""
        ),
        initials=getattr(user, "initials", None),
        color=getattr(user, "color", None),
        avatar_url=getattr(user, "avatar_url", None),
    )


def error_frame(msg: str) -> dict[str, Any]:
    return {"type": FrameType.ERROR.value, "payload": {"msg": msg}}


OPEN_FRAME: dict[str, Any] = {"type": FrameType.OPEN.value}
ID_TAKEN_FRAME: dict[str, Any] = {
    "type": FrameType.ID_TAKEN.value,
    "payload": {"msg": Errors.ID_TAKEN},
}


def roster_frame(key: str, peers: list[Presence]) -> dict[str, Any]:
    return {"type": FrameType.ROSTER.value, "key": key, "peers": peers}


def presence_frame(kind: FrameType, key: str, peer: Presence) -> dict[str, Any]:
    return {"type": kind.value, "key": key, "peer": peer}
