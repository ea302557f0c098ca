"""Python peers connect in a network namespace that has nothing but ``lo``.

aioice leaves 127.0.0.1 out of its host candidates; nbchat adds it back
(src/nbchat/peer/ice.py). The outer test re-runs this module inside
``unshare -n`` (root only); the inner test does the real exchange there.
"""

from __future__ import annotations

from typing import Any

import ifaddr
import pytest
from tests.support.netns import INSIDE, needs_loopback_netns, run_in_loopback_netns
from tests.support.peers import Inbox

from nbchat.peer import ChatPeer


@pytest.mark.skipif(INSIDE, reason="runs the inner test instead")
@needs_loopback_netns
@pytest.mark.timeout(180)
def test_two_peers_connect_with_only_loopback() -> None:
    run_in_loopback_netns(__file__, timeout=150)


@pytest.mark.skipif(not INSIDE, reason="only inside the loopback-only namespace")
@pytest.mark.timeout(60)
async def test_inside_loopback_namespace(
    jp_serverapp: Any, jp_fetch: Any, server_base: str
) -> None:
    addresses = {
        ip.ip if isinstance(ip.ip, str) else ip.ip[0] for a in ifaddr.get_adapters() for ip in a.ips
    }
    assert addresses <= {"127.0.0.1", "::1"}, addresses
    token = jp_serverapp.identity_provider.token
    async with ChatPeer(server_base, "lo-only", token=token) as a:
        async with ChatPeer(server_base, "lo-only", token=token) as b:
            assert await a.wait_for_peers(1, 20) and await b.wait_for_peers(1, 20)
            inbox = Inbox(b)
            await a.send("over loopback")
            [got] = await inbox.wait(1)
            assert got["text"] == "over loopback"
            inbox.stop()
