"""A JSON WebSocket to the nbchat server that reconnects with exponential backoff."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable

import aiohttp
from yarl import URL

from .errors import (
    AuthenticationFailed,
    NotAnNbchatServer,
    ServerUnreachable,
    connection_failure_reason,
)
from .session import ServerSession

__all__ = ["ReconnectingWebSocket"]

log = logging.getLogger(__name__)


class ReconnectingWebSocket:
    """Delivers each JSON frame to ``on_frame`` and ``on_state(True/False)`` on (dis)connect.

    ``connect()`` makes the first attempt and raises a clear NbChatError; after that the
    socket reconnects by itself (``min_backoff`` doubling up to ``max_backoff`` with
    jitter) until ``close()`` or ``stop_reconnecting()``.
    """

    def __init__(
        self,
        session: ServerSession,
        url: URL,
        name: str,
        on_frame: Callable[[dict[str, object]], None],
        on_state: Callable[[bool], None] | None = None,
        *,
        min_backoff: float = 0.25,
        max_backoff: float = 10.0,
        max_message_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        self.session = session
        self.url = url
        self.name = name
        self.on_frame = on_frame
        self.on_state = on_state
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.max_message_bytes = max_message_bytes
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._reconnect = True
        self.connected = asyncio.Event()

    async def _open(self) -> aiohttp.ClientWebSocketResponse:
        try:
            return await self.session.http.ws_connect(
                self.url,
                headers=self.session.headers(),
                heartbeat=None,
                max_msg_size=self.max_message_bytes,
                autoping=True,
            )
        except aiohttp.WSServerHandshakeError as error:
            if error.status in (401, 403):
                raise AuthenticationFailed(
                    f"{self.session.origin} refused the {self.name} WebSocket "
                    f"(HTTP {error.status}): check the token"
                ) from error
            raise NotAnNbchatServer(
                f"{self.name} WebSocket handshake failed (HTTP {error.status})"
            ) from error
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError, OSError) as error:
            reason = connection_failure_reason(error)
            raise ServerUnreachable(f"cannot reach {self.session.origin} ({reason})") from error

    async def connect(self) -> None:
        self._ws = await self._open()
        self._set_state(True)
        self._task = asyncio.create_task(self._run(), name=f"nbchat-{self.name}")

    def _set_state(self, up: bool) -> None:
        if up:
            self.connected.set()
        else:
            self.connected.clear()
        if self.on_state is not None:
            self.on_state(up)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                try:
                    frame = json.loads(msg.data)
                except ValueError:
                    log.warning("nbchat %s: dropped a non-JSON frame", self.name)
                    continue
                if isinstance(frame, dict):
                    self.on_frame(frame)
                else:
                    log.warning("nbchat %s: dropped a frame that is not an object", self.name)
            elif msg.type == aiohttp.WSMsgType.ERROR:
                log.warning("nbchat %s: socket error %s", self.name, ws.exception())
                break

    async def _run(self) -> None:
        delay = self.min_backoff
        while True:
            ws = self._ws
            if ws is not None:
                try:
                    await self._read(ws)
                finally:
                    self._ws = None
                    self._set_state(False)
                    await ws.close()
                if ws.close_code is not None and ws.close_code != 1000:
                    log.info("nbchat %s: socket closed (%s)", self.name, ws.close_code)
            if self._closing or not self._reconnect:
                return
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, self.max_backoff)
            try:
                self._ws = await self._open()
            except (ServerUnreachable, NotAnNbchatServer, AuthenticationFailed) as error:
                log.info("nbchat %s: reconnect failed: %s", self.name, error)
                continue
            log.info("nbchat %s: reconnected", self.name)
            delay = self.min_backoff
            self._set_state(True)

    def stop_reconnecting(self) -> None:
        self._reconnect = False

    async def send(self, frame: dict[str, object]) -> bool:
        """Send one frame now; False if the socket is down (the caller decides what to do)."""
        ws = self._ws
        if ws is None or ws.closed:
            return False
        try:
            await ws.send_str(json.dumps(frame, separators=(",", ":")))
        except (ConnectionError, aiohttp.ClientError) as error:
            log.info("nbchat %s: send failed: %s", self.name, error)
            return False
        return True

    async def close(self) -> None:
        self._closing = True
        ws = self._ws
        if ws is not None:
            await ws.close()
        task = self._task
        if task is not None:
            if ws is None:
                task.cancel()  # it is sleeping before a reconnect attempt
            try:
                await asyncio.wait_for(task, 5)
            except (asyncio.CancelledError, asyncio.TimeoutError):
                pass
