"""Black-box tests of the server extension over real sockets (pytest-jupyter)."""

from __future__ import annotations

import asyncio
import json

import pytest
from tests.conftest import TEST_NBCHAT_CONFIG
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from nbchat.core.signing import generate_key, public_key, verify_cert
from nbchat.protocol import Errors, room_key

ROOM = "notebooks/shared analysis.ipynb"


async def no_frame(ws, timeout: float = 0.4) -> None:
    """Assert nothing arrives within ``timeout`` (used only for negative checks)."""
    with pytest.raises(asyncio.TimeoutError):
        await ws.recv(timeout)


# ---- session config ------------------------------------------------------------------


async def test_session_config_gives_key_path_user_and_no_ice_servers(login, jp_base_url):
    a = await login()
    s = await a.session(ROOM)
    assert s["room"] == ROOM
    assert s["key"] == room_key(ROOM)
    assert s["key"].startswith("notebooks-shared-analysis-ipynb-")
    assert s["path"] == jp_base_url + "nbchat/"
    assert s["ice_servers"] == []  # nothing public is contacted unless configured
    assert s["user"] == a.identity
    assert s["user"]["username"] and s["user"]["display_name"]
    # tests run with alive_timeout 1.5 s: the advertised heartbeat stays well inside it
    assert s["ping_interval"] == 500 and s["alive_timeout"] == 1500


async def test_room_keys_are_the_same_for_every_user(login):
    a, b = await login(), await login()
    assert (await a.session(ROOM))["key"] == (await b.session(ROOM))["key"]
    assert (await a.session("plain_room-1"))["key"] == "plain_room-1"


@pytest.mark.parametrize(
    "nbchat_config", [{"ice_servers": [{"urls": "stun:stun.example.test:3478"}]}]
)
async def test_configured_ice_servers_are_handed_out(login):
    s = await (await login()).session("r")
    assert s["ice_servers"] == [{"urls": "stun:stun.example.test:3478"}]


async def test_session_without_room_is_a_clear_400(login):
    a = await login()
    r = await a.get("nbchat/session", raise_error=False)
    assert r.code == 400
    assert "room" in json.loads(r.body)["message"]


# ---- auth ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "nbchat/session?room=x",
        "nbchat/room/id",
        "nbchat/room/peers",
        "nbchat/room/cert?id=a&pk=b",
        "nbchat/static/widget.js",
        "nbchat/static/widget.css",
    ],
)
async def test_http_endpoints_without_credentials_are_403(server_base, jp_fetch, path):
    r = await AsyncHTTPClient().fetch(server_base + path, raise_error=False, follow_redirects=False)
    assert r.code == 403


@pytest.mark.parametrize(
    "path", ["nbchat/peerjs?key=room&id=abc&token=t", "nbchat/presence?key=room"]
)
async def test_websockets_without_credentials_are_403(server_base, jp_fetch, path):
    with pytest.raises(HTTPClientError) as err:
        await websocket_connect("ws" + server_base[4:] + path)
    assert err.value.code == 403


async def test_websocket_with_cookie_from_foreign_origin_is_refused(login):
    a = await login()
    for path in ("nbchat/peerjs", "nbchat/presence"):
        with pytest.raises(HTTPClientError) as err:
            await a.ws(
                path, headers={"Origin": "http://evil.example"}, key="room", id="abc", token="t"
            )
        assert err.value.code == 403


async def test_peerjs_token_in_query_does_not_break_cookie_auth(login):
    # PeerJS puts its own token in ?token=; Jupyter must fall back to the cookie.
    a = await login()
    ws, _ = await a.signal("room", token="peerjs-random-token")
    ws.close()


# ---- signaling ----------------------------------------------------------------------


async def test_ids_are_issued_per_user_and_unique(login):
    a = await login()
    ids = {await a.new_id("room") for _ in range(20)}
    assert len(ids) == 20


