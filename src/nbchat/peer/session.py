"""HTTP side of joining a room: log in like a browser, fetch the session config and an id.

jupyter_server reads a ``?token=`` query argument before the ``Authorization`` header,
and PeerJS puts its own ``token`` in the signaling WebSocket's query, so a Jupyter token
cannot ride the WebSocket URL. Instead the first request carries
``Authorization: token …``; jupyter_server answers with its login cookie, which the
shared cookie jar then sends on every later request and WebSocket, as a browser does.
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import aiohttp
from yarl import URL

from ..core.session import InvalidSession, SessionConfig
from ..protocol import is_peer_id
from .errors import (
    AuthenticationFailed,
    NotAnNbchatServer,
    ServerUnreachable,
    connection_failure_reason,
)

__all__ = ["SessionConfig", "ServerSession"]

HTTP_TIMEOUT = aiohttp.ClientTimeout(total=15, connect=10)


def _normalize_server_url(server_url: str) -> str:
    """``http://host:port/base`` → ``http://host:port/base/`` (the base_url ends in /)."""
    parts = urlsplit(server_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise NotAnNbchatServer(f"not an http(s) URL: {server_url!r}")
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _token_in(server_url: str) -> str | None:
    tokens = parse_qs(urlsplit(server_url.strip()).query).get("token")
    return tokens[0] if tokens else None


def _encoded(url: str) -> URL:
    # Keep the base URL exactly as the server spells it: requoting would turn a
    # base_url such as /a%40b/ into /a@b/, which tornado does not route.
    return URL(url, encoded=True)


class ServerSession:
    """One aiohttp session (and cookie jar) shared by all of a peer's HTTP and WebSockets."""

    def __init__(self, server_url: str, token: str | None) -> None:
        self.base_url = _normalize_server_url(server_url)
        # A URL pasted from Jupyter's start-up banner carries ?token=…: use it if no
        # token was given.
        self.token = token or _token_in(server_url)
        parts = urlsplit(self.base_url)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.ws_origin = ("wss" if parts.scheme == "https" else "ws") + f"://{parts.netloc}"
        # We talk to exactly one server, so we keep its cookies ourselves. aiohttp's
        # CookieJar matches cookie paths against the *decoded* request path, so a login
        # cookie set for a base_url like /a%40b/ would never be sent back.
        self.cookies: dict[str, str] = {}
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(), timeout=HTTP_TIMEOUT)

    async def close(self) -> None:
        await self.http.close()

    def headers(self) -> dict[str, str]:
        headers = {}
        if self.token:
            headers["Authorization"] = f"token {self.token}"
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if "_xsrf" in self.cookies:
            headers["X-XSRFToken"] = self.cookies["_xsrf"]
        return headers

    def ws_url(self, path: str, query: dict[str, str]) -> URL:
        return _encoded(f"{self.ws_origin}{path}?{urlencode(query)}")

    async def _get(self, url: str, params: dict[str, str] | None = None) -> tuple[int, str]:
        try:
            query = "?" + urlencode(params) if params else ""
            async with self.http.get(
                _encoded(url + query), headers=self.headers(), allow_redirects=False
            ) as r:
                for name, morsel in r.cookies.items():
                    self.cookies[name] = morsel.value
                return r.status, await r.text()
        except aiohttp.InvalidURL as error:
            raise NotAnNbchatServer(f"invalid server URL {self.base_url}") from error
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError, OSError) as error:
            reason = connection_failure_reason(error)
            raise ServerUnreachable(f"cannot reach {self.origin} ({reason})") from error

    def _check(self, status: int, body: str, url: str, what: str) -> None:
        if status in (401, 403):
            raise AuthenticationFailed(
                f"{self.origin} refused the credentials (HTTP {status}): check the token"
            )
        if 300 <= status < 400:
            # jupyter_server redirects an unauthenticated page request to its login page.
            raise AuthenticationFailed(
                f"{self.origin} asked for a login (HTTP {status}): check the token"
            )
        if status == 404:
            raise NotAnNbchatServer(
                f"no nbchat at {url} (HTTP 404): check the server URL, its base URL, "
                "and that the nbchat server extension is enabled"
            )
        if status != 200:
            message = body.strip().splitlines()[0][:200] if body.strip() else ""
            try:
                message = json.loads(body).get("message", message)
            except (ValueError, AttributeError):
                pass
            raise NotAnNbchatServer(f"{what} failed with HTTP {status}: {message}")

    async def session_config(self, room: str) -> SessionConfig:
        url = f"{self.base_url}nbchat/session"
        status, body = await self._get(url, {"room": room})
        self._check(status, body, url, "session config")
        try:
            data = json.loads(body)
        except ValueError as error:
            raise NotAnNbchatServer(
                f"{url} did not answer JSON: is this an nbchat server?"
            ) from error
        try:
            return SessionConfig.from_json(data)
        except InvalidSession as error:
            raise NotAnNbchatServer(f"unexpected session config: {error}") from error

    async def reserve_id(self, config: SessionConfig) -> str:
        url = f"{self.origin}{config.path}{config.key}/id"
        status, body = await self._get(url)
        self._check(status, body, url, "peer id")
        peer_id = body.strip()
        if not is_peer_id(peer_id):
            raise NotAnNbchatServer(f"server issued an invalid peer id {peer_id[:80]!r}")
        return peer_id

    async def certificate(self, config: SessionConfig, peer_id: str, key: str) -> object:
        """The server's certificate that public ``key`` is our peer ``peer_id``
        (docs/protocol.md §1); the caller verifies it."""
        url = f"{self.origin}{config.path}{config.key}/cert"
        status, body = await self._get(url, {"id": peer_id, "pk": key})
        self._check(status, body, url, "certificate")
        try:
            return json.loads(body)
        except ValueError as error:
            raise NotAnNbchatServer(f"{url} did not answer JSON") from error
