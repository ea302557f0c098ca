"""Off the record (#12) as two users see it: real JupyterLab, real Chromium, real WebRTC.
A takes the room off the record; B (and C, who joins later) sees the banner; what they
say shows on screen but reaches neither browser's IndexedDB nor the kernel's
``chat.messages``; back on the record, storing resumes. Pages reloaded once nobody holds
what was said off the record show the rest once each, and their history sync settles."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect
from tests.support.browser import open_and_run
from tests.support.lab import Lab, make_lab
from tests.support.widgets import (
    SLOW,
    article,
    connected,
    kernel_client,
    kernel_eval,
    messages,
    own_name,
    room_notebook,
    say,
    screenshot,
    set_theme,
    stored_entries,
    users,
)

#: Counts the chat frames a page receives on its data channels (init script: it wraps every
#: RTCPeerConnection the page makes, from before any page script runs).
COUNT_CHAT_FRAMES = """(() => {
    const counts = window.__nbchatReceived = {sync: 0, beyond: 0, history: 0, entries: 0};
    const decoder = new TextDecoder();
    const count = (text) => {
        let frame;
        try { frame = JSON.parse(text); } catch { return; }
        if (frame === null || typeof frame !== 'object') return;
        if (frame.type === 'sync') {
            counts.sync += 1;
            if (frame.beyond) counts.beyond += 1;
        }
        if (frame.type === 'history' && Array.isArray(frame.messages)) {
            counts.history += 1;
            counts.entries += frame.messages.length;
        }
    };
    const watch = (channel) => channel.addEventListener('message', ({data}) => {
        if (typeof data === 'string') count(data);
        else if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) {
            count(decoder.decode(data));
        }
        else if (data instanceof Blob) data.text().then(count);
    });
    const Native = window.RTCPeerConnection;
    window.RTCPeerConnection = function (...args) {
        const pc = new Native(...args);
        pc.addEventListener('datachannel', ({channel}) => watch(channel));
        const create = pc.createDataChannel.bind(pc);
        pc.createDataChannel = (...more) => {
            const channel = create(...more);
            watch(channel);
            return channel;
        };
        return pc;
    };
    window.RTCPeerConnection.prototype = Native.prototype;
    Object.setPrototypeOf(window.RTCPeerConnection, Native);
})()"""


def received(page: Page) -> dict[str, int]:
    return dict(page.evaluate("() => ({...window.__nbchatReceived})"))


def stored(page: Page) -> list[str]:
    """The texts of the page's local copy (a switch shows as ``record:on``)."""
    return [
        f"record:{str(m['on']).lower()}" if m.get("kind") == "record" else m.get("text")
        for m in stored_entries(page)
    ]


def wait_stored(page: Page, text: str) -> list[str]:
    """The page's local copy once it holds ``text`` (writes are batched, in order)."""
    deadline = time.monotonic() + 30
    while text not in (texts := stored(page)):
        assert time.monotonic() < deadline, f"{text!r} never reached IndexedDB: {texts}"
        time.sleep(0.2)
    return texts


def kernel_until(kernel: Any, expression: str, predicate: Any) -> Any:
    deadline = time.monotonic() + 30
    while not predicate(value := kernel_eval(kernel, expression)):
        assert time.monotonic() < deadline, f"the kernel's {expression} stayed {value!r}"
        time.sleep(0.2)  # the kernel's copy is mirrored when things are quiet: poll it
    return value


def toggle(page: Page) -> Locator:
    return page.get_by_role("button", name="Off the record")


def banner(page: Page) -> Locator:
    return page.get_by_role("status", name="Off the record")


