"""Hostile peers against a real browser user: XSS payloads, forged authors and ids, floods and
malformed data-channel frames. Each test asserts what the receiving user sees (and what their
page did not do: run script, open a dialog, or even try to reach another machine)."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import Page, expect
from tests.support.browser import open_and_run
from tests.support.lab import Lab
from tests.support.loop import BackgroundLoop
from tests.support.peers import Inbox, connection_to, signed, until, vouch
from tests.support.widgets import (
    SLOW,
    article,
    code_notebook,
    kernel_client,
    kernel_eval,
    message_box,
    messages,
    put_notebook,
    say,
    users,
)

from nbchat.peer import ChatPeer
from nbchat.peer.dataconnection import DataConnection

# A documentation-range address (RFC 5737): nothing answers there, and the route below
# aborts every request to it before it leaves the machine anyway.
TRACKER = "198.51.100.7"
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
PWN = "window.__pwned=1"

XSS_CORPUS = [
    f"<script>{PWN};alert(1)</script>",
    f'<img src=x onerror="{PWN};alert(1)">',
    f'<svg onload="{PWN}"><circle r=1></svg>',
    f"<svg><script>{PWN}</script></svg>",
    f"<math><mtext><table><mglyph><style>"
    f'<img src=x onerror="{PWN}"></style></mglyph></table></mtext></math>',
    f'<math><mi xlink:href="javascript:{PWN}">x</mi></math>',
    f'<svg><a xlink:href="javascript:{PWN}"><text>x</text></a></svg>',
    f'<a href="javascript:{PWN}">raw js link</a>',
    f'<a href="&#106;avascript:{PWN}">entity js link</a>',
    f'<a href="  javascript:{PWN}">spaced js link</a>',
    f"[md js link](javascript:{PWN})",
    f"[md entity link](&#106;avascript:{PWN})",
    f"[md mixed case](JaVaScRiPt:{PWN})",
    f"[md tab](java\tscript:{PWN})",
    f"[reference js][r]\n\n[r]: javascript:{PWN}",
    f"autolink <javascript:{PWN}>",
    "[data link](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[vbscript link](vbscript:msgbox(1))",
    f"tracker ![pixel](http://{TRACKER}/t.png)",
    "data image ![svg](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    f"reference tracker ![pixel][t]\n\n[t]: http://{TRACKER}/ref.png",
    f'<img src="http://{TRACKER}/raw.png">',
    f'<img srcset="http://{TRACKER}/s.png 1x">',
    f'<iframe src="http://{TRACKER}/frame"></iframe>',
    f'<object data="http://{TRACKER}/o.swf"></object><embed src="http://{TRACKER}/e.swf">',
    f'<form action="http://{TRACKER}/f">'
    f'<input name=q autofocus onfocus="{PWN}"><button>go</button></form>',
    f'<meta http-equiv="refresh" content="0;url=http://{TRACKER}/meta">',
    f"<style>@import url(http://{TRACKER}/s.css); body{{display:none}}</style>",
    f'<div style="background:url(http://{TRACKER}/bg.png);position:fixed;inset:0">cover</div>',
    f'<link rel=stylesheet href="http://{TRACKER}/l.css"><base href="http://{TRACKER}/">',
    f'<video src=x onerror="{PWN}"></video><audio src=x onerror="{PWN}"></audio>',
    f'<details open ontoggle="{PWN}">d</details>',
    f'<noscript><p title="</noscript><img src=x onerror={PWN}>">',
    f"<template><img src=x onerror={PWN}></template>",
    f'<a href="http://{TRACKER}/" ping="http://{TRACKER}/ping">ping link</a>',
    f'[title trick](https://example.org "t\\" onmouseover=\\"{PWN}")',
    f'**bold** <b onmouseover="{PWN}">hover</b>',
    f"inline code `<img src=x onerror={PWN}>`",
    f"fenced\n```html\n<script>{PWN}</script>\n```",
    "kept links [docs](https://example.org/docs) and <mailto:someone@example.org>",
    "bidi \u202egnp.exe\u202c zero\u200bwidth e\u0301 😀",
]

# What is allowed to remain in a rendered message body.
SCAN_MESSAGES = """async (expected) => {
    const log = document.querySelector('[role="log"][aria-label="Messages"]');
    const frame = () => new Promise(
        (resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
    const seen = {};
    const forbidden = 'script,img,svg,math,iframe,frame,object,embed,form,input,button,textarea,'
        + 'select,style,link,meta,base,video,audio,source,picture,template,noscript,details';
    const banned = ['style', 'srcset', 'ping', 'formaction', 'xlink:href'];
    // A late re-render can stick the list to the bottom mid-scan (history arriving twice, a
    // sync): then go round again from the top until every expected row was read.
    for (let pass = 0; pass < 5 && Object.keys(seen).length < expected; pass += 1) {
    log.scrollTop = 0;
    await frame();
    for (let guard = 0; guard < 500; guard += 1) {
        for (const row of log.querySelectorAll('[data-message-id]')) {
            const body = row.querySelector('.nbchat-message-body');
            const problems = [];
            for (const element of body.querySelectorAll(forbidden)) {
                // The Copy button on a code block is the widget's own (a peer's markup can
                // carry no button: the sanitizer forbids them).
                if (element.matches('pre > button.nbchat-copy')) continue;
                problems.push('element ' + element.tagName);
            }
            for (const element of body.querySelectorAll('*')) {
                for (const name of element.getAttributeNames()) {
                    if (name.startsWith('on') || banned.includes(name)) {
                        problems.push(element.tagName + '@' + name);
                    }
                }
            }
            const links = [...body.querySelectorAll('[href]')].map((a) => ({
                tag: a.tagName, href: a.getAttribute('href'), rel: a.getAttribute('rel') || '',
            }));
            // Poke everything a handler could hide on (none should be left to run).
            for (const element of body.querySelectorAll('*')) {
                for (const type of ['mouseover', 'mouseenter', 'focus', 'toggle']) {
                    element.dispatchEvent(new Event(type, {bubbles: true}));
                }
            }
            seen[row.getAttribute('data-message-id')] = {text: body.innerText, problems, links};
        }
        if (log.scrollTop + log.clientHeight >= log.scrollHeight - 1) break;
        log.scrollTop += Math.max(100, log.clientHeight / 2);
        await frame();
    }
    }
    return seen;
}"""


def join(bg: BackgroundLoop, lab: Lab, room: str) -> ChatPeer:
    async def _join() -> ChatPeer:
        peer = ChatPeer(lab.url, room, token=lab.token)
        await peer.join()
        return peer

    return bg.run(_join())


def leave(bg: BackgroundLoop, *peers: ChatPeer) -> None:
    for peer in peers:
        bg.run(peer.leave())


def watch(page: Page) -> dict[str, list[str]]:
    """Record dialogs, page errors and every request; abort any that would leave loopback."""
    seen: dict[str, list[str]] = {
        "dialogs": [],
        "errors": [],
        "remote": [],
        "console": [],
        "requests": [],
    }

    def route(r: Any) -> None:
        host = urlsplit(r.request.url).hostname or ""
        if r.request.url.startswith(("http:", "https:", "ws:", "wss:")) and host not in LOOPBACK:
            r.abort()
        else:
            r.continue_()

    def request(req: Any) -> None:
        seen["requests"].append(req.url)
        host = urlsplit(req.url).hostname or ""
        if req.url.startswith(("http:", "https:", "ws:", "wss:")) and host not in LOOPBACK:
            seen["remote"].append(req.url)

    def dialog(d: Any) -> None:
        seen["dialogs"].append(d.message)
        d.dismiss()

    page.context.route("**/*", route)
    page.context.on("request", request)
    page.on("dialog", dialog)
    page.on("pageerror", lambda error: seen["errors"].append(str(error)))
    page.on("console", lambda m: seen["console"].append(m.text))
    return seen


def room_page(lab: Lab, new_user: Any, room: str) -> tuple[Page, dict[str, list[str]], str]:
    """A user with the chat of ``room`` open, watched; returns (page, watch record, path)."""
    path = put_notebook(
        lab, f"notebooks/{room}.ipynb", code_notebook("%load_ext nbchat", f"chat = %chat {room}")
    )
    page = new_user()
    seen = watch(page)
    open_and_run(page, lab, path)
    expect(message_box(page)).to_be_enabled(timeout=SLOW)
    return page, seen, path


def meshed(bg: BackgroundLoop, *peers: ChatPeer) -> None:
    """Wait until each Python peer has a link to the browser and to every other one."""
    bg.run(until(lambda: all(len(p.peers) == len(peers) for p in peers), 40), timeout=50)


def browser_peer_id(peer: ChatPeer, *others: ChatPeer) -> str:
    python_ids = {peer.id, *(o.id for o in others)}
    [browser] = [u["peer_id"] for u in peer.users if u["peer_id"] not in python_ids]
    return browser


def test_xss_corpus_stays_inert_text_in_the_receivers_page(lab: Lab, new_user, bg) -> None:
    room = "hostile-xss"
    page, seen, _ = room_page(lab, new_user, room)
    peer = join(bg, lab, room)
    try:
        meshed(bg, peer)

        async def send_all() -> None:
            for i, payload in enumerate(XSS_CORPUS):
                await peer.send(f"xss{i:02d} {payload}")
            await peer.send(f"![](http://{TRACKER}/bare.png)")  # a message that is only an image
            await peer.send("xss-end")

        bg.run(send_all())
        name = peer.user["display_name"]
        expect(messages(page).get_by_text("xss-end")).to_be_visible(timeout=SLOW)

        rows = page.evaluate(SCAN_MESSAGES, len(XSS_CORPUS) + 2)  # + the image, xss-end
        by_marker = {}
        for row in rows.values():
            marker = row["text"].strip()[:5]
            by_marker[marker] = row
        missing = [f"xss{i:02d}" for i in range(len(XSS_CORPUS)) if f"xss{i:02d}" not in by_marker]
        assert not missing, f"messages not shown as readable text: {missing}"
        for i, payload in enumerate(XSS_CORPUS):
            row = by_marker[f"xss{i:02d}"]
            assert row["problems"] == [], (payload, row)
            assert len(row["text"].strip()) > len("xss00 "), (payload, row)  # readable, not blanked
            for link in row["links"]:
                assert link["tag"] == "A", (payload, link)
                assert link["href"].startswith(("http://", "https://", "mailto:")), (payload, link)
                assert "noopener" in link["rel"].split(), (payload, link)
        kept = by_marker[f"xss{len(XSS_CORPUS) - 2:02d}"]["links"]
        assert [link["href"] for link in kept] == [
            "https://example.org/docs",
            "mailto:someone@example.org",
        ]
        # An image is never loaded: a link says what it was, even with no description.
        [bare] = [r for r in rows.values() if r["text"].strip() == "[image: no description]"]
        assert bare["links"] == [
            {"tag": "A", "href": f"http://{TRACKER}/bare.png", "rel": "noopener noreferrer"}
        ]
        # Raw HTML shows as the text it is.
        assert "<script>" in by_marker["xss00"]["text"]
        expect(article(page, name, "xss-end")).to_have_count(1)

        assert page.evaluate("() => window.__pwned") is None
        assert seen["dialogs"] == []
        assert seen["requests"], "the request recorder saw nothing at all"
        assert seen["remote"] == [], f"requests to other machines were attempted: {seen['remote']}"
        assert seen["errors"] == []
    finally:
        leave(bg, peer)


def test_forged_authors_and_ids_never_show_as_someone_else(lab: Lab, new_user, bg) -> None:
    room = "hostile-forgery"
    page, seen, _ = room_page(lab, new_user, room)
    victim = join(bg, lab, room)
    mallory = join(bg, lab, room)
    try:
        meshed(bg, victim, mallory)
        browser = browser_peer_id(mallory, victim)
        expect(users(page)).to_have_count(3, timeout=SLOW)
        victim_name, mallory_name = victim.user["display_name"], mallory.user["display_name"]
        bg.run(victim.send("victim says one"))
        expect(article(page, victim_name, "victim says one")).to_have_count(1, timeout=SLOW)

        async def forge() -> None:
            conn = await connection_to(mallory, browser)
            claim = {"author": victim.id, "user": victim.user, "time": 1}
            # (a) a direct message claiming to be the victim's
            conn.send(
                {
                    "type": "message",
                    "message": {
                        **claim,
                        "id": f"{victim.id}:7",
                        "seq": 7,
                        "clock": 50,
                        "text": "claimed author",
                    },
                }
            )
            # (b) a history relay overwriting the victim's first message...
            conn.send(
                {
                    "type": "history",
                    "messages": [
                        {
                            **claim,
                            "id": f"{victim.id}:1",
                            "seq": 1,
                            "clock": 1,
                            "text": "overwritten",
                        }
                    ],
                }
            )
            # ...and pre-empting the victim's next, not-yet-used seq
            conn.send(
                {
                    "type": "history",
                    "messages": [
                        {
                            **claim,
                            "id": f"{victim.id}:2",
                            "seq": 2,
                            "clock": 60,
                            "text": "pre-empted",
                        }
                    ],
                }
            )
            # (c) a clock at the top of the safe range, to leave nobody a valid next clock
            conn.send(
                {
                    "type": "message",
                    "message": {
                        "seq": 2,
                        "clock": 2**53 - 1,
                        "time": 1,
                        "text": "clock poison",
                        "user": {},
                    },
                }
            )
            # The channel is ordered: once this shows, every forgery above was handled.
            await mallory.send("mallory marker")

        bg.run(forge())
        expect(article(page, mallory_name, "mallory marker")).to_have_count(1, timeout=SLOW)
        # (a): the claim is not the victim's (unsigned by the victim's key): dropped, and
        # never shown under the victim's name
        expect(messages(page)).not_to_contain_text("claimed author")
        # (b): the victim's message is not overwritten, the pre-emption is dropped...
        expect(article(page, victim_name, "victim says one")).to_have_count(1)
        expect(messages(page)).not_to_contain_text("overwritten")
        expect(messages(page)).not_to_contain_text("pre-empted")
        # ...and the victim's real second message (seq 2) still arrives and shows as theirs.
        bg.run(victim.send("victim says two"))
        expect(article(page, victim_name, "victim says two")).to_have_count(1, timeout=SLOW)
        # (c): the poisoned clock was refused, so the browser's messages stay valid for others.
        expect(messages(page)).not_to_contain_text("clock poison")
        inbox = bg.run(_inbox(victim))
        say(page, "browser after the poison")
        texts = lambda: {m["text"] for m in inbox.items}  # noqa: E731 - read on the peer's loop
        bg.run(until(lambda: "browser after the poison" in texts(), 30), timeout=40)
        # A newcomer, synced by everyone (the browser included), gets only the truth.
        newcomer = join(bg, lab, room)
        try:
            wanted = {(victim.id, "victim says one"), (victim.id, "victim says two")}

            def history() -> set[tuple[str, str]]:
                return {(m["author"], m["text"]) for m in newcomer.history}

            bg.run(until(lambda: wanted <= history(), 40), timeout=50)
            assert not {t for _, t in history()} & {"overwritten", "pre-empted"}
        finally:
            leave(bg, newcomer)
        assert seen["errors"] == []
    finally:
        leave(bg, mallory, victim)


async def _inbox(peer: ChatPeer) -> Inbox:
    return Inbox(peer)


def test_a_flooding_peer_is_throttled_and_the_chat_stays_usable(lab: Lab, new_user, bg) -> None:
    room = "hostile-flood"
    page, seen, path = room_page(lab, new_user, room)
    friend = join(bg, lab, room)
    flooder = join(bg, lab, room)
    try:
        meshed(bg, friend, flooder)
        browser = browser_peer_id(flooder, friend)
        expect(users(page)).to_have_count(3, timeout=SLOW)
        friend_name, flooder_name = friend.user["display_name"], flooder.user["display_name"]
        # The friend hears the browser first, so its next message has a later clock than
        # the spam (clock 1) and shows at the bottom of the list, where the reader is.
        inbox = bg.run(_inbox(friend))
        say(page, "before the flood")
        bg.run(inbox.wait(1, 30), timeout=40)
        flood_count = 5_000

        def frame(seq: int, text: str) -> bytes:
            # Signed by the flooder itself: a flood of valid messages, the hardest kind.
            message = signed(flooder, {"seq": seq, "clock": 1, "time": 1, "text": text})
            return json.dumps({"type": "message", "message": message}).encode()

        spam = [frame(seq, f"spam {seq:05d}") for seq in range(2, flood_count + 2)]

        async def hello() -> DataConnection:
            conn = await connection_to(flooder, browser)
            vouch(flooder, conn)
            conn.send_raw(frame(1, "flooder says hello"))
            return conn

        conn = bg.run(hello())
        # This connection is the one the browser reads: the flood goes where it counts.
        expect(article(page, flooder_name, "flooder says hello")).to_have_count(1, timeout=SLOW)

        async def flood() -> float:
            loop = asyncio.get_running_loop()
            started = loop.time()
            for payload in spam:
                conn.send_raw(payload)
            return loop.time() - started

        flood_started = time.monotonic()
        elapsed = bg.run(flood(), timeout=60)
        assert flood_count / max(elapsed, 1e-3) > 1_000, "the flood was not a flood"
        bg.run(friend.send("friend still gets through"))
        friend_says = article(page, friend_name, "friend still gets through")
        expect(friend_says).to_have_count(1, timeout=SLOW)
        # The reader is told who floods (not only the console), and the notice goes once
        # the flood has stopped for a while.
        notice = page.get_by_role("status", name="Chat notice")
        expect(notice).to_contain_text(
            re.compile(re.escape(flooder_name) + r" is sending too fast: \d+ messages dropped\.")
        )
        expect(notice).not_to_contain_text(friend_name)
        # Responsive: the user can still type and send, and the friend receives it.
        say(page, "browser still talks")
        bg.run(inbox.wait(2, 30), timeout=40)
        assert any(m["text"] == "browser still talks" for m in inbox.items)
        # The flood was cut to the burst (plus the refill while it lasted), and logged.
        flooding = [line for line in seen["console"] if "flooding" in line]
        assert any(flooder.id in line for line in flooding), seen["console"][-5:]
        kernel = kernel_client(lab, path)
        try:
            expression = f"sum(1 for m in chat.messages if m['author'] == {flooder.id!r})"
            spam = _poll(lambda: kernel_eval(kernel, expression), lambda n: n > 0)
            # At most the burst (200) plus the refill (20/s) since the flood began.
            assert spam <= 200 + 20 * (time.monotonic() - flood_started) + 20, spam
            assert spam < flood_count / 4
        finally:
            kernel.stop_channels()
        expect(notice).to_have_count(0, timeout=SLOW)
        assert seen["errors"] == []
    finally:
        leave(bg, flooder, friend)


def _poll(read: Any, ok: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if ok(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.2)  # the kernel mirror is patched when the kernel is idle: poll it


MALFORMED: list[bytes | str] = [
    b"\xff\xfe not utf-8",
    b"not json at all",
    b"[1, 2, 3]",
    b"42",
    b'"a string"',
    b"null",
    b"{}",
    b'{"type": 7}',
    b'{"type": "message"}',
    b'{"type": "message", "message": [1]}',
    b'{"type": "message", "message": {"seq": 1e999, "clock": -1, "time": "x", "text": 5}}',
    b'{"type": "message", "message": {"seq": 9007199254740993, "clock": 1, "time": 1}}',
    b'{"type": "message", "message": {"seq": 1.5, "clock": 1, "time": 1, "text": "frac"}}',
    # A time past year 9999: new Date(1e300).toISOString() throws while rendering.
    b'{"type": "message", "message": {"seq": 9, "clock": 9, "time": 1e300, "text": "future"}}',
    b'{"type": "history", "messages": [{"author": "zz", "seq": 1, "clock": 1, "time": 9e15,'
    b' "text": "future", "user": {"username": "zz"}}]}',
    b'{"type": "history", "messages": "nope"}',
    b'{"type": "history", "messages": [null, 1, "x", [], {"author": 5}]}',
    b'{"type": "sync", "have": [1]}',
    b'{"type": "sync", "have": {"__proto__": 1, "constructor": 2}}',
    b'{"type": "message", "message": {"seq": 1, "clock": 1, "time": 1, "text": "x",'
    b' "__proto__": {"polluted": 1}}}',
    b'{"type": "sync", "have": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
    b'{"type": "chunk", "id": "c-x", "index": 0, "count": 1000000000, "data": "{"}',
    b'{"type": "chunk", "id": "c-x", "index": 5, "count": 2, "data": "{"}',
    b'{"type": "chunk", "id": "c-x", "index": -1, "count": 2, "data": "{"}',
    b'{"type": "chunk", "id": "c-x", "index": 0, "count": 9007199254740993, "data": "{"}',
    b'{"type": "chunk", "id": 5, "index": 0, "count": 1, "data": "{"}',
    b'{"type": "chunk", "id": "c-j", "index": 0, "count": 1, "data": "not json"}',
    b'{"type": "chunk", "id": "c-k", "index": 0, "count": 1, "data": "{\\"type\\":\\"chunk\\"}"}',
    *[
        f'{{"type": "chunk", "id": "c-open-{i}", "index": 0, "count": 3, "data": "x"}}'.encode()
        for i in range(40)
    ],
    "\u202e\u0000\ud7ff text frame",
]


def test_malformed_frames_never_break_the_receiving_widget(lab: Lab, new_user, bg) -> None:
    room = "hostile-malformed"
    page, seen, _ = room_page(lab, new_user, room)
    peer = join(bg, lab, room)
    try:
        meshed(bg, peer)
        browser = browser_peer_id(peer)
        name = peer.user["display_name"]

        async def junk() -> None:
            conn = await connection_to(peer, browser)
            for payload in MALFORMED:
                assert conn.send_raw(payload)
            # Unicode edge cases in a well-formed message: a lone surrogate escape (never
            # verifiable: dropped), then bidi controls, combining marks, astral characters
            # and a NUL in a message its author signed.
            conn.send_raw(
                b'{"type":"message","message":{"seq":3,"clock":3,"time":1,"user":{},'
                b'"text":"odd \\ud800 end"}}'
            )
            vouch(peer, conn)
            conn.send(
                {
                    "type": "message",
                    "message": signed(
                        peer,
                        {
                            "seq": 3,
                            "clock": 3,
                            "time": 1,
                            "text": "odd \u202eRTL\u202c e\u0301 \U0001f600 \u0000 end",
                        },
                    ),
                }
            )
            # Over the room's max_message_bytes (65,536): chunked, reassembled, then dropped.
            conn.send(
                {
                    "type": "message",
                    "message": signed(
                        peer,
                        {"seq": 4, "clock": 4, "time": 2, "text": "oversized " + "x" * 70_000},
                    ),
                }
            )
            conn.send(
                {
                    "type": "message",
                    "message": signed(
                        peer, {"seq": 5, "clock": 5, "time": 2, "text": "after the junk"}
                    ),
                }
            )

        bg.run(junk())
        expect(article(page, name, "after the junk")).to_have_count(1, timeout=SLOW)
        expect(article(page, name, "RTL")).to_have_count(1)
        expect(messages(page)).not_to_contain_text("oversized")
        # The user's own oversized message is refused with the reason in view.
        box = message_box(page)
        box.fill("y" * 70_000)
        expect(page.get_by_text("Message too long: the limit is 65,536 bytes.")).to_be_visible()
        expect(page.get_by_role("button", name="Send")).to_be_disabled()
        box.press("Enter")
        expect(box).to_have_value("y" * 70_000)
        box.fill("")
        # Still a working chat both ways.
        inbox = bg.run(_inbox(peer))
        say(page, "widget survived")
        bg.run(inbox.wait(1, 30), timeout=40)
        assert page.evaluate("() => ({}).polluted") is None
        assert seen["errors"] == []
    finally:
        leave(bg, peer)


RICH_HOSTILE = [
    (
        "rich-table",
        {
            "text/html": f"<style>body{{display:none}} @import url(http://{TRACKER}/s.css);</style>"
            f'<table class="jp-Dialog" style="position:fixed;inset:0"><tr><th onclick="{PWN}">k'
            f'</th></tr><tr><td background="http://{TRACKER}/bg.png">cell-1</td><td>'
            f'<img src="http://{TRACKER}/t.png" onerror="{PWN}">cell-2</td></tr></table>'
            f'<script>{PWN}</script><iframe src="http://{TRACKER}/f"></iframe>'
            f'<svg onload="{PWN}"></svg><a href="javascript:{PWN}">js</a>',
            "text/plain": "table fallback",
        },
    ),
    (
        "rich-svg",
        {
            "image/svg+xml": f'<svg xmlns="http://www.w3.org/2000/svg" width="20" height="20" '
            f'onload="{PWN}"><script>{PWN}</script><image href="http://{TRACKER}/i.png" '
            f'width="20" height="20"/><rect width="20" height="20" fill="red"/></svg>',
        },
    ),
    (
        "rich-polyglot",
        {"image/png": base64.b64encode(f"<html><script>{PWN}</script>".encode()).decode()},
    ),
    ("rich-latex", {"text/latex": f"$x$ <script>{PWN}</script>"}),
]


def test_rich_payloads_from_a_hostile_peer_stay_inert(lab: Lab, new_user, bg) -> None:
    """An HTML table carrying scripts, styles and trackers; an SVG with <script>, onload and
    a remote <image>; a polyglot (HTML bytes labelled image/png); LaTeX with markup; a file
    card whose name climbs directories: shown, but nothing runs and nothing is fetched."""
    room = "hostile-rich"
    page, seen, _ = room_page(lab, new_user, room)
    peer = join(bg, lab, room)
    try:
        meshed(bg, peer)
        browser = browser_peer_id(peer)

        async def send_raw() -> None:
            link = await connection_to(peer, browser)
            vouch(peer, link)
            for seq, (marker, mime) in enumerate(RICH_HOSTILE, start=1):
                message = {
                    "seq": seq,
                    "clock": seq,
                    "time": 1764259200000,
                    "text": marker,
                    "user": {"username": "x"},
                    "mime": mime,
                }
                assert link.send({"type": "message", "message": signed(peer, message)})
            card = {
                "name": "../../.bashrc\u202etxt.exe",
                "size": 5,
                "type": "text/html",
                "sha256": "0" * 64,
            }
            message = {
                "seq": len(RICH_HOSTILE) + 1,
                "clock": 99,
                "time": 1764259200000,
                "text": "card",
                "user": {"username": "x"},
                "file": card,
            }
            assert link.send({"type": "message", "message": signed(peer, message)})

        bg.run(send_raw())
        name = peer.user["display_name"]
        from_peer = messages(page).get_by_role("article", name=f"Message from {name}")
        table = from_peer.locator(".nbchat-rich-html table")
        expect(table).to_have_count(1, timeout=SLOW)
        expect(table.locator("td")).to_have_text(["cell-1", "cell-2"])
        svg_img = from_peer.locator("img[data-mime='image/svg+xml']")
        expect(svg_img).to_have_count(1)
        page.wait_for_function(
            "(img) => img.complete && img.naturalWidth === 20", arg=svg_img.element_handle()
        )
        assert str(svg_img.get_attribute("src")).startswith("blob:")
        # The polyglot is not an image: its text shows instead.
        expect(from_peer.filter(has_text="rich-polyglot").locator("img")).to_have_count(0)
        expect(from_peer.locator(".nbchat-rich-source code")).to_have_text(
            f"$x$ <script>{PWN}</script>"
        )
        # The card's name lost its directories and its bidi override; the peer holds no
        # bytes, so the transfer ends cancelled and nothing is offered for download.
        card = from_peer.get_by_role("group", name="File bashrctxt.exe")
        expect(card).to_have_attribute("data-state", "cancelled", timeout=SLOW)
        expect(card.get_by_role("link")).to_have_count(0)

        bodies = from_peer.locator(".nbchat-message-body")
        leftovers = bodies.evaluate_all(
            """(bodies) => bodies.flatMap((body) => [...body.querySelectorAll('*')].flatMap((el) =>
                [...(['SCRIPT','STYLE','SVG','IFRAME','IMAGE','OBJECT','EMBED','LINK'].includes(
                     el.tagName.toUpperCase()) && !el.matches('svg.nbchat-icon, svg.nbchat-icon *')
                     ? [el.tagName] : []),
                 ...el.getAttributeNames().filter((a) => a.startsWith('on') || a === 'style'
                     && !el.classList.contains('nbchat-file-progress-bar')
                     || a === 'class' && el.closest('.nbchat-rich-html') !== null
                     && !el.classList.contains('nbchat-rich-html')
                     || a === 'background').map((a) => el.tagName + '@' + a)]))"""
        )
        assert leftovers == []
        for img in from_peer.locator("img").all():
            assert str(img.get_attribute("src")).startswith("blob:")
        assert page.evaluate("() => window.__pwned") is None
        assert seen["dialogs"] == []
        assert seen["remote"] == [], f"requests to other machines were attempted: {seen['remote']}"
        assert seen["errors"] == []
    finally:
        leave(bg, peer)
