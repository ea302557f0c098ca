"""How the Python peer authenticates: token once, then Jupyter's login cookie (like a browser)."""

from __future__ import annotations

from typing import Any

import pytest

from nbchat.peer import AuthenticationFailed, NotAnNbchatServer
from nbchat.peer.presence import PresenceClient
from nbchat.peer.session import ServerSession
from nbchat.peer.signaling import SignalingClient


async def test_token_once_then_the_cookie_alone_opens_every_socket(
    jp_serverapp: Any, jp_fetch: Any, server_base: str
) -> None:
    session = ServerSession(server_base, jp_serverapp.identity_provider.token)
    try:
        config = await session.session_config("auth-room")
        assert any(name.startswith("username-") for name in session.cookies), session.cookies
        session.token = None  # from here on only the login cookie identifies us
        assert "Authorization" not in session.headers()
        peer_id = await session.reserve_id(config)
        signaling = SignalingClient(session, config, peer_id, lambda frame: None)
        await signaling.connect()  # OPEN received, despite PeerJS's own ?token= in the URL
        presence = PresenceClient(session, config, lambda event: None)
        await presence.connect()
        assert peer_id in presence.roster
        assert presence.roster[peer_id]["user"] == config.user
        await presence.close()
        await signaling.close()
    finally:
        await session.close()


async def test_no_credentials_and_bad_tokens_are_refused(
    jp_serverapp: Any, jp_fetch: Any, server_base: str
) -> None:
    for token in [None, "not-the-token"]:
        session = ServerSession(server_base, token)
        try:
            with pytest.raises(AuthenticationFailed, match="check the token"):
                await session.session_config("auth-room")
        finally:
            await session.close()


async def test_a_base_url_typo_says_where_nbchat_was_expected(
    jp_serverapp: Any, jp_fetch: Any, server_base: str
) -> None:
    session = ServerSession(server_base + "typo/", jp_serverapp.identity_provider.token)
    try:
        with pytest.raises(NotAnNbchatServer, match="no nbchat at"):
            await session.session_config("auth-room")
    finally:
        await session.close()