def test_off_the_record_keeps_nothing_in_the_browser_or_the_kernel(lab: Lab, new_user) -> None:
    path = room_notebook(lab, "e2e-off-the-record", "e2e-off-the-record-room")
    a, b = new_user(), new_user()
    open_and_run(a, lab, path)
    open_and_run(b, lab, path)
    for page in (a, b):
        connected(page, present=2)
    name_a, name_b = own_name(a), own_name(b)
    say(a, "Kept before")
    expect(article(b, name_a, "Kept before")).to_be_visible(timeout=SLOW)
    for page in (a, b):
        wait_stored(page, "Kept before")
        expect(banner(page)).to_have_count(0)

    # A takes the room off the record: everyone sees the banner, the pressed switch and a
    # line in the log saying who did it.
    expect(toggle(a)).to_have_attribute("aria-pressed", "false")
    toggle(a).click()
    for page in (a, b):
        expect(banner(page)).to_be_visible(timeout=SLOW)
        expect(banner(page)).to_contain_text(f"{name_a} turned it off")
        expect(toggle(page)).to_have_attribute("aria-pressed", "true")
        expect(
            messages(page).get_by_role("article", name=f"{name_a} took the chat off the record")
        ).to_be_visible()

    say(a, "Secret plan from A")
    say(b, "Secret answer from B")
    for page in (a, b):
        for author, text in ((name_a, "Secret plan from A"), (name_b, "Secret answer from B")):
            shown = messages(page).get_by_role(
                "article", name=f"Message from {author}, off the record"
            )
            expect(shown.filter(has_text=text)).to_be_visible(timeout=SLOW)

    # The kernel follows the switch, and its copy holds none of it.
    kernel = kernel_client(lab, path)
    try:
        kernel_until(kernel, "chat.is_off_the_record", lambda off: off is True)

        # Someone who joins now sees the banner too, and what was said (from the others'
        # memory), marked.
        c = new_user()
        open_and_run(c, lab, path)
        expect(users(c)).to_have_count(3, timeout=SLOW)
        expect(banner(c)).to_be_visible(timeout=SLOW)
        expect(
            messages(c).get_by_role("article", name=f"Message from {name_a}, off the record")
        ).to_contain_text("Secret plan from A", timeout=SLOW)

        # What users see, in both themes.
        screenshot(a, "off-the-record.png")
        set_theme(a, "JupyterLab Dark")
        expect(banner(a)).to_be_visible()
        screenshot(a, "off-the-record-dark.png")
        set_theme(a, "JupyterLab Light")

        # B puts it back on the record, from the keyboard; storing resumes.
        toggle(b).focus()
        b.keyboard.press("Enter")
        for page in (a, b, c):
            expect(banner(page)).to_have_count(0, timeout=SLOW)
            expect(toggle(page)).to_have_attribute("aria-pressed", "false")
            expect(
                messages(page).get_by_role(
                    "article", name=f"{name_b} put the chat back on the record"
                )
            ).to_be_visible()
        say(a, "Kept after")
        kernel_until(kernel, "chat.is_off_the_record", lambda off: off is False)
        texts = kernel_until(
            kernel, "[m['text'] for m in chat.messages]", lambda t: "Kept after" in t
        )
        assert texts == ["Kept before", "Kept after"]
    finally:
        kernel.stop_channels()

    for page in (a, b, c):
        held = wait_stored(page, "Kept after")
        assert not any("Secret" in t for t in held), held
        assert "Kept before" in held and "record:false" in held and "record:true" in held
        # …while the screen still shows what was said off the record.
        expect(article(page, name_a, "Secret plan from A")).to_be_visible()
        expect(article(page, name_b, "Secret answer from B")).to_be_visible()


#: Seconds between repair rounds in the reload test's own Lab (the server's repair_interval;
#: 15 s by default, which made the test wait ~40 s more for the same two rounds).
REPAIR_S = 3.0


