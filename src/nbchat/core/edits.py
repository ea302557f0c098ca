"""What each message shows after its edits, deletes and reactions (docs/protocol.md §4.3).

Pure, no I/O; mirrored by js/core/edits.ts and pinned by tests/fixtures/edits_cases.json.

An edit, a delete or a reaction is itself an entry of the message log (``kind`` set, with
the ``target`` message id), so it replicates exactly as messages do: one order
everywhere, nothing lost or duplicated, carried by history sync to late joiners. This
module folds those entries into the state each message shows. The rules:

- Only plain messages (no ``kind``) are shown; an amendment whose target is not a plain
  message is ignored.
- The amendments of a message apply in log order, ``(clock, author, seq)``, the order
  every peer holds; so concurrent edits resolve the same everywhere (the later one in
  that order wins). An amendment ordered before its target cannot be honest (its author
  had seen the target, so its clock is higher) and is ignored. One that arrives before
  its target waits for it: the state depends on what is held, not on arrival order.
- Edits and deletes count only from the target's own user (``user.username``); anyone
  else's are refused and counted. A deleted message shows no text, no reactions and no
  later edits.
- A reaction is ``on`` or off per (emoji, user); the latest in log order wins. Emojis
  are listed in the order of their first reaction, users sorted.

Off the record (a room switch, ``kind: "record"``, ``on`` false to go off and true to
come back; anyone in the room may flip it):

- The room's state is its latest switch in log order (:meth:`Timeline.record`; on the
  record while there is none), so concurrent switches resolve the same everywhere.
- An entry is off the record (:meth:`Timeline.off_record`) if its author flagged it
  (``off_record``, covered by its signature: no relay strips it), or, for a message, if
  the latest switch ordered before it is off: a receiver does not trust a sender to flag.
  An edit, delete or reaction follows its message: off the record if that message is
  (or if flagged), kept if the message is kept, so a delete made while off the record
  still takes back the stored copy. Switches themselves are always kept: they say who
  turned the record off and when, never what was said.
- Off-the-record entries are shown, marked, and are never written to storage, the
  kernel's copy or an export (the shells' job, with this verdict).
"""

from __future__ import annotations

import bisect
from typing import TypedDict

from ..protocol import Identity
from .msglog import RECORD_KIND, Message, order_key

__all__ = ["MessageState", "Reaction", "Timeline"]


class Reaction(TypedDict):
    emoji: str
    users: list[str]


class MessageState(TypedDict):
    """A shown message: the log entry's identity fields with its current content."""

    id: str
    author: str
    user: Identity
    time: float
    text: str
    reply_to: str | None
    edited: float | None  # the ``time`` of the edit shown, None if never edited
    deleted: bool
    reactions: list[Reaction]


class Timeline:
    """The shown state of a room's messages, built from log entries in any arrival order."""

    def __init__(self) -> None:
        self._entries: dict[str, Message] = {}
        self._amendments: dict[str, list[Message]] = {}
        self._states: dict[str, MessageState] = {}
        # The room's off-the-record switches in log order, and their order keys.
        self._records: list[Message] = []
        self._record_keys: list[tuple[int, str, int]] = []

    def add(self, entry: Message) -> str | None:
        """Take one log entry; return the id of the message whose state it changed."""
        self._entries[entry["id"]] = entry  # or a first-hand copy replacing a relayed one
        target = entry.get("target")
        if entry.get("kind") == RECORD_KIND:
            records = [r for r in self._records if r["id"] != entry["id"]] + [entry]
            self._records = sorted(records, key=order_key)
            self._record_keys = [order_key(r) for r in self._records]
            return None
        if entry.get("kind") is None:
            self._states.pop(entry["id"], None)
            return entry["id"]
        assert target is not None  # the log validates that amendments name a target
        pending = self._amendments.setdefault(target, [])
        pending[:] = [a for a in pending if a["id"] != entry["id"]] + [entry]
        pending.sort(key=order_key)
        self._states.pop(target, None)
        return target if self._is_message(target) else None

    def entry(self, message_id: str) -> Message | None:
        """The entry held for ``message_id`` (the newest copy), if any."""
        return self._entries.get(message_id)

    def state(self, message_id: str) -> MessageState | None:
        """What the message shows now; None for an amendment or an id not held."""
        if not self._is_message(message_id):
            return None
        cached = self._states.get(message_id)
        if cached is None:
            cached = self._states[message_id] = self._fold(self._entries[message_id])
        return cached

    def record(self) -> Message | None:
        """The room's latest off-the-record switch in log order (None: never switched, so on
        the record); the room is off the record when its ``on`` is False."""
        return self._records[-1] if self._records else None

    def off_record(self, entry_id: str) -> bool:
        """Whether entry ``entry_id`` is off the record (never stored); False if not held."""
        entry = self._entries.get(entry_id)
        if entry is None or entry.get("kind") == RECORD_KIND:
            return False
        if entry.get("off_record") is True:
            return True
        if entry.get("kind") is None:
            at = bisect.bisect_left(self._record_keys, order_key(entry))
            return at > 0 and self._records[at - 1]["on"] is False
        target = entry.get("target")
        return target is not None and self._is_message(target) and self.off_record(target)

    def refused(self) -> list[str]:
        """Ids of edits and deletes refused because their user is not the target's."""
        return sorted(
            amendment["id"]
            for target, amendments in self._amendments.items()
            if self._is_message(target)
            for amendment in amendments
            if amendment.get("kind") in ("edit", "delete")
            and amendment["user"]["username"] != self._entries[target]["user"]["username"]
            and order_key(amendment) > order_key(self._entries[target])
        )

    def _is_message(self, message_id: str) -> bool:
        entry = self._entries.get(message_id)
        return entry is not None and entry.get("kind") is None

    def _fold(self, message: Message) -> MessageState:
        text, edited, deleted = message["text"], None, False
        reactions: dict[str, dict[str, bool]] = {}
        owner, start = message["user"]["username"], order_key(message)
        for amendment in self._amendments.get(message["id"], ()):
            kind, username = amendment.get("kind"), amendment["user"]["username"]
            if deleted or order_key(amendment) <= start:
                continue
            if kind == "react":
                reactions.setdefault(amendment["emoji"], {})[username] = amendment["on"]
            elif username != owner:
                continue
            elif kind == "edit":
                text, edited = amendment["text"], amendment["time"]
            elif kind == "delete":
                text, deleted, reactions = "", True, {}
        return MessageState(
            id=message["id"],
            author=message["author"],
            user=message["user"],
            time=message["time"],
            text=text,
            reply_to=message.get("reply_to"),
            edited=edited,
            deleted=deleted,
            reactions=[
                Reaction(emoji=emoji, users=sorted(u for u, on in by_user.items() if on))
                for emoji, by_user in reactions.items()
                if any(by_user.values())
            ],
        )