async def test_relay_sets_src_and_ignores_a_claimed_src(login):
    a, b = await login(), await login()
    wa, ida = await a.signal("room")
    wb, idb = await b.signal("room")
    for kind in ("OFFER", "ANSWER", "CANDIDATE"):
        await wa.send({"type": kind, "dst": idb, "src": "someone-else", "payload": {"k": kind}})
        assert await wb.recv() == {"type": kind, "src": ida, "dst": idb, "payload": {"k": kind}}
    await wb.send({"type": "LEAVE", "dst": ida})
    assert await wa.recv() == {"type": "LEAVE", "src": idb, "dst": ida, "payload": None}


@pytest.mark.parametrize("extra", ["", ', "note": "an extra key is dropped"'])
async def test_a_lone_surrogate_escape_is_relayed_as_valid_json(login, extra):
    """``"\\ud800"`` is valid JSON but has no UTF-8 form: the relay must keep it escaped
    (a raw surrogate would break the recipient's socket, or the server's write)."""
    a, b = await login(), await login()
    wa, ida = await a.signal("room")
    wb, idb = await b.signal("room")
    await wa.send('{"type":"OFFER","dst":"' + idb + '","payload":"\\ud800 \\u00e9"' + extra + "}")
    got = await wb.recv()
    assert got == {"type": "OFFER", "src": ida, "dst": idb, "payload": "\ud800 \u00e9"}
    await wa.send({"type": "OFFER", "dst": idb, "payload": "sender still connected"})
    assert (await wb.recv())["payload"] == "sender still connected"


async def test_heartbeat_is_silent(login):
    a = await login()
    wa, _ = await a.signal("room")
    await wa.send({"type": "HEARTBEAT"})
    await no_frame(wa)


async def test_frames_to_an_offline_id_are_queued_and_delivered_in_order(login):
    a, b = await login(), await login()
    wa, ida = await a.signal("room")
    idb = await b.new_id("room")
    for i in range(3):
        await wa.send({"type": "CANDIDATE", "dst": idb, "payload": i})
    wb, _ = await b.signal("room", idb, expect_open=False)
    assert await wb.recv() == {"type": "OPEN"}
    assert [(await wb.recv())["payload"] for _ in range(3)] == [0, 1, 2]
    await no_frame(wa)  # delivered, so no EXPIRE


async def test_frame_to_an_id_that_never_connects_expires(login):
    a = await login()
    wa, ida = await a.signal("room")
    await wa.send({"type": "OFFER", "dst": "nobody-here", "payload": {}})
    frame = await wa.recv(timeout=5)
    assert frame == {"type": "EXPIRE", "src": "nobody-here", "dst": ida}


async def test_silent_peer_is_evicted_and_announced(login):
    a, b = await login(), await login()
    pb, _ = await b.presence("room")
    wa, ida = await a.signal("room")
    assert (await pb.recv())["type"] == "USER_CONNECTED"
    # a sends nothing (no HEARTBEAT) for alive_timeout (1.5 s in tests)
    gone = await pb.recv(timeout=5)
    assert gone["type"] == "USER_DISCONNECTED" and gone["peer"]["peer_id"] == ida
    assert await wa.conn.read_message() is None  # its socket was closed


async def test_heartbeats_keep_a_peer_alive(login):
    a, b = await login(), await login()
    wa, ida = await a.signal("room")
    for _ in range(8):  # 2.4 s of heartbeats, beyond alive_timeout
        await wa.send({"type": "HEARTBEAT"})
        await no_frame(wa, 0.3)
    r = await b.get("nbchat/room/peers")
    assert json.loads(r.body) == [ida]


# ---- ids are bound to users ---------------------------------------------------------


async def test_another_user_cannot_take_an_id(login):
    a, b = await login(), await login()
    wa, ida = await a.signal("room", token="ta")
    wb, _ = await b.signal("room", ida, token="ta", expect_open=False)
    assert await wb.recv() == {"type": "ID-TAKEN", "payload": {"msg": "ID is taken"}}
    assert await wb.conn.read_message() is None
    # ... not even after a has left
    wa.close()
    assert await wa.conn.read_message() is None
    wb2, _ = await b.signal("room", ida, token="ta", expect_open=False)
    assert (await wb2.recv())["type"] == "ID-TAKEN"


