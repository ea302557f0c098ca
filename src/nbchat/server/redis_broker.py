"""Several signaling processes on one Redis: one id registry, one presence list per room,
relays between processes, per-process liveness.

What lives where (every key under ``nbchat:``):

- ``id:{key}:{peer_id}`` → ``user\\x1fproc\\x1ftoken-hash``: the id registry. ``proc`` is
  empty once the id is released (or only reserved); the key then expires after
  ``id_reservation_timeout``. Claiming an id is one Lua script (atomic across
  processes): another user's id is refused (``ID-TAKEN``); the same user may rebind it,
  and takes it over from another process when its token matches (a reconnect that
  landed elsewhere) or that process is dead; the old process is told to drop its socket
  without announcing a departure.
- ``peers`` (hash) ``{key}\\x1f{peer_id}`` → ``proc\\x1fpresence-json``: who is connected
  where. Every process mirrors it in memory (``directory``) from the events channel,
  so rosters, ``/peers`` and the relay lookup never wait for Redis.
- ``held:{proc}`` (set): what a process holds, so that anyone can clean up after it.
- ``alive:{proc}`` (TTL ``alive_timeout / 2``, refreshed 4× per TTL) and ``procs`` (set):
  liveness. A process whose key expired is dead: the others announce its peers gone.
- Channels (named with the database, ``nbchat:{db}:``, since channels are shared by
  every database): ``ev`` (presence events, every process) and ``p:{proc}`` (relays
  for the peers of one process). A message is ``proc`` then records, separated by
  ``\\x1e``; JSON text never holds a raw ``\\x1e`` or ``\\x1f``.
- A peer is announced (registry, ``peers``, event) by the claim, before its ``OPEN``;
  a roster is served after a marker sent through our own channel has come back, so
  every peer announced before is in it: two peers joining on two processes at once
  never both miss each other (each would wait for the other's call).

Frames for an id connected nowhere are queued by the *sender's* process, as in one
process, and flushed to the receiver's process when its ``USER_CONNECTED`` event
arrives; the expiry (``EXPIRE`` to the sender) stays local.

Connections: redis-py's asyncio client for the control plane (claims, releases,
liveness, reconcile: every command of a loop turn in one pipeline), and two bare
connections (:class:`_Wire`) for the data plane: one publishes what a loop turn relayed,
one PUBLISH per channel without waiting for replies; one subscribes. Measured here, that
costs a tenth of redis-py's pipeline and pubsub per message.

Redis unreachable: peers on this process are served as before, frames for peers on
other processes are queued (delivered if Redis is back within ``expire_timeout``, else
EXPIRE), ``/health`` says ``degraded``, the log says why; we reconnect with backoff,
re-announce what we hold and reconcile the directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from ..protocol import FrameType, Identity, Presence
from .broker import Broker
from .realm import encode

if TYPE_CHECKING:
    from .realm import Client
    from .service import SignalingService

__all__ = ["RedisBroker", "redacted"]

log = logging.getLogger("nbchat")

RS = "\x1e"  # between records
US = "\x1f"  # between fields

# KEYS: id key, held set of this process, peers hash.
# ARGV: user, proc, token hash, key prefix, field, kick, presence json, events channel,
# event, channel prefix.
_CLAIM = """
local v = redis.call('GET', KEYS[1])
if v then
  local user, proc, tok = string.match(v, '^(.-)\\31(.-)\\31(.*)$')
  if user ~= ARGV[1] then return 0 end
  if proc ~= '' and proc ~= ARGV[2] then
    if tok ~= ARGV[3] and redis.call('EXISTS', ARGV[4] .. 'alive:' .. proc) == 1 then
      return 0
    end
    redis.call('PUBLISH', ARGV[10] .. 'p:' .. proc, ARGV[6])
    redis.call('SREM', ARGV[4] .. 'held:' .. proc, ARGV[5])
  end
end
redis.call('SET', KEYS[1], ARGV[1] .. '\\31' .. ARGV[2] .. '\\31' .. ARGV[3])
redis.call('SADD', KEYS[2], ARGV[5])
redis.call('HSET', KEYS[3], ARGV[5], ARGV[2] .. '\\31' .. ARGV[7])
redis.call('PUBLISH', ARGV[8], ARGV[9])
return 1
"""

# KEYS: id key, peers hash, held set. ARGV: proc, user, ttl ms, field, channel, event.
_LEAVE = """
local mine = false
local v = redis.call('GET', KEYS[1])
if v then
  local user, proc = string.match(v, '^(.-)\\31(.-)\\31')
  if proc == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[2] .. '\\31\\31', 'PX', ARGV[3])
  end
