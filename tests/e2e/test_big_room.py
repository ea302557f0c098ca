"""Two Chromium users of the widget among twelve Python peers: a room past MESH_SIZE, so
everyone is on the bounded overlay; the browsers hold only the overlay's links and
messages reach peers their author has no link to, both ways."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect
from tests.support.browser import open_and_run
from tests.support.lab import Lab
from tests.support.loop import BackgroundLoop
from tests.support.peers import Inbox, until
from tests.support.widgets import SLOW, messages, own_name, room_notebook, say, users

from nbchat.core.mesh import MAX_LINKS, MESH_SIZE, overlay
from nbchat.peer import ChatPeer

PYTHON_PEERS = 12


def test_browsers_among_python_peers_in_a_room_past_the_mesh_size(
    lab: Lab, new_user: Any, bg: BackgroundLoop
) -> None:
    room = "big-interop"
    total = PYTHON_PEERS + 2
    assert total > MESH_SIZE

    async def join_all() -> tuple[list[ChatPeer], list[Inbox]]:
        peers = []
        for _ in range(PYTHON_PEERS):
            peer = ChatPeer(lab.url, room, token=lab.token)
            await peer.join()
            peers.append(peer)
        return peers, [Inbox(p) for p in peers]

    peers, inboxes = bg.run(join_all(), timeout=120)
    try:
        path = room_notebook(lab, "big-interop", room)
        a, b = new_user(), new_user()
        open_and_run(a, lab, path)
        open_and_run(b, lab, path)
        for page in (a, b):
            expect(users(page)).to_have_count(total, timeout=SLOW)

        def formed() -> bool:
            for peer in peers:
                mesh, present = peer._mesh, [u["peer_id"] for u in peer.users]
                if len(present) != total or mesh is None:
                    return False
                if peer.peers != mesh.policy.wanted(present):
                    return False
            return True

        bg.run(until(formed, 90), timeout=100)
        everyone = [u["peer_id"] for u in peers[0].users]
        links = overlay(everyone)
        browsers = sorted(set(everyone) - {p.id for p in peers})
        assert len(browsers) == 2
        # What each user sees: connected to exactly the overlay's peers, never more than 8.
        by_name = {}
        for page in (a, b):
            name = own_name(page)
            [mine] = [u["peer_id"] for u in peers[0].users if u["user"]["display_name"] == name]
            by_name[name] = mine
            count = len(links[mine])
            assert count <= MAX_LINKS
            status = page.get_by_role("status", name="Chat status")
            expect(status).to_have_text(f"Connected to {count} peers", timeout=SLOW)

        # A browser's message reaches every Python peer once, linked to it or not.
        say(a, "hello from browser A")
        for inbox in inboxes:
            got = bg.run(inbox.wait(1, 60), timeout=70)
            assert [m["text"] for m in got] == ["hello from browser A"]
        expect(messages(b).get_by_text("hello from browser A")).to_have_count(1, timeout=SLOW)

        # A Python peer with no link to a browser reaches it through the overlay.
        for page, name in zip((a, b), by_name, strict=True):
            far = next(p for p in peers if by_name[name] not in links[p.id])
            text = f"to {name} from afar"
            bg.run(far.send(text))
            expect(messages(page).get_by_text(text)).to_have_count(1, timeout=SLOW)
    finally:
        for peer in peers:
            bg.run(peer.leave())
