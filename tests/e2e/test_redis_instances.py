"""Two JupyterLab servers on one Redis (``NbChatApp.broker``): a browser user on each sees
the other in the room and they chat. Each server's extension is its own signaling
service; the broker makes the two one."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect
from tests.support.browser import open_and_run
from tests.support.lab import Lab, make_lab
from tests.support.redis import RedisServer, redis_server  # noqa: F401  (fixture)
from tests.support.widgets import SLOW, messages, own_name, room_notebook, say, users


@pytest.fixture
def two_labs(tmp_path: Path, redis_server: RedisServer) -> Iterator[list[Lab]]:  # noqa: F811
    labs = [
        make_lab(
            tmp_path / name,
            # Servers that share rooms share the key that certifies peers' keys.
            {"broker": url, "alive_timeout": 8.0, "signing_key_file": str(tmp_path / "key.pem")},
        )
        for name, url in (("one", redis_server.url), ("two", redis_server.unix_url))
    ]
    starters = [threading.Thread(target=lab.start) for lab in labs]
    for thread in starters:
        thread.start()
    for thread in starters:
        thread.join()
    try:
        for lab in labs:
            assert lab.proc is not None and lab.proc.poll() is None, lab.log()[-3000:]
        yield labs
    finally:
        for lab in labs:
            lab.stop()


def test_browser_users_on_two_jupyter_servers_meet_through_redis(two_labs, new_user) -> None:  # type: ignore[no-untyped-def]
    one, two = two_labs
    room = "across-servers"
    alice = new_user()
    open_and_run(alice, one, room_notebook(one, "across", room))
    bob = new_user()
    open_and_run(bob, two, room_notebook(two, "across", room))
    for page in (alice, bob):
        expect(users(page)).to_have_count(2, timeout=SLOW)
    alice_name, bob_name = own_name(alice), own_name(bob)
    expect(users(bob).filter(has_text=alice_name)).to_have_count(1)
    expect(users(alice).filter(has_text=bob_name)).to_have_count(1)

    say(alice, "hello from the first server")
    expect(messages(bob).get_by_role("article", name=f"Message from {alice_name}")).to_contain_text(
        "hello from the first server", timeout=SLOW
    )
    say(bob, "hello back from the second")
    expect(messages(alice).get_by_role("article", name=f"Message from {bob_name}")).to_contain_text(
        "hello back from the second", timeout=SLOW
    )
