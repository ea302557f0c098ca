"""Tornado adapters between Jupyter's authenticated sockets and the signaling realm."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado import web
from tornado.httputil import HTTPHeaders
from tornado.iostream import StreamClosedError
from tornado.websocket import (
    WebSocketClosedError,
    WebSocketHandler,
    WebSocketProtocol,
    WebSocketProtocol13,
    _WebSocketParams,
)

from .._version import __version__
from ..protocol import Identity, identity_from_user, is_room_key, room_key
from .realm import Client, Delivery, Realm, Refused, Subscriber
from .wsconn import Hub, WsConn, adopt_stream

if TYPE_CHECKING:
    from .app import NbChatApp

F = TypeVar("F", bound=Callable[..., Any])


def authenticated_403(method: F) -> F:
    """Like ``web.authenticated`` but answers 403 instead of redirecting to a login page:
    every caller here is a script or a socket, not a person at a login form."""

    @functools.wraps(method)
    def wrapper(self: JupyterHandler, *args: Any, **kwargs: Any) -> Any:
        if self.current_user is None:
            raise web.HTTPError(403, "Authentication required")
        return method(self, *args, **kwargs)

    wrapper.__allow_unauthenticated = False  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def debug_shown(log: logging.Logger | logging.LoggerAdapter[Any]) -> bool:
    """Whether a debug record would reach any handler. Jupyter's logger is set to DEBUG
    and its handler to INFO, so ``isEnabledFor`` says yes and every debug call builds a
    record that is then thrown away: measurable per connect with thousands of sockets."""
    logger: logging.Logger | None = getattr(log, "logger", log)  # unwrap an adapter
    if logger is None or not logger.isEnabledFor(logging.DEBUG):
        return False
    while logger is not None:
        if any(h.level <= logging.DEBUG for h in logger.handlers):
            return True
        logger = logger.parent if logger.propagate else None
    return logging.lastResort is not None and logging.lastResort.level <= logging.DEBUG


def deliver(deliveries: list[Delivery]) -> None:
    """Write each frame to its socket; a socket that closed meanwhile is simply skipped."""
    for transport, text in deliveries:
        transport.send_frame(text)


class _NbChatMixin:
    """Gives handlers the extension app, the realm and the user's identity."""

    app: NbChatApp
    realm: Realm

    def initialize(self, app: NbChatApp) -> None:
        self.app = app
        self.realm = app.realm

    @property
    def identity(self) -> Identity:
        return identity_from_user(self.current_user)  # type: ignore[attr-defined]


class SessionHandler(_NbChatMixin, APIHandler):
    """``GET nbchat/session?room=NAME``: what a browser or Python peer needs to join."""

    @authenticated_403
    def get(self) -> None:
        room = self.get_query_argument("room", "")
        if not room or len(room) > 4096:
            raise web.HTTPError(400, "Query argument 'room' is required (at most 4096 characters)")
        app = self.app
        self.finish(json.dumps({
            "room": room,
            "key": room_key(room),
            "path": self.base_url.rstrip("/") + "/nbchat/",
            **app.session_ice(app.ice_servers, self.identity["username"], time.time()),
            "user": self.identity,
            # Advertise a heartbeat well inside alive_timeout, whatever the two settings
            # say: a client beating at the advertised rate must never be evicted.
            "ping_interval": int(min(app.ping_interval, app.alive_timeout / 3) * 1000),
            "alive_timeout": int(app.alive_timeout * 1000),
            "max_message_bytes": app.max_message_bytes,
            "version": __version__,
        }))


class IdHandler(_NbChatMixin, JupyterHandler):
    """``GET nbchat/{key}/id``: a fresh peer id, bound to the caller."""

    @authenticated_403
    def get(self, key: str) -> None:
        if not is_room_key(key):
            raise web.HTTPError(400, "Invalid room key")
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(self.realm.reserve_id(key, self.identity["username"], time.monotonic()))


class PeersHandler(_NbChatMixin, APIHandler):
    """``GET nbchat/{key}/peers``: ids connected in this room (PeerJS discovery)."""

    @authenticated_403
    def get(self, key: str) -> None:
        if not self.app.allow_discovery:
            raise web.HTTPError(403, "Peer discovery is disabled (NbChatApp.allow_discovery)")
        if not is_room_key(key):
            raise web.HTTPError(400, "Invalid room key")
        self.finish(json.dumps(self.realm.peer_ids(key)))


