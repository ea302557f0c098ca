"""``nbchat`` command line: chat in a room from a terminal, or say one thing and leave."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Sequence
from typing import TextIO

from .core.msglog import Message
from .peer import ChatPeer, NbChatError, PresenceEvent

EXIT_OK, EXIT_NOT_DELIVERED, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130
_PROMPT = object()  # --passphrase given without a value


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--server",
        default=os.environ.get("NBCHAT_SERVER") or os.environ.get("NBCHAT_SERVICE_URL"),
        help="Jupyter server URL with its base URL, e.g. http://127.0.0.1:8888/, or an "
        "nbchat service such as https://HUB/services/nbchat/ (default: $NBCHAT_SERVER, "
        "else $NBCHAT_SERVICE_URL, which JupyterHub single-user servers with nbchat have)",
    )
    common.add_argument(
        "--token",
        default=os.environ.get("JUPYTER_TOKEN") or os.environ.get("JUPYTERHUB_API_TOKEN"),
        help="Jupyter token or JupyterHub API token (default: $JUPYTER_TOKEN, else "
        "$JUPYTERHUB_API_TOKEN)",
    )
    common.add_argument(
        "--relay",
        action="store_true",
        help="use only TURN-relayed connections (no peer learns this machine's addresses)",
    )
    common.add_argument(
        "--passphrase",
        nargs="?",
        const=_PROMPT,
        default=os.environ.get("NBCHAT_PASSPHRASE"),
        help="room passphrase: seal signaling so the server can neither read nor change it; "
        "without a value it is asked for (not echoed) (default: $NBCHAT_PASSPHRASE; a value "
        "on the command line is visible to other local users)",
    )
    common.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv: debug)")

    parser = argparse.ArgumentParser(
        prog="nbchat", description="Peer-to-peer chat in a Jupyter nbchat room."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    join = commands.add_parser(
        "join", parents=[common], help="chat in ROOM: typed lines are sent, Ctrl-D leaves"
    )
    join.add_argument("room", metavar="ROOM", help="room name (e.g. a notebook path)")
    say = commands.add_parser(
        "say", parents=[common], help="send one message and wait until a peer has it"
    )
    say.add_argument("room", metavar="ROOM")
    say.add_argument("text", metavar="TEXT", help="the message (Markdown)")
    say.add_argument(
        "--timeout",
        type=float,
        default=15.0,
        help="seconds to wait for a peer to confirm receipt (default: 15)",
    )
    return parser


def _format(message: Message) -> str:
    stamp = time.strftime("%H:%M:%S", time.localtime(message["time"] / 1000))
    name = message["user"]["display_name"] or message["user"]["username"]
    lines = message["text"].splitlines() or [""]
    indent = " " * (len(stamp) + 3)
    return f"[{stamp}] {name}: {lines[0]}" + "".join(f"\n{indent}{line}" for line in lines[1:])


def _name(event: PresenceEvent) -> str:
    user = event.peer["user"]
    return user["display_name"] or user["username"]


async def _stdin_lines() -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    try:
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    except (ValueError, OSError):
        # A regular file on stdin cannot be watched by the loop: read it at once.
        for line in sys.stdin.read().splitlines():
            yield line
        return
    while line_bytes := await reader.readline():
        yield line_bytes.decode("utf-8", errors="replace").rstrip("\r\n")


async def _print_messages(peer: ChatPeer, out: TextIO) -> None:
    async for message in peer.messages():
        print(_format(message), file=out, flush=True)


async def _print_presence(peer: ChatPeer, err: TextIO) -> None:
    async for event in peer.presence():
        verb = "joined" if event.type == "USER_CONNECTED" else "left"
        print(f"* {_name(event)} {verb}", file=err, flush=True)


async def join(
    server: str,
    room: str,
    token: str | None,
    relay: bool = False,
    passphrase: str | None = None,
) -> int:
    async with ChatPeer(server, room, token=token, relay_only=relay, passphrase=passphrase) as peer:
        others = [u for u in peer.users if u["peer_id"] != peer.id]
        names = ", ".join(u["user"]["display_name"] or u["user"]["username"] for u in others)
        print(
            f"* joined {room!r} as {peer.user['display_name']}"
            + (f" with {names}" if names else " (nobody else here yet)")
            + "; type to send, Ctrl-D to leave",
            file=sys.stderr,
            flush=True,
        )
        tasks = [
            asyncio.create_task(_print_messages(peer, sys.stdout)),
            asyncio.create_task(_print_presence(peer, sys.stderr)),
        ]
        try:
            async for line in _stdin_lines():
                if line.strip():
                    try:
                        await peer.send(line)
                    except ValueError as error:
                        print(f"* not sent: {error}", file=sys.stderr, flush=True)
        finally:
            for task in tasks:
                task.cancel()
        # Give what was just typed a moment to reach the peers before closing.
        if peer.peers and peer.history:
            own = [m for m in peer.history if m["author"] == peer.id]
            if own:
                await peer.wait_delivered(own[-1], peers=len(peer.peers), timeout=2.0)
    print("* left", file=sys.stderr, flush=True)
    return EXIT_OK


async def say(
    server: str,
    room: str,
    text: str,
    token: str | None,
    timeout: float,
    relay: bool = False,
    passphrase: str | None = None,
) -> int:
    async with ChatPeer(server, room, token=token, relay_only=relay, passphrase=passphrase) as peer:
        try:
            message = await peer.send(text)
        except ValueError as error:
            print(f"nbchat: error: {error}", file=sys.stderr)
            return EXIT_ERROR
        delivered = await peer.wait_delivered(message, peers=1, timeout=timeout)
        if delivered:
            count = len(peer.delivered_to(message))
            print(f"delivered to {count} peer{'s' if count != 1 else ''}", file=sys.stderr)
            return EXIT_OK
        print(f"not delivered: no peer confirmed receipt within {timeout:g}s", file=sys.stderr)
        refused = {r.peer_id for r in peer.rejected}
        if refused:
            print(
                f"signaling with {len(refused)} peer(s) failed authentication: "
                "a different room passphrase (or none)?",
                file=sys.stderr,
            )
        return EXIT_NOT_DELIVERED


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    level = {0: logging.ERROR, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if not args.server:
        print("nbchat: error: no server: pass --server URL or set NBCHAT_SERVER", file=sys.stderr)
        return EXIT_ERROR
    passphrase = args.passphrase
    try:
        if passphrase is _PROMPT:
            passphrase = getpass.getpass(f"Passphrase for room {args.room!r}: ")
        if passphrase is not None:
            if not passphrase:
                print("nbchat: error: an empty passphrase protects nothing", file=sys.stderr)
                return EXIT_ERROR
            # Refused signaling is worth a line on stderr even without -v.
            logging.getLogger("nbchat.peer.chatpeer").setLevel(min(level, logging.WARNING))
        if args.command == "join":
            return asyncio.run(join(args.server, args.room, args.token, args.relay, passphrase))
        return asyncio.run(
            say(args.server, args.room, args.text, args.token, args.timeout, args.relay, passphrase)
        )
    except NbChatError as error:
        print(f"nbchat: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
