"""A WebSocket client written frame by frame, to test what a normal client never sends:
fragments, interleaved pings, unmasked or broken frames, bytes trickled one at a time."""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from urllib.parse import urlsplit

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def frame(
    opcode: int, payload: bytes | str, *, fin: bool = True, mask: bool = True, rsv: int = 0
) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    n = len(data)
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n <= 0xFFFF:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + data
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(data))


class RawWs:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(
        cls, url: str, cookie: str, after_handshake: bytes = b"", rcvbuf: int | None = None
    ) -> RawWs:
        """Upgrade ``url`` (http://host:port/path?query); ``after_handshake`` is written in
        the same packet as the request, so the server reads it together with it."""
        parts = urlsplit(url)
        sock = None
        if rcvbuf is not None:
            import socket

            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, (parts.hostname, parts.port))
            reader, writer = await asyncio.open_connection(sock=sock)
        else:
            reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        key = base64.b64encode(os.urandom(16)).decode()
        path = parts.path + ("?" + parts.query if parts.query else "")
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nCookie: {cookie}\r\n\r\n"
        )
        writer.write(request.encode() + after_handshake)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def recv(self, timeout: float = 5.0) -> tuple[int, bytes] | None:
        """The next frame (opcode, payload), or None when the server closed the TCP
        connection."""
        try:
            return await asyncio.wait_for(self._recv(), timeout)
        except (asyncio.IncompleteReadError, ConnectionResetError):
            return None

    async def _recv(self) -> tuple[int, bytes]:
        b0, b1 = await self.reader.readexactly(2)
        assert not b1 & 0x80, "server frames are never masked"
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", await self.reader.readexactly(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", await self.reader.readexactly(8))[0]
        return b0 & 0x0F, await self.reader.readexactly(n)

    async def recv_data(self, timeout: float = 5.0) -> tuple[int, bytes] | None:
        """The next frame that is not a ping (pings are answered)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            got = await self.recv(max(0.01, deadline - loop.time()))
            if got is None or got[0] != OP_PING:
                return got
            await self.send(frame(OP_PONG, got[1]))

    async def closed_with(self, timeout: float = 5.0) -> int | None:
        """Read until the server's close frame; return its code (None if no code)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            got = await self.recv(max(0.01, deadline - loop.time()))
            assert got is not None, "TCP closed without a close frame"
            if got[0] == OP_CLOSE:
                return struct.unpack("!H", got[1][:2])[0] if got[1] else None

    async def eof(self, timeout: float = 5.0) -> bool:
        """True once the server has closed the TCP connection (frames before are skipped)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if await self.recv(max(0.01, deadline - loop.time())) is None:
                return True
        return False

    def abort(self) -> None:
        self.writer.transport.abort()