class StatsHandler(_NbChatMixin, APIHandler):
    """``GET nbchat/stats``: counts only (rooms, clients, queued frames, tasks), for
    monitoring and the soak benchmark; no ids or names."""

    @authenticated_403
    def get(self) -> None:
        self.finish(json.dumps({**self.realm.stats(), "tasks": len(asyncio.all_tasks())}))


class SignalingConn(WsConn):
    """A signaling socket taken over from its handler (see ``wsconn``)."""

    __slots__ = ("client",)

    def __init__(self, hub: Hub, sock: Any, unsent: bytes) -> None:
        super().__init__(hub, sock, unsent)
        self.client: Client | None = None

    def on_message(self, message: str | bytes) -> None:
        signaling_message(self._hub.app, self, message)

    def on_closed(self) -> None:
        signaling_closed(self._hub.app, self)


class PresenceConn(WsConn):
    """A presence socket taken over from its handler; what the client sends is ignored."""

    __slots__ = ("subscriber",)

    def __init__(self, hub: Hub, sock: Any, unsent: bytes) -> None:
        super().__init__(hub, sock, unsent)
        self.subscriber: Subscriber | None = None

    def on_closed(self) -> None:
        presence_closed(self._hub.app, self)


# What a socket does, whoever carries it: a WsConn (the lean path) or the tornado
# handler itself (``lean_websocket=False``, or a socket that cannot be taken over).
# A transport has ``send_frame(text)``, ``close(code, reason)`` and its state attribute.


def signaling_open(app: NbChatApp, transport: Any, key: Any, peer_id: Any, token: Any,
                   identity: Identity) -> None:
    outcome = app.realm.connect(key, peer_id, token, identity, transport, time.monotonic())
    if isinstance(outcome, Refused):
        transport.send_frame(outcome.frame)
        transport.close(1008, "refused")
        return
    transport.client = outcome.client
    replaced = outcome.replaced
    if replaced is not None and replaced is not transport:
        replaced.client = None
        replaced.close(1000, "replaced by a reconnect")
    if debug_shown(app.log):
        app.log.debug("nbchat: peer %s joined room %s", outcome.client.peer_id, outcome.client.key)
    deliver(outcome.deliveries)


def signaling_message(app: NbChatApp, transport: Any, message: str | bytes) -> None:
    client = transport.client
    if client is not None:
        deliver(app.realm.receive(client, message, time.monotonic()))


def signaling_closed(app: NbChatApp, transport: Any) -> None:
    client, transport.client = transport.client, None
    if client is not None:
        if debug_shown(app.log):
            app.log.debug("nbchat: peer %s left room %s", client.peer_id, client.key)
        deliver(app.realm.disconnect(client, transport, time.monotonic()))


def presence_open(app: NbChatApp, transport: Any, key: Any, identity: Identity) -> None:
    outcome = app.realm.subscribe(key, identity, transport)
    if isinstance(outcome, Refused):
        transport.send_frame(outcome.frame)
        transport.close(1008, "refused")
        return
    transport.subscriber = outcome
    transport.send_frame(app.realm.roster(outcome.key))


def presence_closed(app: NbChatApp, transport: Any) -> None:
    sub, transport.subscriber = transport.subscriber, None
    if sub is not None:
        app.realm.unsubscribe(sub)


class _HandOff(WebSocketProtocol13):
    """Tornado's protocol for the handshake; afterwards, unless the handler took the
    socket over in ``open``, tornado's own frame loop."""

    handed_off = False

    async def _receive_frame_loop(self) -> None:
        if not self.handed_off:
            await super()._receive_frame_loop()
            return
        # Nothing of the handler is needed any more: let it (and the request, its
        # connection and the closed IOStream) be freed now rather than by the GC.
        handler = self.handler
        handler.ws_connection = None
        web.RequestHandler._break_cycles(handler)
        self.stream = None  # type: ignore[assignment]


