"""Chat data-channel frames (docs/protocol.md §4): their types, parsing and encoding.

Pure, no I/O; mirrored by js/core/frames.ts and pinned by tests/fixtures/chat_frames.json.
peerjs 1.5 in json mode sends each value as the UTF-8 bytes of ``JSON.stringify(value)``,
so ``encode`` writes exactly that and ``decode`` reads it.
"""

from __future__ import annotations

import json
import math
import re
from enum import Enum
from typing import Any, cast

__all__ = [
    "CHUNK_ID_MAX_LENGTH",
    "FILE_ID_MAX_LENGTH",
    "MAX_MESSAGE_BYTES",
    "MAX_SAFE_INTEGER",
    "ChatFrameType",
    "InvalidFrame",
    "decode",
    "dumps",
    "encode",
    "parse_chat_frame",
]

#: The default largest message ``text`` in UTF-8 bytes (the room's ``max_message_bytes``
#: in the session config; the server's ``NbChatApp.max_message_bytes`` defaults to it).
MAX_MESSAGE_BYTES = 65_536
#: Integers must survive a round trip through a JavaScript number.
MAX_SAFE_INTEGER = 2**53 - 1
#: A chunk id is a short string: the receiver keys its reassembly state by it.
CHUNK_ID_MAX_LENGTH = 128
#: A ``file-*`` frame names its file by the id of the MESSAGE that carries its card.
FILE_ID_MAX_LENGTH = 128


class ChatFrameType(str, Enum):
    """The ``type`` of a chat frame sent over a peerjs DataConnection."""

    MESSAGE = "message"
    SYNC = "sync"
    HISTORY = "history"
    CHUNK = "chunk"
    FILE_GET = "file-get"
    FILE_PART = "file-part"
    FILE_CANCEL = "file-cancel"


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


def _as_count(value: object, least: int) -> int | None:
    """A safe integer >= ``least`` as JavaScript sees one (JSON ``1.0`` is the number 1)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and least <= value <= MAX_SAFE_INTEGER:
        return value
    return None


def parse_chat_frame(value: object) -> dict[str, Any] | None:
    """The frame ``value`` is if its shape is a chat frame's, else None.

    Only the envelope is checked: a MESSAGE's fields are the message log's job. A chunk's
    ``index`` and ``count`` come back as ints.
    """
    if not isinstance(value, dict):
        return None
    kind = value.get("type")
    if kind == ChatFrameType.MESSAGE:
        return value if isinstance(value.get("message"), dict) else None
    if kind == ChatFrameType.SYNC:
        return value if isinstance(value.get("have"), dict) else None
    if kind == ChatFrameType.HISTORY:
        return value if isinstance(value.get("messages"), list) else None
    if kind == ChatFrameType.CHUNK:
        chunk_id, data = value.get("id"), value.get("data")
        index, count = _as_count(value.get("index"), 0), _as_count(value.get("count"), 1)
        if (
            isinstance(chunk_id, str)
            and 0 < len(chunk_id) <= CHUNK_ID_MAX_LENGTH
            and index is not None
            and count is not None
            and index < count
            and isinstance(data, str)
        ):
            return {**value, "index": index, "count": count}
        return None
    if kind in (ChatFrameType.FILE_GET, ChatFrameType.FILE_CANCEL, ChatFrameType.FILE_PART):
        file_id = value.get("file")
        if not isinstance(file_id, str) or not 0 < len(file_id) <= FILE_ID_MAX_LENGTH:
            return None
        if kind == ChatFrameType.FILE_CANCEL:
            return value
        if kind == ChatFrameType.FILE_GET:
            # ``from``: resume at that part (after a dropped link); absent is 0.
            start = _as_count(value.get("from", 0), 0)
            return {**value, "from": start} if start is not None else None
        index, count = _as_count(value.get("index"), 0), _as_count(value.get("count"), 1)
        if index is not None and count is not None and index < count:
            if isinstance(value.get("data"), str):
                return {**value, "index": index, "count": count}
        return None
    return None
