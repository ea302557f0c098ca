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
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import aiohttp
from yarl import URL

from ..msglog import normalize_identity
from ..protocol import Identity, is_peer_id, is_room_key
from .errors import (
    AuthenticationFailed,
    NotAnNbchatServer,
    ServerUnreachable,
    connection_failure_reason,
)

__all__ = ["SessionConfig", "ServerSession"]

HTTP_TIMEOUT = aiohttp.ClientTimeout(total=15, connect=10)


@dataclass(frozen=True)
class SessionConfig:
    """``GET nbchat/session`` (docs/protocol.md §1), validated."""

    room: str
    key: str
    path: str
    ice_servers: list[dict[str, Any]]
    user: Identity
    ping_interval: float  # seconds
    alive_timeout: float  # seconds
    max_message_bytes: int
    version: str
    #: "relay" when the server makes every peer use TURN-relayed candidates only.
    ice_transport_policy: str = "all"
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_json(cls, data: object) -> SessionConfig:
        if not isinstance(data, dict):
            raise NotAnNbchatServer("session config is not a JSON object")
        try:
            key, path = data["key"], data["path"]
            if not is_room_key(key) or not isinstance(path, str) or not path.startswith("/"):
                raise ValueError("bad key or path")
            ice = data.get("ice_servers") or []
            if not isinstance(ice, list) or not all(isinstance(s, dict) for s in ice):
                raise ValueError("bad ice_servers")
            policy = data.get("ice_transport_policy", "all")
            if policy not in ("all", "relay"):
                raise ValueError(f"bad ice_transport_policy {str(policy)[:40]!r}")
            return cls(
                room=str(data["room"]),
                key=key,
                path=path if path.endswith("/") else path + "/",
                ice_servers=ice,
                user=normalize_identity(data["user"]),
                ping_interval=float(data.get("ping_interval", 5000)) / 1000,
                alive_timeout=float(data.get("alive_timeout", 60000)) / 1000,
                max_message_bytes=int(data.get("max_message_bytes", 65536)),
                version=str(data.get("version", "")),
                ice_transport_policy=policy,
                raw=data,
            )
        except (KeyError, TypeError, ValueError) as error:
            raise NotAnNbchatServer(f"unexpected session config: {error}") from error


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
        return SessionConfig.from_json(data)

    async def reserve_id(self, config: SessionConfig) -> str:
        url = f"{self.origin}{config.path}{config.key}/id"
        status, body = await self._get(url)
        self._check(status, body, url, "peer id")
        peer_id = body.strip()
        if not is_peer_id(peer_id):
            raise NotAnNbchatServer(f"server issued an invalid peer id {peer_id[:80]!r}")
        return peer_id
