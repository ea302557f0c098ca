"""Faults with real processes: a Jupyter server restart mid-chat, peers that vanish without
goodbye, a data link cut underneath two peers, and a page reload.

Each test runs its own JupyterLab (``alive_timeout`` 6 s) so restarting or starving it
never disturbs the session-wide ``lab``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from tests.support.browser import open_and_run
from tests.support.lab import Lab, make_lab
from tests.support.loop import BackgroundLoop
from tests.support.peers import until
from tests.support.widgets import (
    code_notebook,
    messages,
    own_name,
    put_notebook,
    say,
    users,
)

from nbchat.peer import ChatPeer

ALIVE_TIMEOUT = 6.0
WAIT = 45_000


@pytest.fixture
def fault_lab(tmp_path: Path) -> Iterator[Lab]:
    server = make_lab(tmp_path, {"alive_timeout": ALIVE_TIMEOUT})
    server.start()
    yield server
    server.stop()


# Keeps every RTCPeerConnection the page makes, so a test can count links or cut one.
TRACK_PEER_CONNECTIONS = """(() => {
    const Native = window.RTCPeerConnection;
    window.__nbchatPcs = [];
    window.RTCPeerConnection = function (...args) {
        const pc = new Native(...args);
        window.__nbchatPcs.push(pc);
        return pc;
    };
    window.RTCPeerConnection.prototype = Native.prototype;
    Object.setPrototypeOf(window.RTCPeerConnection, Native);
})()"""


def tracked_user(new_user) -> Page:  # noqa: ANN001 - the new_user fixture
    page = new_user()
    page.add_init_script(TRACK_PEER_CONNECTIONS)
    return page


def live_links(page: Page) -> list[int]:
    """Indexes of the page's RTCPeerConnections that are connected now."""
    script = (
        "() => window.__nbchatPcs.flatMap((pc, i) => pc.connectionState === 'connected' ? [i] : [])"
    )
    return list(page.evaluate(script))


def wait_for_new_link(page: Page, old: list[int], timeout: float = WAIT) -> None:
    """Wait until the page's live links are as many as ``old`` but none of them is old: each
    lost link was noticed and replaced. (The status may show the gap for only a moment.)"""
    page.wait_for_function(
        """(old) => {
            const live = window.__nbchatPcs.flatMap(
                (pc, i) => pc.connectionState === 'connected' ? [i] : []);
            return live.length === old.length && live.every((i) => !old.includes(i));
        }""",
        arg=old,
        timeout=timeout,
    )


def room_notebook(lab: Lab, room: str) -> str:
    return put_notebook(
        lab, f"notebooks/{room}.ipynb", code_notebook("%load_ext nbchat", f"chat = %chat {room}")
    )


def open_room(lab: Lab, room: str, *pages: Page) -> str:
    """Open the room's notebook in each page and run it; returns the notebook's path."""
    path = room_notebook(lab, room)
    for page in pages:
        open_and_run(page, lab, path)
    return path


def python_peer(bg: BackgroundLoop, lab: Lab, room: str) -> ChatPeer:
    peer = ChatPeer(lab.url, room, token=lab.token)
    bg.run(peer.join())
    return peer


def status(page: Page):  # noqa: ANN201 - a Locator
    return page.get_by_role("status", name="Chat status")


def connected_to(count: int) -> re.Pattern[str]:
    """The status line once signaling is up and ``count`` links are open (no outage note)."""
    return re.compile(rf"^Connected to {count} peers?$")


def texts(page: Page) -> list[str]:
    return [t.strip() for t in messages(page).locator(".nbchat-message-body").all_inner_texts()]


def user_names(page: Page) -> list[str]:
    return sorted(n.strip() for n in users(page).locator(".nbchat-user-name").all_inner_texts())


def dismiss_server_error_dialogs(page: Page) -> None:
    """Close JupyterLab's own "Server Connection Error" modal whenever it shows up (it blocks
    typing; a user would close it too). It is JupyterLab's, not the chat's."""
    dialog = page.locator(".jp-Dialog").filter(has_text="Server Connection Error")
    page.add_locator_handler(
        dialog, lambda d: d.get_by_role("button", name="Close").click(), no_wait_after=True
    )


