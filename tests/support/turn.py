"""A real coturn on loopback, started by the test as a child process (``turnserver``).

It allows loopback peers, which a production TURN server must never do (docs/turn.md):
here every peer is on 127.0.0.1.
"""

from __future__ import annotations

import random
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.lab import free_port

from nbchat.server.turn import turn_ice_server


@dataclass
class Turn:
    """A running coturn with TURN REST auth (``--use-auth-secret``)."""

    port: int
    secret: str
    log_path: Path
    proc: subprocess.Popen[bytes]

    @property
    def urls(self) -> list[str]:
        return [f"turn:127.0.0.1:{self.port}?transport=udp"]

    def ice_server(self, user: str = "test", secret: str | None = None) -> dict[str, Any]:
        """An RTCIceServer dict with fresh credentials (made with ``secret`` if given)."""
        return turn_ice_server(self.urls, secret or self.secret, user, time.time(), 600)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"turnserver exited early:\n{log.read_text()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)  # polling a starting process; no event to wait on
    raise TimeoutError(f"turnserver not listening in {timeout}s:\n{log.read_text()[-3000:]}")


@contextmanager
def running_turn(tmp: Path, secret: str | None = None, timeout: float = 10.0) -> Iterator[Turn]:
    """coturn on 127.0.0.1 (UDP and TCP on one free port, relays on a random port range)."""
    binary = shutil.which("turnserver")
    if binary is None:
        raise RuntimeError("coturn is required: apt-get install -y coturn")
    tmp.mkdir(parents=True, exist_ok=True)
    secret = secret or secrets.token_hex(16)
    port = free_port()
    low = random.randrange(42000, 60000, 200)
    log_path = tmp / f"turn-{port}.log"
    args = [
        binary,
        "-n",
        "--listening-ip=127.0.0.1",
        "--relay-ip=127.0.0.1",
        f"--listening-port={port}",
        f"--min-port={low}",
        f"--max-port={low + 199}",
        "--realm=nbchat.test",
        "--use-auth-secret",
        f"--static-auth-secret={secret}",
        "--no-tls",
        "--no-dtls",
        "--no-cli",
        "--log-file=stdout",
        "--simple-log",
        "--allow-loopback-peers",
        f"--pidfile={tmp / f'turn-{port}.pid'}",
        f"--db={tmp / f'turn-{port}.sqlite'}",
    ]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_listening(port, proc, log_path, timeout)
        yield Turn(port=port, secret=secret, log_path=log_path, proc=proc)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
