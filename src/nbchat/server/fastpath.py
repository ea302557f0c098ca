"""The socket upgrade for callers Jupyter has just authenticated, without the page path.

A signaling socket is a Jupyter request: tornado parses the upgrade and routes it, builds
a ``JupyterHandler``, Jupyter's ``prepare`` checks the Host, verifies the signed login
cookie through the identity provider, checks the Origin, tornado answers the handshake,
the request is logged and measured; only then does the socket reach the realm. In a
reconnect storm (every client of a server at once) that path costs several times what
the relay of the socket's whole life does.

:class:`UpgradeCache` remembers, for a short time, what Jupyter decided for an upgrade:
after Jupyter's full path accepted a socket (cookie-authenticated, Host and Origin
checked), the request's credentials — ``Host``, ``Origin``, the whole ``Cookie`` and
``Authorization`` headers, and the ``token`` query argument unless the identity provider
reads it as Jupyter's own does (only as the server's token: PeerJS's own token there
never authenticates anyone) — map to the identity Jupyter gave it, for
``ttl`` seconds (bounded in size; cleared when the server's token or password changes).

:class:`FastUpgrade` wraps the HTTP server's ``handle_stream``: it reads the first bytes
of each new connection itself; a complete ``GET`` upgrade of ``nbchat/peerjs`` or
``nbchat/presence`` whose credentials are in the cache is answered right there (101,
then the socket goes to a ``WsConn`` exactly as after the hand-off in ``handlers``).
Everything else — a page, an API call, a socket with credentials never seen or expired,
anything unusual in the request head — gets the bytes put back into tornado's stream
and takes Jupyter's full path, unchanged. So the fast path can only repeat a decision
Jupyter made for the very same credentials seconds earlier; it never decides anything
on its own. Upgrades it serves are counted (``nbchat/stats``: ``fast_upgrades``) and
logged at debug level, as Jupyter logs a successful upgrade.
"""

from __future__ import annotations

import base64
import contextvars
import hashlib
import logging
import re
import socket
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from tornado.iostream import IOStream

from ..protocol import Identity
from .wsconn import WsConn

__all__ = ["FastUpgrade", "UpgradeCache", "credentials_key", "serving_http_server"]

log = logging.getLogger("nbchat")

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_MAX_HEAD = 16384
# What tornado's get_argument does to a value: control characters become spaces, then strip.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f]")


def _stock_provider(provider: Any) -> bool:
    """Whether ``provider`` reads a ``?token=`` argument only the way Jupyter's own
    IdentityProvider does: as the server's token, and if it matches, the login cookie
    still names the user. Subclasses that change only, say, the anonymous names qualify;
    one that overrides how users or tokens are read (JupyterHub's, the legacy login
    handler's) does not, and then the query token is part of the credentials."""
    from jupyter_server.auth.identity import IdentityProvider

    cls = type(provider)
    return isinstance(provider, IdentityProvider) and all(
        getattr(cls, name) is getattr(IdentityProvider, name)
        for name in ("get_user", "_get_user", "get_token", "get_user_token")
    )


def credentials_key(
    host: str | None,
    origin: str | None,
    cookie: str | None,
    authorization: str | None,
    query_token: str | None,
    stock: bool,
) -> tuple[str | None, ...]:
    """Everything of a request that Jupyter's auth decision for a socket depends on."""
    return (host, origin, cookie, authorization, None if stock else query_token)


def serving_http_server(serverapp: Any, request: Any) -> Any:
    """The tornado ``HTTPServer`` that accepted ``request``: Jupyter's own, or (a test
    harness, an embedding app) the one whose request loop serves this connection."""
    server = getattr(serverapp, "_http_server", None)
    if server is not None:
        return server
    try:
        coro = request.server_connection._serving_future.get_coro()
        delegate = coro.cr_frame.f_locals.get("delegate")
    except (AttributeError, TypeError):
        return None
    from tornado.httpserver import HTTPServer

    return delegate if isinstance(delegate, HTTPServer) else None