def test_server_restart_mid_chat(fault_lab: Lab, new_user, bg: BackgroundLoop) -> None:
    lab = fault_lab
    room = "fault-restart"
    a, b = tracked_user(new_user), tracked_user(new_user)
    open_room(lab, room, a, b)
    peer = python_peer(bg, lab, room)
    try:
        for page in (a, b):
            expect(users(page)).to_have_count(3, timeout=WAIT)
            expect(status(page)).to_have_text(connected_to(2), timeout=WAIT)
        bg.run(until(lambda: len(peer.peers) == 2 and len(peer.users) == 3, 30), timeout=40)
        names = user_names(a)
        assert user_names(b) == names
        name_a, name_b = own_name(a), own_name(b)
        say(a, "before the restart")
        expect(messages(b)).to_contain_text("before the restart", timeout=WAIT)

        live = {page: live_links(page) for page in (a, b)}
        assert all(len(ids) == 2 for ids in live.values()), live
        for page in (a, b):
            dismiss_server_error_dialogs(page)
        lab.stop()
        stopped = time.monotonic()
        # The pages notice: still chatting peer to peer, but the server is unreachable.
        for page in (a, b):
            expect(status(page)).to_contain_text("server unreachable", timeout=WAIT)
        outage = [
            "during the outage from A",
            "during the outage from B",
            "during the outage from python",
        ]
        say(a, outage[0])
        say(b, outage[1])
        bg.run(peer.send(outage[2]))
        # The data channels outlive the server: messages still flow directly.
        for page in (a, b):
            for text in outage:
                expect(messages(page)).to_contain_text(text, timeout=WAIT)

        lab.start()
        started = time.monotonic()
        # Everyone reconnects by themselves; presence and the mesh are whole again.
        for page in (a, b):
            expect(status(page)).to_have_text(connected_to(2), timeout=WAIT)
            expect(users(page)).to_have_count(3, timeout=WAIT)
        bg.run(until(lambda: len(peer.peers) == 2 and len(peer.users) == 3, 45), timeout=50)
        print(
            f"server down {started - stopped:.1f}s; "
            f"everyone back {time.monotonic() - started:.1f}s after it was"
        )
        assert user_names(a) == names and user_names(b) == names
        # The links that carried the outage's messages were kept, not torn down and redialed
        # because the first roster after the restart listed only who was back so far.
        for page in (a, b):
            assert live_links(page) == live[page]
        assert own_name(a) == name_a and own_name(b) == name_b

        say(a, "after the restart from A")
        say(b, "after the restart from B")
        bg.run(peer.send("after the restart from python"))
        for page in (a, b):
            expect(messages(page)).to_contain_text("after the restart from python", timeout=WAIT)
        expected = ["before the restart", *outage]
        for page in (a, b):
            got = texts(page)
            for text in expected + ["after the restart from A", "after the restart from B"]:
                assert got.count(text) == 1, (text, got)
        order_a = texts(a)
        assert texts(b) == order_a
        bg.run(until(lambda: len(peer.history) == len(order_a), 20), timeout=30)
        assert [m["text"] for m in peer.history] == order_a
    finally:
        bg.run(peer.leave())


