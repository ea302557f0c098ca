"""``nbchat-signaling`` as its own process: the same protocol as the extension, token auth on
requests and WebSockets, a cookie for browsers, /health, /metrics, config file and CLI,
refusing to run open on the network, and a clean SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets
from tests.support.peers import Inbox
from tests.support.signaling import TOKEN, Service, get, start_service

from nbchat.peer import ChatPeer
from nbchat.peer.errors import AuthenticationFailed


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    s = start_service(tmp_path, f"--token={TOKEN}")
    yield s
    if s.proc.poll() is None:
        s.proc.kill()
        s.proc.wait(10)


def test_health_needs_no_auth_and_says_nothing_more(service: Service) -> None:
    status, body, headers = get(service.url + "health")
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    assert headers["Cache-Control"] == "no-store"


def test_every_other_endpoint_needs_the_token(service: Service) -> None:
    for path in (
        "nbchat/session?room=r",
        "nbchat/r/id",
        "nbchat/r/peers",
        "nbchat/stats",
        "metrics",
        "",
    ):
        assert get(service.url + path)[0] == 403, path
        status, body, _ = get(service.url + path, token="wrong")
        assert status == 403 and json.loads(body)["message"] == "Authentication required"
    status, body, _ = get(service.url + "nbchat/session?room=team/standup", token=TOKEN)
    assert status == 200
    config = json.loads(body)
    # The same URL layout as inside Jupyter, under --base-url.
    assert config["path"] == "/chat/nbchat/"
    assert config["key"].startswith("team-standup-")
    assert config["user"]["username"].startswith("guest-")
    assert TOKEN not in body


def test_the_token_then_a_cookie_carry_one_identity(service: Service) -> None:
    status, body, headers = get(service.url + "nbchat/session?room=r", token=TOKEN)
    cookie = headers["Set-Cookie"].split(";")[0]
    assert "HttpOnly" in headers["Set-Cookie"]
    who = json.loads(body)["user"]["username"]
    # A browser holding the cookie is the same person, without the token...
    status, body, _ = get(service.url + "nbchat/session?room=r", cookie=cookie)
    assert status == 200 and json.loads(body)["user"]["username"] == who
    # ...and a forged cookie is nobody.
    assert get(service.url + "nbchat/session?room=r", cookie=cookie[:-3] + "abc")[0] == 403


def test_the_authorization_header_works_on_websockets_despite_the_peerjs_token(
    service: Service,
) -> None:
    async def main() -> None:
        headers = {"Authorization": f"token {TOKEN}"}
        url = f"{service.ws}nbchat/peerjs?key=room&id=fresh-id&token=peerjs-own-token"
        async with websockets.connect(url, additional_headers=headers) as ws:
            assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"type": "OPEN"}
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(url):
                pass
        assert refused.value.response.status_code == 403
        with pytest.raises(websockets.InvalidStatus):
            async with websockets.connect(url, additional_headers={"Authorization": "token no"}):
                pass

    asyncio.run(main())


def test_python_peers_chat_through_the_standalone_service(service: Service) -> None:
    async def main() -> None:
        async with (
            ChatPeer(service.url, "standup", token=TOKEN) as a,
            ChatPeer(service.url, "standup", token=TOKEN) as b,
        ):
            assert await a.wait_for_peers(1, timeout=20)
            inbox = Inbox(b)
            await a.send("hello from a script")
            [got] = await inbox.wait(1)
            assert got["text"] == "hello from a script"
            assert got["user"]["username"] == a.user["username"] != b.user["username"]
            inbox.stop()
        with pytest.raises(AuthenticationFailed):
            async with ChatPeer(service.url, "standup", token="wrong"):
                pass

    asyncio.run(main())


def test_metrics_are_prometheus_text_with_counts_only(service: Service) -> None:
    async def main() -> None:
        headers = {"Authorization": f"token {TOKEN}"}
        base = f"{service.ws}nbchat/peerjs?key=m&token=t"
        async with (
            websockets.connect(base + "&id=a1", additional_headers=headers) as a,
            websockets.connect(base + "&id=b1", additional_headers=headers) as b,
        ):
            await a.recv(), await b.recv()  # OPEN
            await a.send(json.dumps({"type": "OFFER", "dst": "b1", "payload": {"sdp": "x"}}))
            assert json.loads(await b.recv())["src"] == "a1"
            await a.send("not json")
            assert json.loads(await a.recv())["type"] == "ERROR"
            status, text, headers_ = get(service.url + "metrics", token=TOKEN)
        assert status == 200 and headers_["Content-Type"].startswith("text/plain")
        metrics = {
            line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line and not line.startswith("#")
        }
        assert metrics["nbchat_peers"] == 2
        assert metrics["nbchat_rooms"] == 1
        assert metrics["nbchat_relayed_frames_total"] == 1
        assert metrics['nbchat_refused_frames_total{reason="malformed"}'] == 1
        assert all(name.startswith("nbchat_") for name in metrics)
        assert "a1" not in text and "guest" not in text

    asyncio.run(main())


def test_sigterm_tells_every_peer_it_is_going_away(service: Service) -> None:
    async def main() -> None:
        headers = {"Authorization": f"token {TOKEN}"}
        url = f"{service.ws}nbchat/peerjs?key=k&id=p1&token=t"
        async with (
            websockets.connect(url, additional_headers=headers) as ws,
            websockets.connect(
                f"{service.ws}nbchat/presence?key=k", additional_headers=headers
            ) as presence,
        ):
            await ws.recv(), await presence.recv()
            service.proc.send_signal(signal.SIGTERM)
            for sock in (ws, presence):
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    while True:
                        await asyncio.wait_for(sock.recv(), 10)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001

    asyncio.run(main())
    assert service.proc.wait(10) == 0
    assert "shutting down" in service.log()


def test_without_a_token_it_never_runs_open(tmp_path: Path) -> None:
    public = start_service(tmp_path, "--ip=0.0.0.0", wait=False)
    assert public.proc.wait(20) != 0
    assert "refusing to listen on 0.0.0.0 without a token" in public.log()
    local = start_service(tmp_path)  # loopback: a token is generated and logged
    try:
        token = local.log().split("generated one: ")[1].split()[0]
        assert get(local.url + "nbchat/session?room=r")[0] == 403
        assert get(local.url + "nbchat/session?room=r", token=token)[0] == 200
    finally:
        local.proc.kill()
        local.proc.wait(10)


def test_settings_come_from_a_config_file_and_the_environment(tmp_path: Path) -> None:
    (tmp_path / "nbchat_signaling_config.py").write_text(
        "c.SignalingApp.max_message_bytes = 1234\n"
        "c.SignalingApp.ice_servers = [{'urls': 'stun:stun.example.org'}]\n"
    )
    s = start_service(tmp_path, env={"NBCHAT_SIGNALING_TOKEN": "from-env"})
    try:
        status, body, _ = get(s.url + "nbchat/session?room=r", token="from-env")
        config = json.loads(body)
        assert config["max_message_bytes"] == 1234
        assert config["ice_servers"] == [{"urls": "stun:stun.example.org"}]
    finally:
        s.proc.kill()
        s.proc.wait(10)


def test_a_room_reserved_to_groups_refuses_others_on_every_endpoint(tmp_path: Path) -> None:
    """room_groups: a caller outside the groups (a token holder has none) is refused by
    the session, the id, the peers list and both sockets, in words; other rooms work."""
    s = start_service(
        tmp_path, f"--token={TOKEN}", '--SignalingApp.room_groups={"team/": ["team"]}'
    )
    try:
        open_room = json.loads(get(s.url + "nbchat/session?room=open-room", token=TOKEN)[1])
        assert open_room["audience"] == "everyone with this service's token"
        status, body, _ = get(s.url + "nbchat/session?room=team/standup", token=TOKEN)
        assert status == 403
        assert "reserved to members of the JupyterHub group(s) team" in json.loads(body)["message"]
        key = "team-standup-0123456789abcdef"  # any key of a "team/..." room
        for path in (f"nbchat/{key}/id", f"nbchat/{key}/peers"):
            status, body, _ = get(s.url + path, token=TOKEN)
            assert status == 403 and "reserved to members" in json.loads(body)["message"]

        async def sockets() -> None:
            headers = {"Authorization": f"token {TOKEN}"}
            for url in (
                f"{s.ws}nbchat/peerjs?key={key}&id=p1&token=t",
                f"{s.ws}nbchat/presence?key={key}",
            ):
                async with websockets.connect(url, additional_headers=headers) as ws:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
                    assert frame["type"] == "ERROR"
                    assert "reserved to members" in frame["payload"]["msg"]
                    with pytest.raises(websockets.ConnectionClosed) as closed:
                        await asyncio.wait_for(ws.recv(), 5)
                    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008

        asyncio.run(sockets())
        status, text, _ = get(s.url + "metrics", token=TOKEN)
        assert 'nbchat_refused_frames_total{reason="room_policy"} 2.0' in text
    finally:
        s.proc.kill()
        s.proc.wait(10)


def test_a_frozen_server_does_not_evict_peers_that_kept_beating(tmp_path: Path) -> None:
    """SIGSTOP longer than alive_timeout, then SIGCONT: the peer's HEARTBEATs sat unread
    meanwhile (and the first select() after a stop returns nothing), so the time the
    server did not run must not count as the peer's silence."""
    import threading

    from websockets.sync.client import connect

    s = start_service(
        tmp_path,
        f"--token={TOKEN}",
        "--SignalingApp.alive_timeout=1.5",
    )
    headers = {"Authorization": f"token {TOKEN}"}
    opened, stop = threading.Event(), threading.Event()

    def beating_peer() -> None:
        with connect(
            f"{s.ws}nbchat/peerjs?key=k&id=beating&token=t", additional_headers=headers
        ) as ws:
            assert json.loads(ws.recv(timeout=10)) == {"type": "OPEN"}
            opened.set()
            while not stop.wait(0.2):
                ws.send('{"type":"HEARTBEAT"}')

    thread = threading.Thread(target=beating_peer, daemon=True)
    thread.start()
    try:
        with connect(f"{s.ws}nbchat/presence?key=k", additional_headers=headers) as watch:
            assert opened.wait(10)
            roster = json.loads(watch.recv(timeout=10))
            if not roster["peers"]:
                assert json.loads(watch.recv(timeout=10))["type"] == "USER_CONNECTED"
            s.proc.send_signal(signal.SIGSTOP)
            stop.wait(3.0)  # frozen for twice alive_timeout while the peer keeps beating
            s.proc.send_signal(signal.SIGCONT)
            with pytest.raises(TimeoutError):
                frame = json.loads(watch.recv(timeout=2.0))
                pytest.fail(f"the peer was announced: {frame}")
        assert "did not run for" in s.log()
        assert "evicting silent peer" not in s.log()
    finally:
        stop.set()
        thread.join(10)
        s.proc.kill()
        s.proc.wait(10)
