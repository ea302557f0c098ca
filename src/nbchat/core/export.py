"""A room's history as a Markdown file people read and a JSON file peers re-import
(docs/protocol.md §4.6).

Pure, no I/O; mirrored by js/core/export.ts and pinned by tests/fixtures/export_cases.json.
The JSON keeps the log entries as they are (signatures included), so importing it gives
back the same log; the Markdown shows each message as core/edits folds it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from .edits import MessageState

__all__ = ["EXPORT_FORMAT", "InvalidExport", "export_certs", "from_json", "to_json", "to_markdown"]

EXPORT_FORMAT = "nbchat-export/1"
#: How much of the original a reply quotes.
QUOTE_CHARS = 80
_SPACE = " \t\n\r\v\f"


class InvalidExport(ValueError):
    """A file that is not an nbchat export; the message says what is wrong."""


def _utc(ms: float, seconds: bool = True) -> str:
    stamp = datetime.fromtimestamp(int(ms // 1000), timezone.utc)
    return stamp.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M") + " UTC"


def to_json(
    room: str,
    entries: Iterable[Mapping[str, Any]],
    exported: float,
    certs: Iterable[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The export document: every log entry of ``room`` as held, in log order, and, when
    given, the server's certificates of their authors (public and signed by the server, so an
    importer checks the entries' signatures without meeting their authors)."""
    document = {
        "format": EXPORT_FORMAT,
        "room": room,
        "exported": exported,
        "entries": list(entries),
    }
    if certs is not None:
        document["certs"] = list(certs)
    return document


def from_json(document: object) -> tuple[str, list[Any]]:
    """``(room, entries)`` from an export document; the log validates each entry."""
    if not isinstance(document, Mapping) or document.get("format") != EXPORT_FORMAT:
        raise InvalidExport(f"not an nbchat export (expected format {EXPORT_FORMAT!r})")
    room, entries = document.get("room"), document.get("entries")
    if not isinstance(room, str) or not isinstance(entries, list):
        raise InvalidExport("an nbchat export needs a room name and a list of entries")
    if "certs" in document and not isinstance(document["certs"], list):
        raise InvalidExport("an nbchat export's certs must be a list")
    return room, entries


def export_certs(document: object) -> list[Any]:
    """The certificates an export carries (none from an unsigned room or a kernel)."""
    certs = document.get("certs") if isinstance(document, Mapping) else None
    return certs if isinstance(certs, list) else []


def _quote(state: MessageState | None) -> str:
    if state is None:
        return "> ↪ a message not in this export"
    if state["deleted"]:
        return f"> ↪ **{state['user']['display_name']}**: _message deleted_"
    first = (state["text"].strip(_SPACE).splitlines() or [""])[0]
    if len(first) > QUOTE_CHARS:
        first = first[: QUOTE_CHARS - 1] + "…"
    return f"> ↪ **{state['user']['display_name']}**: {first}"


def to_markdown(room: str, states: Sequence[MessageState], exported: float) -> str:
    """The room as Markdown: a heading, then each shown message in log order."""
    by_id = {s["id"]: s for s in states}
    count = f"{len(states)} message" + ("" if len(states) == 1 else "s")
    lines = [f"# {room}", "", f"Exported {_utc(exported, seconds=False)} · {count}", ""]
    for state in states:
        header = f"**{state['user']['display_name']}** · {_utc(state['time'])}"
        if state["edited"] is not None and not state["deleted"]:
            header += " · edited"
        lines += ["---", "", header, ""]
        if state["reply_to"] is not None:
            lines += [_quote(by_id.get(state["reply_to"])), ""]
        lines += ["_message deleted_" if state["deleted"] else state["text"], ""]
        if state["reactions"]:
            reactions = " · ".join(
                f"{r['emoji']} {', '.join(r['users'])}" for r in state["reactions"]
            )
            lines += [reactions, ""]
    return "\n".join(lines)
