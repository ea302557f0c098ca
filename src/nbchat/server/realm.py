"""Rooms, peers, queues and presence for PeerJS signaling: a state machine with no I/O.

The tornado handlers are thin adapters: they feed socket events in, and write the
returned deliveries out. Time is always passed in, so every rule is testable without
sockets or sleeps.
"""

from __future__ import annotations

import heapq
import json
import secrets
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..protocol import (
    ID_TAKEN_FRAME,
    OPEN_FRAME,
    RELAYED_TYPES,
    Errors,
    FrameType,
    Identity,
    Presence,
    error_frame,
    is_peer_id,
    is_room_key,
    presence_frame,
    roster_frame,
)

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
# Relayed frames are rebuilt ASCII-only: a payload may hold a lone surrogate (valid as a
# JSON escape), which has no UTF-8 form and would break the recipient's socket.
_dumps_ascii = json.JSONEncoder(separators=(",", ":")).encode
_loads = json.loads


_scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # the C scanner behind json.loads


def _parse_json(text: str) -> Any:
    """``json.loads(text)`` for one frame, minus its Python-level overhead on the
    common shape (no whitespace around the value)."""
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        return _loads(text)  # leading whitespace, or not JSON: let loads decide/explain
    if end != len(text):
        return _loads(text)  # trailing whitespace, or trailing garbage
    return value


def encode(frame: dict[str, Any]) -> str:
    return _dumps(frame)


_OPEN_TEXT = encode(OPEN_FRAME)


@dataclass
class Limits:
    """Every limit the realm enforces, filled from the signaling settings (their traitlets
    hold the one default of each: ``SignalingSettings().limits()``)."""

    alive_timeout: float
    expire_timeout: float
    concurrent_limit: int
    max_message_bytes: int
    max_connections_per_user: int
    max_rooms_per_user: int
    max_queued_per_peer: int
    rate_limit: float  # frames per second, sustained
    rate_burst: float
    id_reservation_timeout: float


@dataclass(eq=False, slots=True)
class Client:
    """One signaling connection: a peer id in a room, bound to a Jupyter user."""

    key: str
    peer_id: str
    token: str
    user: Identity
    transport: Any
    last_seen: float
    allowance: float = 0.0
    allowance_at: float = 0.0
    # Derived from peer_id, kept because every relayed frame starts with it.
    src_prefix: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.src_prefix = '{"src":"' + self.peer_id + '",'  # ids are URL-safe: no escaping

    @property
    def presence(self) -> Presence:
        return Presence(peer_id=self.peer_id, user=self.user)


@dataclass(eq=False, slots=True)
class Subscriber:
    """A presence socket listening to one room."""

    key: str
    user: Identity
    transport: Any


@dataclass
class _Queued:
    at: float
    src: str
    text: str


@dataclass
class Room:
    key: str
    clients: dict[str, Client] = field(default_factory=dict)
    subscribers: list[Subscriber] = field(default_factory=list)
    queues: dict[str, deque[_Queued]] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return not self.clients and not self.subscribers and not self.queues


@dataclass
class _Binding:
    username: str
    released_at: float | None  # None while a client holds the id


Delivery = tuple[Any, str]  # (transport, text)


@dataclass
class Accepted:
    client: Client
    deliveries: list[Delivery]
    replaced: Any = None  # the transport a same-token reconnect took over


@dataclass
class Refused:
    frame: str