async def test_an_issued_id_cannot_be_used_by_another_user(login):
    a, b = await login(), await login()
    ida = await a.new_id("room")
    wb, _ = await b.signal("room", ida, expect_open=False)
    assert (await wb.recv())["type"] == "ID-TAKEN"


async def test_same_user_other_token_is_id_taken_while_connected(login):
    a = await login()
    wa, ida = await a.signal("room", token="t1")
    w2, _ = await a.signal("room", ida, token="t2", expect_open=False)
    assert (await w2.recv())["type"] == "ID-TAKEN"


async def test_same_token_reconnect_gets_open_and_takes_over(login):
    a, b = await login(), await login()
    wa, ida = await a.signal("room", token="t1")
    wb, idb = await b.signal("room")
    # peerjs reconnect(): same id and token on a new socket; upstream sends no OPEN
    wa2, _ = await a.signal("room", ida, token="t1")  # asserts OPEN
    assert await wa.conn.read_message() is None  # the old socket is closed
    await wb.send({"type": "OFFER", "dst": ida, "payload": 1})
    assert (await wa2.recv())["src"] == idb


# ---- rooms --------------------------------------------------------------------------


async def test_rooms_are_isolated(login):
    a, b, c = await login(), await login(), await login()
    wa, ida = await a.signal("room-one")

    async def beat() -> None:  # a stays alive however slow the rest is (alive_timeout 1.5 s)
        while True:
            await wa.send({"type": "HEARTBEAT"})
            await asyncio.sleep(0.3)

    beating = asyncio.get_running_loop().create_task(beat())
    try:
        wc, idc = await c.signal("room-two")
        pc, roster = await c.presence("room-two")
        assert [p["peer_id"] for p in roster["peers"]] == [idc]
        # c cannot reach a: the frame waits for an "idA" in room-two and expires
        await wc.send({"type": "OFFER", "dst": ida, "payload": "x"})
        assert (await wc.recv(timeout=5))["type"] == "EXPIRE"
        await no_frame(wa)
    finally:
        beating.cancel()
    r = await b.get("nbchat/room-two/peers")
    assert json.loads(r.body) == [idc]
    # a newcomer in room-one is not announced in room-two
    wb, _ = await b.signal("room-one")
    await no_frame(pc)


@pytest.mark.parametrize("key", ["bad key", "a/b", "x" * 129, "", "é"])
async def test_invalid_room_key_is_a_clear_error(login, key):
    a = await login()
    ws = await a.ws("nbchat/peerjs", key=key, id="abc", token="t")
    frame = await ws.recv()
    assert frame["type"] == "ERROR"
    assert frame["payload"]["msg"] in (Errors.INVALID_KEY, Errors.NO_ID_TOKEN_KEY)
    pr = await a.ws("nbchat/presence", key=key)
    assert (await pr.recv())["type"] == "ERROR"


async def test_missing_id_or_token_is_a_clear_error(login):
    a = await login()
    ws = await a.ws("nbchat/peerjs", key="room")
    assert await ws.recv() == {"type": "ERROR", "payload": {"msg": Errors.NO_ID_TOKEN_KEY}}
    assert await ws.conn.read_message() is None


@pytest.mark.parametrize("nbchat_config", [{"allow_discovery": False}])
async def test_discovery_can_be_turned_off(login):
    a = await login()
    r = await a.get("nbchat/room/peers", raise_error=False)
    assert r.code == 403


# ---- presence -----------------------------------------------------------------------


async def test_presence_roster_then_connected_and_disconnected_with_identity(login):
    a, b, c = await login(), await login(), await login()
    wa, ida = await a.signal("room")
    pc, roster = await c.presence("room")
    assert roster == {
        "type": "ROSTER",
        "key": "room",
        "peers": [{"peer_id": ida, "user": a.identity}],
    }
    wb, idb = await b.signal("room")
    assert await pc.recv() == {
        "type": "USER_CONNECTED",
        "key": "room",
        "peer": {"peer_id": idb, "user": b.identity},
    }
    wb.close()
    assert await pc.recv() == {
        "type": "USER_DISCONNECTED",
        "key": "room",
        "peer": {"peer_id": idb, "user": b.identity},
    }


