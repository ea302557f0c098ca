"""A leaner RFC 6455 protocol for the signaling sockets (``NbChatApp.lean_websocket``).

It leans on tornado internals (the asyncio loop's handler table, IOStream buffers); when
those are not there it falls back to tornado's own read path, and the whole thing can be
switched off with ``--NbChatApp.lean_websocket=False``. Measurements: docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import inspect
import struct
from collections.abc import Callable
from typing import Any

from tornado.ioloop import IOLoop
from tornado.iostream import IOStream, StreamClosedError
from tornado.log import gen_log
from tornado.util import _websocket_mask
from tornado.websocket import WebSocketClosedError, WebSocketProtocol13

__all__ = ["LeanProtocol"]

_TEXT_FIN = 0x81  # FIN + opcode 1 (text)
_READ_CHUNK = 65536
_YIELD_BYTES = 256 * 1024  # like tornado: let other sockets run after this much input


class LeanProtocol(WebSocketProtocol13):
    """Tornado's RFC 6455 protocol with the per-frame overhead taken out of the hot path.

    Profiling a relay (docs/benchmarks.md) showed tornado spending more CPU per frame than
    nbchat itself: up to four awaited ``read_bytes`` per incoming frame, each wake-up a
    chain of Futures, callbacks and a failing ``recv``, and one asyncio Task per
    ``write_message``. Here the socket's read events come straight to ``_on_readable``,
    which parses every complete frame that has arrived, and a text frame goes straight
    to the socket when nothing is queued before it. Frame validation, control frames,
    closing and pings are tornado's own code. Writes stay with the IOStream. Requires no
    compression (never negotiated here) and a synchronous ``on_message``.
    """

    # State lives in closures, not new attributes: one more attribute on this instance
    # turns its shared-key __dict__ into a private one (+1.6 KB per socket, measured).

    async def _receive_frame_loop(self) -> None:
        stream = self.stream
        buf = bytearray()
        owned = False
        try:
            if stream._read_buffer_size:  # bytes that came in with the handshake
                buf += await stream.read_bytes(stream._read_buffer_size)
                del buf[:self._receive_frames(buf)]
            if self.client_terminated:
                return
            # Taken over, the socket needs no coroutine: returning here frees the chain
            # of suspended request coroutines tornado keeps per socket (~2 KB).
            owned = self._own_reads(buf)
            if not owned:
                await self._read_loop(buf)
        except StreamClosedError:
            self._abort()
        finally:
            if not owned:
                self.handler.on_ws_connection_close(self.close_code, self.close_reason)

    def _own_reads(self, buf: bytearray) -> bool:
        """Route this socket's read events to ``_on_readable`` instead of the IOStream.

        From then on the end of the connection is handled by the stream's close callback.
        Returns False if the events cannot be taken over (read through the IOStream).
        """
        stream = self.stream
        handlers = getattr(stream.io_loop, "handlers", None)
        if (type(stream) is not IOStream or not isinstance(handlers, dict)
                or inspect.iscoroutinefunction(self.handler.on_message)):
            return False
        done = False

        def on_closed() -> None:
            nonlocal done
            if done:
                return
            done = True
            if not self.client_terminated:
                self._abort()  # as tornado does when a read finds the stream closed
            self.handler.on_ws_connection_close(self.close_code, self.close_reason)

        def on_events(fileobj: Any, events: int) -> None:
            if events & IOLoop.READ:
                self._on_readable(buf, on_closed)
            else:
                stream._handle_events(fileobj, events)  # writes: the IOStream's own

        stream.set_close_callback(on_closed)  # also makes the stream listen for reads
        fd = stream.socket.fileno()
        entry = handlers.get(fd)
        if entry is None:
            stream.set_close_callback(None)
            return False
        handlers[fd] = (entry[0], on_events)
        return True

    def _on_readable(self, buf: bytearray, on_closed: Callable[[], None]) -> None:
        stream = self.stream
        if stream.closed():
            return
        try:
            data = stream.socket.recv(_READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            stream.close(exc_info=e)
            return
        if not data:
            stream.close()  # EOF
            return
        self._wire_bytes_in += len(data)
        buf += data
        try:
            used = self._receive_frames(buf)
        except Exception as e:
            # What IOStream._handle_events does with an error in a read callback.
            log = getattr(self.handler, "log", gen_log)
            log.error("nbchat: error handling a WebSocket frame; closing the socket",
                      exc_info=True)
            stream.close(exc_info=e)
            return
        if used:
            del buf[:used]
        if self.client_terminated:
            on_closed()

    async def _read_loop(self, buf: bytearray) -> None:
        """Fallback when the read events cannot be taken over: read what has arrived."""
        stream = self.stream
        work = 0
        while not self.client_terminated:
            chunk = await stream.read_bytes(_READ_CHUNK, partial=True)
            self._wire_bytes_in += len(chunk)
            buf += chunk
            del buf[:self._receive_frames(buf)]
            work += len(chunk)
            if work >= _YIELD_BYTES:
                work = 0
                await asyncio.sleep(0)

    def _receive_frames(self, buf: bytearray) -> int:
        """Handle every complete frame at the start of ``buf``; return the bytes used.

        Mirrors ``WebSocketProtocol13._receive_frame`` rule for rule.
        """
        pos, end = 0, len(buf)
        while not self.client_terminated and end - pos >= 2:
            header, mask_payloadlen = buf[pos], buf[pos + 1]
            is_final_frame = header & self.FIN
            opcode = header & self.OPCODE_MASK
            opcode_is_control = opcode & 0x8
            if header & self.RSV_MASK:
                self._abort()  # an extension we never negotiated
                return end
            payloadlen = mask_payloadlen & 0x7F
            if opcode_is_control and payloadlen >= 126:
                self._abort()
                return end
            at = pos + 2
            if payloadlen == 126:
                if end - at < 2:
                    break
                payloadlen = int.from_bytes(buf[at:at + 2], "big")
                at += 2
            elif payloadlen == 127:
                if end - at < 8:
                    break
                payloadlen = int.from_bytes(buf[at:at + 8], "big")
                at += 8
            new_len = payloadlen
            if self._fragmented_message_buffer is not None:
                new_len += len(self._fragmented_message_buffer)
            if new_len > self.params.max_message_size:
                self.close(1009, "message too big")
                self._abort()
                return end
            is_masked = mask_payloadlen & 0x80
            mask_at = at
            if is_masked:
                at += 4
            if end - at < payloadlen:
                break
            data = bytes(buf[at:at + payloadlen])
            pos = at + payloadlen
            if is_masked:
                data = _websocket_mask(bytes(buf[mask_at:mask_at + 4]), data)

            if opcode_is_control:
                if not is_final_frame:
                    self._abort()  # control frames must not be fragmented
                    return end
            elif opcode == 0:  # continuation frame
                if self._fragmented_message_buffer is None:
                    self._abort()  # nothing to continue
                    return end
                self._fragmented_message_buffer.extend(data)
                if is_final_frame:
                    opcode = self._fragmented_message_opcode  # type: ignore[assignment]
                    data = bytes(self._fragmented_message_buffer)
                    self._fragmented_message_buffer = None
            else:  # start of a new data message
                if self._fragmented_message_buffer is not None:
                    self._abort()  # the previous one is not finished
                    return end
                if not is_final_frame:
                    self._fragmented_message_opcode = opcode  # type: ignore[assignment]
                    self._fragmented_message_buffer = bytearray(data)
            if is_final_frame:
                self._handle_message(opcode, data)  # on_message is synchronous
        return pos

    def send_text(self, text: str) -> None:
        """Send one text frame, like ``write_message`` but without a Task per frame."""
        if self.is_closing():
            raise WebSocketClosedError()
        data = text.encode("utf-8")
        n = len(data)
        if n < 126:
            frame = bytes((_TEXT_FIN, n)) + data
        elif n <= 0xFFFF:
            frame = struct.pack("!BBH", _TEXT_FIN, 126, n) + data
        else:
            frame = struct.pack("!BBQ", _TEXT_FIN, 127, n) + data
        self._message_bytes_out += n
        self._wire_bytes_out += len(frame)
        stream = self.stream
        # Fast path: nothing queued, plain TCP (not TLS), so a direct send keeps the order.
        if type(stream) is IOStream and not stream._write_buffer:
            try:
                sent = stream.socket.send(frame)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                sent = 0  # let the stream's own write see the error and close
            if sent == len(frame):
                return
            frame = frame[sent:]
        # The stream consumes the Future's exception itself.
        stream.write(frame)


