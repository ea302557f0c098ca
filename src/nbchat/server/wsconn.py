"""nbchat's sockets after the handshake: RFC 6455 on a bare, non-blocking socket.

Jupyter authenticates the upgrade request and tornado answers the handshake, as for any
Jupyter WebSocket. Then the handler hands the socket to a :class:`WsConn` and lets go:
the request handler, the request, its HTTP connection and the IOStream are freed, and
what stays per socket is the socket, one small object with ``__slots__`` and its entry
in the event loop's selector. Reads and writes go straight between the socket and the
frame parser; keep-alive pings for every socket come from one sweep on the extension's
clock instead of a timer per socket. Why: docs/benchmarks.md.

Where the socket cannot be taken over (TLS, a loop without ``add_reader``, a tornado
whose IOStream internals differ), the handler keeps tornado's own WebSocket protocol,
as it does everywhere with ``--NbChatApp.lean_websocket=False``.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import socket
import struct
import time
from typing import Any

from tornado.iostream import IOStream
from tornado.util import _websocket_mask

__all__ = ["Hub", "WsConn", "adopt_stream"]

log = logging.getLogger("nbchat")

OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_DATA_OPCODES = (OP_TEXT, OP_BINARY)

# Close codes (RFC 6455, section 7.4.1)
NORMAL, GOING_AWAY, PROTOCOL_ERROR = 1000, 1001, 1002
INVALID_DATA, POLICY, TOO_BIG = 1007, 1008, 1009

_OPEN, _CLOSING, _DRAINING, _CLOSED = 0, 1, 2, 3
_READ_SIZE = 65536
_CLOSE_WAIT = 5.0  # seconds to wait for the peer's close frame, as tornado does


def _outside(fn: Any, *args: Any) -> Any:
    """Call ``fn`` in an empty context. The loop's handles copy the current context, and
    during a request it holds Jupyter's current handler (``CallContext``): registered
    from there, a socket's reader would keep its whole request handler alive."""
    return contextvars.Context().run(fn, *args)


def _frame(opcode: int, data: bytes) -> bytes:
    """An unmasked, unfragmented server frame."""
    n = len(data)
    if n < 126:
        return bytes((0x80 | opcode, n)) + data
    if n <= 0xFFFF:
        return struct.pack("!BBH", 0x80 | opcode, 126, n) + data
    return struct.pack("!BBQ", 0x80 | opcode, 127, n) + data


def _close_payload(code: int | None, reason: str) -> bytes:
    if code is None:
        return b""
    return struct.pack("!H", code) + reason.encode("utf-8")[:123]


class Hub:
    """Settings shared by every socket and the set of sockets that are open.

    ``sweep`` runs on the extension's clock: it pings sockets that have been quiet for
    ``ping_interval``, drops those quiet for ``ping_timeout`` (a peer that vanished
    without closing its TCP connection) and finishes close handshakes that the other
    side never answered.
    """

    def __init__(self, max_message_size: int, send_buffer_limit: int) -> None:
        self.max_message_size = max_message_size
        self.send_buffer_limit = send_buffer_limit
        self.ping_interval = 30.0  # seconds; Jupyter's ws_ping_interval (ms) when set
        self.ping_timeout = 90.0
        self.conns: set[WsConn] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.app: Any = None  # what the WsConn subclasses serve (the extension app)

    def sweep(self, now: float) -> None:
        interval, timeout = self.ping_interval, self.ping_timeout
        for conn in list(self.conns):
            state = conn._state
            if state != _OPEN:
                if now >= conn._timer:
                    conn._finish()  # the peer never answered our close frame
                continue
            if interval <= 0:
                continue
            quiet = now - conn.last_rx
            if quiet >= timeout:
                log.info("nbchat: closing a socket silent for %.0f s (ping timeout)", quiet)
                conn._finish()
            elif quiet >= interval and now - conn._timer >= interval:
                conn._timer = now
                conn._write(_frame(OP_PING, b""))

    def close_all(self, code: int = GOING_AWAY, reason: str = "server shutting down") -> None:
        for conn in list(self.conns):
            conn.close(code, reason)
            conn._finish()


def adopt_stream(stream: Any) -> tuple[socket.socket, bytes, bytes] | None:
    """Take the socket out of a detached tornado IOStream.

    Returns the socket (a duplicate of the stream's file descriptor, non-blocking), the
    bytes tornado had already read past the handshake and the bytes it had not written
    yet; then closes the stream, which drops tornado's registration and its descriptor.
    None if this stream cannot be taken over (TLS, unknown tornado internals).
    """
    if type(stream) is not IOStream or stream.closed():
        return None
    proactor = getattr(asyncio, "ProactorEventLoop", None)  # Windows: no add_reader
    if proactor is not None and isinstance(asyncio.get_running_loop(), proactor):
        return None
    try:
        if stream._user_read_buffer or stream._read_future is not None:
            return None
        unread = bytes(stream._read_buffer[: stream._read_buffer_size])
        pending = stream._write_buffer
        unsent = bytes(pending.peek(len(pending))) if len(pending) else b""
        fd = stream.socket.fileno()
    except (AttributeError, TypeError, OSError):
        return None
    sock = socket.socket(fileno=os.dup(fd))
    sock.setblocking(False)
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        # Frames are small and written whole: send them now, not after the next ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    stream.close()
    return sock, unread, unsent


