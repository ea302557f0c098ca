"""Tornado adapters between Jupyter's authenticated sockets and the signaling realm."""

from __future__ import annotations

import asyncio
import functools
import json
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
    _WebSocketParams,
)

from .._version import __version__
from ..protocol import Identity, identity_from_user, is_room_key, room_key
from ._leanws import LeanProtocol
from .realm import Client, Delivery, Realm, Refused, Subscriber

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
            "ice_servers": app.ice_servers,
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


class _SocketHandler(_NbChatMixin, WebSocketMixin, WebSocketHandler, JupyterHandler):
    """Authenticated WebSocket with a non-raising ``send_frame``."""

    def get_compression_options(self) -> dict[str, Any] | None:
        return None

    def get_websocket_protocol(self) -> WebSocketProtocol | None:
        if not self.app.lean_websocket:
            return super().get_websocket_protocol()
        if self.request.headers.get("Sec-WebSocket-Version") != "13":
            return None
        # No tornado ping loop: WebSocketMixin.open already pings every ws_ping_interval
        # and closes on a missed pong. Tornado's own loop would read the mixin's
        # milliseconds as seconds (one ping per 8 hours) and costs a Task, a coroutine
        # and a timer per socket.
        params = _WebSocketParams(
            ping_interval=None,
            ping_timeout=None,
            max_message_size=self.max_message_size,
            compression_options=None,
        )
        return LeanProtocol(self, False, params)

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        await super().get(*args, **kwargs)

    def open(self, *args: Any, **kwargs: Any) -> None:
        super().open(*args, **kwargs)
        # The parsed login cookie and the 101 response's headers are not read again;
        # kept, they would cost ~2 KB for as long as the socket lives. (The request's
        # headers stay: the detached HTTP connection holds them too.)
        self.request.__dict__.pop("_cookies", None)
        self._headers = HTTPHeaders()

    def on_close(self) -> None:
        super().on_close()
        # WebSocketMixin's keep-alive timer only notices a closed socket at its next tick
        # (ws_ping_interval, 30 s) and keeps the whole handler alive until then.
        if self.ping_callback is not None:
            self.ping_callback.stop()

    def send_frame(self, text: str) -> None:
        conn = self.ws_connection
        if conn is None:
            return
        try:
            if isinstance(conn, LeanProtocol):
                conn.send_text(text)
            else:
                self.write_message(text)
        except (WebSocketClosedError, StreamClosedError):
            pass  # on_close cleans up this socket's state


class SignalingHandler(_SocketHandler):
    """``WS nbchat/peerjs?key=&id=&token=``: the PeerJS server protocol."""

    client: Client | None = None

    @property
    def max_message_size(self) -> int:
        # Accept frames up to 4x the limit so that the sender gets a clear ERROR for an
        # oversized frame; beyond that tornado closes the socket with 1009.
        return self.app.max_message_bytes * 4

    def open(self, *args: Any, **kwargs: Any) -> None:
        super().open(*args, **kwargs)
        self.app.ensure_ticking()
        get = self.get_query_argument
        outcome = self.realm.connect(
            get("key", None), get("id", None), get("token", None),
            self.identity, self, time.monotonic(),
        )
        if isinstance(outcome, Refused):
            self.send_frame(outcome.frame)
            self.close(1008, "refused")
            return
        self.client = outcome.client
        if outcome.replaced is not None and outcome.replaced is not self:
            outcome.replaced.client = None
            outcome.replaced.close(1000, "replaced by a reconnect")
        self.log.debug("nbchat: peer %s joined room %s", self.client.peer_id, self.client.key)
        deliver(outcome.deliveries)

    def on_message(self, message: str | bytes) -> None:
        if self.client is not None:
            deliver(self.realm.receive(self.client, message, time.monotonic()))

    def on_close(self) -> None:
        super().on_close()
        client, self.client = self.client, None
        if client is not None:
            self.log.debug("nbchat: peer %s left room %s", client.peer_id, client.key)
            deliver(self.realm.disconnect(client, self, time.monotonic()))


class PresenceHandler(_SocketHandler):
    """``WS nbchat/presence?key=KEY``: roster, then USER_CONNECTED / USER_DISCONNECTED."""

    subscriber: Subscriber | None = None

    def on_message(self, message: str | bytes) -> None:
        return  # presence is server → client only; anything sent is ignored

    def open(self, *args: Any, **kwargs: Any) -> None:
        super().open(*args, **kwargs)
        self.app.ensure_ticking()
        key = self.get_query_argument("key", None)
        outcome = self.realm.subscribe(key, self.identity, self)
        if isinstance(outcome, Refused):
            self.send_frame(outcome.frame)
            self.close(1008, "refused")
            return
        self.subscriber = outcome
        self.send_frame(self.realm.roster(outcome.key))

    def on_close(self) -> None:
        super().on_close()
        sub, self.subscriber = self.subscriber, None
        if sub is not None:
            self.realm.unsubscribe(sub)


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
