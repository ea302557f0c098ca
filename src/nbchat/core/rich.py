"""Rich messages (docs/protocol.md §4.1): the MIME bundle a MESSAGE may carry beside its text.

Pure, no I/O; mirrored by js/core/rich.ts and pinned by tests/fixtures/rich_cases.json.

Rules, identical in both languages:

- ``mime`` is optional. When present it is an object mapping MIME types to strings; only the
  types in ``RICH_MIME_TYPES`` are kept, other keys are dropped. Images are base64 (ASCII
  whitespace removed) and must start with their format's signature (``image/png`` with the
  PNG one, ``image/jpeg`` with the JPEG one): the declared type is not trusted. An SVG must
  contain ``<svg``. ``application/json`` is JSON *text*. An entry breaking these rules is
  dropped; a bundle left with no rich entry (only ``text/plain``, or nothing) is dropped.
- The bundle's size is the UTF-8 length of its JSON (``rich_size``). A receiver drops a bundle
  over ``MAX_RICH_BYTES``; a sender refuses one over its limit (``RICH_LIMIT_BYTES`` unless
  configured, at most ``MAX_RICH_BYTES``) with ``size_error``'s text.
- The ``text`` of the message stays the fallback every client can show.
- A client shows the first type of ``RICH_MIME_TYPES`` the bundle holds (``best_type``).
"""

from __future__ import annotations

import json
import re

__all__ = [
    "MAX_RICH_BYTES",
    "RICH_LIMIT_BYTES",
    "RICH_MIME_TYPES",
    "best_type",
    "clean_mime",
    "format_size",
    "rich_size",
    "size_error",
]

#: The types a bundle may carry, in the order a client prefers to show them.
RICH_MIME_TYPES = (
    "image/png",
    "image/jpeg",
    "image/svg+xml",
    "text/html",
    "text/latex",
    "application/json",
    "text/markdown",
    "text/plain",
)
#: What a sender refuses beyond unless configured otherwise (JSON bytes of the bundle).
RICH_LIMIT_BYTES = 5_000_000
#: What a receiver accepts at most; a sender's configured limit cannot exceed it.
MAX_RICH_BYTES = 20_000_000

_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_WHITESPACE = re.compile(r"[\t\n\f\r ]+")
#: base64 of the first bytes of each format: b"\x89PNG\r\n\x1a\n" and b"\xff\xd8\xff".
_SIGNATURES = {"image/png": "iVBORw0KGgo", "image/jpeg": "/9j/"}
_SVG = re.compile(r"<svg", re.IGNORECASE)


def rich_size(mime: dict[str, str]) -> int:
    """The size a bundle counts for: the UTF-8 length of its JSON (as JSON.stringify writes it)."""
    text = json.dumps(mime, ensure_ascii=False, separators=(",", ":"))
    return len(text.encode("utf-8", "surrogatepass"))


def _clean_entry(kind: str, value: str) -> str | None:
    if kind in _SIGNATURES:
        value = _WHITESPACE.sub("", value)
        if (
            len(value) % 4
            or not _BASE64.fullmatch(value)
            or not value.startswith(_SIGNATURES[kind])
        ):
            return None
        return value
    if kind == "image/svg+xml" and not _SVG.search(value):
        return None
    if kind == "application/json":
        try:
            json.loads(value)
        except ValueError:
            return None
    return value


def clean_mime(value: object, limit: int = MAX_RICH_BYTES) -> dict[str, str] | None:
    """The bundle ``value`` holds after the rules above, or None if nothing rich is left
    or it is over ``limit``."""
    if not isinstance(value, dict):
        return None
    clean: dict[str, str] = {}
    for kind in RICH_MIME_TYPES:
        entry = value.get(kind)
        if isinstance(entry, str):
            kept = _clean_entry(kind, entry)
            if kept is not None:
                clean[kind] = kept
    if best_type(clean) is None or rich_size(clean) > limit:
        return None
    return clean


def best_type(mime: dict[str, str]) -> str | None:
    """The type a client shows: the first of ``RICH_MIME_TYPES`` present, text/plain aside."""
    for kind in RICH_MIME_TYPES[:-1]:
        if kind in mime:
            return kind
    return None


def format_size(size: int) -> str:
    """Bytes as people read them: "9.3 MB", "5 MB", "812 KB", "17 bytes" (decimal units,
    rounded half up in integer arithmetic so both languages print the same)."""
    for unit, scale in (("MB", 1_000_000), ("KB", 1_000)):
        if size >= scale:
            tenths = (size * 10 + scale // 2) // scale
            whole, tenth = divmod(tenths, 10)
            return f"{whole} {unit}" if tenth == 0 else f"{whole}.{tenth} {unit}"
    return f"{size} bytes"


def size_error(what: str, size: int, limit: int) -> str:
    """The error a sender raises for a bundle over its limit (in bytes when rounding would
    show the two sizes alike)."""
    shown, most = format_size(size), format_size(limit)
    if shown == most:
        shown, most = f"{size} bytes", f"{limit} bytes"
    return f"{what} is {shown}; the limit is {most}"
