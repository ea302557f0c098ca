"""A Jupyter server relaying to a shared nbchat service (``NbChatApp.service_url``), as
each JupyterHub single-user server does: its users meet the users of other servers,
each stays one person there, and a service that is down is said in words.

The hub itself (OAuth, per-user servers, groups) is proven in tests/e2e/test_jupyterhub.py;
here a standalone ``nbchat-signaling`` process in token mode is the service.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from tests.support.peers import Inbox
from tests.support.signaling import TOKEN, Service, get, start_service

from nbchat.peer import ChatPeer
from nbchat.peer.errors import NotAnNbchatServer


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    s = start_service(tmp_path_factory.mktemp("service"), f"--token={TOKEN}", base="/svc/")
    yield s
    s.proc.kill()
    s.proc.wait(10)


@pytest.fixture
def nbchat_config(service: Service) -> dict[str, Any]:
    return {"service_url": service.url, "service_token": TOKEN}


@pytest.fixture
def token(jp_serverapp: Any, jp_fetch: Any) -> str:
    # jp_fetch is what starts the in-process server listening.
    return str(jp_serverapp.identity_provider.token)


async def test_users_of_a_relaying_server_meet_through_the_shared_service(
    server_base: str, token: str, service: Service
) -> None:
    async with (
        ChatPeer(server_base, "shared", token=token) as a,
        ChatPeer(service.url, "shared", token=TOKEN) as elsewhere,
    ):
        # The session comes from the service; the peer still talks to its own server.
        assert a.config is not None
        assert a.config.service == service.url
        assert a.config.path.endswith("/nbchat/") and "/svc/" not in a.config.path
        assert await a.wait_for_peers(1, timeout=20)
        inbox = Inbox(elsewhere)
        await a.send("from behind the relay")
        [got] = await inbox.wait(1)
        assert got["text"] == "from behind the relay"
        # The service holds both peers: the relayed one really went through it.
        status, text, _ = get(service.url + "metrics", token=TOKEN)
        assert "nbchat_peers 2.0" in text
        inbox.stop()


async def test_each_local_user_stays_one_person_at_the_service(
    server_base: str, token: str
) -> None:
    async with (
        ChatPeer(server_base, "people", token=token) as a,
        ChatPeer(server_base, "people", token=token) as b,
    ):
        assert await a.wait_for_peers(1, timeout=20)
        # Two logins to the Jupyter server are two users; the relay keeps them apart at
        # the service (its cookie per local user), and each keeps one identity for its
        # session, id and sockets (else the id would be refused as taken).
        assert a.user["username"] != b.user["username"]
        assert {u["user"]["username"] for u in a.users} == {a.user["username"], b.user["username"]}


@pytest.mark.parametrize(
    "nbchat_config", [{"service_url": "http://127.0.0.1:9/svc/", "service_token": TOKEN}]
)
async def test_a_service_that_is_down_is_said_in_words(server_base: str, token: str) -> None:
    with pytest.raises(NotAnNbchatServer) as refused:
        async with ChatPeer(server_base, "down", token=token):
            pass
    assert "cannot reach the hub's chat service at http://127.0.0.1:9/svc/" in str(refused.value)


@pytest.fixture
def someone_elses_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """This Jupyter server is a hub user's server that belongs to another user."""
    monkeypatch.setenv("JUPYTERHUB_USER", "alice")


async def test_a_guest_on_someone_elses_server_is_refused_not_shown_as_the_owner(
    someone_elses_server: None, jp_fetch: Any
) -> None:
    # The relay speaks for the server's owner (its token); anyone else would appear as them.
    for path in (("nbchat", "session"), ("nbchat", "room", "id")):
        response = await jp_fetch(*path, params={"room": "x"}, raise_error=False)
        assert response.code == 403
        message = json.loads(response.body)["message"]
        assert "open this notebook on your own server" in message and "alice" in message