class UpgradeCache:
    """Identities Jupyter gave to upgrade requests, by their credentials; bounded, with a TTL."""

    def __init__(self, ttl: float, capacity: int = 4096) -> None:
        self.ttl = ttl
        self.capacity = capacity
        self._entries: OrderedDict[tuple[Any, ...], tuple[float, Identity]] = OrderedDict()
        self._generation: Any = None

    def __len__(self) -> int:
        return len(self._entries)

    def check_generation(self, generation: Any) -> None:
        """Forget everything when the server's token or password changed."""
        if generation != self._generation:
            self._entries.clear()
            self._generation = generation

    def remember(self, key: tuple[Any, ...], identity: Identity, now: float) -> None:
        if self.ttl <= 0:
            return
        entries = self._entries
        entries[key] = (now + self.ttl, identity)
        entries.move_to_end(key)
        while len(entries) > self.capacity:
            entries.popitem(last=False)

    def lookup(self, key: tuple[Any, ...], now: float) -> Identity | None:
        hit = self._entries.get(key)
        if hit is None:
            return None
        if now >= hit[0]:
            del self._entries[key]
            return None
        return hit[1]


class FastUpgrade:
    """Serves the upgrades whose credentials Jupyter accepted moments ago (module doc)."""

    def __init__(
        self,
        service: Any,
        identity_provider: Any,
        base_path: str,
        conn_classes: dict[str, type[WsConn]],
        ttl: float,
        backlog: int = 0,
    ) -> None:
        self.service = service
        self.backlog = backlog
        self.provider = identity_provider
        self.stock = _stock_provider(identity_provider)
        self.cache = UpgradeCache(ttl)
        # absolute path → ("signaling" | "presence", its WsConn class)
        self.routes = {base_path + name: (name, cls) for name, cls in conn_classes.items()}
        self.served = 0
        self._installed: Any = None

    # -- the cache, from Jupyter's full path ----------------------------------------------

    def generation(self) -> Any:
        p = self.provider
        return (getattr(p, "token", None), getattr(p, "hashed_password", None))

    def remember(self, request: Any, identity: Identity) -> None:
        """Jupyter's full path accepted this upgrade request: remember its decision."""
        headers = request.headers
        for name in ("Host", "Origin", "Cookie", "Authorization"):
            if len(headers.get_list(name)) > 1:
                return  # folded duplicates: never matched by the fast path anyway
        tokens = request.query_arguments.get("token", [])
        if len(tokens) > 1:
            return
        query_token = None
        if tokens:
            query_token = _CONTROL.sub(" ", tokens[0].decode("utf-8", "replace")).strip()
        key = credentials_key(
            headers.get("Host"),
            headers.get("Origin"),
            headers.get("Cookie"),
            headers.get("Authorization"),
            query_token,
            self.stock,
        )
        self.cache.check_generation(self.generation())
        self.cache.remember(key, identity, time.monotonic())

    # -- the HTTP server hook ---------------------------------------------------------------

    def install(self, http_server: Any) -> bool:
        """Wrap ``http_server.handle_stream`` (once); False where it cannot be done."""
        if self._installed is not None:
            return True
        if http_server is None or getattr(http_server, "ssl_options", None) is not None:
            return False
        a, b = socket.socketpair()
        probe = IOStream(a)
        usable = isinstance(getattr(probe, "_read_buffer", None), bytearray) and isinstance(
            getattr(probe, "_read_buffer_size", None), int
        )
        probe.close()
        b.close()
        if not usable:
            return False  # a tornado whose IOStream internals differ: keep its own path
        original = http_server.handle_stream
        self._installed = original
        if self.backlog > 0:
            # tornado listens with a backlog of 128: in a storm the kernel drops the rest
            # of the SYNs and those clients wait for their retransmission (1 s, 3 s, ...).
            for listener in list(getattr(http_server, "_sockets", {}).values()):
                try:
                    listener.listen(self.backlog)
                except OSError:
                    pass

        def handle_stream(stream: Any, address: Any) -> Any:
            if type(stream) is not IOStream:
                return original(stream, address)
            self._watch(stream, address, original)
            return None

        http_server.handle_stream = handle_stream
        return True

    def _watch(self, stream: IOStream, address: Any, original: Callable[..., Any]) -> None:
        loop = self.service.hub.loop
        if loop is None:
            import asyncio

            loop = self.service.hub.loop = asyncio.get_running_loop()
        fd = stream.socket.fileno()
        contextvars.Context().run(loop.add_reader, fd, self._first_read, stream, address, original)

    def _first_read(self, stream: IOStream, address: Any, original: Callable[..., Any]) -> None:
        sock = stream.socket
        loop = self.service.hub.loop
        assert loop is not None
        try:
            data = sock.recv(_MAX_HEAD)
        except (BlockingIOError, InterruptedError):
            return  # still registered: called again when the bytes come
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(sock.fileno())
            stream.close()
            return
        if self._serve(stream, data):
            return
        # Not ours: give tornado the socket and the bytes as if it had read them itself.
        loop.remove_reader(sock.fileno())
        stream._read_buffer += data
        stream._read_buffer_size += len(data)
        future = original(stream, address)
        if future is not None:
            from tornado import gen
            from tornado.ioloop import IOLoop

            IOLoop.current().add_future(gen.convert_yielded(future), lambda f: f.result())

    def _serve(self, stream: IOStream, data: bytes) -> bool:
        """Answer a cached upgrade; False (nothing done) for anything else."""
        end = data.find(b"\r\n\r\n")
        if end < 0 or not data.startswith(b"GET "):
            return False
        try:
            lines = data[:end].decode("latin-1").split("\r\n")
        except UnicodeDecodeError:
            return False
        parts = lines[0].split(" ")
        if len(parts) != 3 or parts[2] != "HTTP/1.1":
            return False
        path, _, query = parts[1].partition("?")
        route = self.routes.get(path)
        if route is None:
            return False
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name[0] in " \t" or name[-1] in " \t":
                return False  # folded or malformed: let tornado judge it
            name = name.lower()
            if name in headers:
                return False  # duplicates: let tornado judge them
            headers[name] = value.strip()
        connection = [t.strip() for t in headers.get("connection", "").lower().split(",")]
        if (
            headers.get("upgrade", "").lower() != "websocket"
            or "upgrade" not in connection
            or headers.get("sec-websocket-version") != "13"
            or "transfer-encoding" in headers
            or headers.get("content-length", "0") != "0"
        ):
            return False
        ws_key = headers.get("sec-websocket-key", "")
        if not ws_key:
            return False
        args: dict[str, str] = {}
        try:
            pairs = parse_qsl(query, keep_blank_values=True, errors="strict")
        except (UnicodeDecodeError, ValueError):
            return False
        for name, value in pairs:
            if name in args:
                return False  # repeated arguments: let tornado judge them
            args[name] = _CONTROL.sub(" ", value).strip()
        key = credentials_key(
            headers.get("host"),
            headers.get("origin"),
            headers.get("cookie"),
            headers.get("authorization"),
            args.get("token"),
            self.stock,
        )
        cache = self.cache
        cache.check_generation(self.generation())
        identity = cache.lookup(key, time.monotonic())
        if identity is None:
            return False
        # Ours from here on. The socket stays registered in the loop (the connection's
        # reader replaces ours) and the IOStream, which never touched it, is dropped.
        sock = stream.socket
        try:
            self._open(sock, route, path, args, identity, ws_key, data[end + 4 :])
        except Exception:
            log.exception("nbchat: a fast upgrade failed; closing the socket")
            loop = self.service.hub.loop
            if loop is not None:
                loop.remove_reader(sock.fileno())
            sock.close()
        return True

    def _open(
        self,
        sock: socket.socket,
        route: tuple[str, type[WsConn]],
        path: str,
        args: dict[str, str],
        identity: Identity,
        ws_key: str,
        unread: bytes,
    ) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        accept = base64.b64encode(hashlib.sha1(ws_key.encode("latin-1") + _GUID).digest())
        kind, conn_class = route
        conn = conn_class(self.service.hub, sock, b"")
        # The 101 response and the first frames (OPEN, or the refusal) leave in one send.
        conn.hold(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        self.served += 1
        if log.isEnabledFor(logging.DEBUG):
            log.debug("nbchat: upgrade of %s served from the auth cache", path)
        if kind == "peerjs":
            self.service.signaling_open(
                conn, args.get("key"), args.get("id"), args.get("token"), identity, None
            )
        else:
            self.service.presence_open(conn, args.get("key"), identity, None)
        conn.release()
        conn.start(unread)
