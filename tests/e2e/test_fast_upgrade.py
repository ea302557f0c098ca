"""A browser's sockets after its first take the fast upgrade, and the chat works over them."""

from __future__ import annotations

import json

from playwright.sync_api import expect
from tests.support.browser import open_and_run
from tests.support.lab import Lab
from tests.support.widgets import SLOW, messages, own_name, room_notebook, say, users


def test_a_second_tab_is_served_from_the_auth_cache_and_chats(lab: Lab, new_user) -> None:
    """Chromium's own cookies and Origin: the first tab's sockets go through Jupyter's
    auth, the second tab's (same browser profile, same login cookie) are answered by
    the fast upgrade (``fast_upgrades`` in nbchat/stats), and both tabs chat."""
    path = room_notebook(lab, "e2e-fast-upgrade", "e2e-fast-upgrade-room")
    a, b = new_user(), new_user()
    open_and_run(a, lab, path)

    def served() -> int:
        r = a.context.request.get(f"{lab.url}nbchat/stats")
        assert r.ok, r.status
        return int(json.loads(r.text())["fast_upgrades"])

    before = served()
    a_again = a.context.new_page()
    open_and_run(a_again, lab, path)
    open_and_run(b, lab, path)
    expect(users(a_again)).to_have_count(2, timeout=SLOW)
    assert served() >= before + 2  # the second tab's signaling and presence sockets
    say(a_again, "over a fast-upgraded socket")
    expect(messages(b)).to_contain_text("over a fast-upgraded socket", timeout=SLOW)
    expect(users(b).filter(has_text=own_name(a))).to_have_count(1)
