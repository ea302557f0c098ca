"""Files shared peer to peer by a Python peer (docs/protocol.md §4.2; rules in core/files.py).

The same protocol as the widget's js/fileShare.ts: a card in the log, the bytes streamed to
whoever sends ``file-get``, paced by the data channel's buffer so ``file-cancel`` stops at
once; received files are checked (size of every part, total, SHA-256) before they are kept.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

from ..core.files import (
    FILE_LIMIT_BYTES,
    FILE_PART_BYTES,
    FileAssembler,
    FileMeta,
    InvalidPart,
    part_count,
)
from ..core.frames import ChatFrameType
from ..core.msglog import Message

__all__ = ["PeerFiles", "ReceivedFile"]

log = logging.getLogger(__name__)

#: Keep about this much in flight per link: enough to fill it, little enough to stop at once.
BUFFER_HIGH = 1_000_000
PACE_SECONDS = 0.005


@dataclass(frozen=True)
class ReceivedFile:
    """A file another peer shared, received whole and checked against its card."""

    message_id: str
    sender: str
    name: str
    type: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass
class _Incoming:
    author: str
    meta: FileMeta
    assembler: FileAssembler | None = None
    state: str = "waiting"


class PeerFiles:
    """What one peer offers and receives. The owner feeds it messages, links and frames."""

    def __init__(
        self,
        send: Callable[[str, dict[str, Any]], bool],
        buffered: Callable[[str], int],
        is_open: Callable[[str], bool],
        spawn: Callable[[Coroutine[Any, Any, None], str], None],
        *,
        receive: bool = True,
        limit: int = FILE_LIMIT_BYTES,
    ) -> None:
        self._send = send
        self._buffered = buffered
        self._is_open = is_open
        self._spawn = spawn
        self.receive = receive
        self.limit = limit
        self._outgoing: dict[str, bytes | None] = {}  # None: no longer offered
        self._streams: dict[tuple[str, str], asyncio.Event] = {}  # (file, peer) → stop
        self._incoming: dict[str, _Incoming] = {}
        #: Files received whole, by the id of the message carrying their card.
        self.received: dict[str, ReceivedFile] = {}
        self._changed = asyncio.Event()

    def offer(self, message_id: str, data: bytes) -> None:
        self._outgoing[message_id] = data

    def stop_offering(self, message_id: str) -> None:
        """Our file is no longer sent to anyone (streams in progress stop)."""
        if message_id in self._outgoing:
            self._outgoing[message_id] = None
        for (file_id, peer), stop in list(self._streams.items()):
            if file_id == message_id:
                stop.set()
                self._send(peer, {"type": ChatFrameType.FILE_CANCEL.value, "file": file_id})

    def state(self, message_id: str) -> str | None:
        """ "waiting", "receiving", "complete", "cancelled", "failed" or "unavailable"."""
        entry = self._incoming.get(message_id)
        return entry.state if entry is not None else None

    async def wait(self, message_id: str, timeout: float) -> ReceivedFile:
        """The file of card ``message_id`` once received; TimeoutError, or ValueError if the
        transfer failed or was cancelled."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while message_id not in self.received:
            entry = self._incoming.get(message_id)
            if entry is not None and entry.state in ("failed", "cancelled"):
                raise ValueError(f"the file of {message_id} was {entry.state}")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"the file of {message_id} did not arrive in {timeout} s")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                continue
        return self.received[message_id]

    # --- fed by the peer ------------------------------------------------------------------

    def on_messages(self, messages: Iterable[Message], self_id: str) -> None:
        for message in messages:
            meta = message.get("file")
            if meta is None or message["author"] == self_id or message["id"] in self._incoming:
                continue
            entry = _Incoming(message["author"], meta)
            self._incoming[message["id"]] = entry
            if meta["size"] > self.limit:
                entry.state = "failed"
            elif self.receive:
                self._request(message["id"], entry)

    def on_link_open(self, peer: str) -> None:
        for message_id, entry in self._incoming.items():
            if entry.author == peer and entry.state == "unavailable" and self.receive:
                self._request(message_id, entry)

    def on_link_closed(self, peer: str) -> None:
        """The link to ``peer`` is gone: its files pause (what arrived is kept, the rest is
        asked for when a link opens again), and our streams to it stop."""
        for entry in self._incoming.values():
            if entry.author == peer and entry.state in ("waiting", "receiving"):
                entry.state = "unavailable"
        for (file_id, to), stop in list(self._streams.items()):
            if to == peer:
                stop.set()
                del self._streams[(file_id, to)]

    def wants_part(self, peer: str, file_id: str) -> bool:
        entry = self._incoming.get(file_id)
        return entry is not None and entry.author == peer and entry.assembler is not None

    def on_frame(self, peer: str, frame: dict[str, Any]) -> None:
        kind, file_id = frame["type"], frame["file"]
        if kind == ChatFrameType.FILE_GET:
            data = self._outgoing.get(file_id)
            if data is None:
                self._send(peer, {"type": ChatFrameType.FILE_CANCEL.value, "file": file_id})
                return
            previous = self._streams.get((file_id, peer))
            if previous is not None:
                previous.set()  # asked again: start over
            stop = asyncio.Event()
            self._streams[(file_id, peer)] = stop
            start = frame.get("from", 0)
            self._spawn(self._stream(file_id, data, peer, stop, start), f"nbchat-file-{file_id}")
        elif kind == ChatFrameType.FILE_CANCEL:
            stopping = self._streams.pop((file_id, peer), None)
            if stopping is not None:
                stopping.set()
            entry = self._incoming.get(file_id)
            if entry is not None and entry.author == peer and entry.state != "complete":
                entry.assembler = None
                entry.state = "cancelled"
                self._changed.set()
        elif kind == ChatFrameType.FILE_PART:
            self._on_part(peer, file_id, frame)

    # --- internals ------------------------------------------------------------------------

    def _request(self, message_id: str, entry: _Incoming) -> None:
        """Ask the author for the file, or for the rest of it after a dropped link."""
        if not self._is_open(entry.author):
            entry.state = "unavailable"
            return
        if entry.assembler is None:
            entry.assembler = FileAssembler(entry.meta["size"])
        start = entry.assembler.next_missing
        entry.state = "receiving" if start else "waiting"
        frame: dict[str, Any] = {"type": ChatFrameType.FILE_GET.value, "file": message_id}
        if start:
            frame["from"] = start
        self._send(entry.author, frame)

    def _on_part(self, peer: str, file_id: str, frame: dict[str, Any]) -> None:
        entry = self._incoming.get(file_id)
        if entry is None or entry.author != peer or entry.assembler is None:
            return
        try:
            entry.assembler.feed(frame["index"], frame["count"], frame["data"])
        except InvalidPart as error:
            log.warning("nbchat: file %s from %s: %s", entry.meta["name"], peer, error)
            self._send(peer, {"type": ChatFrameType.FILE_CANCEL.value, "file": file_id})
            entry.assembler, entry.state = None, "failed"
            self._changed.set()
            return
        entry.state = "receiving"
        if not entry.assembler.done:
            return
        data = entry.assembler.result()
        entry.assembler = None
        if hashlib.sha256(data).hexdigest() != entry.meta["sha256"]:
            log.warning("nbchat: file %s from %s: SHA-256 mismatch", entry.meta["name"], peer)
            entry.state = "failed"
        else:
            entry.state = "complete"
            self.received[file_id] = ReceivedFile(
                file_id, peer, entry.meta["name"], entry.meta["type"], data
            )
        self._changed.set()

    async def _stream(
        self, file_id: str, data: bytes, peer: str, stop: asyncio.Event, start: int = 0
    ) -> None:
        count = part_count(len(data))
        for index in range(start, count):
            while self._buffered(peer) > BUFFER_HIGH and not stop.is_set():
                await asyncio.sleep(PACE_SECONDS)
            if stop.is_set() or self._outgoing.get(file_id) is None:
                break
            chunk = data[index * FILE_PART_BYTES : (index + 1) * FILE_PART_BYTES]
            frame = {
                "type": ChatFrameType.FILE_PART.value,
                "file": file_id,
                "index": index,
                "count": count,
                "data": base64.b64encode(chunk).decode("ascii"),
            }
            if not self._send(peer, frame):
                break
            if index % 64 == 63:
                await asyncio.sleep(0)  # let the loop breathe between bursts
        if self._streams.get((file_id, peer)) is stop:
            del self._streams[(file_id, peer)]
