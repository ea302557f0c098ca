"""RFC 6455 for the server side of one connection, sans I/O: bytes in, messages and bytes
to send out. ``wsconn.WsConn`` carries it on a socket; the tests feed it byte strings.

States: OPEN (reading and sending), CLOSING (we sent a close frame and wait for the
answer), DRAINING (the peer closed or broke the protocol: our close frame goes out, then
the connection ends), CLOSED. ``feed`` never raises on any input: a protocol violation
becomes a close frame with its RFC code (1002, 1007, 1009) and nothing after it is read.
"""

from __future__ import annotations

import struct

from tornado.util import _websocket_mask

__all__ = ["WsProtocol", "frame", "OPEN", "CLOSING", "DRAINING", "CLOSED"]

OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

# Close codes (RFC 6455, section 7.4.1)
NORMAL, GOING_AWAY, PROTOCOL_ERROR = 1000, 1001, 1002
INVALID_DATA, POLICY, TOO_BIG = 1007, 1008, 1009

OPEN, CLOSING, DRAINING, CLOSED = 0, 1, 2, 3


def frame(opcode: int, data: bytes) -> bytes:
    """An unmasked, unfragmented server frame."""
    n = len(data)
    if n < 126:
        return bytes((0x80 | opcode, n)) + data
    if n <= 0xFFFF:
        return struct.pack("!BBH", 0x80 | opcode, 126, n) + data
    return struct.pack("!BBQ", 0x80 | opcode, 127, n) + data


def close_payload(code: int | None, reason: str) -> bytes:
    if code is None:
        return b""
    return struct.pack("!H", code) + reason.encode("utf-8")[:123]


class WsProtocol:
    """One connection's frames: ``feed(data)`` returns the complete messages it held;
    what must be sent in reply (pongs, close frames) collects in ``outgoing``, which the
    carrier sends and clears. ``ended`` turns true when the connection should be closed
    now (the close handshake is complete)."""

    __slots__ = ("max_size", "state", "outgoing", "ended", "_rbuf", "_frag")

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.state = OPEN
        self.outgoing: list[bytes] = []
        self.ended = False
        self._rbuf: bytearray | None = None  # the start of a frame not fully arrived yet
        self._frag: tuple[int, bytearray] | None = None  # (opcode, data) so far

    @property
    def buffered(self) -> int:
        """Bytes held for a frame that has not fully arrived."""
        return len(self._rbuf) if self._rbuf is not None else 0

    # ---- sending -------------------------------------------------------------------
    def send_text(self, text: str) -> bytes | None:
        """The frame for one text message, or None once the connection is closing."""
        return frame(OP_TEXT, text.encode()) if self.state == OPEN else None

    def close(self, code: int | None = NORMAL, reason: str = "") -> bytes | None:
        """Start the closing handshake: the close frame to send (None if not open)."""
        if self.state != OPEN:
            return None
        self.state = CLOSING
        return frame(OP_CLOSE, close_payload(code, reason))

    def fail(self, code: int, reason: str) -> None:
        """A protocol violation (or our own error): say why, read nothing more."""
        if self.state == OPEN:
            self.state = DRAINING
            self.outgoing.append(frame(OP_CLOSE, close_payload(code, reason)))
        else:
            self.state = CLOSED
            self.ended = True
        self._rbuf = None
        self._frag = None

    # ---- receiving -----------------------------------------------------------------
    def feed(self, data: bytes) -> list[str | bytes]:
        """Take bytes from the peer; return the messages they completed, in order."""
        if self.state >= DRAINING:
            return []
        rbuf = self._rbuf
        buf: bytes | bytearray = data
        if rbuf is not None:  # the rest of a frame: append (amortized), never re-copy
            rbuf += data
            buf = rbuf
        messages: list[str | bytes] = []
        used = self._parse(buf, messages)
        if self.state >= DRAINING or used == len(buf):
            self._rbuf = None
        elif rbuf is not None:
            del rbuf[:used]
        else:
            self._rbuf = bytearray(buf[used:])
        return messages

    def _parse(self, buf: bytes | bytearray, messages: list[str | bytes]) -> int:
        """Handle every complete frame at the start of ``buf``; return the bytes used."""
        pos, end = 0, len(buf)
        max_size = self.max_size
        while end - pos >= 2 and self.state < DRAINING:
            b0, b1 = buf[pos], buf[pos + 1]
            opcode = b0 & 0x0F
            if b0 & 0x70:
                self.fail(PROTOCOL_ERROR, "no extension was negotiated")
                break
            if not b1 & 0x80:
                self.fail(PROTOCOL_ERROR, "client frames must be masked")
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
                n = int.from_bytes(buf[at : at + 8], "big")
                at += 8
            control = opcode & 0x8
            if control:
                if n > 125 or not b0 & 0x80 or opcode not in (OP_CLOSE, OP_PING, OP_PONG):
                    self.fail(PROTOCOL_ERROR, "bad control frame")
                    break
            elif opcode not in (OP_CONTINUATION, OP_TEXT, OP_BINARY):
                self.fail(PROTOCOL_ERROR, "unknown opcode")
                break
            elif n + (len(self._frag[1]) if self._frag else 0) > max_size:
                self.fail(TOO_BIG, "message too big")
                break
            if end - at < n + 4:
                break  # wait for the rest of this frame
            key, payload = buf[at : at + 4], buf[at + 4 : at + 4 + n]
            if type(buf) is not bytes:
                key, payload = bytes(key), bytes(payload)
            payload = _websocket_mask(key, payload)  # type: ignore[arg-type]  # bytes now
            pos = at + 4 + n
            if control:
                self._control(opcode, payload)
                continue
            fin = b0 & 0x80
            if opcode == OP_CONTINUATION:
                if self._frag is None:
                    self.fail(PROTOCOL_ERROR, "nothing to continue")
                    break
                self._frag[1].extend(payload)
                if not fin:
                    continue
                opcode, payload = self._frag[0], bytes(self._frag[1])
                self._frag = None
            elif self._frag is not None:
                self.fail(PROTOCOL_ERROR, "previous message not finished")
                break
            elif not fin:
                self._frag = (opcode, bytearray(payload))
                continue
            if self.state != OPEN:
                continue  # we are closing: data is no longer read
            if opcode == OP_TEXT:
                try:
                    messages.append(payload.decode("utf-8"))
                except UnicodeDecodeError:
                    self.fail(INVALID_DATA, "text is not UTF-8")
                    break
            else:
                messages.append(payload)
        return pos

    def _control(self, opcode: int, payload: bytes) -> None:
        if opcode == OP_PING:
            if self.state == OPEN:
                self.outgoing.append(frame(OP_PONG, payload))
        elif opcode == OP_CLOSE:
            if len(payload) == 1:
                self.fail(PROTOCOL_ERROR, "bad close frame")
                return
            if self.state == CLOSING:
                self.state = CLOSED  # the answer to our close frame
                self.ended = True
                return
            # The peer closes: echo its code; the connection ends once that is written.
            code = struct.unpack("!H", payload[:2])[0] if payload else None
            self.state = DRAINING
            self.outgoing.append(frame(OP_CLOSE, close_payload(code, "")))
        # OP_PONG: nothing to do; any frame counts as a sign of life
