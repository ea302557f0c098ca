"""On a JupyterHub single-user server: carry the widget's signaling to the hub's nbchat
service, so that users of different servers meet in one room.

The browser keeps talking to its own server, same origin and behind Jupyter's auth
(with the XSRF token a hub requires); this server forwards each request and socket to
the service with its own hub API token (``$JUPYTERHUB_API_TOKEN``), which the hub maps
to the server's owner: the identity in the room is the hub user, and nothing the
browser says can change it. Chat text never comes here: only signaling does (a few
frames per link), so the extra hop costs a fraction of a millisecond per frame and
nothing once the data channels are open (docs/deploy.md measures it).
"""

from __future__ import annotations

import json
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, WebSocketHandler, websocket_connect

from .handlers import authenticated_403, nbchat_path

__all__ = ["Upstream", "make_relay_handlers"]


class Upstream:
    """Where the hub's nbchat service is, and how this server authenticates to it."""

    def __init__(self, url: str, token: str, owner: str, max_message_size: int) -> None:
        self.url = url if url.endswith("/") else url + "/"
        self.token = token
        self.owner = owner
        self.max_message_size = max_message_size
        # The service's cookies per local user. A hub service knows us by the token alone;
        # a standalone service in token mode gives each new caller a guest identity and
        # a cookie that keeps it, so each of this server's users stays one person there.
        self.cookies: dict[str, dict[str, str]] = {}
        parts = urlsplit(self.url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        self.ws_base = f"{scheme}://{parts.netloc}{parts.path}"

    def headers(self, user: str) -> dict[str, str]:
        headers = {"Authorization": f"token {self.token}"} if self.token else {}
        jar = self.cookies.get(user)
        if jar:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
        return headers

    def keep_cookies(self, user: str, set_cookie: list[str]) -> None:
        for header in set_cookie:
            for name, morsel in SimpleCookie(header).items():
                self.cookies.setdefault(user, {})[name] = morsel.coded_value

    def unreachable(self, error: object) -> str:
        return (
            f"cannot reach the hub's chat service at {self.url} ({error}); "
            "ask your hub's admin whether the nbchat service is running"
        )


class _RelayMixin:
    upstream: Upstream

    def initialize(self, upstream: Upstream) -> None:
        self.upstream = upstream

    @property
    def username(self) -> str:
        return str(getattr(self.current_user, "username", ""))  # type: ignore[attr-defined]

    def check_owner(self) -> None:
        """The service knows this server by its owner's token: only the owner may speak
        through it (a guest on a shared server would appear as the owner)."""
        if self.upstream.owner and self.username != self.upstream.owner:
            raise web.HTTPError(
                403,
                "the hub's chat knows people by their own server: open this notebook "
                f"on your own server to chat (this one belongs to {self.upstream.owner})",
            )


class HttpRelayHandler(_RelayMixin, APIHandler):
    """``GET nbchat/session|{key}/id|{key}/peers`` answered by the hub's service."""

    @authenticated_403
    async def get(self, path: str) -> None:
        self.check_owner()
        query = self.request.query
        url = self.upstream.url + "nbchat/" + path + ("?" + query if query else "")
        request = HTTPRequest(
            url,
            headers=self.upstream.headers(self.username),
            request_timeout=15,
            follow_redirects=False,
        )
        try:
            response = await AsyncHTTPClient().fetch(request, raise_error=False)
        except (OSError, HTTPClientError) as error:
            raise web.HTTPError(502, self.upstream.unreachable(error)) from None
        self.upstream.keep_cookies(self.username, response.headers.get_list("Set-Cookie"))
        body = response.body or b""
        if response.code == 599:  # tornado's "no response at all"
            raise web.HTTPError(502, self.upstream.unreachable(response.error))
        if response.code != 200:
            message = response.reason or ""
            try:
                message = json.loads(body).get("message", message)
            except (ValueError, AttributeError):
                pass
            status = response.code if 400 <= response.code < 600 else 502
            # The service's own words (a room policy, an expired token): shown to the user.
            raise web.HTTPError(status, str(message).replace("%", "%%"))
        if path == "session":
            config = json.loads(body)
            config["path"] = nbchat_path(self.base_url)
            config["service"] = self.upstream.url
            self.finish(json.dumps(config))
            return
        self.set_header("Content-Type", response.headers.get("Content-Type", "text/plain"))
        self.set_header("Cache-Control", "no-store")
        self.finish(body)


class SocketRelayHandler(_RelayMixin, WebSocketMixin, WebSocketHandler, JupyterHandler):
    """``WS nbchat/peerjs|presence``: one socket to the service per browser socket."""

    _up: WebSocketClientConnection | None = None

    def initialize(self, upstream: Upstream, path: str) -> None:  # type: ignore[override]
        super().initialize(upstream)
        self.path_to = path

    def get_compression_options(self) -> dict[str, Any] | None:
        return None

    @property
    def max_message_size(self) -> int:
        return self.upstream.max_message_size

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        self.check_owner()
        await super().get(*args, **kwargs)

    async def open(self, *args: Any, **kwargs: Any) -> None:
        # Small frames go out at once: without this the first one (OPEN) waits ~40 ms for
        # the browser's delayed ACK of the handshake (docs/bench-hub.md).
        self.set_nodelay(True)
        super().open(*args, **kwargs)  # keep-alive pings to the browser
        query = urlencode(
            [
                (k, v)
                for k, vs in self.request.query_arguments.items()
                for v in [x.decode("utf-8", "replace") for x in vs]
            ]
        )
        url = self.upstream.ws_base + "nbchat/" + quote(self.path_to) + "?" + query
        request = HTTPRequest(url, headers=self.upstream.headers(self.username), request_timeout=15)
        try:
            # Frames arrive in order; tornado reads nothing from the browser until open()
            # returns, so nothing the browser sends can overtake the connection.
            self._up = await websocket_connect(
                request,
                on_message_callback=self._from_service,
                max_message_size=self.upstream.max_message_size,
                ping_interval=30,
            )
        except (OSError, HTTPClientError) as error:
            self.log.warning("nbchat: %s", self.upstream.unreachable(error))
            self.close(1011, "cannot reach the hub's chat service")

    def _from_service(self, message: str | bytes | None) -> None:
        if message is None:  # the service closed (or went away): so do we
            up = self._up
            self.close(
                up.close_code if up and up.close_code else 1001,
                (up.close_reason if up else None) or "the hub's chat service closed",
            )
            return
        if self.ws_connection is not None:
            self.write_message(message, binary=isinstance(message, bytes))

    def on_message(self, message: str | bytes) -> None:
        if self._up is not None:
            self._up.write_message(message, binary=isinstance(message, bytes))

    def on_close(self) -> None:
        super().on_close()
        if self.ping_callback is not None:
            self.ping_callback.stop()
        up, self._up = self._up, None
        if up is not None:
            up.close(1000, "the browser left")


def make_relay_handlers(upstream: Upstream) -> list[tuple[str, type, dict[str, Any]]]:
    kwargs: dict[str, Any] = {"upstream": upstream}
    return [
        (r"nbchat/peerjs", SocketRelayHandler, {**kwargs, "path": "peerjs"}),
        (r"nbchat/presence", SocketRelayHandler, {**kwargs, "path": "presence"}),
        (r"nbchat/(session|[^/]+/id|[^/]+/cert|[^/]+/peers)", HttpRelayHandler, kwargs),
    ]
