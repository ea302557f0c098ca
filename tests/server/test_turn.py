"""TURN REST credentials and the session config's ICE keys (issue 9 §3)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time

import pytest
from tests.conftest import TEST_NBCHAT_CONFIG

from nbchat.server.ice import IceSettings
from nbchat.server.turn import turn_ice_server, turn_password, turn_username

SECRET = "s3cret-for-tests-only-7f1c"
URLS = ["turn:127.0.0.1:3478?transport=udp", "turn:127.0.0.1:3478?transport=tcp"]


def test_the_username_is_the_expiry_then_the_user() -> None:
    assert turn_username("alice", now=1_700_000_000.9, ttl=3600) == "1700003600:alice"


def test_the_password_is_coturns_hmac_sha1_in_base64() -> None:
    username = "1700003600:alice"
    expected = base64.b64encode(hmac.new(b"k", username.encode(), hashlib.sha1).digest()).decode()
    assert turn_password("k", username) == expected
    # A vector computed with openssl, as coturn's docs do it:
    # echo -n "$user" | openssl dgst -binary -sha1 -hmac "$secret" | base64
    assert turn_password("north", "1433895918506:my_username") == "Gx/rOncp1ZXBdeBo0S3RrYQnHDA="


def test_an_ice_server_carries_the_urls_and_fresh_credentials() -> None:
    server = turn_ice_server(URLS, SECRET, "bob", now=100.0, ttl=60)
    assert server == {
        "urls": URLS,
        "username": "160:bob",
        "credential": turn_password(SECRET, "160:bob"),
    }
    assert SECRET not in repr(server)


def test_settings_add_turn_only_with_urls_and_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NBCHAT_TURN_SECRET", raising=False)
    stun = [{"urls": "stun:stun.example.test"}]
    assert IceSettings().session_ice(stun, "u", 0) == {
        "ice_servers": stun,
        "ice_transport_policy": "all",
    }
    assert IceSettings(turn_urls=URLS).session_ice([], "u", 0)["ice_servers"] == []
    settings = IceSettings(
        turn_urls=URLS, turn_secret=SECRET, turn_ttl=10, ice_transport_policy="relay"
    )
    assert settings.session_ice(stun, "u", 5) == {
        "ice_servers": [*stun, turn_ice_server(URLS, SECRET, "u", 5, 10)],
        "ice_transport_policy": "relay",
    }


def test_the_secret_can_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBCHAT_TURN_SECRET", "from-env")
    assert IceSettings().turn_secret == "from-env"
    assert IceSettings(turn_secret="explicit").turn_secret == "explicit"


def test_settings_refuse_what_is_not_a_turn_url_or_policy() -> None:
    with pytest.raises(ValueError, match="turn: or turns:"):
        IceSettings(turn_urls=["stun:example.test"])
    with pytest.raises(Exception, match="relay"):
        IceSettings(ice_transport_policy="direct")


@pytest.mark.parametrize(
    "nbchat_config",
    [
        {
            **TEST_NBCHAT_CONFIG,
            "turn_urls": URLS,
            "turn_secret": SECRET,
            "turn_ttl": 120.0,
            "ice_transport_policy": "relay",
        }
    ],
)
async def test_each_session_gets_its_users_turn_credentials_and_never_the_secret(
    login, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    a, b = await login(), await login()
    sa, sb = await a.session("r"), await b.session("r")
    assert sa["ice_transport_policy"] == "relay"
    for session, client in ((sa, a), (sb, b)):
        [turn] = session["ice_servers"]
        assert turn["urls"] == URLS
        expiry, user = turn["username"].split(":", 1)
        assert user == client.identity["username"]
        assert 100 <= int(expiry) - time.time() <= 121
        assert turn["credential"] == turn_password(SECRET, turn["username"])
    assert sa["ice_servers"][0]["username"] != sb["ice_servers"][0]["username"]
    for text in (repr(sa), repr(sb), caplog.text):
        assert SECRET not in text
