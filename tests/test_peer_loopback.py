"""Python peers connect in a network namespace that has nothing but ``lo``.

aioice leaves 127.0.0.1 out of its host candidates; nbchat adds it back
(src/nbchat/peer/ice.py). The outer test re-runs this module inside
``unshare -n`` (root only); the inner test does the real exchange there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import ifaddr
import pytest
from tests.support.peers import Inbox

from nbchat.peer import ChatPeer

INSIDE = os.environ.get("NBCHAT_LOOPBACK_NETNS") == "1"
REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(INSIDE, reason="runs the inner test instead")
@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None,
    reason="needs root, unshare and ip to make a loopback-only network namespace",
)
@pytest.mark.timeout(180)
def test_two_peers_connect_with_only_loopback() -> None:
    script = 'ip link set lo up && exec "$0" -m pytest -q -p no:cacheprovider "$1"'
    result = subprocess.run(
        ["unshare", "-n", "sh", "-c", script, sys.executable, __file__],
        cwd=REPO,
        env={**os.environ, "NBCHAT_LOOPBACK_NETNS": "1"},
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "1 passed" in result.stdout


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
