"""Who a message calls by ``@name`` (docs/protocol.md §4.5), and who is typing.

Pure, no I/O; mirrored by js/core/mentions.ts and pinned by tests/fixtures/mentions.json.

Mentions: ``@`` then a username of someone the room knows, matched with ASCII letters
case-insensitive, longest username first (so ``@ana.b`` is ana.b, not ana, when both are
known). The ``@`` must start the text or follow a character that cannot be part of an
address (so ``bob@example.org`` calls nobody), and the name must end the text or be
followed by a character that cannot continue a username. A mention inside a code span or
a code block is text, not a call.

Typing: a peer that types sends a ``typing`` frame at most every ``TYPING_REFRESH_MS``;
a receiver shows it for ``TYPING_TTL_MS`` after the last one, or until that peer's
message arrives or it says it stopped. Never stored, never relayed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = [
    "TYPING_REFRESH_MS",
    "TYPING_TTL_MS",
    "TypingTracker",
    "mentions",
    "typing_label",
]

TYPING_REFRESH_MS = 2_000
TYPING_TTL_MS = 5_000

# A character that may continue a username (so it cannot end a mention), and one that
# may sit before an "@" inside an address (so it cannot start a mention).
_NAME_CHAR = re.compile(r"[A-Za-z0-9_\-]")
_ADDRESS_CHAR = re.compile(r"[A-Za-z0-9_.\-+@]")
# Fenced blocks, then inline code spans (a run of backticks closed by the same run).
_CODE = re.compile(r"```.*?(?:```|\Z)|(`+)(?!`).*?(?<!`)\1(?!`)", re.S)


def _ascii_lower(text: str) -> str:
    return text.translate(_LOWER)


_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def mentions(text: str, usernames: Iterable[str]) -> list[str]:
    """The usernames ``text`` mentions, in order of first mention, each once."""
    known = sorted({u for u in usernames if u}, key=lambda u: (-len(u), u))
    folded = _ascii_lower(_CODE.sub(lambda m: " " * len(m.group(0)), text))
    found: list[str] = []
    at = folded.find("@")
    while at != -1:
        if at == 0 or not _ADDRESS_CHAR.match(folded[at - 1]):
            for username in known:
                end = at + 1 + len(username)
                if folded.startswith(_ascii_lower(username), at + 1) and (
                    end == len(folded) or not _NAME_CHAR.match(folded[end])
                ):
                    if username not in found:
                        found.append(username)
                    break
        at = folded.find("@", at + 1)
    return found


def typing_label(names: list[str]) -> str:
    """What the chat says about who is typing: "" for nobody."""
    if not names:
        return ""
    if len(names) == 1:
        return f"{names[0]} is typing…"
    if len(names) == 2:
        return f"{names[0]} and {names[1]} are typing…"
    if len(names) == 3:
        return f"{names[0]}, {names[1]} and {names[2]} are typing…"
    return f"{names[0]}, {names[1]} and {len(names) - 2} others are typing…"


class TypingTracker:
    """Who is typing now, by peer id, from ``typing`` frames and the clock."""

    def __init__(self) -> None:
        self._until: dict[str, tuple[float, str]] = {}

    def typing(self, peer: str, name: str, now: float, on: bool = True) -> bool:
        """A ``typing`` frame from ``peer``; whether who is shown typing may have changed (a
        refresh of someone already shown does not: only the expiry moves)."""
        if not on:
            return self._until.pop(peer, None) is not None
        held = self._until.get(peer)
        self._until[peer] = (now + TYPING_TTL_MS, name)
        return held is None or held[0] <= now or held[1] != name

    def stopped(self, peer: str) -> bool:
        """The peer sent its message or left; whether it was shown typing."""
        return self._until.pop(peer, None) is not None

    def names(self, now: float) -> list[str]:
        """Who is typing at ``now``, in the order they started, each name once (one
        person may type in two tabs); expired ones forgotten."""
        for peer in [p for p, (until, _) in self._until.items() if until <= now]:
            del self._until[peer]
        return list(dict.fromkeys(name for _, name in self._until.values()))

    def next_change(self) -> float | None:
        """When the next expiry is due (for a timer), None if nobody is typing."""
        return min((until for until, _ in self._until.values()), default=None)
