"""Pure parts of the Python peer: session config parsing, URLs, presence bookkeeping."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tests.support.fakes import CONFIG, USER, FakeSession, presence_entry

from nbchat.core.session import InvalidSession, SessionConfig
from nbchat.peer import NotAnNbchatServer, PresenceEvent
from nbchat.peer.presence import PresenceClient
from nbchat.peer.session import ServerSession, _normalize_server_url


def test_session_config_parses_the_documented_shape() -> None:
    config = SessionConfig.from_json(CONFIG)
    assert (config.key, config.path, config.user) == (CONFIG["key"], "/a%40b/nbchat/", USER)
    assert (config.ping_interval, config.alive_timeout) == (5000, 60000)  # ms, as on the wire


@pytest.mark.parametrize(
    "broken",
    [
        [],
        {**CONFIG, "key": "not a key!"},
        {**CONFIG, "path": "relative/"},
        {**CONFIG, "user": None},
        {**CONFIG, "ice_servers": "stun:x"},
        {k: v for k, v in CONFIG.items() if k != "room"},
    ],
)
def test_session_config_refuses_what_nbchat_never_sends(broken: Any) -> None:
    with pytest.raises(InvalidSession):
        SessionConfig.from_json(broken)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://127.0.0.1:8888", "http://127.0.0.1:8888/"),
        ("http://127.0.0.1:8888/a%40b", "http://127.0.0.1:8888/a%40b/"),
        (" https://hub.example/user/x/?token=abc ", "https://hub.example/user/x/"),
    ],
)
def test_server_urls_keep_their_base_url_spelling(given: str, expected: str) -> None:
    assert _normalize_server_url(given) == expected


@pytest.mark.parametrize("bad", ["127.0.0.1:8888", "ftp://x/", "http:///path"])
def test_non_http_urls_are_refused(bad: str) -> None:
    with pytest.raises(NotAnNbchatServer):
        _normalize_server_url(bad)


def test_presence_reports_each_change_once_and_diffs_a_fresh_roster() -> None:
    events: list[PresenceEvent] = []
    client = PresenceClient(FakeSession(), SessionConfig.from_json(CONFIG), events.append)  # type: ignore[arg-type]
    key = CONFIG["key"]
    client._on_frame(
        {
            "type": "ROSTER",
            "key": key,
            "peers": [presence_entry("a", "ua"), presence_entry("b", "ub")],
        }
    )
    assert set(client.roster) == {"a", "b"} and events == []  # the first roster is not news
    client._on_frame({"type": "USER_CONNECTED", "key": key, "peer": presence_entry("c", "uc")})
    client._on_frame({"type": "USER_CONNECTED", "key": key, "peer": presence_entry("c", "uc")})
    client._on_frame({"type": "USER_DISCONNECTED", "key": key, "peer": presence_entry("a", "ua")})
    client._on_frame({"type": "USER_DISCONNECTED", "key": key, "peer": presence_entry("zz", "u")})
    client._on_frame({"type": "USER_CONNECTED", "key": key, "peer": {"peer_id": "bad id!"}})
    assert [(e.type, e.peer["peer_id"]) for e in events] == [
        ("USER_CONNECTED", "c"),
        ("USER_DISCONNECTED", "a"),
    ]
    events.clear()
    # After a reconnect the server sends a new roster: b left and d came meanwhile.
    client._on_frame(
        {
            "type": "ROSTER",
            "key": key,
            "peers": [presence_entry("c", "uc"), presence_entry("d", "ud")],
        }
    )
    assert [(e.type, e.peer["peer_id"]) for e in events] == [
        ("USER_DISCONNECTED", "b"),
        ("USER_CONNECTED", "d"),
    ]
    assert set(client.roster) == {"c", "d"}


def test_a_token_in_a_pasted_url_is_used_when_none_is_given() -> None:
    async def check() -> None:
        pasted = ServerSession("http://127.0.0.1:8888/?token=abc123", None)
        explicit = ServerSession("http://127.0.0.1:8888/?token=abc123", "given")
        try:
            assert pasted.token == "abc123" and pasted.base_url == "http://127.0.0.1:8888/"
            assert explicit.token == "given"
        finally:
            await pasted.close()
            await explicit.close()

    asyncio.run(check())
