"""``python -m nbchat join|say`` as real subprocesses against a real Jupyter server."""

from __future__ import annotations

import asyncio
import socket
import sys
from typing import Any

import pytest
from tests.support.cli import run_cli
from tests.support.peers import Inbox, until

from nbchat.peer import ChatPeer

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def token(jp_serverapp: Any, jp_fetch: Any) -> str:
    return str(jp_serverapp.identity_provider.token)


async def test_say_reaches_a_peer_and_says_so(server_base: str, token: str) -> None:
    async with ChatPeer(server_base, "cli-say", token=token) as listener:
        inbox = Inbox(listener)
        code, out, err = await run_cli(
            "say", "cli-say", "hello from the shell", "--server", server_base, "--token", token
        )
        assert code == 0, err
        assert "delivered to 1 peer" in err
        [got] = await inbox.wait(1)
        assert got["text"] == "hello from the shell"
        inbox.stop()


async def test_say_uses_env_fallbacks_and_reports_nobody_there(
    server_base: str, token: str
) -> None:
    code, out, err = await run_cli(
        "say",
        "cli-empty",
        "anyone?",
        "--timeout",
        "1",
        env={"NBCHAT_SERVER": server_base, "JUPYTER_TOKEN": token},
    )
    assert code == 1
    assert "not delivered" in err and "Traceback" not in err


async def test_join_prints_arrivals_and_sends_typed_lines(server_base: str, token: str) -> None:
    async with ChatPeer(server_base, "cli-join", token=token) as peer:
        inbox = Inbox(peer)
        await peer.send("before you came")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "nbchat",
            "join",
            "cli-join",
            "--server",
            server_base,
            "--token",
            token,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdin and proc.stdout and proc.stderr
        try:
            name = peer.user["display_name"]
            # History first: the message sent before the terminal joined.
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            assert f"] {name}: before you came" in line and line.startswith("[")
            await peer.send("live message\nsecond line")
            line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
            assert line.rstrip().endswith(f"{name}: live message")
            line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
            assert line.strip() == "second line"
            proc.stdin.write(b"typed in the terminal\n")
            await proc.stdin.drain()
            [got] = await inbox.wait(1)
            assert got["text"] == "typed in the terminal"
            cli_id = got["author"]
            proc.stdin.close()  # Ctrl-D
            assert await asyncio.wait_for(proc.wait(), 20) == 0
            err = (await proc.stderr.read()).decode()
            assert "Traceback" not in err and "* left" in err
            await until(lambda: cli_id not in {u["peer_id"] for u in peer.users})
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        inbox.stop()


async def test_bad_token_is_one_clear_line(server_base: str, token: str) -> None:
    code, out, err = await run_cli("say", "r", "x", "--server", server_base, "--token", "wrong")
    assert code == 2
    assert err.strip().count("\n") == 0 and "Traceback" not in err
    assert "check the token" in err


async def test_wrong_url_is_one_clear_line(server_base: str, token: str) -> None:
    code, out, err = await run_cli(
        "say", "r", "x", "--server", server_base + "nope/", "--token", token
    )
    assert code == 2
    assert err.strip().count("\n") == 0 and "Traceback" not in err
    assert "no nbchat at" in err


async def test_unreachable_server_is_one_clear_line() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: connections are refused
        code, out, err = await run_cli(
            "say", "r", "x", "--server", f"http://127.0.0.1:{port}/", "--token", "t"
        )
    assert code == 2
    assert err.strip().count("\n") == 0 and "Traceback" not in err
    assert "cannot reach" in err


async def test_say_with_the_room_passphrase_reaches_a_protected_peer(
    server_base: str, token: str
) -> None:
    async with ChatPeer(server_base, "cli-sealed", token=token, passphrase="tea") as listener:
        inbox = Inbox(listener)
        code, out, err = await run_cli(
            "say",
            "cli-sealed",
            "sealed from the shell",
            "--server",
            server_base,
            "--token",
            token,
            env={"NBCHAT_PASSPHRASE": "tea"},
        )
        assert code == 0, err
        [got] = await inbox.wait(1)
        assert got["text"] == "sealed from the shell"
        assert listener.rejected == []
        inbox.stop()


async def test_say_with_another_passphrase_is_refused_and_says_why(
    server_base: str, token: str
) -> None:
    async with ChatPeer(server_base, "cli-wrong", token=token, passphrase="tea") as listener:
        code, out, err = await run_cli(
            "say",
            "cli-wrong",
            "let me in",
            "--server",
            server_base,
            "--token",
            token,
            "--passphrase",
            "coffee",
            "--timeout",
            "3",
        )
        assert code == 1, err
        assert "failed authentication" in err and "Traceback" not in err
        assert listener.rejected and listener.history == []
