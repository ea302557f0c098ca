"""Files shared peer to peer (docs/protocol.md §4.2): the card a MESSAGE carries, file names,
and the parts the bytes travel in.

Pure, no I/O; mirrored by js/core/files.ts and pinned by tests/fixtures/files.json.

Rules, identical in both languages:

- A file is announced by a MESSAGE with ``file`` = ``{"name", "size", "type", "sha256"}``
  (the card; its ``text`` says the same for clients without files). The bytes are not in
  the log: a peer that wants them sends the author ``file-get``; the author answers with
  ``file-part`` frames (``index`` from 0 to ``count`` - 1, ``data`` the base64 of
  ``FILE_PART_BYTES`` bytes, the last part the rest) or ``file-cancel``. Either side may
  send ``file-cancel`` to stop. The receiver checks every part's size, the total and the
  SHA-256 before it offers the file. A ``file-get`` may carry ``from`` (a part index):
  after a dropped link the receiver keeps what it has and asks for the rest.
- ``name`` is cleaned (``clean_file_name``): only what follows the last ``/`` or ``\\``,
  without control characters, bidirectional overrides or ``<>:"|?*``, without leading dots
  and spaces, at most ``MAX_FILE_NAME`` code points; an empty result is ``"file"``.
- ``size`` is a safe integer from 0 to the limit (``FILE_LIMIT_BYTES`` unless configured);
  ``type`` is a lower-case ``type/subtype`` token (else ``application/octet-stream``; it is
  a label, never used to render); ``sha256`` is 64 lower-case hex digits. A card breaking
  these rules is dropped (the message's text stays).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from typing import TypedDict

__all__ = [
    "FILE_LIMIT_BYTES",
    "FILE_PART_BYTES",
    "MAX_FILE_NAME",
    "FileAssembler",
    "FileMeta",
    "InvalidPart",
    "clean_file_meta",
    "clean_file_name",
    "part_count",
    "split_file",
]

#: The largest file a peer sends or accepts unless configured otherwise.
FILE_LIMIT_BYTES = 50_000_000
#: Bytes per ``file-part``: its base64 (14,400 characters) keeps the frame under
#: ``CHUNK_THRESHOLD_BYTES``, so it is never chunked.
FILE_PART_BYTES = 10_800
#: The longest file name kept, in code points.
MAX_FILE_NAME = 200

#: Control characters, bidirectional overrides (which make "evil‮txt.exe" read as
#: "evilexe.txt") and the characters Windows forbids in a name.
_UNSAFE = re.compile('[\x00-\x1f\x7f\u200e\u200f\u202a-\u202e\u2066-\u2069<>:"|?*]')
_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_MAX_SAFE_INTEGER = 2**53 - 1


class FileMeta(TypedDict):
    name: str
    size: int
    type: str
    sha256: str


class InvalidPart(ValueError):
    """A ``file-part`` that does not fit the file it claims to belong to."""


def clean_file_name(name: str) -> str:
    """A name safe to offer for download: no directories, no control characters."""
    base = re.split(r"[/\\]", name)[-1]
    base = _UNSAFE.sub("", base).lstrip(". ").rstrip(" ")
    base = base[:MAX_FILE_NAME].rstrip(" ")
    return base or "file"


def _size(value: object, limit: int) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and 0 <= value <= min(limit, _MAX_SAFE_INTEGER) else None


def clean_file_meta(value: object, limit: int = FILE_LIMIT_BYTES) -> FileMeta | None:
    """The card ``value`` holds after the rules above, or None."""
    if not isinstance(value, dict):
        return None
    name, kind, digest = value.get("name"), value.get("type"), value.get("sha256")
    size = _size(value.get("size"), limit)
    if not isinstance(name, str) or size is None or not isinstance(digest, str):
        return None
    if not _SHA256.fullmatch(digest):
        return None
    kind = kind.lower() if isinstance(kind, str) else ""
    return FileMeta(
        name=clean_file_name(name),
        size=size,
        type=kind if _TYPE.fullmatch(kind) else "application/octet-stream",
        sha256=digest,
    )


def part_count(size: int) -> int:
    """How many ``file-part`` frames carry ``size`` bytes (an empty file is one empty part)."""
    return max(1, math.ceil(size / FILE_PART_BYTES))


def split_file(data: bytes) -> list[str]:
    """The base64 ``data`` of every part, in order."""
    return [
        base64.b64encode(data[i * FILE_PART_BYTES : (i + 1) * FILE_PART_BYTES]).decode("ascii")
        for i in range(part_count(len(data)))
    ]


class FileAssembler:
    """Collects one file's parts in any order; ``done`` once every part is in."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.count = part_count(size)
        self._parts: dict[int, bytes] = {}
        #: Bytes received so far.
        self.received = 0

    @property
    def done(self) -> bool:
        return len(self._parts) == self.count

    @property
    def next_missing(self) -> int:
        """The first part not received yet (``count`` when done): where a resumed
        ``file-get`` asks the sender to start again."""
        index = 0
        while index in self._parts:
            index += 1
        return index

    def feed(self, index: int, count: int, data: str) -> None:
        """Add part ``index``; InvalidPart for one that does not fit (a repeat is ignored)."""
        if count != self.count or not 0 <= index < count:
            raise InvalidPart(f"part {index} of {count} does not fit a file of {self.count} parts")
        if index in self._parts:
            return
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as error:
            raise InvalidPart(f"part {index} is not base64") from error
        expected = min(FILE_PART_BYTES, self.size - index * FILE_PART_BYTES)
        if len(raw) != expected:
            raise InvalidPart(f"part {index} has {len(raw)} bytes, not {expected}")
        self._parts[index] = raw
        self.received += len(raw)

    def result(self) -> bytes:
        """The whole file (every part must be in)."""
        if not self.done:
            raise InvalidPart("the file is not complete")
        return b"".join(self._parts[i] for i in range(self.count))