class WsConn:
    """One server-side WebSocket on a bare socket; subclasses handle the messages.

    Subclasses implement ``on_message(text)`` (a complete text or binary message; it is
    synchronous) and ``on_closed()`` (called once, soon after the connection ends for
    any reason, including our own ``close``).
    """

    __slots__ = ("_sock", "_hub", "_rbuf", "_wbuf", "_state", "_frag", "_timer", "last_rx",
                 "__weakref__")

    def __init__(self, hub: Hub, sock: socket.socket, unsent: bytes = b"") -> None:
        """``unsent`` (from ``adopt_stream``) goes out before anything else."""
        self._sock = sock
        self._hub = hub
        self._rbuf: bytes | bytearray = b""  # the start of a frame not fully arrived yet
        self._wbuf: bytearray | None = None  # bytes the socket would not take yet
        if hub.loop is None:
            hub.loop = asyncio.get_running_loop()
        if unsent:
            self._wbuf = bytearray(unsent)
            _outside(hub.loop.add_writer, sock.fileno(), self._on_writable)
        self._state = _OPEN
        self._frag: tuple[int, bytearray] | None = None  # (opcode, data) of a fragmented message
        self._timer = 0.0  # open: when we last pinged; closing: when we give up waiting
        self.last_rx = time.monotonic()

    # -- subclass API --------------------------------------------------------------

    def on_message(self, message: str | bytes) -> None:
        pass

    def on_closed(self) -> None:
        pass

    # -- lifecycle -----------------------------------------------------------------

    def start(self, unread: bytes = b"") -> None:
        """Start reading; ``unread`` (from ``adopt_stream``) is handled first."""
        if self._state == _CLOSED:
            return
        hub = self._hub
        hub.conns.add(self)
        _outside(hub.loop.add_reader, self._sock.fileno(), self._on_readable)  # type: ignore[union-attr]
        if unread:
            self._receive(unread)

    @property
    def closed(self) -> bool:
        return self._state != _OPEN

    def send_frame(self, text: str) -> None:
        """Send one text message; silently dropped once the connection is closing."""
        if self._state == _OPEN:
            self._write(_frame(OP_TEXT, text.encode()))

    def close(self, code: int | None = NORMAL, reason: str = "") -> None:
        """Start the closing handshake; the socket closes when the peer answers (or
        after a few seconds if it does not)."""
        if self._state != _OPEN:
            return
        self._state = _CLOSING
        self._timer = time.monotonic() + _CLOSE_WAIT
        self._write(_frame(OP_CLOSE, _close_payload(code, reason)))

    def _finish(self) -> None:
        """Close the socket now and tell the subclass (once, on the next loop turn)."""
        if self._state == _CLOSED:
            return
        self._state = _CLOSED
        hub = self._hub
        hub.conns.discard(self)
        sock = self._sock
        try:
            fd = sock.fileno()
            if fd >= 0 and hub.loop is not None:
                hub.loop.remove_reader(fd)
                if self._wbuf is not None:
                    hub.loop.remove_writer(fd)
        finally:
            sock.close()
            self._wbuf = None
            self._rbuf = b""
            self._frag = None
        if hub.loop is not None:
            _outside(hub.loop.call_soon, self.on_closed)
        else:
            self.on_closed()

    # -- writing -------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self._state == _CLOSED:
            return
        buf = self._wbuf
        if buf is not None:
            buf += data
            if len(buf) > self._hub.send_buffer_limit:
                log.warning("nbchat: closing a socket that stopped reading "
                            "(%d bytes waiting to be sent)", len(buf))
                self._finish()
            return
        sent = self._send(data)
        if 0 <= sent < len(data):
            self._wbuf = bytearray(data[sent:])
            _outside(self._hub.loop.add_writer, self._sock.fileno(), self._on_writable)  # type: ignore[union-attr]

    def _send(self, data: bytes | bytearray) -> int:
        """Bytes the socket took (0 if it would block); -1 if it failed and is closed."""
        try:
            return self._sock.send(data)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError:
            self._finish()
            return -1

    def _on_writable(self) -> None:
        buf = self._wbuf
        if buf is None:
            return
        sent = self._send(buf)
        if sent <= 0:
            return
        del buf[:sent]
        if not buf:
            self._wbuf = None
            self._hub.loop.remove_writer(self._sock.fileno())  # type: ignore[union-attr]
            if self._state == _DRAINING:
                self._finish()

    # -- reading -------------------------------------------------------------------

    def _on_readable(self) -> None:
        try:
            data = self._sock.recv(_READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._finish()
            return
        if not data:
            self._finish()  # EOF: the peer is gone
            return
        self.last_rx = time.monotonic()
        self._receive(data)

    def _receive(self, data: bytes) -> None:
        rbuf = self._rbuf
        if rbuf:  # the rest of a frame: append (amortized), never re-copy what we hold
            rbuf += data  # type: ignore[operator]  # a bytearray once it holds a partial frame
            data = rbuf
        try:
            used = self._parse(data)
        except Exception:
            log.exception("nbchat: error handling a WebSocket message; closing the socket")
            self._fail(1011, "internal error")
            return
        if self._state == _CLOSED or used == len(data):
            self._rbuf = b""
        elif rbuf:
            del rbuf[:used]  # type: ignore[attr-defined]
        else:
            self._rbuf = bytearray(data[used:])

    def _fail(self, code: int, reason: str) -> None:
        """A protocol violation: say why (if we still can) and drop the connection."""
        if self._state == _OPEN:
            self._state = _DRAINING
            self._write(_frame(OP_CLOSE, _close_payload(code, reason)))
            if self._wbuf is None:
                self._finish()
            else:
                self._timer = time.monotonic() + _CLOSE_WAIT
        else:
            self._finish()

    def _parse(self, buf: bytes | bytearray) -> int:
        """Handle every complete frame at the start of ``buf``; return the bytes used."""
        pos, end = 0, len(buf)
        max_size = self._hub.max_message_size
        while end - pos >= 2 and self._state < _DRAINING:
            b0, b1 = buf[pos], buf[pos + 1]
            opcode = b0 & 0x0F
            if b0 & 0x70:
                self._fail(PROTOCOL_ERROR, "no extension was negotiated")
                break
            if not b1 & 0x80:
                self._fail(PROTOCOL_ERROR, "client frames must be masked")
                break
            n = b1 & 0x7F
            at = pos + 2
            if n == 126:
                if end - at < 2:
                    break
                n = (buf[at] << 8) | buf[at + 1]
                at += 2
            elif n == 127:
                if end - at < 8:
                    break
                n = int.from_bytes(buf[at:at + 8], "big")
                at += 8
            control = opcode & 0x8
            if control:
                if n > 125 or not b0 & 0x80 or opcode not in (OP_CLOSE, OP_PING, OP_PONG):
                    self._fail(PROTOCOL_ERROR, "bad control frame")
                    break
            elif opcode not in (OP_CONTINUATION, OP_TEXT, OP_BINARY):
                self._fail(PROTOCOL_ERROR, "unknown opcode")
                break
            elif n + (len(self._frag[1]) if self._frag else 0) > max_size:
                self._fail(TOO_BIG, "message too big")
                break
            if end - at < n + 4:
                break  # wait for the rest of this frame
            key, payload = buf[at:at + 4], buf[at + 4:at + 4 + n]
            if type(buf) is not bytes:
                key, payload = bytes(key), bytes(payload)
            payload = _websocket_mask(key, payload)
            pos = at + 4 + n
            if control:
                self._control(opcode, payload)
                continue
            fin = b0 & 0x80
            if opcode == OP_CONTINUATION:
                if self._frag is None:
                    self._fail(PROTOCOL_ERROR, "nothing to continue")
                    break
                self._frag[1].extend(payload)
                if not fin:
                    continue
                opcode, payload = self._frag[0], bytes(self._frag[1])
                self._frag = None
            elif self._frag is not None:
                self._fail(PROTOCOL_ERROR, "previous message not finished")
                break
            elif not fin:
                self._frag = (opcode, bytearray(payload))
                continue
            if self._state != _OPEN:
                continue  # we are closing: data is no longer read
            if opcode == OP_TEXT:
                try:
                    message: str | bytes = payload.decode("utf-8")
                except UnicodeDecodeError:
                    self._fail(INVALID_DATA, "text is not UTF-8")
                    break
            else:
                message = payload
            self.on_message(message)
        return pos

    def _control(self, opcode: int, payload: bytes) -> None:
        if opcode == OP_PING:
            if self._state == _OPEN:
                self._write(_frame(OP_PONG, payload))
        elif opcode == OP_CLOSE:
            if len(payload) == 1:
                self._fail(PROTOCOL_ERROR, "bad close frame")
                return
            if self._state == _CLOSING:
                self._finish()  # the answer to our close frame
                return
            # The peer closes: echo its code, then close once that is written.
            code = struct.unpack("!H", payload[:2])[0] if payload else None
            self._state = _DRAINING
            self._timer = time.monotonic() + _CLOSE_WAIT
            self._write(_frame(OP_CLOSE, _close_payload(code, "")))
            if self._wbuf is None:
                self._finish()
        # OP_PONG: nothing to do; any frame counts as a sign of life (last_rx)