def join_subprocess(lab: Lab, room: str) -> subprocess.Popen[bytes]:
    """``nbchat join ROOM`` in its own process, its stdin held open so it stays."""
    return subprocess.Popen(
        [sys.executable, "-m", "nbchat", "join", room],
        env={**os.environ, "NBCHAT_SERVER": lab.url, "JUPYTER_TOKEN": lab.token},
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_vanished_peers_leave_every_users_list_and_nobody_stalls(
    fault_lab: Lab, new_user, bg: BackgroundLoop
) -> None:
    """A Python peer SIGKILLed, another frozen (SIGSTOP: its sockets stay open but silent),
    a browser context closed without goodbye: each leaves everyone's Users list within
    alive_timeout, and the rest keep talking meanwhile."""
    lab = fault_lab
    room = "fault-vanish"
    a, b = new_user(), new_user()
    open_room(lab, room, a, b)
    witness = python_peer(bg, lab, room)
    killed, frozen = join_subprocess(lab, room), join_subprocess(lab, room)
    try:
        for page in (a, b):
            expect(users(page)).to_have_count(5, timeout=WAIT)
            expect(status(page)).to_have_text(connected_to(4), timeout=WAIT)
        bg.run(until(lambda: len(witness.peers) == 4, 30), timeout=40)

        # Gone without a word: no LEAVE, no socket close from a frozen process.
        killed.send_signal(signal.SIGKILL)
        frozen.send_signal(signal.SIGSTOP)
        vanished = time.monotonic()
        # Nobody's chat stalls while the server has not noticed yet.
        say(a, "still talking while two peers vanish")
        expect(messages(b)).to_contain_text("still talking while two peers", timeout=5_000)
        bg.run(
            until(
                lambda: (
                    "still talking while two peers vanish" in [m["text"] for m in witness.history]
                ),
                5,
            ),
            timeout=10,
        )
        within = ALIVE_TIMEOUT * 1000 + 2_000  # eviction runs on the server's tick
        for page in (a, b):
            expect(users(page)).to_have_count(3, timeout=within)
        bg.run(until(lambda: len(witness.users) == 3, 3), timeout=5)
        assert time.monotonic() - vanished < ALIVE_TIMEOUT + 2
        expect(status(a)).to_have_text(connected_to(2), timeout=WAIT)
        say(b, "after they went")
        expect(messages(a)).to_contain_text("after they went", timeout=5_000)

        # A browser closed without goodbye.
        name_b = own_name(b)
        b.context.close()
        closed = time.monotonic()
        expect(users(a)).to_have_count(2, timeout=within)
        expect(users(a).filter(has_text=name_b)).to_have_count(0)
        bg.run(until(lambda: len(witness.users) == 2, 3), timeout=5)
        assert time.monotonic() - closed < ALIVE_TIMEOUT + 2
        bg.run(witness.send("and still here"))
        expect(messages(a)).to_contain_text("and still here", timeout=5_000)
        say(a, "me too")
        bg.run(until(lambda: "me too" in [m["text"] for m in witness.history], 5), timeout=10)
    finally:
        for proc in (killed, frozen):
            proc.kill()  # SIGKILL also ends a stopped process
            proc.wait(10)
        bg.run(witness.leave())


def test_reload_comes_back_as_the_same_user_without_a_ghost(
    fault_lab: Lab, new_user, bg: BackgroundLoop
) -> None:
    lab = fault_lab
    room = "fault-reload"
    a, b = new_user(), new_user()
    path = open_room(lab, room, a, b)
    witness = python_peer(bg, lab, room)
    try:
        for page in (a, b):
            expect(users(page)).to_have_count(3, timeout=WAIT)
            expect(status(page)).to_have_text(connected_to(2), timeout=WAIT)
        names = user_names(b)
        name_a = own_name(a)
        say(a, "A before the reload")
        say(b, "B before the reload")
        bg.run(witness.send("python before the reload"))
        expect(messages(a)).to_contain_text("python before the reload", timeout=WAIT)
        expect(messages(b)).to_contain_text("A before the reload", timeout=WAIT)
        before = texts(b)
        old_id = next(u["peer_id"] for u in witness.users if u["user"]["display_name"] == name_a)

        a.reload()
        # While A is away the others talk on; A must get it on its return.
        say(b, "B while A reloads")
        bg.run(witness.send("python while A reloads"))
        open_and_run(a, lab, path)

        assert own_name(a) == name_a  # the same Jupyter identity
        for page in (a, b):
            expect(users(page)).to_have_count(3, timeout=WAIT)
            expect(status(page)).to_have_text(connected_to(2), timeout=WAIT)
            expect(messages(page)).to_contain_text("python while A reloads", timeout=WAIT)
            expect(messages(page)).to_contain_text("B while A reloads", timeout=WAIT)
        # No ghost of the old page anywhere: one entry per user with one connection
        # each (a ghost would show as a second connection of A), the old id gone.
        for page in (a, b):
            assert user_names(page) == names
            assert page.locator(".nbchat-user-connections").count() == 0
        bg.run(until(lambda: len(witness.users) == 3 and len(witness.peers) == 2, 20), timeout=30)
        assert old_id not in {u["peer_id"] for u in witness.users}

        say(a, "A after the reload")
        expect(messages(b)).to_contain_text("A after the reload", timeout=WAIT)
        bg.run(
            until(lambda: "A after the reload" in [m["text"] for m in witness.history], 20),
            timeout=30,
        )
        expect(messages(a)).to_contain_text("A after the reload", timeout=WAIT)
        # Nothing lost, nothing twice, one order everywhere (the two sent during the reload
        # may order either way: their clocks can tie).
        order = texts(b)
        assert order[: len(before)] == before
        assert sorted(order[len(before) :]) == sorted(
            ["B while A reloads", "python while A reloads", "A after the reload"]
        )
        assert texts(a) == order
        assert [m["text"] for m in witness.history] == order
    finally:
        bg.run(witness.leave())


def cut_links(page: Page) -> int:
    """Close every connected RTCPeerConnection of the page underneath peerjs and the chat."""
    return int(
        page.evaluate("""() => {
        const live = window.__nbchatPcs.filter((pc) => pc.connectionState === 'connected');
        for (const pc of live) pc.close();
        return live.length;
    }""")
    )


def test_a_cut_link_between_two_browsers_is_redialed_and_the_gap_filled(
    fault_lab: Lab, new_user
) -> None:
    lab = fault_lab
    room = "fault-cut-browsers"
    a, b = tracked_user(new_user), tracked_user(new_user)
    open_room(lab, room, a, b)
    for page in (a, b):
        expect(status(page)).to_have_text(connected_to(1), timeout=WAIT)
    say(a, "before the cut")
    expect(messages(b)).to_contain_text("before the cut", timeout=WAIT)
    old_a, old_b = live_links(a), live_links(b)

    assert cut_links(a) == 1
    # Both keep writing into their own logs while the link is down or being replaced ...
    say(a, "A while the link is down")
    say(b, "B while the link is down")
    # ... both ends notice (signaling stays up all along), one of them dials again, and the
    # new link's sync fills the gap both ways.
    wait_for_new_link(a, old_a)
    wait_for_new_link(b, old_b)
    for page in (a, b):
        expect(status(page)).to_have_text(connected_to(1), timeout=WAIT)
    expect(messages(b)).to_contain_text("A while the link is down", timeout=WAIT)
    expect(messages(a)).to_contain_text("B while the link is down", timeout=WAIT)
    say(b, "after the redial")
    expect(messages(a)).to_contain_text("after the redial", timeout=WAIT)
    order = texts(a)
    assert texts(b) == order
    assert sorted(order) == sorted(
        [
            "before the cut",
            "A while the link is down",
            "B while the link is down",
            "after the redial",
        ]
    )


def blackhole(connection: Any) -> None:
    """Silently drop every packet of one aiortc connection, both ways: a network path that
    dies without a word (no close, no SCTP abort), as when Wi-Fi goes away."""
    ice = connection.pc.sctp.transport.transport._connection  # aioice Connection
    for protocol in ice._protocols:
        protocol.datagram_received = lambda data, addr: None
        protocol.transport.sendto = lambda *args, **kwargs: None


def test_a_link_to_a_python_peer_cut_or_gone_silent_is_redialed_and_the_gap_filled(
    fault_lab: Lab, new_user, bg: BackgroundLoop
) -> None:
    lab = fault_lab
    room = "fault-cut-python"
    a = tracked_user(new_user)
    open_room(lab, room, a)
    peer = python_peer(bg, lab, room)

    def python_has(text: str) -> None:
        bg.run(until(lambda: text in [m["text"] for m in peer.history], 30), timeout=40)

    try:
        expect(status(a)).to_have_text(connected_to(1), timeout=WAIT)
        bg.run(until(lambda: len(peer.peers) == 1, 30), timeout=40)

        # 1. The Python peer's RTCPeerConnection is closed underneath its DataConnection.
        [connection] = bg.run(_open_connections(peer))
        old = live_links(a)
        bg.run(connection.pc.close())
        say(a, "A after the cut")
        bg.run(peer.send("python after the cut"))
        wait_for_new_link(a, old)
        expect(status(a)).to_have_text(connected_to(1), timeout=WAIT)
        expect(messages(a)).to_contain_text("python after the cut", timeout=WAIT)
        python_has("A after the cut")

        # 2. The path goes silent: nothing is closed, packets just stop.
        [connection] = bg.run(_open_connections(peer))
        old = live_links(a)
        bg.run(_call(blackhole, connection))
        silent = time.monotonic()
        say(a, "A into the silence")
        bg.run(peer.send("python into the silence"))
        # Chrome calls the path "disconnected" after some seconds of silence (never "failed"
        # within 45 s, so peerjs alone never closed it); the widget gives up on it 3 s later
        # and dials again itself, whichever id is smaller: the Python side hears nothing.
        wait_for_new_link(a, old)
        assert time.monotonic() - silent < 25
        expect(status(a)).to_have_text(connected_to(1), timeout=WAIT)
        expect(messages(a)).to_contain_text("python into the silence", timeout=WAIT)
        python_has("A into the silence")
        order = texts(a)
        bg.run(until(lambda: len(peer.history) == len(order), 20), timeout=30)
        assert [m["text"] for m in peer.history] == order
        assert sorted(order) == sorted(
            [
                "A after the cut",
                "python after the cut",
                "A into the silence",
                "python into the silence",
            ]
        )
    finally:
        bg.run(peer.leave())


async def _open_connections(peer: ChatPeer) -> list[Any]:
    return list(peer._mesh.open_connections()) if peer._mesh is not None else []


async def _call(function: Any, *args: Any) -> None:
    function(*args)  # on the peer's loop, where its transports live
