"""Tornado adapters between Jupyter's authenticated sockets and the signaling realm."""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import struct
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado import web
from tornado.httputil import HTTPHeaders
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream, StreamClosedError
from tornado.log import gen_log
from tornado.util import _websocket_mask
from tornado.websocket import (
    WebSocketClosedError,
    WebSocketHandler,
    WebSocketProtocol13,
    _WebSocketParams,
)

from .._version import __version__
from ..protocol import Identity, identity_from_user, is_room_key, room_key
from .realm import Client, Delivery, Realm, Refused, Subscriber

if TYPE_CHECKING:
    from .app import NbChatApp

AUTH_RESOURCE = "nbchat"

F = TypeVar("F", bound=Callable[..., Any])


def authenticated_403(method: F) -> F:
    """Like ``web.authenticated`` but answers 403 instead of redirecting to a login page:
    every caller here is a script or a socket, not a person at a login form."""

    @functools.wraps(method)
    def wrapper(self: JupyterHandler, *args: Any, **kwargs: Any) -> Any:
        if self.current_user is None:
            raise web.HTTPError(403, "Authentication required")
        return method(self, *args, **kwargs)

    wrapper.__allow_unauthenticated = False  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def deliver(deliveries: list[Delivery]) -> None:
    """Write each frame to its socket; a socket that closed meanwhile is simply skipped."""
    for transport, text in deliveries:
        transport.send_frame(text)


class _NbChatMixin:
    """Gives handlers the extension app, the realm and the user's identity."""

    app: NbChatApp
    realm: Realm

    def initialize(self, app: NbChatApp) -> None:
        self.app = app
        self.realm = app.realm

    @property
    def identity(self) -> Identity:
        return identity_from_user(self.current_user)  # type: ignore[attr-defined]

    def check_xsrf_cookie(self) -> None:
        # GET endpoints only; nothing here changes server state in a way a forged
        # cross-site GET could abuse (ids are bound to the caller's own identity).
        return


class SessionHandler(_NbChatMixin, APIHandler):
    """``GET nbchat/session?room=NAME``: what a browser or Python peer needs to join."""

    @authenticated_403
    def get(self) -> None:
        room = self.get_query_argument("room", "")
        if not room or len(room) > 4096:
            raise web.HTTPError(400, "Query argument 'room' is required (at most 4096 characters)")
        app = self.app
        self.finish(json.dumps({
            "room": room,
            "key": room_key(room),
            "path": self.base_url.rstrip("/") + "/nbchat/",
            "ice_servers": app.ice_servers,
            "user": self.identity,
            # Advertise a heartbeat well inside alive_timeout, whatever the two settings
            # say: a client beating at the advertised rate must never be evicted.
            "ping_interval": int(min(app.ping_interval, app.alive_timeout / 3) * 1000),
            "alive_timeout": int(app.alive_timeout * 1000),
            "max_message_bytes": app.max_message_bytes,
            "version": __version__,
        }))


class IdHandler(_NbChatMixin, JupyterHandler):
    """``GET nbchat/{key}/id``: a fresh peer id, bound to the caller."""

    @authenticated_403
    def get(self, key: str) -> None:
        if not is_room_key(key):
            raise web.HTTPError(400, "Invalid room key")
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(self.realm.reserve_id(key, self.identity["username"], time.monotonic()))


class PeersHandler(_NbChatMixin, APIHandler):
    """``GET nbchat/{key}/peers``: ids connected in this room (PeerJS discovery)."""

    @authenticated_403
    def get(self, key: str) -> None:
        if not self.app.allow_discovery:
            raise web.HTTPError(403, "Peer discovery is disabled (NbChatApp.allow_discovery)")
        if not is_room_key(key):
            raise web.HTTPError(400, "Invalid room key")
        self.finish(json.dumps(self.realm.peer_ids(key)))


class StatsHandler(_NbChatMixin, APIHandler):
    """``GET nbchat/stats``: counts only (rooms, clients, queued frames, tasks), for
    monitoring and the soak benchmark; no ids or names."""

    @authenticated_403
    def get(self) -> None:
        self.finish(json.dumps({**self.realm.stats(), "tasks": len(asyncio.all_tasks())}))


_TEXT_FIN = 0x81  # FIN + opcode 1 (text)
_READ_CHUNK = 65536
_YIELD_BYTES = 256 * 1024  # like tornado: let other sockets run after this much input


class _LeanProtocol(WebSocketProtocol13):
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


