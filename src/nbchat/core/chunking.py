"""Chunking (docs/protocol.md §4, CHUNK): splitting frames too big for peerjs, and reassembly.

Pure, no I/O (the chunk id comes from the caller); mirrored by js/core/chunking.ts and pinned
by tests/fixtures/chunking.json. Sizes are UTF-8 bytes throughout: that is what peerjs
measures, and it counts the same in both languages (UTF-16 code units and code points do not).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .frames import (
    MAX_MESSAGE_BYTES,
    ChatFrameType,
    InvalidFrame,
    decode,
    dumps,
    parse_chat_frame,
)
from .rich import MAX_RICH_BYTES

__all__ = [
    "CHUNK_SLICE_BYTES",
    "CHUNK_THRESHOLD_BYTES",
    "MAX_CHUNKED_IN_FLIGHT",
    "MAX_CHUNK_COUNT",
    "ChunkAssembler",
    "max_chunked_bytes",
    "slice_text",
    "split",
]

#: A frame whose JSON is this many UTF-8 bytes or more travels as ``chunk`` frames. peerjs 1.5
#: in json mode refuses a value of 16,300 bytes or more (its ``chunkedMTU``, kept below the
#: 16 KiB that Firefox → Chrome delivers in one piece); 15,000 leaves room to spare.
CHUNK_THRESHOLD_BYTES = 15_000
#: The most bytes a chunk's ``data`` costs once JSON-escaped: the rest of the chunk frame
#: (type, an id of up to 128 characters, index, count) takes under 200 bytes, so every
#: chunk frame stays within ``CHUNK_THRESHOLD_BYTES`` and well below peerjs's limit.
CHUNK_SLICE_BYTES = CHUNK_THRESHOLD_BYTES - 200
#: Unfinished chunked frames per connection. A data channel is ordered, so an honest sender
#: has one in flight at a time; the bound caps what a hostile one makes us hold (with
#: ``max_chunked_bytes`` each).
MAX_CHUNKED_IN_FLIGHT = 16
#: Most chunks in one frame: 4,096 full slices are ~60 MB, far beyond any room's limit.
MAX_CHUNK_COUNT = 4096


def max_chunked_bytes(max_message_bytes: int = MAX_MESSAGE_BYTES) -> int:
    """Largest reassembled frame (UTF-8 bytes of its JSON) a room accepts.

    A chunked frame carries one message at most a little over the room's limit: a history
    batch too big for one frame holds a single message. JSON escaping makes a text at most
    6 times bigger (a control character becomes ``\\u00XX``), a rich message's bundle adds
    at most ``MAX_RICH_BYTES`` (its size is counted as JSON), and the envelope and identity
    fit in 64 KiB.
    """
    return 6 * max_message_bytes + MAX_RICH_BYTES + 65_536


def _escaped_cost(code_point: int) -> int:
    """UTF-8 bytes a character costs inside a JSON string (control characters: at most 6)."""
    if code_point in (0x22, 0x5C):
        return 2
    if code_point < 0x20:
        return 6
    if code_point < 0x80:
        return 1
    if code_point < 0x800:
        return 2
    if code_point < 0x10000:
        return 6 if 0xD800 <= code_point <= 0xDFFF else 3
    return 4


def slice_text(text: str, budget: int = CHUNK_SLICE_BYTES) -> list[str]:
    """``text`` cut greedily into slices whose JSON-escaped UTF-8 size is at most ``budget``.

    Never inside a character (nor a surrogate pair in JavaScript), so both languages cut
    any text at the same places.
    """
    slices: list[str] = []
    start = cost = 0
    for i, char in enumerate(text):
        char_cost = _escaped_cost(ord(char))
        if cost + char_cost > budget and i > start:
            slices.append(text[start:i])
            start, cost = i, 0
        cost += char_cost
    if start < len(text) or not slices:
        slices.append(text[start:])
    return slices


def split(frame: dict[str, Any], chunk_id: Callable[[], str]) -> list[dict[str, Any]]:
    """The frames to send for ``frame``: itself if small enough, else ``chunk`` frames of its
    JSON text. ``chunk_id`` is called once, only when the frame is chunked."""
    text = dumps(frame)
    if len(text.encode("utf-8")) < CHUNK_THRESHOLD_BYTES:
        return [frame]
    return _chunks(text, chunk_id)


def payloads(frame: dict[str, Any], chunk_id: Callable[[], str]) -> list[bytes]:
    """What goes on the channel for ``frame``: :func:`split`'s frames as UTF-8 JSON, the
    frame written once (a forwarded entry goes to several links as the same bytes)."""
    text = dumps(frame)
    data = text.encode("utf-8")
    if len(data) < CHUNK_THRESHOLD_BYTES:
        return [data]
    return [dumps(part).encode("utf-8") for part in _chunks(text, chunk_id)]


def _chunks(text: str, chunk_id: Callable[[], str]) -> list[dict[str, Any]]:
    identifier = chunk_id()
    pieces = slice_text(text)
    return [
        {
            "type": ChatFrameType.CHUNK.value,
            "id": identifier,
            "index": index,
            "count": len(pieces),
            "data": piece,
        }
        for index, piece in enumerate(pieces)
    ]


class _Partial:
    __slots__ = ("count", "parts", "size")

    def __init__(self, count: int) -> None:
        self.count = count
        self.parts: dict[int, str] = {}
        self.size = 0


class ChunkAssembler:
    """Reassembles one connection's ``chunk`` frames, which may arrive in any order.

    ``feed`` returns the whole frame when its last chunk arrives and None meanwhile; it
    raises ``InvalidFrame`` for a chunk that is malformed, inconsistent or over the limits
    (the chunks of that frame received so far are then forgotten, except when the refused
    chunk would have started a new frame).
    """

    def __init__(
        self,
        max_bytes: int | None = None,
        max_pending: int = MAX_CHUNKED_IN_FLIGHT,
        max_count: int = MAX_CHUNK_COUNT,
    ) -> None:
        self.max_bytes = max_chunked_bytes() if max_bytes is None else max_bytes
        self.max_pending = max_pending
        self.max_count = max_count
        self._pending: dict[str, _Partial] = {}

    @property
    def pending(self) -> int:
        """Unfinished chunked frames held."""
        return len(self._pending)

    def feed(self, chunk: object) -> dict[str, Any] | None:
        frame = parse_chat_frame(chunk)
        if frame is None or frame["type"] != ChatFrameType.CHUNK:
            raise InvalidFrame("malformed chunk")
        chunk_id: str = frame["id"]
        index: int = frame["index"]
        count: int = frame["count"]
        data: str = frame["data"]
        partial = self._pending.get(chunk_id)
        if partial is None:
            if count > self.max_count:
                raise InvalidFrame("too many chunks in one frame")
            if len(self._pending) >= self.max_pending:
                raise InvalidFrame("too many chunked frames in flight")
            partial = self._pending[chunk_id] = _Partial(count)
        if partial.count != count:
            del self._pending[chunk_id]
            raise InvalidFrame("chunk count changed within one frame")
        if index in partial.parts:
            return None  # a repeat: the first copy stands
        partial.size += len(data.encode("utf-8", "surrogatepass"))
        if partial.size > self.max_bytes:
            del self._pending[chunk_id]
            raise InvalidFrame("chunked frame too big")
        partial.parts[index] = data
        if len(partial.parts) < count:
            return None
        del self._pending[chunk_id]
        try:
            value = decode("".join(partial.parts[i] for i in range(count)))
        except InvalidFrame as error:
            raise InvalidFrame("chunked frame is not a JSON object") from error
        whole = parse_chat_frame(value)
        if whole is None:
            raise InvalidFrame("chunked frame is not a chat frame")
        if whole["type"] == ChatFrameType.CHUNK:
            raise InvalidFrame("a chunked frame may not itself be a chunk")
        return whole

    def clear(self) -> None:
        self._pending.clear()
