"""Chat data-channel frames (docs/protocol.md §4): JSON bytes as peerjs 1.5 sends, and chunks.

Pure functions and one small reassembly state machine; no I/O.
"""

from __future__ import annotations

import json
import math
import re
import secrets
from typing import Any, cast

__all__ = [
    "CHUNK_THRESHOLD",
    "ChunkAssembler",
    "InvalidFrame",
    "decode",
    "encode",
    "split",
]

#: Frames whose JSON is this many UTF-8 bytes or more travel as ``chunk`` frames
#: (peerjs refuses values of 16,300 bytes or more in json mode).
CHUNK_THRESHOLD = 15_000
#: Each chunk frame stays below this many bytes, envelope included.
_CHUNK_FRAME_BUDGET = 14_000
_ENVELOPE_RESERVE = 120


class InvalidFrame(ValueError):
    """A data-channel payload that is not a frame we accept."""


def dumps(value: object) -> str:
    """JSON text as ``JSON.stringify`` writes it: compact, non-ASCII left as is."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def encode(frame: dict[str, Any]) -> bytes:
    return dumps(frame).encode("utf-8")


#: JSON's escape for a UTF-16 surrogate: it may spell a lone one, which UTF-8 cannot carry.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _without_lone_surrogates(value: Any) -> Any:
    """``value`` with every lone surrogate in its strings replaced by U+FFFD.

    A browser's ``JSON.stringify`` writes a lone surrogate as an escape; Python parses it
    into a ``str`` that can never be encoded again, so relaying or measuring it would
    raise. U+FFFD is what the browser shows for it anyway.
    """

    def clean(item: Any) -> Any:
        if isinstance(item, str):
            return _LONE_SURROGATE.sub("\ufffd", item)
        if isinstance(item, list):
            return [clean(x) for x in item]
        if isinstance(item, dict):
            return {clean(k): clean(v) for k, v in item.items()}
        return item

    return clean(value)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {text[:20]}")
    return value


def _no_constants(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def decode(data: bytes | str) -> dict[str, Any]:
    """Parse one data-channel payload (peerjs json mode sends bytes; accept text too)."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        # As strict as JSON.parse, and no infinities (1e999): they could never be sent on.
        value: object = json.loads(text, parse_float=_finite, parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError) as error:
        raise InvalidFrame(f"not UTF-8 JSON: {error}") from error
    except RecursionError as error:
        # json's decoder recurses per nesting level: a frame nested ~1,000 deep hits the limit.
        raise InvalidFrame("JSON nested too deeply") from error
    if not isinstance(value, dict):
        raise InvalidFrame("a frame must be a JSON object")
    if _SURROGATE_ESCAPE.search(text) or _LONE_SURROGATE.search(text):
        try:
            return cast("dict[str, Any]", _without_lone_surrogates(value))
        except RecursionError as error:
            raise InvalidFrame("JSON nested too deeply") from error
    return value


def _slices(text: str) -> list[str]:
    budget = _CHUNK_FRAME_BUDGET - _ENVELOPE_RESERVE
    pieces: list[str] = []
    start = 0
    while start < len(text):
        length = min(len(text) - start, budget)
        while True:
            piece = text[start : start + length]
            size = len(dumps(piece).encode("utf-8"))
            if size <= budget or length == 1:
                break
            # Escapes and multi-byte characters make a piece bigger than its length.
            length = max(1, length * budget // size - 8)
        pieces.append(piece)
        start += length
    return pieces


def split(frame: dict[str, Any], chunk_id: str | None = None) -> list[bytes]:
    """Encode a frame as one payload, or as ``chunk`` frames if it is too big for peerjs."""
    text = dumps(frame)
    data = text.encode("utf-8")
    if len(data) < CHUNK_THRESHOLD:
        return [data]
    chunk_id = chunk_id or "c-" + secrets.token_hex(8)
    pieces = _slices(text)
    return [
        encode({"type": "chunk", "id": chunk_id, "index": i, "count": len(pieces), "data": p})
        for i, p in enumerate(pieces)
    ]


class ChunkAssembler:
    """Collects ``chunk`` frames per id and returns the whole frame when the last arrives."""

    def __init__(
        self, max_count: int = 4096, max_partial: int = 32, max_chars: int = 32 << 20
    ) -> None:
        self.max_count = max_count
        self.max_partial = max_partial
        self.max_chars = max_chars
        self._parts: dict[str, dict[int, str]] = {}
        self._counts: dict[str, int] = {}
        self._sizes: dict[str, int] = {}

    def feed(self, chunk: dict[str, Any]) -> dict[str, Any] | None:
        chunk_id, index, count, data = (
            chunk.get("id"),
            chunk.get("index"),
            chunk.get("count"),
            chunk.get("data"),
        )
        if not isinstance(chunk_id, str) or not 0 < len(chunk_id) <= 128:
            raise InvalidFrame("chunk id must be a short string")
        if type(count) is not int or not 1 <= count <= self.max_count:
            raise InvalidFrame(f"chunk count must be 1..{self.max_count}")
        if type(index) is not int or not 0 <= index < count:
            raise InvalidFrame("chunk index out of range")
        if not isinstance(data, str):
            raise InvalidFrame("chunk data must be a string")
        if chunk_id not in self._parts:
            if len(self._parts) >= self.max_partial:
                raise InvalidFrame("too many unfinished chunked frames")
            self._parts[chunk_id], self._counts[chunk_id], self._sizes[chunk_id] = {}, count, 0
        if self._counts[chunk_id] != count:
            self._drop(chunk_id)
            raise InvalidFrame("chunk count changed within one frame")
        self._sizes[chunk_id] += len(data)
        if self._sizes[chunk_id] > self.max_chars:
            self._drop(chunk_id)
            raise InvalidFrame("chunked frame too big")
        parts = self._parts[chunk_id]
        parts[index] = data
        if len(parts) < count:
            return None
        self._drop(chunk_id)
        frame = decode("".join(parts[i] for i in range(count)))
        if frame.get("type") == "chunk":
            raise InvalidFrame("a chunked frame may not itself be a chunk")
        return frame

    def _drop(self, chunk_id: str) -> None:
        self._parts.pop(chunk_id, None)
        self._counts.pop(chunk_id, None)
        self._sizes.pop(chunk_id, None)

    def clear(self) -> None:
        self._parts.clear()
        self._counts.clear()
        self._sizes.clear()
