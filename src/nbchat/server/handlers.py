"""Tornado adapters between authenticated requests and the signaling service.

The ``*Mixin`` classes hold what a handler does whoever authenticated the caller; the
classes at the bottom put them behind Jupyter Server's auth. The standalone service
(``standalone.py``) puts the same mixins behind its own (token or JupyterHub OAuth).
"""

from __future__ import annotations

import asyncio
import functools
import json
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

from ..assets import ASSETS, asset
from ..protocol import Identity, identity_from_user, is_peer_id, is_room_key
from .certs import KeyRefused
from .fastpath import serving_http_server
from .realm import Client, Subscriber
from .service import RoomRefused, SignalingService
from .wsconn import Hub, WsConn, adopt_stream

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


def nbchat_path(base_url: str) -> str:
    """The absolute URL path of ``nbchat/`` under a server's base URL (ends in /)."""
    return base_url.rstrip("/") + "/nbchat/"


class NbChatRequest:
    """What every nbchat handler has, whoever authenticates it: the service, and the
    caller's identity and groups (``identity``/``groups`` come from the auth base)."""

    service: SignalingService

    if TYPE_CHECKING:  # provided by the auth base, which comes after us in the MRO

        @property
        def identity(self) -> Identity:
            """The caller, as the auth base sees them."""

        @property
        def groups(self) -> list[str] | None:
            """The caller's JupyterHub groups, where the auth knows them."""

    def initialize(self, service: SignalingService) -> None:
        self.service = service

    def signaling_path(self) -> str:
        """The absolute URL path of ``nbchat/`` on this server (ends in /)."""
        return nbchat_path(self.settings.get("base_url", "/"))  # type: ignore[attr-defined]


def _room_key_argument(key: str) -> str:
    if not is_room_key(key):
        raise web.HTTPError(400, "Invalid room key")
    return key


class SessionMixin(NbChatRequest):
    """``GET nbchat/session?room=NAME``: what a browser or Python peer needs to join."""

    def get(self) -> None:
        room = self.get_query_argument("room", "")  # type: ignore[attr-defined]
        if not room or len(room) > 4096:
            raise web.HTTPError(400, "Query argument 'room' is required (at most 4096 characters)")
        try:
            config = self.service.session(room, self.identity, self.signaling_path(), self.groups)
        except RoomRefused as refused:
            raise web.HTTPError(403, str(refused)) from None
        self.finish(json.dumps(config))  # type: ignore[attr-defined]


class IdMixin(NbChatRequest):
    """``GET nbchat/{key}/id``: a fresh peer id, bound to the caller."""

    async def get(self, key: str) -> None:
        try:
            peer_id = await self.service.reserve_id(
                _room_key_argument(key), self.identity, self.groups
            )
        except RoomRefused as refused:
            raise web.HTTPError(403, str(refused)) from None
        self.set_header("Content-Type", "text/html; charset=utf-8")  # type: ignore[attr-defined]
        self.set_header("Cache-Control", "no-store")  # type: ignore[attr-defined]
        self.finish(peer_id)  # type: ignore[attr-defined]


class CertMixin(NbChatRequest):
    """``GET nbchat/{key}/cert?id=ID&pk=KEY``: the server's certificate that public key
    ``pk`` belongs to the caller's peer ``id`` (docs/protocol.md §1)."""

    async def get(self, key: str) -> None:
        peer_id = self.get_query_argument("id", "")  # type: ignore[attr-defined]
        public_key = self.get_query_argument("pk", "")  # type: ignore[attr-defined]
        if not is_peer_id(peer_id):
            raise web.HTTPError(400, "Query argument 'id' must be a peer id")
        try:
            cert = await self.service.certify(
                _room_key_argument(key), peer_id, self.identity, public_key, self.groups
            )
        except RoomRefused as refused:
            raise web.HTTPError(403, str(refused)) from None
        except KeyRefused as refused:
            raise web.HTTPError(refused.status, str(refused)) from None
        self.set_header("Cache-Control", "no-store")  # type: ignore[attr-defined]
        self.finish(json.dumps(cert))  # type: ignore[attr-defined]


class PeersMixin(NbChatRequest):
    """``GET nbchat/{key}/peers``: ids connected in this room (PeerJS discovery)."""

    def get(self, key: str) -> None:
        if not self.service.settings.allow_discovery:
            raise web.HTTPError(403, "Peer discovery is disabled (allow_discovery)")
        try:
            ids = self.service.peer_ids(_room_key_argument(key), self.groups)
        except RoomRefused as refused:
            raise web.HTTPError(403, str(refused)) from None
        self.finish(json.dumps(ids))  # type: ignore[attr-defined]