end
local h = redis.call('HGET', KEYS[2], ARGV[4])
if h and string.sub(h, 1, #ARGV[1] + 1) == ARGV[1] .. '\\31' then
  redis.call('HDEL', KEYS[2], ARGV[4])
  mine = true
end
redis.call('SREM', KEYS[3], ARGV[4])
if mine and ARGV[6] ~= '' then redis.call('PUBLISH', ARGV[5], ARGV[6]) end
return mine and 1 or 0
"""

# KEYS: held set of proc, peers hash. ARGV: proc, ttl ms, prefix. Idempotent.
_REAP = """
local members = redis.call('SMEMBERS', KEYS[1])
for _, f in ipairs(members) do
  local h = redis.call('HGET', KEYS[2], f)
  if h and string.sub(h, 1, #ARGV[1] + 1) == ARGV[1] .. '\\31' then
    redis.call('HDEL', KEYS[2], f)
  end
  local key, id = string.match(f, '^(.-)\\31(.*)$')
  if key then
    local ik = ARGV[3] .. 'id:' .. key .. ':' .. id
    local v = redis.call('GET', ik)
    if v then
      local user, proc = string.match(v, '^(.-)\\31(.-)\\31')
      if proc == ARGV[1] then redis.call('SET', ik, user .. '\\31\\31', 'PX', ARGV[2]) end
    end
  end
end
redis.call('DEL', KEYS[1])
redis.call('SREM', ARGV[3] .. 'procs', ARGV[1])
return #members
"""

#: Seconds a connect waits for the first connection to Redis before deciding alone.
STARTUP_WAIT = 3.0

#: Under load, publishes of one process go out at most once per this many seconds: a
#: PUBLISH per loop turn woke the receiving process (and Redis) for a few frames each
#: time (docs/benchmarks.md). "Under load": the previous batch carried at least
#: ``COALESCE_MIN`` records and went out less than ``COALESCE`` ago; otherwise (a quiet
#: spell, a trickle of frames) a loop turn's records go out at once, adding no latency.
#: ``NBCHAT_REDIS_COALESCE_MS=0`` turns it off (one PUBLISH per loop turn, as before).
COALESCE = float(os.environ.get("NBCHAT_REDIS_COALESCE_MS", "0.5")) / 1000
COALESCE_MIN = 4

#: Bytes of publishes Redis may leave unread before we call the connection dead.
_MAX_UNSENT = 64 * 1024 * 1024

_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (OSError, asyncio.TimeoutError)


def redacted(url: str) -> str:
    """``url`` without its password, for logs."""
    parts = urlsplit(url)
    if parts.password:
        host = parts.hostname or ""
        netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:24]


def _resp(*parts: bytes) -> bytes:
    """One command in RESP (what redis-py's ``pack_command`` builds, without its cost)."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


class _Wire(asyncio.Protocol):
    """A bare Redis connection for the data plane: PUBLISH written as bytes, replies
    and pushes parsed by hiredis (the Redis project's C parser, which redis-py uses).
    Measured here: an awaited redis-py pipeline costs ~20 µs per PUBLISH and its pubsub
    ~35 µs per received message; this costs ~2-3 µs each (docs/benchmarks.md)."""

    def __init__(self, on_push: Callable[[Any], None] | None) -> None:
        import hiredis

        self.reader = hiredis.Reader(encoding="utf-8", errors="surrogateescape")
        self.on_push = on_push
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[BaseException | None] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiting: list[asyncio.Future[Any]] = []  # replies awaited, in order
        self._pending_replies = 0  # replies to skip (PUBLISH counts)
        #: Redis sends no replies (CLIENT REPLY OFF): a publisher that never reads, so
        #: its loop is not woken once per PUBLISH for a reply nobody needs.
        self.quiet = False

    @classmethod
    async def open(
        cls, url: str, on_push: Callable[[Any], None] | None, quiet: bool = False
    ) -> _Wire:
        from redis.asyncio.connection import parse_url

        options = parse_url(url)
        loop = asyncio.get_running_loop()
        wire = cls(on_push)
        if "path" in options:
            await asyncio.wait_for(loop.create_unix_connection(lambda: wire, options["path"]), 5)
        else:
            tls = None
            if url.lower().startswith("rediss:"):
                import ssl

                tls = ssl.create_default_context()
            await asyncio.wait_for(
                loop.create_connection(
                    lambda: wire,
                    options.get("host", "localhost"),
                    options.get("port", 6379),
                    ssl=tls,
                ),
                5,
            )
        password = options.get("password")
        if password:
            username = options.get("username")
            auth = ("AUTH", username, password) if username else ("AUTH", password)
            await wire.command(*auth)
        if quiet:
            await wire.command("PING")  # the connection works: now stop the replies
            assert wire.transport is not None
            wire.transport.write(_resp(b"CLIENT", b"REPLY", b"OFF"))
            wire.quiet = True
        return wire

    async def sync(self) -> None:
        """Wait until Redis has handled everything written so far."""
        if self.quiet:
            self.quiet = False
            await self.command("CLIENT", "REPLY", "ON")
        await self.command("PING")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        error = exc or ConnectionError("Redis closed the connection")
        for future in self._waiting:
            if not future.done():
                future.set_exception(error)
        self._waiting.clear()
        if not self.closed.done():
            self.closed.set_result(error)

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.feed(data)
        while (reply := reader.gets()) is not False:
            if self._pending_replies:
                self._pending_replies -= 1
                if isinstance(reply, Exception):
                    log.warning("nbchat: Redis refused a publish: %s", reply)
            elif self._waiting:
                future = self._waiting.pop(0)
                if not future.done():
                    if isinstance(reply, Exception):
                        future.set_exception(reply)
                    else:
                        future.set_result(reply)
            elif self.on_push is not None:
                self.on_push(reply)

    async def command(self, *args: str) -> Any:
        assert self.transport is not None
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        self.transport.write(_resp(*(a.encode() for a in args)))
        return await asyncio.wait_for(future, 5)

    def publish_many(self, messages: list[tuple[bytes, bytes]]) -> None:
        """PUBLISH each (channel, data), in order, without waiting for the replies."""
        transport = self.transport
        if transport is None or transport.is_closing():
            raise ConnectionError("the Redis connection is closed")
        if not self.quiet:
            self._pending_replies += len(messages)
        transport.write(b"".join(_resp(b"PUBLISH", c, d) for c, d in messages))
        if transport.get_write_buffer_size() > _MAX_UNSENT:
            transport.abort()  # Redis stopped reading: treat it as gone
            raise ConnectionError("Redis is not reading what we publish")

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class RemotePeer:
    """A peer connected to another process: the realm's relay target for it."""

    __slots__ = ("broker", "proc", "key", "peer_id", "presence", "channel", "_head")

    def __init__(
        self, broker: RedisBroker, proc: str, key: str, peer_id: str, presence: Presence
    ) -> None:
        self.broker = broker
        self.proc = proc
        self.key = key
        self.peer_id = peer_id
        self.presence = presence
        self.channel = broker.chan + "p:" + proc
        self._head = "R" + US + key + US + peer_id + US

    def send_frame(self, text: str) -> None:
        """Relay one frame (already carrying its ``src``) to this peer's process."""
        self.broker.publish(self.channel, self._head + text)


class RedisBroker(Broker):
    """The shared broker on ``redis.asyncio`` (see the module docstring)."""

    shared = True

    def __init__(self, url: str, service: SignalingService, prefix: str = "nbchat:") -> None:
        self.url = url
        self.service = service
        self.realm = service.realm
        self.log = service.log
        self.prefix = prefix
        self.proc = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
        from redis.asyncio.connection import parse_url

        # Channels, unlike keys, are shared by every database of a Redis: name the
        # database in them, so deployments on two databases of one Redis stay apart.
        self.chan = f"{prefix}{parse_url(url).get('db', 0) or 0}:"
        self.my_channel = self.chan + "p:" + self.proc
        self.events = self.chan + "ev"
        self._peers_key = prefix + "peers"
        self._held_key = prefix + "held:" + self.proc
        self._alive_key = prefix + "alive:" + self.proc
        limits = self.realm.limits
        self.ttl = max(limits.alive_timeout / 2, 0.5)
        self.beat = min(self.ttl / 4, 5.0)
        self._release_ms = str(max(int(limits.id_reservation_timeout * 1000), 1))
        #: Peers on other processes: room key → peer id → RemotePeer; and per process.
        self.directory: dict[str, dict[str, RemotePeer]] = {}
        self._by_proc: dict[str, set[tuple[str, str]]] = {}
        self._outbox: dict[str, list[str]] = {}
        self._calls: list[tuple[tuple[Any, ...], asyncio.Future[Any] | None]] = []
        self._wake: asyncio.Event | None = None
        self._redis: Any = None
        self._pub: _Wire | None = None  # relays and events out
        self._sub: _Wire | None = None  # relays and events in
        self._flush_scheduled = False
        self._last_flush = 0.0  # loop time of the last publish batch
        self._last_batch = 0  # records in it
        self._context = contextvars.Context()
        self._sha: dict[str, str] = {}
        self._main: asyncio.Task[None] | None = None
        self._stopping = False
        self.up = False
        self._down_since: float | None = time.time()
        self._down_reason = "not connected yet"
        self._connected_once = False
        self._grace_until = 0.0
        self.published = 0
        self._markers = 0
        self._barriers: dict[str, asyncio.Future[None]] = {}
        #: Ids being claimed here, and relays that reached us for them before their
        #: socket is a peer here: the claim announces the peer before its OPEN, so a
        #: process that held frames for it sends them at once (see :meth:`joined`).
        self._arriving: dict[tuple[str, str], list[tuple[str, str]]] = {}
        self.realm.remote = self.route

    # ---- the seam --------------------------------------------------------------------
    def route(self, key: str, peer_id: str) -> RemotePeer | None:
        if not self.up:
            return None  # queued here until Redis is back (or EXPIRE)
        room = self.directory.get(key)
        return room.get(peer_id) if room is not None else None

    def remote_presences(self, key: str) -> list[Presence]:
        room = self.directory.get(key)
        return [p.presence for p in room.values()] if room else []

    async def reserve(self, key: str, peer_id: str, username: str) -> bool:
        await self._starting()
        if not self.up:
            return True
        ok = await self._await(
            "SET",
            self._id_key(key, peer_id),
            username + US + US,
            "PX",
            self._release_ms,
            "NX",
        )
        return ok is not None

    async def owner(self, key: str, peer_id: str) -> str | None:
        await self._starting()
        if not self.up:
            return None
        value = await self._await("GET", self._id_key(key, peer_id))
        if value is None:
            return None
        text = value.decode() if isinstance(value, bytes) else str(value)
        return text.split(US, 1)[0]

    async def claim(self, key: str, peer_id: str, token: str, user: Identity) -> bool:
        """Bind the id to us and announce the peer, in one step, before its OPEN: a
        roster served anywhere after that lists it (see :meth:`barrier`)."""
        await self._starting()
        if not self.up:
            return True  # degraded: this process decides alone
        room = self.realm.rooms.get(key)
        if room is None or peer_id not in room.clients:  # not a reconnect to us
            self._arriving.setdefault((key, peer_id), [])
        field = key + US + peer_id
        kick = self.proc + RS + "K" + US + key + US + peer_id
        presence = json.dumps(Presence(peer_id=peer_id, user=user), separators=(",", ":"))
        event = self.proc + RS + "C" + US + key + US + peer_id + US + presence
        result = await self._await(
            "EVALSHA",
            self._sha["claim"],
            3,
            self._id_key(key, peer_id),
            self._held_key,
            self._peers_key,
            user["username"],
            self.proc,
            _token_hash(token),
            self.prefix,
            field,
            kick,
            presence,
            self.events,
            event,
            self.chan,
        )
        if not result:
            self._bounce_arriving(key, peer_id)
        return bool(result)

    async def barrier(self) -> None:
        """Return once every event published before now has reached our directory: a
        marker goes through our own channel, after everything Redis received before it.
        A roster served after this lists every peer whose OPEN was sent before."""
        await self._starting()
        if not self.up:
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._markers += 1
        marker = str(self._markers)
        self._barriers[marker] = future
        self.publish(self.my_channel, "M" + US + marker)
        try:
            await asyncio.wait_for(future, 2.0)
        except asyncio.TimeoutError:
            pass  # Redis is slow or going away: serve what we know
        finally:
            self._barriers.pop(marker, None)

    def release(self, key: str, peer_id: str, username: str) -> None:
        # The claim announced the peer already: take that back too.
        self._bounce_arriving(key, peer_id)
        self._leave(key, peer_id, username, announce=True)

    def joined(self, client: Client) -> None:
        # Announced by the claim already (or when Redis is back). It may have been here
        # as a peer of another process (a reconnect that moved): it is ours now.
        self._forget_entry(client.key, client.peer_id)
        # Relays that raced the claim's reply (its OPEN went out just before this).
        for _, text in self._arriving.pop((client.key, client.peer_id), ()):
            client.transport.send_frame(text)

    def _bounce_arriving(self, key: str, peer_id: str) -> None:
        """The claim failed or its socket went: the senders' processes decide again."""
        for proc, record in self._arriving.pop((key, peer_id), ()):
            self.publish(self.chan + "p:" + proc, "B" + US + key + US + peer_id + US + record)

    def left(self, client: Client) -> None:
        if self.up:
            self._leave(client.key, client.peer_id, client.user["username"], announce=True)

    def _leave(self, key: str, peer_id: str, username: str, announce: bool) -> None:
        if not self.up:
            return
        event = self.proc + RS + "D" + US + key + US + peer_id if announce else ""
        self._call(
            "EVALSHA",
            self._sha["leave"],
            3,
            self._id_key(key, peer_id),
            self._peers_key,
            self._held_key,
            self.proc,
            username,
            self._release_ms,
            key + US + peer_id,
            self.events,
            event,
        )

    def health(self) -> dict[str, Any]:
        if self.up:
            return {}
        since = time.strftime("%H:%M:%S", time.gmtime(self._down_since or time.time()))
        return {
            "status": "degraded",
            "broker": f"Redis unreachable since {since} UTC ({self._down_reason}): peers on "
            "other processes cannot be reached; peers on this process are still served",
        }

    def metrics(self) -> dict[str, Any]:
        return {
            "broker_up": int(self.up),
            "remote_peers": sum(len(r) for r in self.directory.values()),
            "broker_published": self.published,
        }

    def _id_key(self, key: str, peer_id: str) -> str:
        return f"{self.prefix}id:{key}:{peer_id}"

    # ---- writing: relays on the data wire, commands in one pipeline per loop turn ----
    def publish(self, channel: str, record: str) -> None:
        """Queue ``record`` for ``channel``; what a loop turn queued goes out as one
        PUBLISH per channel at the start of the next (under load: ``COALESCE`` after
        the previous batch, gathering the turns in between; see ``COALESCE``)."""
        box = self._outbox.get(channel)
        if box is None:
            self._outbox[channel] = [record]
            if not self._flush_scheduled:
                self._flush_scheduled = True
                loop = asyncio.get_running_loop()
                wait = self._last_flush + COALESCE - loop.time()
                # In a context of our own: scheduling in the caller's would copy it
                # (a Jupyter request's context) once per batch, for nothing.
                if wait > 0 and self._last_batch >= COALESCE_MIN:
                    loop.call_later(wait, self._flush, context=self._context)
                else:
                    loop.call_soon(self._flush, context=self._context)
        else:
            box.append(record)

    def _flush(self) -> None:
        self._flush_scheduled = False
        outbox, self._outbox = self._outbox, {}
        if not outbox:
            return
        self._last_flush = asyncio.get_running_loop().time()
        self._last_batch = sum(len(records) for records in outbox.values())
        wire = self._pub
        header = self.proc + RS
        try:
            if wire is None or not self.up:
                raise ConnectionError("not connected to Redis")
            wire.publish_many(
                [
                    (channel.encode(), (header + RS.join(records)).encode())
                    for channel, records in outbox.items()
                ]
            )
            self.published += len(outbox)
        except ConnectionError:
            self._failed(outbox)

    def _call(self, *args: Any) -> None:
        self._calls.append((args, None))
        self._kick()

    async def _await(self, *args: Any) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._calls.append((args, future))
        self._kick()
        return await future

    def _kick(self) -> None:
        wake = self._wake
        if wake is not None and not wake.is_set():
            wake.set()

    async def _writer(self) -> None:
        """Every command (claims, releases, liveness) of a loop turn in one pipeline."""
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._calls:
                calls, self._calls = self._calls, []
                pipe = self._redis.pipeline(transaction=False)
                for args, _ in calls:
                    pipe.execute_command(*args)
                try:
                    results = await pipe.execute(raise_on_error=False)
                except BaseException:
                    self._calls[:0] = calls  # answered when we are marked down
                    raise
                for (args, future), result in zip(calls, results, strict=True):
                    if isinstance(result, Exception):
                        if future is not None and not future.done():
                            future.set_exception(result)
                        elif future is None:
                            self.log.warning("nbchat: Redis refused %s: %s", args[0], result)
                    elif future is not None and not future.done():
                        future.set_result(result)

    def _failed(self, outbox: dict[str, list[str]]) -> None:
        """Relays that did not go out: their senders get EXPIRE (the peer is unreachable
        for now)."""
        for channel, records in outbox.items():
            if channel != self.events:
                for record in records:
                    self._expire(record)

    def _expire(self, record: str) -> None:
        kind, key, dst, text = record.split(US, 3)
        if kind != "R":
            return
        try:
            src = json.loads(text).get("src")
        except (ValueError, AttributeError):
            return
        room = self.realm.rooms.get(key)
        sender = room.clients.get(src) if room is not None and isinstance(src, str) else None
        if sender is not None:
            sender.transport.send_frame(encode({"type": "EXPIRE", "src": dst, "dst": src}))

    # ---- reading ---------------------------------------------------------------------
    def _on_push(self, push: Any) -> None:
        """A message on our subscriber connection (``["message", channel, data]``)."""
        if type(push) is not list or len(push) != 3 or push[0] != "message":
            return  # subscribe confirmations
        channel: str = push[1]
        data: str = push[2]
        proc, _, body = data.partition(RS)
        try:
            if channel == self.events:
                if proc == self.proc:
                    return  # our own presence events
                for record in body.split(RS):
                    self._on_event(proc, record)
            else:
                for record in body.split(RS):
                    self._on_record(proc, record)
        except Exception:
            self.log.exception("nbchat: bad broker message from %s", proc)

    def _on_record(self, proc: str, record: str) -> None:
        kind = record[:1]
        if kind == "R":
            _, key, dst, text = record.split(US, 3)
            room = self.realm.rooms.get(key)
            target = room.clients.get(dst) if room is not None else None
            if target is not None:
                target.transport.send_frame(text)
            elif (key, dst) in self._arriving:  # announced by a claim, not a peer here yet
                self._arriving[(key, dst)].append((proc, text))
            else:  # it left us meanwhile: the sender's process decides again
                self.publish(self.chan + "p:" + proc, "B" + record[1:])
        elif kind == "B":
            _, key, dst, text = record.split(US, 3)
            try:
                src = json.loads(text).get("src")
            except (ValueError, AttributeError):
                return
            if not isinstance(src, str):
                return
            # The directory was updated before the bounce arrived (one publisher, one
            # order): route again, but never back to where it bounced from.
            far = self.route(key, dst)
            if far is not None and far.proc != proc:
                far.send_frame(text)
            else:
                for transport, out in self.realm.reroute(key, src, dst, text, time.monotonic()):
                    transport.send_frame(out)
        elif kind == "M":
            future = self._barriers.get(record[2:])
            if future is not None and not future.done():
                future.set_result(None)
        elif kind == "K":
            _, key, peer_id = record.split(US, 2)
            self.service.moved_away(key, peer_id)

    def _on_event(self, proc: str, record: str) -> None:
        kind = record[:1]
        if kind == "C":
            _, key, peer_id, presence = record.split(US, 3)
            self._add(proc, key, peer_id, json.loads(presence))
        elif kind == "D":
            _, key, peer_id = record.split(US, 2)
            self._remove(proc, key, peer_id)
        elif kind == "X":
            self._forget_process(proc)

    def _add(self, proc: str, key: str, peer_id: str, presence: Presence) -> None:
        room = self.directory.setdefault(key, {})
        old = room.get(peer_id)
        if old is not None:
            self._by_proc.get(old.proc, set()).discard((key, peer_id))
        entry = room[peer_id] = RemotePeer(self, proc, key, peer_id, presence)
        self._by_proc.setdefault(proc, set()).add((key, peer_id))
        if old is None:
            self.service.remote_presence(
                key, encode({"type": FrameType.USER_CONNECTED.value, "key": key, "peer": presence})
            )
        for text in self.realm.take_queued(key, peer_id):
            entry.send_frame(text)

    def _remove(self, proc: str | None, key: str, peer_id: str) -> None:
        room = self.directory.get(key)
        entry = room.get(peer_id) if room is not None else None
        if entry is None or (proc is not None and entry.proc != proc):
            return  # unknown, or it moved to another process since
        assert room is not None
        del room[peer_id]
        if not room:
            del self.directory[key]
        held = self._by_proc.get(entry.proc)
        if held is not None:
            held.discard((key, peer_id))
            if not held:
                del self._by_proc[entry.proc]
        self.service.remote_presence(
            key,
            encode({"type": FrameType.USER_DISCONNECTED.value, "key": key, "peer": entry.presence}),
        )

    def _forget_entry(self, key: str, peer_id: str) -> None:
        """Drop a directory entry without telling anyone (the peer is still in the room)."""
        room = self.directory.get(key)
        entry = room.pop(peer_id, None) if room is not None else None
        if entry is None:
            return
        if not room:
            del self.directory[key]
        held = self._by_proc.get(entry.proc)
        if held is not None:
            held.discard((key, peer_id))

    def _forget_process(self, proc: str) -> int:
        gone = list(self._by_proc.get(proc, ()))
        for key, peer_id in gone:
            self._remove(proc, key, peer_id)
        self._by_proc.pop(proc, None)
        return len(gone)

    # ---- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        if self._main is None:
            self._wake = asyncio.Event()
            self._main = asyncio.get_running_loop().create_task(self._run())
            # Serve at once whether or not Redis answers; give it a moment to.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._ready(), 2.0)

    async def _ready(self) -> None:
        while not self.up:
            await asyncio.sleep(0.01)

    async def _starting(self) -> None:
        """Right after start, wait (briefly) for the first connection rather than decide
        alone: a peer admitted before we are connected is announced late, and two peers
        that each miss the other in their roster wait for the other's call."""
        if not self._connected_once and not self.up and self._main is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._ready(), STARTUP_WAIT)

    async def _run(self) -> None:
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import RedisError

        errors: tuple[type[BaseException], ...] = (RedisError, *_CONNECTION_ERRORS)
        backoff = 0.1
        while not self._stopping:
            client = aioredis.Redis.from_url(
                self.url,
                decode_responses=True,
                socket_connect_timeout=2.0,
                retry=Retry(NoBackoff(), 0),
                single_connection_client=False,
            )
            tasks: list[asyncio.Task[Any]] = []
            try:
                await asyncio.wait_for(client.ping(), 5.0)
                self._redis = client
                for name, body in (("claim", _CLAIM), ("leave", _LEAVE), ("reap", _REAP)):
                    self._sha[name] = await client.script_load(body)
                self._sub = await _Wire.open(self.url, self._on_push)
                await self._sub.command("SUBSCRIBE", self.events, self.my_channel)
                self._pub = await _Wire.open(self.url, None, quiet=True)
                # Anything queued while down was decided without Redis: drop it, the
                # announcements below say what holds now.
                self._outbox.clear()
                for _, future in self._calls:
                    if future is not None and not future.done():
                        future.set_result(1)
                self._calls.clear()
                loop = asyncio.get_running_loop()
                tasks = [
                    loop.create_task(self._writer()),
                    loop.create_task(self._watch(self._sub)),
                    loop.create_task(self._watch(self._pub)),
                ]
                self.up = True
                await self._announce_all()
                if self._connected_once:
                    self.log.warning(
                        "nbchat: Redis at %s is back; re-announced %d peer(s), cross-process "
                        "relays resumed",
                        redacted(self.url),
                        self.realm.client_count,
                    )
                    self._grace_until = time.monotonic() + self.ttl
                    self._flush_queued()
                    tasks.append(loop.create_task(self._reconcile_later(self.ttl)))
                else:
                    self.log.info(
                        "nbchat: sharing rooms through Redis at %s (process %s)",
                        redacted(self.url),
                        self.proc,
                    )
                    await self._reconcile()
                self._connected_once = True
                self._down_since = None
                backoff = 0.1
                tasks.append(loop.create_task(self._heartbeat()))
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
                for task in done:
                    error = task.exception()
                    if error is not None:
                        raise error
            except asyncio.CancelledError:
                raise
            except errors as error:
                self._went_down(error)
            except Exception as error:  # a bug must not stop the retries
                self.log.exception("nbchat: broker error")
                self._went_down(error)
            finally:
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(BaseException):
                        await task
                for wire in (self._sub, self._pub):
                    if wire is not None:
                        wire.close()
                self._sub = self._pub = None
                with contextlib.suppress(BaseException):
                    await client.aclose()
                self._redis = None
            if not self._stopping:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    @staticmethod
    async def _watch(wire: _Wire) -> None:
        """Raise when ``wire`` closes (it ends the connected period)."""
        error = await wire.closed
        raise ConnectionError(f"Redis connection lost: {error}")

    def _went_down(self, error: BaseException) -> None:
        was_up = self.up
        self.up = False
        reason = f"{type(error).__name__}: {error}".strip()[:200]
        self._down_reason = reason
        for _, future in self._calls:
            if future is not None and not future.done():
                future.set_result(1)  # callers decide alone while degraded
        self._calls.clear()
        for channel, records in self._outbox.items():
            if channel != self.events:
                for record in records:
                    self._expire(record)
        self._outbox.clear()
        if was_up or self._down_since is None or not self._connected_once:
            if self._down_since is None or was_up:
                self._down_since = time.time()
            self.log.warning(
                "nbchat: Redis at %s unreachable (%s): DEGRADED, peers on other processes "
                "cannot be reached (frames for them are queued, then EXPIRE); peers on this "
                "process are still served; retrying with backoff",
                redacted(self.url),
                reason,
            )

    def _reap_ours(self) -> tuple[Any, ...]:
        """The command that takes back from Redis every peer this process announced."""
        return (
            "EVALSHA",
            self._sha["reap"],
            2,
            self._held_key,
            self._peers_key,
            self.proc,
            self._release_ms,
            self.prefix,
        )

    async def _announce_all(self) -> None:
        """Say what we hold: after a (re)connect, or when our liveness key had expired."""
        await self._await(*self._reap_ours())
        self._call("SET", self._alive_key, "1", "PX", str(int(self.ttl * 1000)))
        self._call("SADD", self.prefix + "procs", self.proc)
        clients = [c for room in list(self.realm.rooms.values()) for c in room.clients.values()]
        verdicts = await asyncio.gather(
            *(self.claim(c.key, c.peer_id, c.token, c.user) for c in clients)
        )
        for client, mine in zip(clients, verdicts, strict=True):
            if not mine:  # someone took the id while we were away
                self.service.moved_away(client.key, client.peer_id)

    async def _reconcile_later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        await self._reconcile()
        await asyncio.Event().wait()  # stay alive: a finished task would end _run's wait

    async def _reconcile(self) -> None:
        """Make the directory what Redis says (after a start, or after an outage)."""
        everything = await self._await("HGETALL", self._peers_key)
        seen: set[tuple[str, str]] = set()
        for field, value in everything.items():
            key, _, peer_id = field.partition(US)
            proc, _, presence = value.partition(US)
            if proc == self.proc or not peer_id:
                continue
            seen.add((key, peer_id))
            known = self.directory.get(key, {}).get(peer_id)
            if known is None or known.proc != proc:
                self._add(proc, key, peer_id, json.loads(presence))
        for key, room in list(self.directory.items()):
            for peer_id in list(room):
                if (key, peer_id) not in seen:
                    self._remove(None, key, peer_id)
        self._flush_queued()

    def _flush_queued(self) -> None:
        """Frames queued here while Redis was unreachable, for peers that are (still)
        on another process: send them now (a peer that never left announces nothing)."""
        for key, room in list(self.realm.rooms.items()):
            far = self.directory.get(key)
            if not far or not room.queues:
                continue
            for dst in [d for d in room.queues if d in far]:
                entry = far[dst]
                for text in self.realm.take_queued(key, dst):
                    entry.send_frame(text)

    async def _heartbeat(self) -> None:
        alive_ms = str(int(self.ttl * 1000))
        procs_key = self.prefix + "procs"
        while True:
            old = await self._await("SET", self._alive_key, "1", "PX", alive_ms, "GET")
            if old is None:
                # Our key had expired (we were starved, or Redis lost it): the others may
                # have announced our peers gone. Say again what we hold.
                self.log.warning("nbchat: our Redis liveness key had expired; re-announcing")
                await self._announce_all()
            others = set(await self._await("SMEMBERS", procs_key)) | set(self._by_proc)
            others.discard(self.proc)
            names = sorted(others)
            if names and time.monotonic() >= self._grace_until:
                alive = await asyncio.gather(
                    *(self._await("EXISTS", self.prefix + "alive:" + p) for p in names)
                )
                for proc, exists in zip(names, alive, strict=True):
                    if not exists:
                        self._reap(proc)
            await asyncio.sleep(self.beat)

    def _reap(self, proc: str) -> None:
        count = self._forget_process(proc)
        self.log.warning(
            "nbchat: signaling process %s stopped answering; announced its %d peer(s) gone",
            proc,
            count,
        )
        self._call(
            "EVALSHA",
            self._sha["reap"],
            2,
            self.prefix + "held:" + proc,
            self._peers_key,
            proc,
            self._release_ms,
            self.prefix,
        )

    async def stop(self) -> None:
        self._stopping = True
        if self.up:
            self._call(*self._reap_ours())
            self._call("DEL", self._alive_key)
            self.publish(self.events, "X")
            self._flush()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._await("PING"), 2.0)
                if self._pub is not None:
                    await self._pub.sync()  # what we published has gone out
        if self._main is not None:
            self._main.cancel()
            with contextlib.suppress(BaseException):
                await self._main
        self.up = False
