"""Rooms with a passphrase, as users see them: a lock in the header, a clear notice for a
wrong passphrase, and no way into the mesh without the right one (browsers and Python)."""

from __future__ import annotations

from playwright.sync_api import Locator, Page, expect
from tests.support.browser import open_and_run, open_notebook
from tests.support.lab import Lab
from tests.support.peers import Inbox, until
from tests.support.widgets import (
    SLOW,
    bodies,
    code_notebook,
    messages,
    own_name,
    put_notebook,
    say,
    users,
)

from nbchat.peer import ChatPeer


def sealed_notebook(lab: Lab, name: str, room: str, passphrase: str) -> str:
    return put_notebook(
        lab,
        f"notebooks/{name}.ipynb",
        code_notebook(
            "import nbchat", f"chat = nbchat.Chat({room!r}, passphrase={passphrase!r})\nchat"
        ),
    )


def status(page: Page) -> Locator:
    return page.get_by_role("status", name="Chat status")


def lock(page: Page) -> Locator:
    return page.get_by_label("Protected by a passphrase")


def test_same_passphrase_chats_and_a_wrong_one_is_told_and_kept_out(lab: Lab, new_user) -> None:
    room = "sealed-trio"
    # Ann types the passphrase into the kernel's prompt (%chat --passphrase); it is never in
    # the notebook. Bob passes it in code; Cat has another one.
    ann_nb = put_notebook(
        lab,
        "notebooks/sealed-ann.ipynb",
        code_notebook("%load_ext nbchat", f"chat = %chat {room} --passphrase"),
    )
    ann = new_user()
    open_notebook(ann, lab, ann_nb)
    ann.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    prompt = ann.locator(".jp-Stdin-input")
    prompt.fill("tea at five", timeout=SLOW)
    prompt.press("Enter")
    expect(lock(ann)).to_be_visible(timeout=SLOW)
    expect(lock(ann)).to_have_text("🔒 passphrase")

    bob = new_user()
    open_and_run(bob, lab, sealed_notebook(lab, "sealed-bob", room, "tea at five"))
    expect(status(ann)).to_have_text("Connected to 1 peer", timeout=SLOW)
    expect(status(bob)).to_have_text("Connected to 1 peer", timeout=SLOW)
    say(ann, "sealed hello from ann")
    expect(messages(bob)).to_contain_text("sealed hello from ann", timeout=SLOW)

    cat = new_user()
    open_and_run(cat, lab, sealed_notebook(lab, "sealed-cat", room, "coffee at six"))
    expect(users(cat)).to_have_count(3, timeout=SLOW)  # the server still shows who is here
    cat_notice = cat.get_by_role("status", name="Chat notice")
    expect(cat_notice).to_contain_text("wrong passphrase?", timeout=SLOW)
    expect(cat_notice).to_contain_text("someone without this room's passphrase tried to connect")
    # Those already in the room are told too, with the newcomer's name.
    cat_name = own_name(cat)
    expect(ann.get_by_role("status", name="Chat notice")).to_contain_text(cat_name, timeout=SLOW)
    say(ann, "not for cat")
    expect(messages(bob)).to_contain_text("not for cat", timeout=SLOW)
    expect(status(ann)).to_have_text("Connected to 1 peer")
    expect(status(cat)).to_have_text("Connected to 0 peers")
    assert not any("sealed hello" in b or "not for cat" in b for b in bodies(cat))


def test_browser_and_python_peer_with_the_passphrase_chat(lab: Lab, new_user, bg) -> None:
    room = "sealed-interop"

    async def join() -> tuple[ChatPeer, Inbox]:
        peer = ChatPeer(lab.url, room, token=lab.token, passphrase="tea at five")
        await peer.join()
        return peer, Inbox(peer)

    peer, inbox = bg.run(join())
    try:
        page = new_user()
        open_and_run(page, lab, sealed_notebook(lab, "sealed-interop", room, "tea at five"))
        expect(lock(page)).to_be_visible(timeout=SLOW)
        expect(status(page)).to_have_text("Connected to 1 peer", timeout=SLOW)
        bg.run(until(lambda: len(peer.peers) == 1, 60), timeout=70)
        bg.run(peer.send("sealed hello from python"))
        expect(messages(page)).to_contain_text("sealed hello from python", timeout=SLOW)
        say(page, "sealed hello from the browser")
        [got] = bg.run(inbox.wait(1, 30), timeout=40)
        assert got["text"] == "sealed hello from the browser"
        assert peer.rejected == []
    finally:
        bg.run(peer.leave())