@pytest.fixture(scope="module")
def quick_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A Lab whose peers run a repair round every REPAIR_S seconds."""
    server = make_lab(tmp_path_factory.mktemp("otr-lab"), {"repair_interval": REPAIR_S})
    server.start()
    yield server
    server.stop()


def test_the_server_sets_the_repair_interval(quick_lab: Lab) -> None:
    """What the reload test relies on: the session config carries the server's interval."""
    request = urllib.request.Request(
        f"{quick_lab.url}nbchat/session?room=x",
        headers={"Authorization": f"token {quick_lab.token}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        config = json.loads(response.read())
    assert config["repair_interval"] == REPAIR_S * 1000, config


def test_reloaded_pages_show_what_was_kept_once_and_their_sync_settles(
    quick_lab: Lab, new_user
) -> None:
    """A and B talk on the record, off it, and on it again; then both pages reload while
    nobody else is in the room, so what was said off the record is gone. Their restored
    copies have gaps where it was: each shows every kept message once, neither IndexedDB
    holds a word said off the record, and over two repair rounds neither page is sent any
    history (before ``beyond``, each round re-sent every kept message after a gap)."""
    path = room_notebook(quick_lab, "e2e-otr-reload", "e2e-otr-reload-room")
    a, b = new_user(), new_user()
    for page in (a, b):
        page.context.add_init_script(COUNT_CHAT_FRAMES)
        open_and_run(page, quick_lab, path)
    for page in (a, b):
        connected(page)
    name_a, name_b = own_name(a), own_name(b)
    say(a, "Kept before")
    expect(article(b, name_a, "Kept before")).to_be_visible(timeout=SLOW)
    toggle(a).click()
    expect(banner(b)).to_be_visible(timeout=SLOW)
    say(a, "Secret one from A")
    say(b, "Secret from B")
    say(a, "Secret two from A")
    for page in (a, b):
        for text in ("Secret one from A", "Secret from B", "Secret two from A"):
            expect(messages(page).get_by_text(text)).to_be_visible(timeout=SLOW)
    toggle(a).click()
    for page in (a, b):
        expect(banner(page)).to_have_count(0, timeout=SLOW)
    say(a, "Kept after from A")
    say(b, "Kept after from B")
    for page in (a, b):
        expect(article(page, name_b, "Kept after from B")).to_be_visible(timeout=SLOW)
        expect(article(page, name_a, "Kept after from A")).to_be_visible(timeout=SLOW)
        wait_stored(page, "Kept after from A")
        wait_stored(page, "Kept after from B")

    # Everyone leaves: A closes the notebook's page, B reloads alone, A comes back in a new
    # page of the same browser. Nobody holds what was said off the record any more.
    context_a = a.context
    a.close()
    b.reload()
    open_and_run(b, quick_lab, path)
    expect(article(b, name_a, "Kept after from A")).to_be_visible(timeout=SLOW)
    a = context_a.new_page()
    open_and_run(a, quick_lab, path)
    kept = {name_a: ("Kept before", "Kept after from A"), name_b: ("Kept after from B",)}
    for page in (a, b):
        connected(page)
        for author, texts in kept.items():
            for text in texts:
                expect(article(page, author, text)).to_be_visible(timeout=SLOW)

    # From here on, count what each page is sent over two repair rounds (every REPAIR_S).
    for page in (a, b):
        page.evaluate(
            "() => { for (const k in window.__nbchatReceived) window.__nbchatReceived[k] = 0; }"
        )
    deadline = time.monotonic() + 3 * REPAIR_S + 30
    while min(received(page)["sync"] for page in (a, b)) < 2:
        assert time.monotonic() < deadline, [received(page) for page in (a, b)]
        time.sleep(0.5)
    # Data channels are ordered: once each page shows the other's next live message, any
    # history answered to those syncs has arrived before it.
    say(a, "Settled from A")
    say(b, "Settled from B")
    expect(article(b, name_a, "Settled from A")).to_be_visible(timeout=SLOW)
    expect(article(a, name_b, "Settled from B")).to_be_visible(timeout=SLOW)
    for page in (a, b):
        counts = received(page)
        assert counts["entries"] == 0, f"history re-sent to a reloaded page: {counts}"
        assert counts["sync"] >= 2 and counts["beyond"] >= 2, counts
        for author, texts in kept.items():
            for text in texts:
                expect(article(page, author, text)).to_have_count(1)
        expect(messages(page).get_by_text("Secret", exact=False)).to_have_count(0)
        held = stored(page)
        assert not any("Secret" in t for t in held), held
        assert held.count("Kept before") == 1 and held.count("Kept after from A") == 1, held
