"""Fixtures for tests with Python peers on the in-process Jupyter server."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from nbchat.peer import ChatPeer


@pytest.fixture
def connect(
    jp_serverapp: Any, jp_fetch: Any, server_base: str
) -> Callable[..., contextlib.AbstractAsyncContextManager[ChatPeer]]:
    """``async with connect(room, **options) as peer``: a ChatPeer that joined ``room`` on
    the test server, logged in with its token (each one its own anonymous user)."""
    token = jp_serverapp.identity_provider.token

    @contextlib.asynccontextmanager
    async def _connect(room: str, **options: Any) -> AsyncIterator[ChatPeer]:
        async with ChatPeer(server_base, room, token=token, **options) as peer:
            yield peer

    return _connect
