"""PeerJS server protocol 1.x client: OPEN, HEARTBEAT, relayed OFFER/ANSWER/CANDIDATE/LEAVE."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable

from ..protocol import FrameType
from .errors import SignalingError
from .session import ServerSession, SessionConfig
from .websocket import ReconnectingWebSocket

__all__ = ["PEERJS_VERSION", "SignalingClient"]

log = logging.getLogger(__name__)

#: The peerjs client version we speak, sent as ``&version=`` like peerjs does.
PEERJS_VERSION = "1.5.5"


class SignalingClient:
    """Our end of ``{path}peerjs?key=&id=&token=``; relayed frames go to ``on_frame``.

    Frames sent while the socket is down wait in order and go out after the next
    ``OPEN`` (a reconnect uses the same id and token, so the server rebinds us).
    """

    def __init__(
        self,
        session: ServerSession,
        config: SessionConfig,
        peer_id: str,
        on_frame: Callable[[dict[str, object]], None],
        *,
        on_fatal: Callable[[SignalingError], None] | None = None,
        on_reopen: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.peer_id = peer_id
        self.token = secrets.token_hex(8)
        self.on_frame = on_frame
        self.on_fatal = on_fatal
        self.on_reopen = on_reopen
        self.opened = asyncio.Event()
        self._first_error: SignalingError | None = None
        self._refused = asyncio.Event()
        self._pending: list[dict[str, object]] = []
        self._heartbeat: asyncio.Task[None] | None = None
        self._flush: asyncio.Task[None] | None = None  # queued frames going out after OPEN
        url = session.ws_url(
            config.path + "peerjs",
            {"key": config.key, "id": peer_id, "token": self.token, "version": PEERJS_VERSION},
        )
        self.socket = ReconnectingWebSocket(
            session,
            url,
            "signaling",
            self._on_socket_frame,
            self._on_state,
            max_message_bytes=max(config.max_message_bytes * 4, 1 << 20),
        )

    async def connect(self, timeout: float = 15.0) -> None:
        """Connect and wait for ``OPEN``; raise SignalingError if the server refuses us."""
        await self.socket.connect()
        waiter = asyncio.create_task(self.opened.wait())
        closed = asyncio.create_task(self._refused.wait())
        done, pending = await asyncio.wait(
            {waiter, closed}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        for task in pending:
            task.cancel()
        if self._first_error is not None:
            await self.socket.close()
            raise self._first_error
        if not self.opened.is_set():
            await self.socket.close()
            raise SignalingError("the signaling server did not answer OPEN in time")
        self._heartbeat = asyncio.create_task(self._beat(), name="nbchat-heartbeat")

    def _on_state(self, up: bool) -> None:
        if not up:
            self.opened.clear()

    def _on_socket_frame(self, frame: dict[str, object]) -> None:
        kind = frame.get("type")
        if kind == FrameType.OPEN.value:
            self.opened.set()
            pending, self._pending = self._pending, []
            if pending:
                self._flush = asyncio.get_running_loop().create_task(self._send_all(pending))
            if self._heartbeat is not None and self.on_reopen is not None:
                self.on_reopen()  # a reconnect, not the first OPEN
        elif kind in (FrameType.ERROR.value, FrameType.ID_TAKEN.value):
            payload = frame.get("payload")
            msg = payload.get("msg") if isinstance(payload, dict) else None
            error = SignalingError(f"signaling server: {msg or kind}")
            if not self.opened.is_set():
                # A refusal at connect time; the server closes the socket after it.
                if kind == FrameType.ID_TAKEN.value:
                    self.socket.stop_reconnecting()
                if self._first_error is None and self._heartbeat is None:
                    self._first_error = error
                    self._refused.set()
                elif self.on_fatal is not None and kind == FrameType.ID_TAKEN.value:
                    self.on_fatal(error)
            else:
                log.warning("nbchat signaling (peer %s): %s", self.peer_id, error)
        elif kind == FrameType.HEARTBEAT.value:
            return
        else:
            self.on_frame(frame)

    async def _beat(self) -> None:
        frame: dict[str, object] = {"type": FrameType.HEARTBEAT.value}
        # Never let a short alive_timeout evict us between two advertised pings.
        interval = min(self.config.ping_interval, self.config.alive_timeout / 3) / 1000
        while True:
            await asyncio.sleep(max(interval, 0.05))
            if self.opened.is_set():
                await self.socket.send(frame)

    async def _send_all(self, frames: list[dict[str, object]]) -> None:
        for frame in frames:
            await self.send(frame)

    async def send(self, frame: dict[str, object]) -> None:
        """Send a frame to the server, or queue it until the socket is open again."""
        if not self.opened.is_set() or not await self.socket.send(frame):
            self._pending.append(frame)

    async def relay(self, kind: FrameType, dst: str, payload: dict[str, object]) -> None:
        await self.send({"type": kind.value, "dst": dst, "payload": payload})

    async def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        await self.socket.close()