# ---- bad input ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame, error",
    [
        ("not json", Errors.MALFORMED),
        ("[1, 2]", Errors.MALFORMED),
        ('{"type": 5}', Errors.MALFORMED),
        ('{"type": "NOPE", "dst": "x"}', Errors.UNKNOWN_TYPE),
        ('{"type": "OFFER", "payload": {}}', Errors.MISSING_DST),
        ('{"type": "OFFER", "dst": "../../etc", "payload": {}}', Errors.MISSING_DST),
        ("[" * 20_000, Errors.TOO_BIG),
        ('{"type": "OFFER", "dst": "b", "payload": "' + "x" * 9000 + '"}', Errors.TOO_BIG),
    ],
)
async def test_bad_frames_get_a_clear_error_and_nothing_else_breaks(login, frame, error):
    a, b = await login(), await login()
    wa, ida = await a.signal("room")
    wb, idb = await b.signal("room")
    await wa.send(frame)
    reply = await wa.recv()
    assert reply["type"] == "ERROR" and reply["payload"]["msg"].startswith(error)
    # the sender's socket still works, and so does everyone else's
    await wa.send({"type": "OFFER", "dst": idb, "payload": "still here"})
    assert (await wb.recv())["payload"] == "still here"
    await no_frame(wb, 0.2)


async def test_a_huge_frame_closes_only_that_socket(login):
    # Beyond 4x max_message_bytes tornado refuses to buffer it: close code 1009.
    a, b = await login(), await login()
    wa, _ = await a.signal("room")
    wb, idb = await b.signal("room")
    wc, _ = await a.signal("room")
    await wa.send("x" * 100_000)
    assert await wa.conn.read_message() is None
    assert wa.conn.close_code == 1009
    await wc.send({"type": "OFFER", "dst": idb, "payload": "fine"})
    assert (await wb.recv())["payload"] == "fine"


async def test_deeply_nested_json_is_an_error_not_a_crash(login):
    a = await login()
    wa, _ = await a.signal("room")
    await wa.send("[" * 5000 + "]" * 5000)  # within the size limit
    assert (await wa.recv())["type"] == "ERROR"


@pytest.mark.parametrize("nbchat_config", [{"rate_limit": 20.0, "rate_burst": 10.0}])
async def test_a_flood_from_one_socket_is_throttled(login):
    a, b = await login(), await login()
    wa, _ = await a.signal("room")
    wb, idb = await b.signal("room")
    for i in range(40):
        await wa.send({"type": "CANDIDATE", "dst": idb, "payload": i})
    errors = 0
    for _ in range(40):
        frame = await wa.recv()
        if frame["type"] == "ERROR" and frame["payload"]["msg"] == Errors.RATE_LIMIT:
            errors += 1
        if errors >= 25:
            break
    assert errors >= 25
    delivered = []
    while True:
        try:
            delivered.append((await wb.recv(0.3))["payload"])
        except asyncio.TimeoutError:
            break
    assert 10 <= len(delivered) <= 15 and delivered == sorted(delivered)


@pytest.mark.parametrize("nbchat_config", [{"max_connections_per_user": 2}])
async def test_too_many_connections_per_user(login):
    a = await login()
    await a.signal("room")
    await a.signal("room")
    ws = await a.ws("nbchat/peerjs", key="room", id=await a.new_id("room"), token="t")
    assert await ws.recv() == {"type": "ERROR", "payload": {"msg": Errors.USER_LIMIT}}


@pytest.mark.parametrize("nbchat_config", [{"max_rooms_per_user": 2}])
async def test_too_many_rooms_per_user(login):
    a = await login()
    await a.signal("r1")
    await a.signal("r2")
    ws = await a.ws("nbchat/peerjs", key="r3", id=await a.new_id("r3"), token="t")
    assert await ws.recv() == {"type": "ERROR", "payload": {"msg": Errors.ROOM_LIMIT}}


@pytest.mark.parametrize("nbchat_config", [{"concurrent_limit": 1}])
async def test_concurrent_limit(login):
    a, b = await login(), await login()
    await a.signal("room")
    ws = await b.ws("nbchat/peerjs", key="room", id=await b.new_id("room"), token="t")
    assert await ws.recv() == {"type": "ERROR", "payload": {"msg": Errors.CONCURRENT_LIMIT}}


