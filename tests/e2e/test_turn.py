"""Browsers (and a Python peer) chat through a real coturn with relay-only ICE, and a relay
that refuses us or does not answer is said in words, not shown as a hang (issue 9 §3)."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, Route, expect
from tests.support.browser import ARTIFACTS, open_and_run
from tests.support.lab import Lab, free_port, make_lab
from tests.support.loop import BackgroundLoop
from tests.support.peers import Inbox, connection_to, selected_candidate_types
from tests.support.rtc import RECORD_RTC_CONFIGS, recorded_configs, selected_pairs
from tests.support.turn import Turn, running_turn
from tests.support.widgets import SLOW, messages, room_notebook, say, users

from nbchat.peer import ChatPeer

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def turn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Turn]:
    with running_turn(tmp_path_factory.mktemp("turn")) as server:
        yield server


@pytest.fixture(scope="module")
def turn_lab(tmp_path_factory: pytest.TempPathFactory, turn: Turn) -> Iterator[Lab]:
    """A Lab whose session configs hand out the loopback coturn; the secret comes from
    the environment, as a deployment should pass it."""
    server = make_lab(
        tmp_path_factory.mktemp("turn-lab"),
        {"alive_timeout": 8.0, "turn_urls": turn.urls, "turn_ttl": 600.0},
    )
    server.env["NBCHAT_TURN_SECRET"] = turn.secret
    server.start()
    yield server
    server.stop()
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(server.log_path, ARTIFACTS / "turn-lab.log")


def relay_notebook(lab: Lab, name: str, room: str) -> str:
    return room_notebook(lab, name, f"{room} --relay")


def watched(page: Page) -> Page:
    page.add_init_script(RECORD_RTC_CONFIGS)
    return page


def wait_relayed(page: Page, count: int = 1) -> list[list[str]]:
    """Wait until ``count`` connections are up, then their selected pairs' types."""
    page.wait_for_function(
        f"() => window.__pcs.filter((pc) => pc.connectionState === 'connected').length >= {count}",
        timeout=SLOW,
    )
    return selected_pairs(page)


def test_two_browsers_chat_through_the_relay_only(turn_lab: Lab, turn: Turn, new_user) -> None:
    path = relay_notebook(turn_lab, "turn-browsers", "turn-browsers")
    a, b = watched(new_user()), watched(new_user())
    for page in (a, b):
        open_and_run(page, turn_lab, path)
    for page in (a, b):
        expect(users(page)).to_have_count(2, timeout=SLOW)
    say(a, "relayed hello")
    say(b, "relayed answer")
    for page in (a, b):
        expect(messages(page)).to_contain_text("relayed hello", timeout=SLOW)
        expect(messages(page)).to_contain_text("relayed answer", timeout=SLOW)
        assert wait_relayed(page) == [["relay", "relay"]]
        chat_configs = [
            c["config"]
            for c in recorded_configs(page)
            if c["config"] and c["config"].get("iceServers")
        ]
        # The probe and the chat connection: relay-only, our coturn, per-user credentials.
        assert chat_configs and all(c["iceTransportPolicy"] == "relay" for c in chat_configs)
        for config in chat_configs:
            [server] = config["iceServers"]
            assert server["urls"] == turn.urls and server["credential"] != turn.secret
        expect(page.get_by_role("status", name="Chat notice")).to_have_count(0)
    assert turn.secret not in turn_lab.log()


def test_a_python_peer_and_a_browser_chat_through_the_relay_only(
    turn_lab: Lab, new_user, bg: BackgroundLoop
) -> None:
    room = "turn-interop"

    async def join() -> tuple[ChatPeer, Inbox]:
        peer = ChatPeer(turn_lab.url, room, token=turn_lab.token, relay_only=True)
        await peer.join()
        return peer, Inbox(peer)

    peer, inbox = bg.run(join())
    try:
        page = watched(new_user())
        open_and_run(page, turn_lab, relay_notebook(turn_lab, "turn-interop", room))
        expect(users(page)).to_have_count(2, timeout=SLOW)
        say(page, "from the browser, relayed")
        [got] = bg.run(inbox.wait(1, 30), timeout=40)
        assert got["text"] == "from the browser, relayed"
        bg.run(peer.send("from python, relayed"))
        expect(messages(page)).to_contain_text("from python, relayed", timeout=SLOW)

        assert wait_relayed(page) == [["relay", "relay"]]
        link = bg.run(connection_to(peer, got["author"]))
        assert selected_candidate_types(link) == ("relay", "relay")
    finally:
        bg.run(peer.leave())


def tamper_turn(page: Page, change: Any) -> None:
    """Let ``change`` edit the TURN entry of every session config this page fetches."""

    def handle(route: Route) -> None:
        response = route.fetch()
        session = response.json()
        for server in session["ice_servers"]:
            change(server)
        route.fulfill(response=response, body=json.dumps(session))

    page.route("**/nbchat/session?*", handle)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (
            lambda s: s.update(credential="d3JvbmcgY3JlZGVudGlhbA=="),
            "the TURN relay refused our credentials",
        ),
        (
            lambda s: s.update(urls=[f"turn:127.0.0.1:{free_port()}?transport=udp"]),
            "cannot reach the TURN relay",
        ),
    ],
    ids=["wrong-credentials", "unreachable"],
)
def test_a_failing_relay_is_told_in_words_within_seconds(
    turn_lab: Lab, new_user, change: Any, words: str
) -> None:
    page = new_user()
    tamper_turn(page, change)
    path = relay_notebook(turn_lab, f"turn-fail-{free_port()}", "turn-fail")
    open_and_run(page, turn_lab, path)
    expect(users(page)).to_have_count(1, timeout=SLOW)  # the widget is up and joined
    started = time.monotonic()
    notice = page.get_by_role("status", name="Chat notice")
    expect(notice).to_contain_text(words, timeout=10_000)
    expect(notice).to_contain_text("No connection is possible")
    assert time.monotonic() - started < 10
