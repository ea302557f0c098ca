"""A Python peer (aiortc) and Chromium users of the widget share a room: presence,
messages both ways, late-joiner history both ways, and ``nbchat say`` reaching a browser."""

from __future__ import annotations

import subprocess
import sys

import pytest
from playwright.sync_api import expect
from tests.support.browser import open_and_run
from tests.support.lab import Lab
from tests.support.loop import BackgroundLoop
from tests.support.netns import INSIDE, needs_loopback_netns, run_in_loopback_netns
from tests.support.peers import Inbox, until
from tests.support.widgets import (
    SLOW,
    article,
    messages,
    own_name,
    room_notebook,
    say,
    users,
)

from nbchat.peer import ChatPeer


def join(bg: BackgroundLoop, lab: Lab, room: str) -> tuple[ChatPeer, Inbox]:
    async def _join() -> tuple[ChatPeer, Inbox]:
        peer = ChatPeer(lab.url, room, token=lab.token)
        await peer.join()
        return peer, Inbox(peer)

    return bg.run(_join())


def test_python_peer_and_browser_see_each_other_and_talk(lab: Lab, new_user, bg) -> None:
    room = "interop-talk"
    # Python first: the browser is the newcomer and dials the Python peer.
    peer, inbox = join(bg, lab, room)
    try:
        page = new_user()
        open_and_run(page, lab, room_notebook(lab, "interop-talk", room))
        expect(users(page)).to_have_count(2, timeout=SLOW)
        expect(users(page).filter(has_text=peer.user["display_name"])).to_have_count(1)
        name = own_name(page)
        bg.run(until(lambda: len(peer.users) == 2 and len(peer.peers) == 1, 60), timeout=70)
        browser_user = next(u["user"] for u in peer.users if u["peer_id"] != peer.id)
        assert browser_user["display_name"] == name

        bg.run(peer.send("hello from **python**"))
        expect(article(page, peer.user["display_name"], "hello from")).to_have_count(
            1, timeout=SLOW
        )
        expect(messages(page).locator("strong", has_text="python")).to_be_visible()

        say(page, "hello from the browser")
        [got] = bg.run(inbox.wait(1, 30), timeout=40)
        assert got["text"] == "hello from the browser"
        assert got["user"] == browser_user  # the server-bound identity, not a claim

        # Frames over peerjs's 16 KB json limit travel as chunk frames, both ways.
        big_from_python = "py-big " + '数据 "x" ' * 4000  # ~44 KB of UTF-8
        bg.run(peer.send(big_from_python))
        expect(messages(page)).to_contain_text("py-big", timeout=SLOW)
        expect(messages(page)).to_contain_text(big_from_python[-60:].strip())
        big_from_browser = "browser-big " + "é ✓ " * 6000  # ~42 KB of UTF-8
        say(page, big_from_browser)
        got_big = bg.run(inbox.wait(2, 30), timeout=40)[1]
        assert got_big["text"] == big_from_browser

        # Python leaves: the browser's user list drops it.
        bg.run(peer.leave())
        expect(users(page)).to_have_count(1, timeout=SLOW)
    finally:
        bg.run(peer.leave())


def test_late_joiners_get_history_both_ways(lab: Lab, new_user, bg) -> None:
    room = "interop-history"
    path = room_notebook(lab, "interop-history", room)
    first = new_user()
    open_and_run(first, lab, path)
    expect(users(first)).to_have_count(1, timeout=SLOW)
    first_name = own_name(first)
    say(first, "said before python came")

    # A late Python peer dials the browser and receives its history.
    peer, inbox = join(bg, lab, room)
    try:
        [got] = bg.run(inbox.wait(1, 60), timeout=70)
        assert got["text"] == "said before python came"
        assert got["user"]["display_name"] == first_name
        bg.run(peer.send("python was here"))
        expect(article(first, peer.user["display_name"], "python was here")).to_have_count(
            1, timeout=SLOW
        )

        # A late browser receives both, in the room's order.
        late = new_user()
        open_and_run(late, lab, path)
        expect(users(late)).to_have_count(3, timeout=SLOW)
        expect(article(late, peer.user["display_name"], "python was here")).to_have_count(
            1, timeout=SLOW
        )
        expect(article(late, first_name, "said before python came")).to_have_count(1)
        bodies = messages(late).locator(".nbchat-message-body").all_inner_texts()
        assert [b.strip() for b in bodies] == [m["text"] for m in peer.history]
    finally:
        bg.run(peer.leave())


