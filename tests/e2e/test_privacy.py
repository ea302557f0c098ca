"""Chat text between two browser users never crosses nbchat's server endpoints."""

from __future__ import annotations

import secrets
import time
from typing import Any

from playwright.sync_api import Page, expect
from tests.support.browser import open_and_run
from tests.support.lab import Lab
from tests.support.widgets import SLOW, messages, room_notebook, say, users


def record_nbchat_traffic(page: Page, seen: list[str]) -> None:
    """Everything this page sends to or receives from ``…/nbchat/…``: HTTP and sockets."""

    def on_socket(ws: Any) -> None:
        if "/nbchat/" in ws.url:
            ws.on("framesent", lambda payload: seen.append(str(payload)))
            ws.on("framereceived", lambda payload: seen.append(str(payload)))

    page.on("websocket", on_socket)
    page.on("request", lambda r: "/nbchat/" in r.url and seen.append(r.url + (r.post_data or "")))


def test_chat_text_never_reaches_the_signaling_server(lab: Lab, new_user) -> None:
    path = room_notebook(lab, "privacy", "privacy-room")
    a, b = new_user(), new_user()
    seen: list[str] = []
    for page in (a, b):
        record_nbchat_traffic(page, seen)
        open_and_run(page, lab, path)
    for page in (a, b):
        expect(users(page)).to_have_count(2, timeout=SLOW)

    secret_a, secret_b = f"secret-{secrets.token_hex(8)}", f"secret-{secrets.token_hex(8)}"
    say(a, f"the number is {secret_a}")
    say(b, f"and mine is {secret_b}")
    for page in (a, b):
        expect(messages(page)).to_contain_text(secret_a, timeout=SLOW)
        expect(messages(page)).to_contain_text(secret_b, timeout=SLOW)

    # The traffic recorder did see the signaling (offers, presence), just not the text.
    assert any('"OFFER"' in frame or '"ANSWER"' in frame for frame in seen), seen[:5]
    assert any("USER_CONNECTED" in frame or "ROSTER" in frame for frame in seen)
    assert not [frame for frame in seen if secret_a in frame or secret_b in frame]
    assert secret_a not in lab.log() and secret_b not in lab.log()


def record_all_traffic(page: Page, seen: list[str]) -> None:
    """Everything this page sends or receives over HTTP and WebSockets, kernels included."""

    def on_socket(ws: Any) -> None:
        ws.on("framesent", lambda payload: seen.append(str(payload)))
        ws.on("framereceived", lambda payload: seen.append(str(payload)))

    page.on("websocket", on_socket)
    page.on("request", lambda r: seen.append(r.url + str(r.post_data_buffer or b"")))


def test_shared_tables_images_and_files_never_reach_the_server(lab: Lab, new_user, bg: Any) -> None:
    """A table and a figure from a Python peer and a file dropped by a user reach the other
    user peer to peer: none of their bytes cross nbchat's endpoints, and the file's bytes
    cross no request or socket at all (kernels included: only its card is mirrored into
    ``chat.messages``; a table's or figure's bundle is, by design, in the user's own kernel)."""
    import base64
    import io

    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    from tests.e2e.test_rich import DROP

    from nbchat.peer import ChatPeer

    path = room_notebook(lab, "privacy-rich", "privacy-rich-room")
    a, b = new_user(), new_user()
    nbchat_seen: list[str] = []
    everything: list[str] = []
    for page in (a, b):
        record_nbchat_traffic(page, nbchat_seen)
        record_all_traffic(page, everything)
        open_and_run(page, lab, path)
    peer = ChatPeer(lab.url, "privacy-rich-room", token=lab.token)
    bg.run(peer.join())
    try:
        for page in (a, b):
            expect(users(page)).to_have_count(3, timeout=SLOW)
        cell = f"cell-{secrets.token_hex(8)}"
        bg.run(peer.send(pd.DataFrame({"secret": [cell]})))
        fig, ax = plt.subplots(figsize=(2, 2), dpi=40)
        ax.plot([3, 1, 2])
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", bbox_inches="tight")
        figure = bg.run(peer.send(fig))
        plt.close(fig)
        png = figure["mime"]["image/png"]
        file_secret = f"file-{secrets.token_hex(8)}"
        data = (file_secret + "\n").encode() * 5_000
        a.evaluate(DROP, [base64.b64encode(data).decode(), "notes.txt", "text/plain"])
        card = messages(b).get_by_role("group", name="File notes.txt")
        expect(card.get_by_role("link", name="Download notes.txt")).to_be_visible(timeout=SLOW)
        for page in (a, b):
            expect(page.locator(".nbchat-rich-html td", has_text=cell)).to_have_count(
                1, timeout=SLOW
            )
            expect(page.locator("img.nbchat-rich-image")).to_have_count(1, timeout=SLOW)

        file_b64 = base64.b64encode(data[:3000]).decode()
        assert any('"OFFER"' in f or '"ANSWER"' in f for f in nbchat_seen)
        for needle in (cell, png[200:300], file_secret, file_b64[:200]):
            assert not [f for f in nbchat_seen if needle in f], needle
            assert needle not in lab.log()
        for needle in (file_secret, file_b64[:200]):
            assert not [f for f in everything if needle in f], needle
        # The recorder does see kernel traffic: the table's bundle is mirrored into the
        # users' own kernels (chat.messages), unlike the file's bytes.
        deadline = time.monotonic() + 30
        while not any(cell in f for f in everything):
            assert time.monotonic() < deadline, "no kernel traffic recorded"
            a.wait_for_timeout(200)  # frames are recorded by Playwright's event loop
        for needle in (file_secret, file_b64[:200]):
            assert not [f for f in everything if needle in f], needle
    finally:
        bg.run(peer.leave())
