"""Python peers (aiortc) in one room through a real Jupyter server with nbchat."""

from __future__ import annotations

import asyncio
from typing import Any

from nbchat.peer import ChatPeer


async def test_two_peers_exchange_messages(
    jp_serverapp: Any, jp_fetch: Any, server_base: str
) -> None:
    token = jp_serverapp.identity_provider.token
    async with ChatPeer(server_base, "room-two", token=token) as a:
        async with ChatPeer(server_base, "room-two", token=token) as b:
            assert await a.wait_for_peers(1, 20)
            assert await b.wait_for_peers(1, 20)
            incoming = b.messages()
            sent = await a.send("hello from a")
            got = await asyncio.wait_for(incoming.__anext__(), 10)
            assert got["text"] == "hello from a"
            assert got["id"] == sent["id"]
