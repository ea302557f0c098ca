"""nbchat on a real JupyterHub: each user has their own single-user server, the admin
enabled the nbchat service with the lines in docs/deploy.md, and people on different
servers meet in one room under their hub names, peer to peer.

Real parts only: ``jupyterhub`` with configurable-http-proxy from npm, the simple local
spawner (a real ``jupyterhub-singleuser`` per user), the ``nbchat-signaling`` service
managed by the hub, headless Chromium logging in through the hub's form, aiortc.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect
from tests.support.browser import ARTIFACTS, KERNEL_READY, run_all
from tests.support.jhub import JupyterHub, hub_login
from tests.support.loop import BackgroundLoop
from tests.support.peers import Inbox, until
from tests.support.widgets import SLOW, messages, own_name, say, screenshot, users

from nbchat.peer import ChatPeer

USERS = ["alice", "bob", "carol"]
ROOM = "data-team/standup"  # reserved to the group data-team (alice and bob)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterHub]:
    server = JupyterHub(
        tmp_path_factory.mktemp("jupyterhub"), USERS, {"data-team": ["alice", "bob"]}
    )
    for user in USERS:
        server.put_notebook(user, "standup.ipynb", "%load_ext nbchat", f"chat = %chat {ROOM}")
        server.put_notebook(user, "alone.ipynb", "%load_ext nbchat", "chat = %chat hub-e2e")
    server.start()
    yield server
    server.stop()
    server.copy_log(ARTIFACTS)


def open_on_hub(page: Page, hub: JupyterHub, user: str, notebook: str) -> None:
    """Log in as ``user`` (which starts their own server), open ``notebook`` there and run
    it, as a person would."""
    hub_login(page, hub, user)
    page.goto(f"{hub.url}user/{user}/lab/tree/{notebook}?reset")  # not the last workspace
    page.locator(".jp-Notebook").first.wait_for(timeout=90_000)
    page.wait_for_function(KERNEL_READY, timeout=90_000)
    run_all(page)


def test_one_user_alone_on_a_hub_gets_online(hub: JupyterHub, new_user) -> None:
    """The defect: a single-user server refused the widget's id request (403, no XSRF
    token), so the chat never came online on JupyterHub."""
    page = new_user()
    open_on_hub(page, hub, "alice", "alone.ipynb")
    status = page.get_by_role("status", name="Chat status")
    expect(status).to_have_text(re.compile(r"Connected"), timeout=SLOW)
    assert own_name(page) == "alice"
    expect(page.get_by_label("Who can join")).to_have_text("everyone signed in to this hub")
    say(page, "anyone here?")
    expect(messages(page)).to_contain_text("anyone here?")
    assert "403 GET /user/alice/nbchat" not in hub.log()


def test_two_users_on_their_own_servers_chat_across_the_hub(
    hub: JupyterHub, new_user, bg: BackgroundLoop
) -> None:
    alice, bob = new_user(), new_user()
    open_on_hub(alice, hub, "alice", "standup.ipynb")
    open_on_hub(bob, hub, "bob", "standup.ipynb")
    for page, me, other in ((alice, "alice", "bob"), (bob, "bob", "alice")):
        expect(users(page)).to_have_count(2, timeout=SLOW)
        expect(users(page).filter(has_text=other)).to_have_count(1)
        assert own_name(page) == me
        expect(page.get_by_label("Who can join")).to_have_text("members of data-team")
    # Two different servers: each user's notebook runs in their own server.
    assert (hub.home("alice") / "standup.ipynb").exists()
    say(alice, "stand-up in 5, bob?")
    expect(messages(bob)).to_contain_text("stand-up in 5, bob?", timeout=SLOW)
    say(bob, "on my way")
    expect(messages(alice)).to_contain_text("on my way", timeout=SLOW)
    # The author shown is the hub user the service bound to the sender.
    expect(
        messages(bob).locator(".nbchat-message").filter(has_text="stand-up in 5")
    ).to_contain_text("alice")
    screenshot(bob, "screenshot-hub.png")

    # A script with bob's hub API token joins the same room through the service.
    token = hub.api_token("bob")

    async def python_peer() -> tuple[ChatPeer, Inbox]:
        peer = ChatPeer(hub.url + "services/nbchat/", ROOM, token=token)
        await peer.join()
        inbox = Inbox(peer)
        await until(lambda: len(peer.users) >= 3, 60)
        await peer.send("bot: build is green")
        return peer, inbox

    peer, inbox = bg.run(python_peer(), timeout=90)
    expect(messages(alice)).to_contain_text("bot: build is green", timeout=SLOW)
    say(alice, "thanks, bot")
    bg.run(until(lambda: any(m["text"] == "thanks, bot" for m in inbox.items), 30))

    # The service restarts mid-chat (the hub starts it again): the data channels carry
    # on meanwhile, everyone's signaling reconnects and presence heals.
    pid = hub.service_pid()
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    say(alice, "while the service restarts")
    expect(messages(bob)).to_contain_text("while the service restarts", timeout=SLOW)
    bg.run(until(lambda: hub.service_pid() not in (None, pid), 60), timeout=70)
    expect(alice.get_by_role("status", name="Chat status")).to_have_text(
        re.compile(r"^Connected to 2 peers$"), timeout=SLOW
    )
    expect(users(bob)).to_have_count(2, timeout=SLOW)  # alice, and bob (browser + script)
    say(bob, "after the restart")
    expect(messages(alice)).to_contain_text("after the restart", timeout=SLOW)
    bg.run(peer.leave(), timeout=30)
    inbox.stop()


def test_a_user_outside_the_group_is_refused_with_a_readable_error(
    hub: JupyterHub, new_user
) -> None:
    page = new_user()
    open_on_hub(page, hub, "carol", "standup.ipynb")
    expect(page.get_by_role("status", name="Chat status")).to_contain_text(
        "reserved to members of the JupyterHub group(s) data-team", timeout=SLOW
    )
    expect(users(page)).to_have_count(0)