def test_of_a_browser_and_a_python_peer_the_smaller_id_dials(lab: Lab, new_user, bg) -> None:
    """Both sides follow one rule: the smaller id dials. Python peers join a browser's room
    until one has a smaller id than the browser and one a bigger (ids are the server's
    random ones): the browser calls the bigger, the smaller calls the browser, and each
    link carries messages both ways."""
    room = "interop-dialer"
    path = room_notebook(lab, "interop-dialer", room)
    page = new_user()
    open_and_run(page, lab, path)
    expect(users(page)).to_have_count(1, timeout=SLOW)
    joined: list[tuple[ChatPeer, Inbox]] = []
    try:
        # The first peer learns the browser's id; later ones stay only if on the other side.
        joined.append(join(bg, lab, room))
        first = joined[0][0]

        def browser_id(not_this: str | None = None) -> str:
            def other() -> list[str]:
                gone = (first.id, not_this)
                return [u["peer_id"] for u in first.users if u["peer_id"] not in gone]

            bg.run(until(lambda: len(first.users) == 2 and len(other()) == 1, 60), timeout=70)
            return other()[0]

        browser = browser_id()
        for attempt in range(1, 41):
            if attempt % 10 == 0:
                # An id near either end of the id space would take many tries: the browser
                # opens the notebook again and gets a fresh one.
                open_and_run(page, lab, path)
                browser = browser_id(not_this=browser)
            peer, inbox = join(bg, lab, room)
            if (peer.id < browser) != (first.id < browser):
                joined.append((peer, inbox))
                break
            bg.run(peer.leave())
        assert len(joined) == 2, "the server's ids kept falling on one side of the browser's"
        smaller = next(p for p, _ in joined if p.id < browser)
        bigger = next(p for p, _ in joined if p.id > browser)
        expect(users(page)).to_have_count(len(joined) + 1, timeout=SLOW)
        bg.run(until(lambda: all(browser in p.peers for p, _ in joined), 60), timeout=70)
        for peer in (smaller, bigger):
            link = peer._mesh.connection_to(browser) if peer._mesh else None
            assert link is not None
            # Who dialed whom: one connection per pair, made by the smaller id.
            assert link.originator == (peer is smaller), (peer.id, browser)
            assert [c.peer for c in peer._mesh.connections.values()].count(browser) == 1

        say(page, "hello, dialers")
        for _, inbox in joined:
            [got] = bg.run(inbox.wait(1, 30), timeout=40)
            assert got["text"] == "hello, dialers"
        bg.run(smaller.send("from the smaller id"))
        bg.run(bigger.send("from the bigger id"))
        for peer, text in ((smaller, "from the smaller id"), (bigger, "from the bigger id")):
            expect(article(page, peer.user["display_name"], text)).to_have_count(1, timeout=SLOW)
    finally:
        for peer, _ in joined:
            bg.run(peer.leave())


def test_nbchat_say_reaches_a_browser_user(lab: Lab, new_user) -> None:
    room = "interop-say"
    page = new_user()
    open_and_run(page, lab, room_notebook(lab, "interop-say", room))
    expect(users(page)).to_have_count(1, timeout=SLOW)
    result = subprocess.run(
        [sys.executable, "-m", "nbchat", "say", room, "build *finished*", "--timeout", "30"],
        env={"NBCHAT_SERVER": lab.url, "JUPYTER_TOKEN": lab.token, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr
    assert "delivered to 1 peer" in result.stderr
    expect(messages(page).locator("em", has_text="finished")).to_be_visible(timeout=SLOW)


@pytest.mark.skipif(INSIDE, reason="already inside the namespace")
@needs_loopback_netns
@pytest.mark.timeout(240)
def test_interop_with_only_loopback() -> None:
    """The talk test again where only ``lo`` exists: Chromium offers 127.0.0.1 (given
    camera/microphone permission and --allow-loopback-in-peer-connection) and the
    Python peer adds its own loopback candidate."""
    run_in_loopback_netns(__file__, "-k", "see_each_other", timeout=220)
