"""Shared fixtures: an in-process Jupyter server with nbchat (pytest-jupyter) and helpers.

Conventions for every test module (read before writing tests):
- ``async def`` tests run on pytest-jupyter's per-test event loop (pytest-asyncio is
  disabled in pyproject: it would run them on a different loop than the server's).
  No async fixtures: do async setup inside the test or via the ``login`` factory.
- Browser tests use Playwright's **sync** API against a JupyterLab subprocess: see
  the ``lab`` and ``browser`` fixtures in tests/e2e/conftest.py. Async Python peers
  inside a sync browser test run on a background loop (``tests/support/loop.py``).
- Authenticate like a browser: log in once with the token, then use the cookie
  (``login()`` here). The login cookie is named after the host, so always use
  127.0.0.1, never ``localhost``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

pytest_plugins = ["pytest_jupyter.jupyter_server"]

# Short timeouts so expiry and eviction are observable in a second, not a minute.
TEST_NBCHAT_CONFIG = {
    "alive_timeout": 1.5,
    "expire_timeout": 0.6,
    "tick_interval": 0.1,
    "max_message_bytes": 8192,
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run browser tests last: their session-scoped Playwright loop stays installed as
    the thread's event loop, which pytest-jupyter's per-test loop would then pick up."""
    items.sort(key=lambda item: "e2e" in item.path.parts)


@pytest.fixture
def nbchat_config() -> dict[str, Any]:
    return dict(TEST_NBCHAT_CONFIG)


@pytest.fixture
def tornado_settings() -> dict[str, Any]:
    """``ServerApp.tornado_settings`` (parametrize it, e.g. Jupyter's ``ws_ping_*``)."""
    return {}


@pytest.fixture
def jp_server_config(
    nbchat_config: dict[str, Any], tornado_settings: dict[str, Any]
) -> dict[str, Any]:
    return {
        "ServerApp": {
            "jpserver_extensions": {"nbchat": True},
            "tornado_settings": tornado_settings,
        },
        "NbChatApp": nbchat_config,
    }


class Ws:
    """A signaling or presence socket with JSON helpers and deadline-bound reads."""

    def __init__(self, conn: WebSocketClientConnection) -> None:
        self.conn = conn

    async def recv(self, timeout: float = 5.0) -> dict[str, Any] | None:
        import asyncio

        text = await asyncio.wait_for(self.conn.read_message(), timeout)
        return None if text is None else json.loads(text)

    async def recv_type(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        """Read until a frame of ``kind`` arrives (skipping others)."""
        import asyncio

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            frame = await self.recv(max(0.01, deadline - loop.time()))
            if frame is None:
                raise AssertionError(f"socket closed while waiting for {kind}")
            if frame.get("type") == kind:
                return frame

    def send(self, frame: Any) -> Awaitable[None]:
        text = frame if isinstance(frame, str) else json.dumps(frame)
        return self.conn.write_message(text)

    def close(self) -> None:
        self.conn.close()


class User:
    """One Jupyter user, logged in with the server token once and then known by cookie.

    Requests go to 127.0.0.1 (the host the login cookie is named for) with no
    Authorization header: like a browser, this user *is* their cookie.
    """

    def __init__(self, base: str, cookie: str, session: dict[str, Any]) -> None:
        self.base = base  # http://127.0.0.1:PORT/base_url/
        self.cookie = cookie
        self.identity = session["user"]

    @property
    def headers(self) -> dict[str, str]:
        return {"Cookie": self.cookie}

    async def get(self, path: str, raise_error: bool = True, **params: str) -> Any:
        query = ("?" + urlencode(params)) if params else ""
        request = HTTPRequest(self.base + path + query, headers=self.headers)
        return await AsyncHTTPClient().fetch(request, raise_error=raise_error)

    async def session(self, room: str) -> dict[str, Any]:
        r = await self.get("nbchat/session", room=room)
        return json.loads(r.body)

    async def new_id(self, key: str) -> str:
        r = await self.get(f"nbchat/{key}/id")
        return r.body.decode()

    async def ws(self, path: str, headers: dict[str, str] | None = None, **params: str) -> Ws:
        url = "ws" + self.base[4:] + path + "?" + urlencode(params)
        request = HTTPRequest(url, headers={**self.headers, **(headers or {})})
        return Ws(await websocket_connect(request))

    async def signal(
        self, key: str, peer_id: str | None = None, token: str = "tok", expect_open: bool = True
    ) -> tuple[Ws, str]:
        peer_id = peer_id or await self.new_id(key)
        ws = await self.ws("nbchat/peerjs", key=key, id=peer_id, token=token)
        if expect_open:
            frame = await ws.recv()
            assert frame == {"type": "OPEN"}, frame
        return ws, peer_id

    async def presence(self, key: str) -> tuple[Ws, dict[str, Any]]:
        ws = await self.ws("nbchat/presence", key=key)
        roster = await ws.recv()
        assert roster is not None and roster["type"] == "ROSTER", roster
        return ws, roster


@pytest.fixture
def server_base(jp_http_port: int, jp_base_url: str) -> str:
    return f"http://127.0.0.1:{jp_http_port}{jp_base_url}"


@pytest.fixture
def login(jp_serverapp: Any, jp_fetch: Any, server_base: str) -> Callable[[], Awaitable[User]]:
    """Log a new user in with the server token (as a browser does) and return them.

    ``jp_fetch`` is requested because it starts the server listening.
    """
    token = jp_serverapp.identity_provider.token

    async def _login() -> User:
        request = HTTPRequest(
            server_base + "nbchat/session?room=login",
            headers={"Authorization": f"token {token}"},
        )
        r = await AsyncHTTPClient().fetch(request)
        cookies = [
            c.split(";", 1)[0]
            for c in r.headers.get_list("Set-Cookie")
            if c.startswith("username-")
        ]
        assert cookies, r.headers
        return User(server_base, "; ".join(cookies), json.loads(r.body))

    return _login


__all__ = ["HTTPClientError", "User", "Ws"]
