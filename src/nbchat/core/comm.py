"""The kernel ↔ browser comm messages of the chat widget (docs/protocol.md §6).

Custom anywidget messages, not synced traits: the message history is patched once rather
than echoed on every change, and the passphrase never becomes a trait saved in the notebook.
Pure; mirrored by js/core/comm.ts and pinned by tests/fixtures/comm.json.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

__all__ = [
    "CommType",
    "claim",
    "here",
    "messages_patch",
    "parse_from_browser",
    "parse_from_kernel",
    "passphrase",
    "passphrase_request",
    "save_file",
    "saved",
    "send",
    "send_file",
]


class CommType(str, Enum):
    """The ``type`` of a comm message. Browser → kernel: HERE, CLAIM, MESSAGES,
    PASSPHRASE_REQUEST, SAVE_FILE; kernel → browser: SEND, SEND_FILE, SAVED, PASSPHRASE."""

    HERE = "here"
    CLAIM = "claim"
    MESSAGES = "messages"
    PASSPHRASE_REQUEST = "passphrase?"
    SAVE_FILE = "save_file"
    SEND = "send"
    SEND_FILE = "send_file"
    SAVED = "saved"
    PASSPHRASE = "passphrase"


def here(peer_id: str) -> dict[str, Any]:
    """A view of the widget says which peer it is in the room ("" until it has an id). The
    kernel learns from the message's session which browser that is, so that what a cell
    run in that browser sends is posted by that browser's peer, as its user."""
    return {"type": CommType.HERE.value, "peer_id": peer_id}


def claim(peer_id: str, replaces: str, present: list[str]) -> dict[str, Any]:
    """A browser in the room offers to own the widget (replacing ``replaces``, if gone)."""
    return {
        "type": CommType.CLAIM.value,
        "peer_id": peer_id,
        "replaces": replaces,
        "present": present,
    }


def messages_patch(start: int, messages: list[dict[str, Any]], done: bool) -> dict[str, Any]:
    """The owner browser replaces the kernel's messages from index ``start`` on; ``done``
    is False while more patches of the same update follow."""
    return {"type": CommType.MESSAGES.value, "from": start, "messages": messages, "done": done}


def passphrase_request() -> dict[str, Any]:
    return {"type": CommType.PASSPHRASE_REQUEST.value}


def save_file(request: str, name: str) -> dict[str, Any]:
    """A browser asks the kernel to save a received file (the message's first binary
    buffer) next to the notebook, as ``name``; ``request`` pairs the answer with it."""
    return {"type": CommType.SAVE_FILE.value, "request": request, "name": name}


def saved(request: str, path: str = "", error: str = "") -> dict[str, Any]:
    """The kernel's answer to ``save_file``: where the file went, or why it could not."""
    return {"type": CommType.SAVED.value, "request": request, "path": path, "error": error}


#: What a kernel's ``send`` may ask of the entry beyond its text: a reply's ``reply_to``,
#: an amendment's ``kind``, ``target``, ``emoji`` and ``on`` (the browser's log checks them).
ENTRY_FIELDS = ("reply_to", "kind", "target", "emoji", "on")


def send(
    text: str, to: str, mime: dict[str, str] | None = None, fields: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The kernel asks the browser ``to`` to post ``text`` to the room (a rich message with
    its MIME bundle ``mime``, text the fallback; a reply, edit, delete or reaction with
    ``fields``)."""
    message: dict[str, Any] = {"type": CommType.SEND.value, "text": text, "to": to}
    if mime is not None:
        message["mime"] = mime
    if fields:
        message["fields"] = {k: v for k, v in fields.items() if k in ENTRY_FIELDS}
    return message


def send_file(name: str, mime_type: str, to: str) -> dict[str, Any]:
    """The kernel asks the browser ``to`` to share a file (its bytes: the message's first
    binary buffer) with the room, peer to peer."""
    return {"type": CommType.SEND_FILE.value, "name": name, "mime_type": mime_type, "to": to}


def passphrase(value: str) -> dict[str, Any]:
    return {"type": CommType.PASSPHRASE.value, "passphrase": value}


def _index(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and 0 <= value <= 2**53 - 1 else None


def parse_from_browser(value: object) -> dict[str, Any] | None:
    """A browser's comm message, normalized, or None if it is not one."""
    if not isinstance(value, dict):
        return None
    kind = value.get("type")
    if kind == CommType.HERE:
        peer_id = value.get("peer_id")
        return here(peer_id) if isinstance(peer_id, str) else None
    if kind == CommType.CLAIM:
        peer_id, replaces = value.get("peer_id"), value.get("replaces")
        present = value.get("present")
        if not isinstance(peer_id, str) or not peer_id or not isinstance(present, list):
            return None
        return claim(
            peer_id,
            replaces if isinstance(replaces, str) else "",
            [p for p in present if isinstance(p, str)],
        )
    if kind == CommType.MESSAGES:
        start, batch = _index(value.get("from")), value.get("messages")
        if start is None or not isinstance(batch, list):
            return None
        return messages_patch(
            start, [m for m in batch if isinstance(m, dict)], value.get("done") is not False
        )
    if kind == CommType.PASSPHRASE_REQUEST:
        return passphrase_request()
    if kind == CommType.SAVE_FILE:
        request, name = value.get("request"), value.get("name")
        if isinstance(request, str) and isinstance(name, str):
            return save_file(request, name)
        return None
    return None


def parse_from_kernel(value: object) -> dict[str, Any] | None:
    """A kernel's comm message, normalized, or None if it is not one."""
    if not isinstance(value, dict):
        return None
    kind = value.get("type")
    if kind == CommType.SEND:
        text, to, mime = value.get("text"), value.get("to"), value.get("mime")
        fields = value.get("fields")
        if not isinstance(text, str) or not isinstance(to, str):
            return None
        return send(
            text,
            to,
            mime if isinstance(mime, dict) else None,
            fields if isinstance(fields, dict) else None,
        )
    if kind == CommType.SAVED:
        request, path, error = value.get("request"), value.get("path"), value.get("error")
        if not isinstance(request, str):
            return None
        return saved(
            request, path if isinstance(path, str) else "", error if isinstance(error, str) else ""
        )
    if kind == CommType.SEND_FILE:
        name, mime_type, to = value.get("name"), value.get("mime_type"), value.get("to")
        if isinstance(name, str) and isinstance(mime_type, str) and isinstance(to, str):
            return send_file(name, mime_type, to)
        return None
    if kind == CommType.PASSPHRASE:
        secret = value.get("passphrase")
        return passphrase(secret) if isinstance(secret, str) else None
    return None