async def test_state_is_empty_after_everyone_leaves(login, jp_serverapp):
    app = next(ext for ext in jp_serverapp.extension_manager.extension_apps["nbchat"])
    a, b = await login(), await login()
    socks = [
        (await a.signal("room"))[0],
        (await b.signal("room"))[0],
        (await a.presence("room"))[0],
    ]
    await socks[0].send({"type": "OFFER", "dst": "ghost", "payload": 1})
    assert app.realm.stats()["clients"] == 2
    for ws in socks:
        ws.close()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while app.realm.stats()["rooms"] and loop.time() < deadline:
        await asyncio.sleep(0.05)  # polling server state: there is no event to await
    assert app.realm.stats() | {"bindings": 0} == {
        "rooms": 0,
        "clients": 0,
        "bindings": 0,
        "queued": 0,
        "subscribers": 0,
    }


async def test_authorization_header_with_token_logs_a_script_in(
    jp_serverapp, server_base, jp_fetch
):
    token = jp_serverapp.identity_provider.token
    r = await AsyncHTTPClient().fetch(
        HTTPRequest(
            server_base + "nbchat/session?room=x", headers={"Authorization": f"token {token}"}
        )
    )
    assert any(c.startswith("username-") for c in r.headers.get_list("Set-Cookie"))
    bad = await AsyncHTTPClient().fetch(
        HTTPRequest(
            server_base + "nbchat/session?room=x",
            headers={"Authorization": "token wrong"},
            follow_redirects=False,
        ),
        raise_error=False,
    )
    assert bad.code == 403


async def test_stats_count_without_naming_anyone(login, server_base):
    a = await login()
    ws, peer_id = await a.signal("room")
    r = await a.get("nbchat/stats")
    stats = json.loads(r.body)
    assert stats["clients"] == 1 and stats["rooms"] == 1 and stats["tasks"] >= 1
    assert peer_id not in r.body.decode()
    anonymous = await AsyncHTTPClient().fetch(server_base + "nbchat/stats", raise_error=False)
    assert anonymous.code == 403


@pytest.mark.parametrize("nbchat_config", [{**TEST_NBCHAT_CONFIG, "lean_websocket": False}])
async def test_stock_tornado_websocket_path_relays_too(login):
    a, b = await login(), await login()
    wa, ida = await a.signal("room")
    wb, idb = await b.signal("room")
    await wa.send({"type": "OFFER", "dst": idb, "payload": "x" * 9_000})
    assert (await wa.recv())["payload"]["msg"].startswith(Errors.TOO_BIG)
    await wa.send({"type": "OFFER", "dst": idb, "payload": "stock"})
    assert await wb.recv() == {"type": "OFFER", "src": ida, "dst": idb, "payload": "stock"}


async def test_a_blocked_server_loop_does_not_evict_peers_whose_heartbeats_wait_unread(login):
    """The server's loop stalls longer than alive_timeout (in tests 1.5 s) while a peer
    in another thread keeps sending HEARTBEATs: those sit unread in its socket, and the
    peer must not be evicted when the loop wakes up."""
    import threading
    import time as _time

    from websockets.sync.client import connect

    a, b = await login(), await login()
    pb, _ = await b.presence("room")
    peer_id = await a.new_id("room")
    url = "ws" + a.base[4:] + f"nbchat/peerjs?key=room&id={peer_id}&token=t"
    opened, stop = threading.Event(), threading.Event()

    def beating_peer() -> None:
        with connect(url, additional_headers={"Cookie": a.cookie}) as ws:
            assert json.loads(ws.recv(timeout=10)) == {"type": "OPEN"}
            opened.set()
            while not stop.wait(0.2):
                ws.send('{"type":"HEARTBEAT"}')

    thread = threading.Thread(target=beating_peer, daemon=True)
    thread.start()
    try:
        assert (await pb.recv(timeout=10))["type"] == "USER_CONNECTED"
        _time.sleep(3.0)  # deliberately block the server's loop (it is this loop)
        await no_frame(pb, 1.5)  # no USER_DISCONNECTED once the loop runs again
    finally:
        stop.set()
        await asyncio.get_running_loop().run_in_executor(None, thread.join, 10)


