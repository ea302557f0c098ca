"""The fast upgrade (nbchat.server.fastpath) repeats Jupyter's auth decision, never makes one.

Real Jupyter server, real sockets: once a user's socket went through Jupyter's full
path, a second socket with the same credentials is served by the fast path (counted in
``fast_upgrades``); anything else — a forged, expired or foreign cookie, another Origin,
no cookie, a changed server token — goes to Jupyter again and is refused or re-decided.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from tests.conftest import TEST_NBCHAT_CONFIG
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.web import create_signed_value

from nbchat.protocol import Errors
from nbchat.server.fastpath import UpgradeCache


def _app(jp_serverapp: Any) -> Any:
    return next(ext for ext in jp_serverapp.extension_manager.extension_apps["nbchat"])


async def _served(user: Any) -> int:
    r = await user.get("nbchat/stats")
    return int(json.loads(r.body)["fast_upgrades"])


async def _refused(user: Any, headers: dict[str, str], path: str = "nbchat/peerjs") -> int:
    with pytest.raises(HTTPClientError) as err:
        ws = await user.ws(path, headers=headers, key="room", id="abc123", token="t")
        ws.close()
    return err.value.code


async def test_a_second_socket_with_the_same_cookie_takes_the_fast_path(login):
    a = await login()
    w1, id1 = await a.signal("room")  # Jupyter's full path; remembered
    before = await _served(a)
    w2, _ = await a.signal("room")
    p, roster = await a.presence("room")
    assert await _served(a) == before + 2
    # ... and it is a working socket of the same user: it relays, and presence names them.
    assert {"peer_id": id1, "user": a.identity} in roster["peers"]
    await w2.send({"type": "OFFER", "dst": id1, "payload": {"x": 1}})
    frame = await w1.recv_type("OFFER")
    assert frame["payload"] == {"x": 1}
    for ws in (w1, w2, p):
        ws.close()


async def test_forged_expired_or_missing_cookies_are_still_refused(login, jp_serverapp):
    a = await login()
    ws, _ = await a.signal("room")  # a's credentials are now in the cache
    name, value = a.cookie.split("=", 1)
    forged = value[:-4] + ("AAAA" if not value.endswith("AAAA") else "BBBB")
    secret = jp_serverapp.web_app.settings["cookie_secret"]
    payload = json.dumps(
        {
            "username": "mallory",
            "name": "m",
            "display_name": "m",
            "initials": None,
            "color": None,
            "avatar_url": None,
        }
    )
    expired = create_signed_value(
        secret, name, payload, clock=lambda: time.time() - 60 * 86400
    ).decode()
    before = await _served(a)
    for cookie in (f"{name}={forged}", f"{name}={expired}", f"{name}=", "other=1"):
        assert await _refused(a, {"Cookie": cookie}) == 403, cookie
        assert await _refused(a, {"Cookie": cookie}, "nbchat/presence") == 403, cookie
    assert await _served(a) == before  # none of them reached the fast path
    ws.close()


async def test_a_cached_cookie_from_a_foreign_origin_is_refused(login):
    a = await login()
    ws, _ = await a.signal("room")
    before = await _served(a)
    assert await _refused(a, {"Origin": "http://evil.example"}) == 403
    assert await _served(a) == before
    ws.close()


async def test_another_user_never_gets_a_cached_identity(login):
    a, b = await login(), await login()
    wa, _ = await a.signal("room")
    wa2, _ = await a.signal("room")  # a is cached (and served from the cache)
    pb, _ = await b.presence("room")
    wb, idb = await b.signal("room")
    pa, roster = await a.presence("room")
    users = {p["peer_id"]: p["user"] for p in roster["peers"]}
    assert users[idb] == b.identity != a.identity
    # b cannot take a's identity either way: b's cookie with a's other headers is b.
    for ws in (wa, wa2, pb, wb, pa):
        ws.close()


async def test_a_changed_server_token_sends_sockets_back_through_jupyter(login, jp_serverapp):
    a = await login()
    ws, _ = await a.signal("room")
    fast = _app(jp_serverapp).service.fast_upgrade
    assert len(fast.cache) == 1
    provider = jp_serverapp.identity_provider
    old = provider.token
    provider.token = old + "-changed"
    try:
        before = await _served(a)
        ws2, _ = await a.signal("room")  # Jupyter decides again (it still takes the cookie)
        assert await _served(a) == before
        ws2.close()
    finally:
        provider.token = old
    ws.close()


async def test_after_logout_the_browser_has_no_cookie_and_is_refused(login, server_base):
    a = await login()
    ws, _ = await a.signal("room")
    r = await AsyncHTTPClient().fetch(
        HTTPRequest(server_base + "logout", headers=a.headers, follow_redirects=False),
        raise_error=False,
    )
    cleared = [c for c in r.headers.get_list("Set-Cookie") if c.startswith(a.cookie.split("=")[0])]
    assert cleared and "expires" in cleared[0].lower()
    assert await _refused(a, {"Cookie": ""}) == 403  # what the browser sends now
    ws.close()


async def test_pages_and_split_requests_still_take_jupyters_path(login, server_base, jp_http_port):
    import asyncio

    a = await login()
    ws, _ = await a.signal("room")  # the fast path is installed now
    assert json.loads((await a.get("nbchat/session", room="x")).body)["user"] == a.identity
    r = await AsyncHTTPClient().fetch(server_base + "api/status", raise_error=False)
    assert r.code == 403  # no credentials: Jupyter's answer, unchanged
    # An upgrade whose head arrives in two pieces is left to tornado, and still works.
    reader, writer = await asyncio.open_connection("127.0.0.1", jp_http_port)
    path = server_base.split(str(jp_http_port), 1)[1] + "nbchat/peerjs?key=room&id=split1&token=t"
    head = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{jp_http_port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    )
    before = await _served(a)
    writer.write(head.encode())
    await writer.drain()
    await asyncio.sleep(0.05)  # let the first piece be read alone (the test is about that)
    writer.write(f"Cookie: {a.cookie}\r\n\r\n".encode())
    status = await asyncio.wait_for(reader.readline(), 5)
    assert status.startswith(b"HTTP/1.1 101"), status
    assert await _served(a) == before
    writer.close()
    ws.close()


@pytest.mark.parametrize("nbchat_config", [{**TEST_NBCHAT_CONFIG, "auth_cache_seconds": 0}])
async def test_auth_cache_can_be_turned_off(login, jp_serverapp, nbchat_config):
    a = await login()
    ws, _ = await a.signal("room")
    assert _app(jp_serverapp).service.fast_upgrade is None
    ws.close()


def test_cache_entries_expire_are_bounded_and_cleared_by_a_new_generation():
    cache = UpgradeCache(ttl=30.0, capacity=2)
    cache.check_generation(("token", None))
    alice = {"username": "alice"}
    cache.remember(("k1",), alice, now=100.0)  # type: ignore[arg-type]
    assert cache.lookup(("k1",), now=129.9) == alice
    assert cache.lookup(("k1",), now=130.0) is None  # expired at the TTL
    assert cache.lookup(("k1",), now=100.0) is None  # and forgotten
    for k in ("a", "b", "c"):
        cache.remember((k,), alice, now=0.0)  # type: ignore[arg-type]
    assert len(cache) == 2 and cache.lookup(("a",), now=1.0) is None  # oldest evicted
    cache.check_generation(("other token", None))
    assert len(cache) == 0
    off = UpgradeCache(ttl=0)
    off.remember(("k",), alice, now=0.0)  # type: ignore[arg-type]
    assert len(off) == 0


async def test_the_listen_backlog_is_raised_once_the_fast_path_is_installed(login, jp_http_port):
    import shutil
    import subprocess

    if shutil.which("ss") is None:
        pytest.skip("needs iproute2's ss to read a listening socket's backlog")

    def backlog() -> int:
        out = subprocess.run(
            ["ss", "-ltnH", f"sport = :{jp_http_port}"], capture_output=True, text=True
        ).stdout.split()
        return int(out[2])  # State Recv-Q Send-Q(= backlog for a listening socket) ...

    a = await login()
    before = backlog()
    ws, _ = await a.signal("room")
    with open("/proc/sys/net/core/somaxconn") as f:
        expected = min(1024, int(f.read()))
    assert before == 128 and backlog() == expected
    ws.close()


async def test_python_peer_credentials_take_the_fast_path_and_a_token_alone_does_not(
    login, jp_serverapp
):
    # nbchat.peer.session sends its login cookie and the Authorization header on every
    # socket; PeerJS's own ?token= means Jupyter authenticates the signaling socket by
    # the cookie, and that decision is the one remembered.
    a = await login()
    token = jp_serverapp.identity_provider.token
    python_peer = {"Authorization": f"token {token}"}
    w1 = await a.ws("nbchat/peerjs", headers=python_peer, key="room", id="py1", token="t1")
    assert await w1.recv() == {"type": "OPEN"}
    before = await _served(a)
    w2 = await a.ws("nbchat/peerjs", headers=python_peer, key="room", id="py2", token="t2")
    assert await w2.recv() == {"type": "OPEN"}
    assert await _served(a) == before + 1
    # The server token without the cookie is not a remembered credential; Jupyter
    # reads PeerJS's token as the Jupyter token there, so it refuses.
    assert await _refused(a, {"Cookie": "", **python_peer}) == 403
    assert await _served(a) == before + 1
    w1.close()
    w2.close()


async def test_refusals_on_the_fast_path_are_the_realms_as_before(login):
    # The realm still decides ids, rooms and limits: a cached caller gets its refusal
    # frame (sent together with the 101) and then the close.
    a, b = await login(), await login()
    wa, ida = await a.signal("room", token="ta")
    wb, _ = await b.signal("room")  # b is cached from here on
    before = await _served(b)
    taken, _ = await b.signal("room", ida, token="ta", expect_open=False)
    assert await taken.recv() == {"type": "ID-TAKEN", "payload": {"msg": "ID is taken"}}
    assert await taken.conn.read_message() is None
    bad = await b.ws("nbchat/peerjs", key="room")  # no id, no token
    assert await bad.recv() == {"type": "ERROR", "payload": {"msg": Errors.NO_ID_TOKEN_KEY}}
    assert await bad.conn.read_message() is None
    assert await _served(b) == before + 2
    for ws in (wa, wb):
        ws.close()


def test_the_query_token_is_a_credential_unless_the_provider_reads_it_as_jupyter_does():
    from jupyter_server.auth.identity import (
        IdentityProvider,
        LegacyIdentityProvider,
        PasswordIdentityProvider,
    )
    from tests.support.identity import UniqueAnonymousNames

    from nbchat.server.fastpath import _stock_provider, credentials_key

    class OwnUsers(IdentityProvider):
        def get_user(self, handler):  # type: ignore[no-untyped-def]
            return None

    for cls in (IdentityProvider, PasswordIdentityProvider, UniqueAnonymousNames):
        assert _stock_provider(cls()), cls
    for cls in (LegacyIdentityProvider, OwnUsers):
        assert not _stock_provider(cls()), cls
    assert credentials_key("h", "o", "c", None, "t1", True) == credentials_key(
        "h", "o", "c", None, "t2", True
    )
    assert credentials_key("h", "o", "c", None, "t1", False) != credentials_key(
        "h", "o", "c", None, "t2", False
    )