class _SocketHandler(_NbChatMixin, WebSocketMixin, WebSocketHandler, JupyterHandler):  # type: ignore[misc]
    """Authenticated WebSocket with a non-raising ``send_frame``."""

    def get_compression_options(self) -> dict[str, Any] | None:
        return None

    def get_websocket_protocol(self) -> WebSocketProtocol13 | None:
        if self.request.headers.get("Sec-WebSocket-Version") != "13":
            return None
        # No tornado ping loop: WebSocketMixin.open already pings every ws_ping_interval
        # and closes on a missed pong. Tornado's own loop would read the mixin's
        # milliseconds as seconds (one ping per 8 hours) and costs a Task, a coroutine
        # and a timer per socket.
        params = _WebSocketParams(
            ping_interval=None,
            ping_timeout=None,
            max_message_size=self.max_message_size,
            compression_options=None,
        )
        return _LeanProtocol(self, False, params)

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        await super().get(*args, **kwargs)

    def open(self, *args: Any, **kwargs: Any) -> None:
        super().open(*args, **kwargs)
        # The parsed login cookie and the 101 response's headers are not read again;
        # kept, they would cost ~2 KB for as long as the socket lives. (The request's
        # headers stay: the detached HTTP connection holds them too.)
        self.request.__dict__.pop("_cookies", None)
        self._headers = HTTPHeaders()

    def on_close(self) -> None:
        super().on_close()
        # WebSocketMixin's keep-alive timer only notices a closed socket at its next tick
        # (ws_ping_interval, 30 s) and keeps the whole handler alive until then.
        if self.ping_callback is not None:
            self.ping_callback.stop()

    def send_frame(self, text: str) -> None:
        conn = self.ws_connection
        if conn is None:
            return
        try:
            conn.send_text(text)  # type: ignore[attr-defined]
        except (WebSocketClosedError, StreamClosedError):
            pass  # on_close cleans up this socket's state


class SignalingHandler(_SocketHandler):
    """``WS nbchat/peerjs?key=&id=&token=``: the PeerJS server protocol."""

    client: Client | None = None

    @property
    def max_message_size(self) -> int:  # type: ignore[override]
        # Accept frames up to 4x the limit so that the sender gets a clear ERROR for an
        # oversized frame; beyond that tornado closes the socket with 1009.
        return self.app.max_message_bytes * 4

    def open(self, *args: Any, **kwargs: Any) -> None:
        super().open(*args, **kwargs)
        self.app.ensure_ticking()
        get = self.get_query_argument
        outcome = self.realm.connect(
            get("key", None), get("id", None), get("token", None),
            self.identity, self, time.monotonic(),
        )
        if isinstance(outcome, Refused):
            self.send_frame(outcome.frame)
            self.close(1008, "refused")
            return
        self.client = outcome.client
        if outcome.replaced is not None and outcome.replaced is not self:
            outcome.replaced.client = None
            outcome.replaced.close(1000, "replaced by a reconnect")
        self.log.debug("nbchat: peer %s joined room %s", self.client.peer_id, self.client.key)
        deliver(outcome.deliveries)

    def on_message(self, message: str | bytes) -> None:
        if self.client is not None:
            deliver(self.realm.receive(self.client, message, time.monotonic()))

    def on_close(self) -> None:
        super().on_close()
        client, self.client = self.client, None
        if client is not None:
            self.log.debug("nbchat: peer %s left room %s", client.peer_id, client.key)
            deliver(self.realm.disconnect(client, self, time.monotonic()))


class PresenceHandler(_SocketHandler):
    """``WS nbchat/presence?key=KEY``: roster, then USER_CONNECTED / USER_DISCONNECTED."""

    subscriber: Subscriber | None = None

    def on_message(self, message: str | bytes) -> None:
        return  # presence is server → client only; anything sent is ignored

    def open(self, *args: Any, **kwargs: Any) -> None:
        super().open(*args, **kwargs)
        self.app.ensure_ticking()
        key = self.get_query_argument("key", None)
        outcome = self.realm.subscribe(key, self.identity, self)
        if isinstance(outcome, Refused):
            self.send_frame(outcome.frame)
            self.close(1008, "refused")
            return
        self.subscriber = outcome
        self.send_frame(self.realm.roster(outcome.key))

    def on_close(self) -> None:
        super().on_close()
        sub, self.subscriber = self.subscriber, None
        if sub is not None:
            self.realm.unsubscribe(sub)


def make_handlers(app: NbChatApp) -> list[tuple[str, type, dict[str, Any]]]:
    kwargs = {"app": app}
    return [
        (r"nbchat/session", SessionHandler, kwargs),
        (r"nbchat/stats", StatsHandler, kwargs),
        (r"nbchat/peerjs", SignalingHandler, kwargs),
        (r"nbchat/presence", PresenceHandler, kwargs),
        (r"nbchat/([^/]+)/id", IdHandler, kwargs),
        (r"nbchat/([^/]+)/peers", PeersHandler, kwargs),
    ]