class StatsMixin(NbChatRequest):
    """``GET nbchat/stats``: counts only (rooms, clients, queued frames, tasks), for
    monitoring and the soak benchmark; no ids or names."""

    def get(self) -> None:
        stats = {**self.service.stats(), "tasks": len(asyncio.all_tasks())}
        fast = getattr(self.service, "fast_upgrade", None)
        if fast is not None:
            stats["fast_upgrades"] = fast.served
        self.finish(json.dumps(stats))  # type: ignore[attr-defined]


class SignalingConn(WsConn):
    """A signaling socket taken over from its handler (see ``wsconn``)."""

    __slots__ = ("client",)

    def __init__(self, hub: Hub, sock: Any, unsent: bytes) -> None:
        super().__init__(hub, sock, unsent)
        self.client: Client | None = None

    def on_message(self, message: str | bytes) -> None:
        self._hub.owner.signaling_message(self, message)

    def on_closed(self) -> None:
        self._hub.owner.signaling_closed(self)


class PresenceConn(WsConn):
    """A presence socket taken over from its handler; what the client sends is ignored."""

    __slots__ = ("subscriber",)

    def __init__(self, hub: Hub, sock: Any, unsent: bytes) -> None:
        super().__init__(hub, sock, unsent)
        self.subscriber: Subscriber | None = None

    def on_closed(self) -> None:
        self._hub.owner.presence_closed(self)


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
        handler: Any = self.handler  # our _SocketHandler (tornado types it as a delegate)
        handler.ws_connection = None
        web.RequestHandler._break_cycles(handler)
        self.stream = None  # type: ignore[assignment]


class SocketMixin(NbChatRequest):
    """Answers the handshake (after the auth base checked the caller), then hands the
    socket to a ``conn_class`` (or serves it itself on tornado's stock path).

    Goes before ``WebSocketHandler`` in the bases."""

    conn_class: type[WsConn]

    def get_compression_options(self) -> dict[str, Any] | None:
        return None

    def get_websocket_protocol(self) -> WebSocketProtocol | None:
        if not self.service.settings.lean_websocket:
            return super().get_websocket_protocol()  # type: ignore[misc, no-any-return]
        if self.request.headers.get("Sec-WebSocket-Version") != "13":  # type: ignore[attr-defined]
            return None
        # No tornado ping loop: after the hand-off the hub pings, and in the fallback
        # the auth base does (tornado's loop would read Jupyter's milliseconds as seconds).
        params = _WebSocketParams(
            ping_interval=None,
            ping_timeout=None,
            max_message_size=self.max_message_size,
            compression_options=None,
        )
        return _HandOff(self, False, params)  # type: ignore[arg-type]

    @property
    def max_message_size(self) -> int:
        return self.service.max_frame_bytes

    def open(self, *args: Any, **kwargs: Any) -> None:
        protocol = self.ws_connection  # type: ignore[attr-defined]
        adopted = adopt_stream(protocol.stream) if isinstance(protocol, _HandOff) else None
        if adopted is None:
            super().open(*args, **kwargs)  # type: ignore[misc]  # the base's keep-alive pings
            # The parsed login cookie and the 101 response's headers are not read again.
            self.request.__dict__.pop("_cookies", None)  # type: ignore[attr-defined]
            self._headers = HTTPHeaders()
            self.start(self)
            return
        sock, unread, unsent = adopted
        remember = getattr(self, "remember_upgrade", None)
        if remember is not None:
            remember()
        hub = self.service.hub
        # (ping interval, ping timeout) in seconds: the auth base knows its settings.
        hub.ping_interval, hub.ping_timeout = self.keepalive_seconds()  # type: ignore[attr-defined]
        conn = self.conn_class(hub, sock, unsent)
        protocol.handed_off = True
        self.start(conn)
        conn.start(unread)

    def start(self, transport: Any) -> None:
        raise NotImplementedError

    def send_frame(self, text: str) -> None:
        """The transport API on tornado's own path."""
        try:
            self.write_message(text)  # type: ignore[attr-defined]
        except (WebSocketClosedError, StreamClosedError):
            pass  # on_close cleans up this socket's state


class SignalingMixin(SocketMixin):
    """``WS nbchat/peerjs?key=&id=&token=``: the PeerJS server protocol."""

    conn_class = SignalingConn
    client: Client | None = None

    def start(self, transport: Any) -> None:
        get = self.get_query_argument  # type: ignore[attr-defined]
        self.service.signaling_open(
            transport,
            get("key", None),
            get("id", None),
            get("token", None),
            self.identity,
            self.groups,
        )

    def on_message(self, message: str | bytes) -> None:
        self.service.signaling_message(self, message)

    def on_close(self) -> None:  # only on tornado's own path
        super().on_close()  # type: ignore[misc]
        self.service.signaling_closed(self)


