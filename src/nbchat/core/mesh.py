"""Mesh policy: who dials whom, which of two simultaneous dials wins, when to dial again.

The rules, identical in ``js/core/mesh.ts`` and pinned by ``tests/fixtures/mesh_cases.json``:

- The newcomer dials everyone present (the roster) it has no link to; the others wait for
  its call. Back after a signaling outage, a peer dials everyone again, as a newcomer.
- A repair round (room sync's ANTI_ENTROPY_MS) dials present peers with no link and no
  redial pending, but only from the smaller id, so two peers never dial each other twice.
- Simultaneous dials (tie-break): each side keeps the connection dialed by the smaller
  id. The smaller refuses the bigger's call while its own dial is pending; the bigger
  drops its own dial and accepts. A call from a peer we hold a link with replaces that
  link (the peer dialed again: its end of the old one is gone).
- After a link is lost while the peer is still present, only the smaller id dials again
  (so the two do not keep colliding), except after a link that never opened, or one that
  went silent (the other side may not have noticed: it hears nothing either).
- Redial delays grow by :func:`backoff_delay` and have no limit on attempts: as long as
  presence says a peer is in the room, a link to it is worth having, and each try costs
  one offer per 15 to 30 s. (The Python peer used to stop after 6 tries, within 20 s: a
  network outage of a minute then split the room until someone left and came back.)
  A link that opens resets the count.
- A dial that has not opened after DIAL_TIMEOUT_MS is dropped (then redialed as above);
  a link ICE reports "disconnected" for SILENT_LINK_MS counts as lost and silent.

Ids compare as strings; peer ids are ASCII, so JavaScript and Python order them alike.
"""

from __future__ import annotations

import math
from collections.abc import Container, Iterable
from dataclasses import dataclass

__all__ = [
    "DIAL_TIMEOUT_MS",
    "REDIAL_BASE_MS",
    "REDIAL_MAX_MS",
    "SILENT_LINK_MS",
    "LinkState",
    "MeshPolicy",
    "backoff_delay",
]

#: A dial that has not opened by then is given up (and retried by the redial rule).
DIAL_TIMEOUT_MS = 20_000
#: How long a link may stay ICE-"disconnected" before we call it dead and dial again.
#: Chrome reports "disconnected" a few seconds after packets stop, but "failed" (when
#: peerjs closes the connection) much later or never, so without this a path that went
#: silent kept swallowing messages while the status said "Connected". (aiortc has no
#: "disconnected" state: the Python peer closes such a link after its ICE consent checks
#: fail, see peer/ice.py, then it counts as lost.)
SILENT_LINK_MS = 3_000
#: Redial backoff: the first delay is REDIAL_BASE_MS (with jitter), doubling up to REDIAL_MAX_MS.
REDIAL_BASE_MS = 500
REDIAL_MAX_MS = 30_000


def backoff_delay(
    attempt: int, random: float, base_ms: int = REDIAL_BASE_MS, max_ms: int = REDIAL_MAX_MS
) -> int:
    """Milliseconds to wait before try ``attempt`` (from 0): exponential with jitter
    (``random`` in [0, 1) scales it to 50-100 %), so a restart is not hit by everyone at once."""
    ceiling = min(max_ms, base_ms * (1 << min(max(0, attempt), 32)))
    # floor(x + 0.5) is JavaScript's Math.round; Python's round() rounds halves to even.
    return math.floor(ceiling * (0.5 + random / 2) + 0.5)


@dataclass(frozen=True)
class LinkState:
    """What the tie-break needs to know of an existing link to the caller."""

    open: bool
    dialed_by_us: bool


class MeshPolicy:
    """Decisions for peer ``self_id``; counts redial attempts per peer."""

    def __init__(self, self_id: str) -> None:
        self.self_id = self_id
        self._attempts: dict[str, int] = {}

    def dials_on_roster(self, present: Iterable[str], linked: Container[str]) -> list[str]:
        """Whom to dial on joining (or rejoining): everyone present we have no link to."""
        return [p for p in present if p != self.self_id and p not in linked]

    def repair_dials(
        self, present: Iterable[str], linked: Container[str], redialing: Container[str]
    ) -> list[str]:
        """Whom to dial in a repair round: present, unlinked, no redial pending, bigger id."""
        return [p for p in present if self.self_id < p and p not in linked and p not in redialing]

    def accept_incoming(self, caller: str, existing: LinkState | None) -> bool:
        """Whether to accept a call from ``caller`` (else refuse it: our own dial wins)."""
        if existing is None or existing.open or not existing.dialed_by_us:
            return True
        return not self.self_id < caller

    def on_link_open(self, peer: str) -> None:
        self._attempts.pop(peer, None)

    def on_link_lost(
        self, peer: str, *, was_open: bool, silent: bool, present: bool, random: float
    ) -> int | None:
        """The delay (ms) before dialing ``peer`` again, or None: not ours to redial."""
        if not present:
            self._attempts.pop(peer, None)
            return None
        if was_open and not silent and not self.self_id < peer:
            return None
        attempt = self._attempts.get(peer, 0)
        self._attempts[peer] = attempt + 1
        return backoff_delay(attempt, random)

    def forget(self, peer: str) -> None:
        """``peer`` left the room."""
        self._attempts.pop(peer, None)
