"""What a Python object looks like as a chat message: its text, and the MIME bundle of a rich one.

Used by ``Chat.send`` in a kernel and ``ChatPeer.send`` in scripts. The representations come
from IPython's display formatter when IPython runs (so they are what the notebook would show),
else from the object's ``_repr_*_`` methods; a figure with ``savefig`` (matplotlib) and no
image representation is rendered by its own ``savefig`` as PNG. The bundle keeps the best
safe representation (core/rich ``RICH_MIME_TYPES`` order) plus ``text/plain``; the message's
``text`` is the fallback every client shows.
"""

from __future__ import annotations

import base64
import io
import json
from typing import Any

from .core.rich import MAX_RICH_BYTES, RICH_LIMIT_BYTES, RICH_MIME_TYPES, clean_mime, rich_size
from .core.rich import size_error as _size_error

__all__ = ["RichMessageTooBig", "mime_bundle", "rich_message"]

#: The ``_repr_*_`` methods read outside IPython, by the type they return.
_REPR_METHODS = {
    "image/png": "_repr_png_",
    "image/jpeg": "_repr_jpeg_",
    "image/svg+xml": "_repr_svg_",
    "text/html": "_repr_html_",
    "text/latex": "_repr_latex_",
    "application/json": "_repr_json_",
    "text/markdown": "_repr_markdown_",
}
#: The fallback text is for reading, not for carrying data: a long text/plain is cut.
MAX_FALLBACK_CHARS = 4_000


class RichMessageTooBig(ValueError):
    """A rich message over the sender's limit; the text says by how much and what to do."""


def _ipython_formats(obj: object) -> dict[str, Any] | None:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    formatter = getattr(shell, "display_formatter", None)
    if formatter is None:
        return None
    data, _metadata = formatter.format(obj)
    return dict(data)


def _repr_formats(obj: object) -> dict[str, Any]:
    data: dict[str, Any] = {}
    bundle = getattr(obj, "_repr_mimebundle_", None)
    if callable(bundle):
        produced = bundle()
        if isinstance(produced, tuple):
            produced = produced[0]
        if isinstance(produced, dict):
            data.update(produced)
    for kind, name in _REPR_METHODS.items():
        method = getattr(obj, name, None)
        if kind in data or not callable(method):
            continue
        value = method()
        if isinstance(value, tuple):  # (data, metadata)
            value = value[0]
        if value is not None:
            data[kind] = value
    data.setdefault("text/plain", repr(obj))
    return data


def _savefig_png(obj: object) -> bytes | None:
    savefig = getattr(obj, "savefig", None)
    if not callable(savefig):
        return None
    buffer = io.BytesIO()
    savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def _as_string(kind: str, value: Any) -> str | None:
    if kind in ("image/png", "image/jpeg"):
        if isinstance(value, (bytes, bytearray)):
            return base64.b64encode(bytes(value)).decode("ascii")
        return value if isinstance(value, str) else None
    if kind == "application/json":
        try:
            return value if isinstance(value, str) else json.dumps(value)
        except (TypeError, ValueError):
            return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def mime_bundle(obj: object) -> dict[str, str]:
    """Every representation of ``obj`` nbchat can carry, as strings (images base64)."""
    # The object's own _repr_*_ methods, then IPython's formatters over them (they know
    # more types). A terminal IPython computes text/plain only: that must not make a chat
    # message lose its table.
    data = {**_repr_formats(obj), **(_ipython_formats(obj) or {})}
    if "image/png" not in data and "image/jpeg" not in data:
        png = _savefig_png(obj)
        if png is not None:
            data["image/png"] = png
    bundle: dict[str, str] = {}
    for kind in RICH_MIME_TYPES:
        if kind in data:
            value = _as_string(kind, data[kind])
            if value is not None:
                bundle[kind] = value
    return bundle


def _what(kind: str) -> tuple[str, str]:
    """How an error names a representation, and what to do about one too big."""
    if kind.startswith("image/"):
        return "figure", " — lower the dpi or the figure size"
    if kind == "text/html":
        return "table", " — send fewer rows, e.g. df.head()"
    return kind, ""


def rich_message(obj: object, limit: int = RICH_LIMIT_BYTES) -> tuple[str, dict[str, str] | None]:
    """The ``(text, mime)`` to post for ``obj``: text alone for a string or Markdown; else the
    best safe representation with text/plain, and that text as the fallback.

    Raises RichMessageTooBig over ``limit`` (JSON bytes of the bundle, at most
    ``MAX_RICH_BYTES``) and ValueError for an object with nothing to show.
    """
    if isinstance(obj, str):
        return obj, None
    limit = min(limit, MAX_RICH_BYTES)
    full = mime_bundle(obj)
    plain = full.get("text/plain") or str(obj)
    if len(plain) > MAX_FALLBACK_CHARS:
        plain = plain[:MAX_FALLBACK_CHARS] + "…"
    for kind in RICH_MIME_TYPES[:-1]:
        if kind not in full:
            continue
        if kind == "text/markdown":
            return full[kind], None  # Markdown is what a plain message already is
        candidate = {kind: full[kind], "text/plain": plain}
        size = rich_size(candidate)
        if size > limit:
            what, hint = _what(kind)
            raise RichMessageTooBig(_size_error(what, size, limit) + hint)
        cleaned = clean_mime(candidate, limit)
        if cleaned is not None:
            return plain, cleaned
        # Not what it claims (an "image/png" that is not a PNG): try the next representation.
    return plain, None