class PresenceMixin(SocketMixin):
    """``WS nbchat/presence?key=KEY``: roster, then USER_CONNECTED / USER_DISCONNECTED."""

    conn_class = PresenceConn
    subscriber: Subscriber | None = None

    def start(self, transport: Any) -> None:
        self.service.presence_open(
            transport,
            self.get_query_argument("key", None),  # type: ignore[attr-defined]
            self.identity,
            self.groups,
        )

    def on_message(self, message: str | bytes) -> None:
        return  # presence is server → client only; anything sent is ignored

    def on_close(self) -> None:  # only on tornado's own path
        super().on_close()  # type: ignore[misc]
        self.service.presence_closed(self)


# ---- Jupyter Server: Jupyter's auth, Origin and XSRF checks ------------------------------


class _JupyterAuth:
    @property
    def groups(self) -> list[str] | None:
        return None  # Jupyter Server knows no groups

    @property
    def identity(self) -> Identity:
        return identity_from_user(self.current_user)  # type: ignore[attr-defined]


class SessionHandler(_JupyterAuth, SessionMixin, APIHandler):
    get = authenticated_403(SessionMixin.get)


class IdHandler(_JupyterAuth, IdMixin, JupyterHandler):
    get = authenticated_403(IdMixin.get)


class CertHandler(_JupyterAuth, CertMixin, APIHandler):
    get = authenticated_403(CertMixin.get)


class PeersHandler(_JupyterAuth, PeersMixin, APIHandler):
    get = authenticated_403(PeersMixin.get)


class StatsHandler(_JupyterAuth, StatsMixin, APIHandler):
    get = authenticated_403(StatsMixin.get)


class AssetHandler(JupyterHandler):
    """``GET nbchat/static/widget.js`` (or ``widget.css``): the widget's bundle, which the
    kernel's widget imports from here rather than carrying it through the comm
    (``nbchat/assets.py``). Behind Jupyter's auth like everything here; the versioned URL
    (``?v=`` its digest) may be cached by the browser for good."""

    @authenticated_403
    def get(self, name: str) -> None:
        content_type = ASSETS.get(name)
        if content_type is None:
            raise web.HTTPError(404)
        try:
            data, digest = asset(name)
        except FileNotFoundError:
            raise web.HTTPError(404, "the widget's front end was not built") from None
        self.set_header("Content-Type", content_type)
        if self.get_query_argument("v", None) == digest:
            self.set_header("Cache-Control", "private, max-age=31536000, immutable")
        else:
            self.set_header("Cache-Control", "no-cache")
        self.finish(data)


def make_asset_handlers() -> list[tuple[str, type, dict[str, Any]]]:
    return [(r"nbchat/static/([^/]+)", AssetHandler, {})]


class _JupyterSocket(_JupyterAuth, WebSocketMixin, WebSocketHandler, JupyterHandler):
    service: SignalingService

    def keepalive_seconds(self) -> tuple[float, float]:
        # Jupyter's ws_ping_interval / ws_ping_timeout settings, in milliseconds.
        return self.ping_interval / 1000, self.ping_timeout / 1000

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        await super().get(*args, **kwargs)

    def remember_upgrade(self) -> None:
        """Jupyter accepted this upgrade (its auth, Host and Origin checks): let the fast
        path repeat that decision for the same credentials for a short while
        (``fastpath``). Not for token-authenticated requests, whose identity Jupyter may
        make up afresh each time."""
        fast = getattr(self.service, "fast_upgrade", None)
        if fast is None or getattr(self, "_token_authenticated", False):
            return
        user = self.current_user
        if user is None:
            return
        if fast.install(serving_http_server(self.serverapp, self.request)):
            fast.remember(self.request, self.identity)

    def on_close(self) -> None:
        super().on_close()
        # WebSocketMixin's keep-alive timer only notices a closed socket at its next tick
        # (ws_ping_interval, 30 s) and keeps the whole handler alive until then.
        if self.ping_callback is not None:
            self.ping_callback.stop()


class SignalingHandler(SignalingMixin, _JupyterSocket):
    pass


class PresenceHandler(PresenceMixin, _JupyterSocket):
    pass


def make_handlers(service: SignalingService) -> list[tuple[str, type, dict[str, Any]]]:
    kwargs = {"service": service}
    return [
        (r"nbchat/session", SessionHandler, kwargs),
        (r"nbchat/stats", StatsHandler, kwargs),
        (r"nbchat/peerjs", SignalingHandler, kwargs),
        (r"nbchat/presence", PresenceHandler, kwargs),
        (r"nbchat/([^/]+)/id", IdHandler, kwargs),
        (r"nbchat/([^/]+)/cert", CertHandler, kwargs),
        (r"nbchat/([^/]+)/peers", PeersHandler, kwargs),
    ]
