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
import time
from typing import Any

from tornado.iostream import IOStream

from .wsproto import CLOSED, DRAINING, GOING_AWAY, NORMAL, OP_PING, OPEN, WsProtocol, frame

__all__ = ["Hub", "WsConn", "adopt_stream"]

log = logging.getLogger("nbchat")

_READ_SIZE = 65536
_CLOSE_WAIT = 5.0  # seconds to wait for the peer's close frame, as tornado does


def _outside(fn: Any, *args: Any) -> Any:
    """Call ``fn`` in an empty context. The loop's handles copy the current context, and
    during a request it holds Jupyter's current handler (``CallContext``): registered
    from there, a socket's reader would keep its whole request handler alive."""
    return contextvars.Context().run(fn, *args)


class Hub:
    """Settings shared by every socket and the set of sockets that are open.

    ``sweep`` runs on the extension's clock: it pings sockets that have been quiet for
    ``ping_interval``, drops those quiet for ``ping_timeout`` (a peer that vanished
    without closing its TCP connection) and finishes close handshakes that the other
    side never answered.
    """

    def __init__(self, max_message_size: int, send_buffer_limit: int, owner: Any = None) -> None:
        self.max_message_size = max_message_size
        self.send_buffer_limit = send_buffer_limit
        self.ping_interval = 30.0  # seconds; Jupyter's ws_ping_interval (ms) when set
        self.ping_timeout = 90.0
        self.conns: set[WsConn] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        #: What the WsConn subclasses serve (the signaling service); opaque here, so
        #: that this layer does not depend on the one above it.
        self.owner: Any = owner

    def sweep(self, now: float) -> None:
        interval, timeout = self.ping_interval, self.ping_timeout
        for conn in list(self.conns):
            if conn._proto.state != OPEN:
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
                conn._write(frame(OP_PING, b""))

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

    __slots__ = ("_sock", "_hub", "_proto", "_wbuf", "_timer", "_done", "last_rx", "__weakref__")

    def __init__(self, hub: Hub, sock: socket.socket, unsent: bytes = b"") -> None:
        """``unsent`` (from ``adopt_stream``) goes out before anything else."""
        self._sock = sock
        self._hub = hub
        self._proto = WsProtocol(hub.max_message_size)
        self._wbuf: bytearray | None = None  # bytes the socket would not take yet
        self._done = False  # the socket is closed and on_closed is scheduled
        if hub.loop is None:
            hub.loop = asyncio.get_running_loop()
        if unsent:
            self._wbuf = bytearray(unsent)
            _outside(hub.loop.add_writer, sock.fileno(), self._on_writable)
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
        if self._done:
            return
        hub = self._hub
        hub.conns.add(self)
        assert hub.loop is not None
        _outside(hub.loop.add_reader, self._sock.fileno(), self._on_readable)
        if unread:
            self._receive(unread)

    def hold(self, data: bytes) -> None:
        """Before ``start``: queue ``data`` and hold everything written after it until
        ``release`` (so a handshake response and the first frames go in one send)."""
        self._wbuf = bytearray(data)

    def release(self) -> None:
        """Send what ``hold`` queued; what the socket does not take waits for writable."""
        buf = self._wbuf
        if buf is None or self._done:
            return
        sent = self._send(buf)
        if sent < 0:
            return
        del buf[:sent]
        if not buf:
            self._wbuf = None
        else:
            assert self._hub.loop is not None
            _outside(self._hub.loop.add_writer, self._sock.fileno(), self._on_writable)

    @property
    def closed(self) -> bool:
        return self._proto.state != OPEN

    def send_frame(self, text: str) -> None:
        """Send one text message; silently dropped once the connection is closing."""
        data = self._proto.send_text(text)
        if data is not None:
            self._write(data)

    def close(self, code: int | None = NORMAL, reason: str = "") -> None:
        """Start the closing handshake; the socket closes when the peer answers (or
        after a few seconds if it does not)."""
        data = self._proto.close(code, reason)
        if data is not None:
            self._timer = time.monotonic() + _CLOSE_WAIT
            self._write(data)

    def _finish(self) -> None:
        """Close the socket now and tell the subclass (once, on the next loop turn)."""
        if self._done:
            return
        self._done = True
        self._proto.state = CLOSED
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
        if hub.loop is not None:
            _outside(hub.loop.call_soon, self.on_closed)
        else:
            self.on_closed()

    # -- writing -------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self._done:
            return
        buf = self._wbuf
        if buf is not None:
            buf += data
            if len(buf) > self._hub.send_buffer_limit:
                log.warning(
                    "nbchat: closing a socket that stopped reading (%d bytes waiting to be sent)",
                    len(buf),
                )
                self._finish()
            return
        sent = self._send(data)
        if 0 <= sent < len(data):
            self._wbuf = bytearray(data[sent:])
            assert self._hub.loop is not None
            _outside(self._hub.loop.add_writer, self._sock.fileno(), self._on_writable)

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
            assert self._hub.loop is not None
            self._hub.loop.remove_writer(self._sock.fileno())
            if self._proto.state == DRAINING:
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

    def read_pending(self) -> bool:
        """Read now what waits unread in the socket (the loop has not got to it yet);
        True if there was something."""
        if self._done:
            return False
        try:
            waiting = self._sock.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return False
        if not waiting:
            return False  # EOF: the loop will see it
        self._on_readable()
        return True

    def _receive(self, data: bytes) -> None:
        """Feed the protocol; send what it answers; hand over its messages while open."""
        proto = self._proto
        was = proto.state
        try:
            messages = proto.feed(data)
            # What the peer sent before its close frame is handled even when both came
            # in one read (a server slow to read sees them together: a starved loop lost
            # a leaving client's last frames that way); only a close by a handler stops
            # the rest.
            fed = proto.state
            for message in messages:
                if proto.state != fed:
                    break  # closed meanwhile (by a handler): the rest is not read
                self.on_message(message)
        except Exception:
            log.exception("nbchat: error handling a WebSocket message; closing the socket")
            proto.fail(1011, "internal error")
        if proto.outgoing:
            out = b"".join(proto.outgoing)
            proto.outgoing.clear()
            self._write(out)
        if proto.ended:
            self._finish()
        elif proto.state == DRAINING and was != DRAINING:
            if self._wbuf is None:
                self._finish()
            else:
                self._timer = time.monotonic() + _CLOSE_WAIT