class Realm:
    """All signaling state of one server: rooms keyed by PeerJS key."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.rooms: dict[str, Room] = {}
        self._bindings: dict[tuple[str, str], _Binding] = {}
        #: (released_at, binding key) for every release, soonest first: the tick drops
        #: expired bindings from here instead of scanning them all (an entry whose
        #: binding was taken again or released later is skipped).
        self._releases: list[tuple[float, tuple[str, str]]] = []
        self._per_user: dict[str, int] = {}
        self._user_rooms: dict[str, dict[str, int]] = {}
        self.client_count = 0
        #: Frames relayed to a peer (or queued for one), and frames refused by reason:
        #: counters only, for the service's metrics.
        self.relayed = 0
        self.refused: dict[str, int] = {}
        #: Where frames for ids not connected here go before they are queued: set by a
        #: shared broker to ``lookup(key, peer_id) -> transport or None`` (a peer on
        #: another process); None in one process, so the relay path never looks.
        self.remote: Callable[[str, str], Any] | None = None

    def count_refused(self, reason: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1

    def _refuse(self, reason: str, client: Client, msg: str) -> list[Delivery]:
        self.count_refused(reason)
        return [(client.transport, encode(error_frame(msg)))]

    # ---- ids -------------------------------------------------------------------------
    def reserve_id(self, key: str, username: str, now: float) -> str:
        """Issue a fresh id in ``key`` bound to ``username`` (``GET /{key}/id``)."""
        while True:
            peer_id = secrets.token_urlsafe(12).replace("_", "x")
            if (key, peer_id) not in self._bindings:
                break
        self._bindings[(key, peer_id)] = _Binding(username, released_at=now)
        heapq.heappush(self._releases, (now, (key, peer_id)))
        return peer_id

    def owner(self, key: str, peer_id: str) -> str | None:
        """The username id ``peer_id`` is bound to in room ``key``, if any."""
        binding = self._bindings.get((key, peer_id))
        return binding.username if binding is not None else None

    def peer_ids(self, key: str) -> list[str]:
        room = self.rooms.get(key)
        return list(room.clients) if room else []

    # ---- signaling sockets -------------------------------------------------------------
    @staticmethod
    def invalid(key: Any, peer_id: Any, token: Any) -> Refused | None:
        """The refusal for a connect whose key, id or token is missing or malformed."""
        if not key or not peer_id or not token:
            return Refused(encode(error_frame(Errors.NO_ID_TOKEN_KEY)))
        if not is_room_key(key):
            return Refused(encode(error_frame(Errors.INVALID_KEY)))
        if not is_peer_id(peer_id):
            return Refused(encode(error_frame(Errors.INVALID_ID)))
        if not isinstance(token, str) or not 0 < len(token) <= 128:
            return Refused(encode(error_frame(Errors.NO_ID_TOKEN_KEY)))
        return None

    def connect(
        self, key: Any, peer_id: Any, token: Any, user: Identity, transport: Any, now: float
    ) -> Accepted | Refused:
        invalid = self.invalid(key, peer_id, token)
        if invalid is not None:
            return invalid
        username = user["username"]
        binding = self._bindings.get((key, peer_id))
        if binding is not None and binding.username != username:
            return Refused(encode(ID_TAKEN_FRAME))
        room = self.rooms.get(key)
        existing = room.clients.get(peer_id) if room else None
        if existing is not None:
            if existing.token != token:
                return Refused(encode(ID_TAKEN_FRAME))
            # Same id, same token: the peer reconnects. Upstream PeerServer sends no OPEN
            # here, which leaves peerjs' reconnect() hanging; we do.
            replaced = existing.transport
            existing.transport = transport
            existing.last_seen = now
            return Accepted(existing, [(transport, _OPEN_TEXT)], replaced=replaced)
        if self.client_count >= self.limits.concurrent_limit:
            return Refused(encode(error_frame(Errors.CONCURRENT_LIMIT)))
        if self._per_user.get(username, 0) >= self.limits.max_connections_per_user:
            return Refused(encode(error_frame(Errors.USER_LIMIT)))
        user_rooms = self._user_rooms.get(username, {})
        if key not in user_rooms and len(user_rooms) >= self.limits.max_rooms_per_user:
            return Refused(encode(error_frame(Errors.ROOM_LIMIT)))

        if room is None:
            room = self.rooms[key] = Room(key)
        client = Client(
            key,
            peer_id,
            token,
            user,
            transport,
            now,
            allowance=self.limits.rate_burst,
            allowance_at=now,
        )
        room.clients[peer_id] = client
        self._bindings[(key, peer_id)] = _Binding(username, released_at=None)
        self.client_count += 1
        self._per_user[username] = self._per_user.get(username, 0) + 1
        self._user_rooms.setdefault(username, {})
        self._user_rooms[username][key] = self._user_rooms[username].get(key, 0) + 1

        deliveries: list[Delivery] = [(transport, _OPEN_TEXT)]
        queue = room.queues.pop(peer_id, None)
        if queue:
            deliveries.extend((transport, q.text) for q in queue)
        if room.subscribers:
            announce = encode(presence_frame(FrameType.USER_CONNECTED, key, client.presence))
            deliveries.extend((s.transport, announce) for s in room.subscribers)
        return Accepted(client, deliveries)

    def receive(self, client: Client, text: str | bytes, now: float) -> list[Delivery]:
        """Handle one frame from ``client``; return what to send to whom."""
        client.last_seen = now
        limits = self.limits
        # Token bucket: a flood from one socket is refused frame by frame, others unaffected.
        allowance = client.allowance + (now - client.allowance_at) * limits.rate_limit
        if allowance > limits.rate_burst:
            allowance = limits.rate_burst
        client.allowance_at = now
        if allowance < 1.0:
            client.allowance = allowance
            return self._refuse("rate_limit", client, Errors.RATE_LIMIT)
        client.allowance = allowance - 1.0

        if len(text) > limits.max_message_bytes:
            msg = f"{Errors.TOO_BIG}: {len(text)} bytes, limit {limits.max_message_bytes}"
            return self._refuse("too_big", client, msg)
        try:
            if not isinstance(text, str):  # a binary frame: strictly UTF-8, like text
                text = text.decode("utf-8")
            frame = _parse_json(text)
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            return self._refuse("malformed", client, Errors.MALFORMED)
        if type(frame) is not dict or type(kind := frame.get("type")) is not str:
            return self._refuse("malformed", client, Errors.MALFORMED)
        if kind == "HEARTBEAT":
            return []
        if kind not in RELAYED_TYPES:
            return self._refuse("unknown_type", client, f"{Errors.UNKNOWN_TYPE}: {kind[:40]!r}")
        dst = frame.get("dst")
        room = self.rooms[client.key]
        # Ids of connected peers were checked when they connected.
        target = room.clients.get(dst) if type(dst) is str else None
        far = None
        if target is None:
            # A peer on another process (a shared broker) was checked where it connected.
            if self.remote is not None and type(dst) is str:
                far = self.remote(client.key, dst)
            if far is None and not is_peer_id(dst):
                return self._refuse("missing_dst", client, Errors.MISSING_DST)
        self.relayed += 1
        if len(frame) == 3 and "payload" in frame:
            # Exactly type, dst and payload: relay the sender's JSON text as it is, with
            # our src in front. Decoding told us it is valid; re-encoding would cost more
            # than all the checks above together.
            out = client.src_prefix + text.lstrip()[1:]
        else:  # no payload, a claimed src or extra keys: rebuild the frame
            out = _dumps_ascii(
                {"type": kind, "src": client.peer_id, "dst": dst, "payload": frame.get("payload")}
            )
        if target is not None:
            return [(target.transport, out)]
        if far is not None:
            return [(far, out)]
        if kind == "LEAVE" or kind == "EXPIRE":
            return []
        assert isinstance(dst, str)  # is_peer_id said so
        return self._enqueue(room, client, dst, out, now)

    def _enqueue(
        self, room: Room, client: Client, dst: str, out: str, now: float
    ) -> list[Delivery]:
        """Queue ``out`` for the offline id ``dst`` (or EXPIRE at once when full)."""
        queue = room.queues.get(dst)
        if queue is None:
            queue = room.queues[dst] = deque()
        if len(queue) >= self.limits.max_queued_per_peer:
            return [
                (client.transport, encode({"type": "EXPIRE", "src": dst, "dst": client.peer_id}))
            ]
        queue.append(_Queued(now, client.peer_id, out))
        return []

    def reroute(self, key: str, src: str, dst: str, text: str, now: float) -> list[Delivery]:
        """A frame from our peer ``src`` that another process could not deliver (``dst``
        left it meanwhile): deliver it here, or queue it like any frame for an offline id."""
        room = self.rooms.get(key)
        client = room.clients.get(src) if room else None
        if room is None or client is None:
            return []  # the sender left too: nobody to tell
        target = room.clients.get(dst)
        if target is not None:
            return [(target.transport, text)]
        try:
            kind = _loads(text).get("type")
        except (ValueError, AttributeError):
            kind = None
        if kind == "LEAVE" or kind == "EXPIRE":
            return []
        return self._enqueue(room, client, dst, text, now)

    def take_queued(self, key: str, peer_id: str) -> list[str]:
        """Frames queued here for ``peer_id``, which just connected to another process."""
        room = self.rooms.get(key)
        queue = room.queues.pop(peer_id, None) if room else None
        if room is not None and room.is_empty():
            del self.rooms[key]
        return [q.text for q in queue] if queue else []

    def holds(self, client: Client, transport: Any) -> bool:
        """Whether ``client`` is connected here on ``transport`` (what ``disconnect`` ends)."""
        room = self.rooms.get(client.key)
        return (
            room is not None
            and room.clients.get(client.peer_id) is client
            and client.transport is transport
        )

    def disconnect(self, client: Client, transport: Any, now: float) -> list[Delivery]:
        """The socket ``transport`` of ``client`` closed (or was evicted)."""
        room = self.rooms.get(client.key)
        if room is None or room.clients.get(client.peer_id) is not client:
            return []
        if client.transport is not transport:
            return []  # a same-token reconnect already took this id over
        del room.clients[client.peer_id]
        self.client_count -= 1
        username = client.user["username"]
        self._per_user[username] -= 1
        if not self._per_user[username]:
            del self._per_user[username]
        rooms = self._user_rooms[username]
        rooms[client.key] -= 1
        if not rooms[client.key]:
            del rooms[client.key]
            if not rooms:
                del self._user_rooms[username]
        binding = self._bindings.get((client.key, client.peer_id))
        if binding is not None:
            binding.released_at = now
            heapq.heappush(self._releases, (now, (client.key, client.peer_id)))
        deliveries: list[Delivery] = []
        if room.subscribers:
            announce = encode(
                presence_frame(FrameType.USER_DISCONNECTED, client.key, client.presence)
            )
            deliveries = [(s.transport, announce) for s in room.subscribers]
        if room.is_empty():
            del self.rooms[client.key]
        return deliveries

    # ---- presence sockets --------------------------------------------------------------
    def subscribe(self, key: Any, user: Identity, transport: Any) -> Subscriber | Refused:
        if not is_room_key(key):
            return Refused(encode(error_frame(Errors.INVALID_KEY)))
        room = self.rooms.get(key)
        if room is None:
            room = self.rooms[key] = Room(key)
        sub = Subscriber(key, user, transport)
        room.subscribers.append(sub)
        return sub

    def roster(self, key: str, others: list[Presence] | None = None) -> str:
        """The ROSTER frame of ``key``: our peers, then ``others`` (peers of the room
        on other processes, from a shared broker)."""
        room = self.rooms.get(key)
        peers = [c.presence for c in room.clients.values()] if room else []
        if others:
            ours = {p["peer_id"] for p in peers}
            peers.extend(p for p in others if p["peer_id"] not in ours)
        return encode(roster_frame(key, peers))

    def unsubscribe(self, sub: Subscriber) -> None:
        room = self.rooms.get(sub.key)
        if room is None:
            return
        try:
            room.subscribers.remove(sub)
        except ValueError:
            return
        if room.is_empty():
            del self.rooms[sub.key]

    # ---- time --------------------------------------------------------------------------
    def tick(
        self, now: float, stalls: Iterable[tuple[float, float]] = ()
    ) -> tuple[list[Delivery], list[Client]]:
        """Expire old queued frames and find silent peers.

        ``stalls``: (start, end) times the server's loop did not run (frozen, starved of
        CPU). They do not count: a peer is silent after ``alive_timeout`` seconds in
        which the server could have read it, and a frame expires likewise.

        Returns EXPIRE notices to send, and clients to evict (the adapter closes their
        sockets, which calls :meth:`disconnect`).
        """
        deliveries: list[Delivery] = []
        evict: list[Client] = []
        limits = self.limits
        stalled = list(stalls)
        expire_before = now - limits.expire_timeout
        silent_before = now - limits.alive_timeout

        def due(since: float, timeout: float) -> bool:
            """``timeout`` seconds of running loop have passed since ``since``."""
            excused = sum(max(0.0, min(end, now) - max(start, since)) for start, end in stalled)
            return since + timeout + excused <= now

        for key, room in list(self.rooms.items()):
            for dst, queue in list(room.queues.items()):
                while queue and queue[0].at <= expire_before:
                    if stalled and not due(queue[0].at, limits.expire_timeout):
                        break
                    q = queue.popleft()
                    sender = room.clients.get(q.src)
                    if sender is not None:
                        notice = {"type": "EXPIRE", "src": dst, "dst": q.src}
                        deliveries.append((sender.transport, encode(notice)))
                if not queue:
                    del room.queues[dst]
            evict.extend(
                c
                for c in room.clients.values()
                if c.last_seen <= silent_before
                and (not stalled or due(c.last_seen, limits.alive_timeout))
            )
            if room.is_empty():
                del self.rooms[key]
        release_before = now - limits.id_reservation_timeout
        releases, bindings = self._releases, self._bindings
        while releases and releases[0][0] <= release_before:
            _, k = heapq.heappop(releases)
            b = bindings.get(k)
            if b is not None and b.released_at is not None and b.released_at <= release_before:
                del bindings[k]
        return deliveries, evict

    def stats(self) -> dict[str, int]:
        return {
            "rooms": len(self.rooms),
            "clients": self.client_count,
            "bindings": len(self._bindings),
            "queued": sum(len(q) for r in self.rooms.values() for q in r.queues.values()),
            "subscribers": sum(len(r.subscribers) for r in self.rooms.values()),
        }
