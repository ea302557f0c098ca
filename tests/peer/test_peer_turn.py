"""Python peers through a real coturn on loopback: relay-only chat, and clear errors for
a wrong secret or an unreachable relay (issue 9 §3)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from tests.conftest import TEST_NBCHAT_CONFIG
from tests.support.cli import run_cli
from tests.support.lab import free_port
from tests.support.peers import Inbox, connection_to, selected_candidate_types
from tests.support.turn import Turn, running_turn

from nbchat.peer import ChatPeer, TurnError, TurnRefused, TurnUnreachable
from nbchat.peer.ice import rtc_configuration
from nbchat.peer.turncheck import check_turn

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def turn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Turn]:
    with running_turn(tmp_path_factory.mktemp("turn")) as server:
        yield server


@pytest.fixture
def token(jp_serverapp: Any, jp_fetch: Any) -> str:
    return str(jp_serverapp.identity_provider.token)


def turn_settings(turn: Turn, secret: str | None = None, **more: Any) -> dict[str, Any]:
    return {
        **TEST_NBCHAT_CONFIG,
        "turn_urls": turn.urls,
        "turn_secret": secret or turn.secret,
        **more,
    }


# The module-scoped coturn is made before the per-test server config asks for it.
@pytest.fixture
def nbchat_config(request: pytest.FixtureRequest, turn: Turn) -> dict[str, Any]:
    variant = getattr(request, "param", "relay-by-peer")
    if variant == "relay-by-server":
        return turn_settings(turn, ice_transport_policy="relay")
    if variant == "wrong-secret":
        return turn_settings(turn, secret="not-the-relays-secret")
    if variant == "no-turn":
        return dict(TEST_NBCHAT_CONFIG)
    if variant == "no-relay-there":
        return {
            **TEST_NBCHAT_CONFIG,
            "turn_urls": [f"turn:127.0.0.1:{free_port()}"],
            "turn_secret": "x",
        }
    return turn_settings(turn)


async def test_the_check_allocates_on_a_real_relay_and_names_each_failure(turn: Turn) -> None:
    assert await check_turn(rtc_configuration([turn.ice_server()])) is True
    assert await check_turn(rtc_configuration([])) is False
    with pytest.raises(TurnRefused, match="refused our credentials"):
        await check_turn(rtc_configuration([turn.ice_server(secret="wrong")]))
    closed = {"urls": f"turn:127.0.0.1:{free_port()}", "username": "1:u", "credential": "c"}
    started = time.monotonic()
    with pytest.raises(TurnUnreachable, match="cannot reach the TURN relay"):
        await check_turn(rtc_configuration([closed]), timeout=2.0)
    assert time.monotonic() - started < 5


async def _chat_over(server_base: str, token: str, room: str, **options: Any) -> None:
    async with ChatPeer(server_base, room, token=token, **options) as a:
        async with ChatPeer(server_base, room, token=token, **options) as b:
            inbox = Inbox(b)
            await a.send("through the relay")
            [got] = await inbox.wait(1)
            assert got["text"] == "through the relay"
            for peer, other in ((a, b), (b, a)):
                assert other.id is not None
                link = await connection_to(peer, other.id)
                assert selected_candidate_types(link) == ("relay", "relay")


async def test_python_peers_chat_relay_only_when_they_ask(server_base: str, token: str) -> None:
    await _chat_over(server_base, token, "turn-py-relay", relay_only=True)


@pytest.mark.parametrize("nbchat_config", ["relay-by-server"], indirect=True)
async def test_the_servers_relay_policy_makes_python_peers_relay_only(
    server_base: str, token: str
) -> None:
    await _chat_over(server_base, token, "turn-py-policy")


@pytest.mark.parametrize("nbchat_config", ["wrong-secret"], indirect=True)
async def test_a_wrong_turn_secret_is_a_clear_error_not_a_hang(
    server_base: str, token: str
) -> None:
    started = time.monotonic()
    with pytest.raises(TurnRefused, match="the TURN relay refused our credentials"):
        await ChatPeer(server_base, "turn-py-wrong", token=token, relay_only=True).join()
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("nbchat_config", ["no-relay-there"], indirect=True)
async def test_an_unreachable_relay_is_a_clear_error_not_a_hang(
    server_base: str, token: str
) -> None:
    started = time.monotonic()
    with pytest.raises(TurnUnreachable, match="cannot reach the TURN relay"):
        await ChatPeer(server_base, "turn-py-gone", token=token, relay_only=True).join()
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("nbchat_config", ["no-turn"], indirect=True)
async def test_relay_only_without_any_relay_is_refused_up_front(
    server_base: str, token: str
) -> None:
    with pytest.raises(TurnError, match="needs a TURN relay"):
        async with ChatPeer(server_base, "turn-py-none", token=token, relay_only=True):
            pass


# Without --relay the CLI would only warn (direct paths may work) and then find nobody.
@pytest.mark.parametrize("nbchat_config", ["wrong-secret"], indirect=True)
async def test_the_cli_says_the_relay_refused_us(server_base: str, token: str) -> None:
    code, _, err = await run_cli(
        "say", "turn-cli", "hi", "--relay", "--server", server_base, "--token", token
    )
    assert code == 2
    assert "nbchat: error: the TURN relay refused our credentials" in err


async def test_the_cli_relays_when_asked(server_base: str, token: str) -> None:
    async with ChatPeer(server_base, "turn-cli-ok", token=token, relay_only=True) as listener:
        inbox = Inbox(listener)
        code, _, err = await run_cli(
            "say",
            "turn-cli-ok",
            "relayed hi",
            "--relay",
            "--server",
            server_base,
            "--token",
            token,
        )
        assert code == 0, err
        [got] = await inbox.wait(1)
        assert got["text"] == "relayed hi"