def test_debug_records_are_built_only_when_a_handler_shows_them():
    """Jupyter sets its logger to DEBUG and its handler to INFO; nbchat's per-connect
    debug lines must not build records that nobody shows."""
    import logging

    from nbchat.server.service import debug_shown

    log = logging.getLogger("nbchat-test-debug-shown")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    handler = logging.StreamHandler()
    handler.setLevel(logging.INFO)
    log.addHandler(handler)
    try:
        assert not debug_shown(log)
        assert not debug_shown(logging.LoggerAdapter(log, {}))
        handler.setLevel(logging.DEBUG)
        assert debug_shown(log)
        log.setLevel(logging.INFO)
        assert not debug_shown(log)
    finally:
        log.removeHandler(handler)


# ---- certificates (signed entries) --------------------------------------------------


async def test_a_peer_gets_a_certificate_for_its_own_id_and_key_only(login):
    a, b = await login(), await login()
    session = await a.session("certs")
    key, keys = session["key"], session["server_keys"]
    assert len(keys) == 1 and (await b.session("certs"))["server_keys"] == keys
    mine = await a.new_id(key)
    public = public_key(generate_key())
    r = await a.get(f"nbchat/{key}/cert", id=mine, pk=public)
    cert = verify_cert(keys, json.loads(r.body), key)
    assert cert is not None and cert["peer"] == mine and cert["key"] == public
    assert cert["user"]["username"] == a.identity["username"]
    # Asking again for the same key is the same certificate.
    assert json.loads((await a.get(f"nbchat/{key}/cert", id=mine, pk=public)).body) == cert
    # Someone else's id, another key for an id that has one, junk: refused, said why.
    refused = await b.get(f"nbchat/{key}/cert", raise_error=False, id=mine, pk=public)
    assert refused.code == 403 and "not yours" in json.loads(refused.body)["message"]
    swap = public_key(generate_key())
    swapped = await a.get(f"nbchat/{key}/cert", raise_error=False, id=mine, pk=swap)
    assert swapped.code == 409 and "another key" in json.loads(swapped.body)["message"]
    junk = await a.get(f"nbchat/{key}/cert", raise_error=False, id=mine, pk="short")
    assert junk.code == 400 and "32 bytes" in json.loads(junk.body)["message"]
    no_id = await a.get(f"nbchat/{key}/cert", raise_error=False, pk=public)
    assert no_id.code == 400


# ---- the widget's bundle -------------------------------------------------------------------


async def test_the_widget_bundle_is_served_versioned_and_the_kernel_widget_only_points_at_it(
    login,
):
    """The kernel's widget carries a loader of ~1.7 KB, not the ~0.5 MB bundle:
    the page imports the bundle from here, once per version (cacheable)."""
    from nbchat.assets import STATIC, bundle_version, loader_esm
    from nbchat.widget import Chat

    user = await login()
    bundle = (STATIC / "widget.js").read_bytes()
    version = bundle_version()
    assert len(Chat._esm) < 2_000 and f"nbchat/static/widget.js?v={version}" in Chat._esm
    assert Chat._esm == loader_esm()
    r = await user.get("nbchat/static/widget.js", v=version)
    assert r.body == bundle
    assert r.headers["Content-Type"].startswith("text/javascript")
    assert "immutable" in r.headers["Cache-Control"]
    # Another version (an older kernel's, say) is served, not cached for good.
    r = await user.get("nbchat/static/widget.js", v="0" * 16)
    assert r.body == bundle and r.headers["Cache-Control"] == "no-cache"
    css = await user.get("nbchat/static/widget.css")
    assert css.headers["Content-Type"].startswith("text/css") and b".nbchat-load-error" in css.body
    for name in ("other.js", "..%2Fwidget.py", "widget.js.map"):
        assert (await user.get(f"nbchat/static/{name}", raise_error=False)).code == 404
