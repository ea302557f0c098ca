"""Chat text between two browser users never crosses nbchat's server endpoints."""

from __future__ import annotations

import secrets
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