class _SocketHandler(_NbChatMixin, WebSocketMixin, WebSocketHandler, JupyterHandler):
    """Authenticates the upgrade (Jupyter's auth and Origin check), answers the handshake,
    then hands the socket to a ``conn_class`` (or serves it itself, stock tornado)."""

    conn_class: type[WsConn]

    def get_compression_options(self) -> dict[str, Any] | None:
        return None

    def get_websocket_protocol(self) -> WebSocketProtocol | None:
        if not self.app.lean_websocket:
            return super().get_websocket_protocol()
        if self.request.headers.get("Sec-WebSocket-Version") != "13":
            return None
        # No tornado ping loop: after the hand-off the hub pings, and in the fallback
        # WebSocketMixin.open does (tornado's loop would read the mixin's milliseconds
        # as seconds).
        params = _WebSocketParams(
            ping_interval=None,
            ping_timeout=None,
            max_message_size=self.max_message_size,
            compression_options=None,
        )
        return _HandOff(self, False, params)

    @property
    def max_message_size(self) -> int:
        return self.app.max_frame_bytes

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        await super().get(*args, **kwargs)

    def open(self, *args: Any, **kwargs: Any) -> None:
        self.app.ensure_ticking()
        protocol = self.ws_connection
        adopted = adopt_stream(protocol.stream) if isinstance(protocol, _HandOff) else None
        if adopted is None:
            super().open(*args, **kwargs)  # WebSocketMixin's keep-alive pings
            # The parsed login cookie and the 101 response's headers are not read again.
            self.request.__dict__.pop("_cookies", None)
            self._headers = HTTPHeaders()
            self.start(self)
            return
        sock, unread, unsent = adopted
        hub = self.app.hub
        hub.ping_interval = self.ping_interval / 1000  # Jupyter's ws_ping_* settings (ms)
        hub.ping_timeout = self.ping_timeout / 1000
        conn = self.conn_class(hub, sock, unsent)
        protocol.handed_off = True  # type: ignore[union-attr]
        self.start(conn)
        conn.start(unread)

    def start(self, transport: Any) -> None:
        raise NotImplementedError

    def on_close(self) -> None:  # only on tornado's own path
        super().on_close()
        # WebSocketMixin's keep-alive timer only notices a closed socket at its next tick
        # (ws_ping_interval, 30 s) and keeps the whole handler alive until then.
        if self.ping_callback is not None:
            self.ping_callback.stop()

    def send_frame(self, text: str) -> None:
        """The transport API on tornado's own path."""
        try:
            self.write_message(text)
        except (WebSocketClosedError, StreamClosedError):
            pass  # on_close cleans up this socket's state


class SignalingHandler(_SocketHandler):
    """``WS nbchat/peerjs?key=&id=&token=``: the PeerJS server protocol."""

    conn_class = SignalingConn
    client: Client | None = None

    def start(self, transport: Any) -> None:
        get = self.get_query_argument
        signaling_open(self.app, transport, get("key", None), get("id", None),
                       get("token", None), self.identity)

    def on_message(self, message: str | bytes) -> None:
        signaling_message(self.app, self, message)

    def on_close(self) -> None:
        super().on_close()
        signaling_closed(self.app, self)


class PresenceHandler(_SocketHandler):
    """``WS nbchat/presence?key=KEY``: roster, then USER_CONNECTED / USER_DISCONNECTED."""

    conn_class = PresenceConn
    subscriber: Subscriber | None = None

    def start(self, transport: Any) -> None:
        presence_open(self.app, transport, self.get_query_argument("key", None), self.identity)

    def on_message(self, message: str | bytes) -> None:
        return  # presence is server → client only; anything sent is ignored

    def on_close(self) -> None:
        super().on_close()
        presence_closed(self.app, self)


def make_handlers(app: NbChatApp) -> list[tuple[str, type, dict[str, Any]]]:
    kwargs = {"app": app}
    return [
        (r"nbchat/session", SessionHandler, kwargs),
        (r"nbchat/stats", StatsHandler, kwargs),
        (r"nbchat/peerjs", SignalingHandler, kwargs),
        (r"nbchat/presence", PresenceHandler, kwargs),
        (r"nbchat/([^/]+)/id", IdHandler, kwargs),
        (r"nbchat/([^/]+)/peers", PeersHandler, kwargs),
    ]
