"""Room sync: the sans-I/O state machine that keeps every peer's message log the same.

The rules, identical in ``js/core/sync.ts`` and pinned by ``tests/fixtures/sync_cases.json``
(docs/protocol.md §4):

- When a link to a peer opens, we send it ``sync`` with what we hold (``have``, counted
  for that peer: only first-hand copies of its own messages), and, when we hold seqs past a
  gap (a stored copy lacks what was said off the record), ``beyond``: those seqs as ranges.
- A ``sync`` is answered with ``history`` batches of every message the asker lacks (past
  ``have`` and not in ``beyond``), never
  the asker's own (we are not a source for those), newest first: the batches are cut from
  the newest message back (each batch itself in log order), the first (newest) goes at
  once, so the joiner's screen fills before the rest crosses; the others wait in the peer's
  backlog and leave one per ``drain(peer)``, which the caller calls when the link has room,
  so a live message never queues behind more than a batch. A new answer replaces the
  backlog; a closed link drops it (a link opening keeps it: the sync it answers can be
  handled before the open event). At most one answer per peer every
  SYNC_ANSWER_INTERVAL_MS: syncs arriving sooner wait, and only the latest waiting one is
  answered when the interval ends, so a peer syncing in a loop cannot make us resend the
  history each time.
- Every ANTI_ENTROPY_MS every open link is sent ``sync`` again (a repair round), so a
  message lost to a broken mesh edge still arrives.
- A ``message``, or a ``history`` entry, whose text is over the room's
  ``max_message_bytes`` is dropped: senders refuse to send one.
- A ``sync`` tells how far the asker holds our own messages: ``Confirmed``.
- Entries imported from an export file (``import_history``) are checked as a relayed
  ``history`` is (nothing in a file is first-hand; a connected author's entries come from
  that author only; over the limit dropped); those already held are skipped, not counted.
  Nothing is sent: peers that lack them get them in the next sync answer. Events name the
  peer ``""``.
- Batches: a ``history`` batch closes before its JSON would reach HISTORY_BATCH_BYTES as it
  goes on the wire (a signed entry without ``id`` and ``user``, :func:`signing.on_wire`), so
  it is one data-channel frame unless a single message is bigger (then it is chunked).

Inputs are frames already parsed from JSON and the time in milliseconds (any monotonic
origin); every method returns the frames to send, addressed by peer id, and events.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .chunking import CHUNK_THRESHOLD_BYTES
from .frames import dumps
from .msglog import Identity, InvalidMessage, Message, MessageLog
from .signing import on_wire

__all__ = [
    "ANTI_ENTROPY_MS",
    "HISTORY_BATCH_BYTES",
    "SYNC_ANSWER_INTERVAL_MS",
    "Added",
    "Confirmed",
    "Event",
    "Invalid",
    "Output",
    "Rejected",
    "RepairRound",
    "RoomSync",
    "Send",
    "TooBig",
    "history_batches",
    "newest_first",
    "newest_first_batches",
]

#: At most one sync answer per peer this often. Honest peers sync on connecting and every
#: ANTI_ENTROPY_MS; a peer syncing in a loop would otherwise cost us the whole history each time.
SYNC_ANSWER_INTERVAL_MS = 2_000
#: Between repair rounds (a ``sync`` on every open link).
ANTI_ENTROPY_MS = 15_000
#: A ``history`` batch stays under this many bytes of JSON (one data-channel frame).
HISTORY_BATCH_BYTES = CHUNK_THRESHOLD_BYTES
#: Room for the ``{"type":"history","messages":[…]}`` envelope.
_ENVELOPE_BYTES = 64


@dataclass(frozen=True)
class Send:
    """Send ``frame`` to peer ``to``."""

    to: str
    frame: dict[str, Any]


@dataclass(frozen=True)
class Added:
    """Messages from ``peer`` that entered the log (or replaced a relayed copy)."""

    peer: str
    messages: list[Message]


@dataclass(frozen=True)
class Rejected:
    """``history`` entries from ``peer`` the log refused, with the reasons."""

    peer: str
    reasons: list[str]


@dataclass(frozen=True)
class TooBig:
    """``count`` messages from ``peer`` dropped for being over the room's size limit."""

    peer: str
    count: int


@dataclass(frozen=True)
class Invalid:
    """A ``frame`` (its type) from ``peer`` that could not be used, and why."""

    peer: str
    frame: str
    reason: str


@dataclass(frozen=True)
class Confirmed:
    """``peer`` holds our own messages up to ``seq`` (it said so in a ``sync``)."""

    peer: str
    seq: int


@dataclass(frozen=True)
class RepairRound:
    """A repair round began: the mesh may dial present peers it has no link to."""


Event = Added | Rejected | TooBig | Invalid | Confirmed | RepairRound


@dataclass
class Output:
    sends: list[Send] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


def history_batches(messages: Iterable[Message]) -> Iterator[list[Message]]:
    """``messages`` in order, in batches that each fit one data-channel frame."""
    batch: list[Message] = []
    size = _ENVELOPE_BYTES
    for message in messages:
        cost = len(dumps(on_wire(message)).encode("utf-8")) + 1  # as it goes on the wire
        if batch and size + cost >= HISTORY_BATCH_BYTES:
            yield batch
            batch, size = [], _ENVELOPE_BYTES
        batch.append(message)
        size += cost
    if batch:
        yield batch


def newest_first(messages: Sequence[Message]) -> Iterator[list[Message]]:
    """``messages`` (in log order) in batches cut from the newest back, as they are asked
    for: the newest batch first, each batch in log order and fitting one data-channel frame.
    Lazy, so an answer's first batch goes without sizing the whole history first (10,000
    messages: ~55 ms before the newest could leave)."""
    for batch in history_batches(reversed(messages)):
        yield batch[::-1]


def newest_first_batches(messages: Sequence[Message]) -> list[list[Message]]:
    """All of :func:`newest_first` at once."""
    return list(newest_first(messages))


class _Backlog:
    """The rest of an answer: its next batch, and the batches after it, cut when asked."""

    __slots__ = ("_next", "_rest")

    def __init__(self, batches: Iterator[list[Message]]) -> None:
        self._rest = batches
        self._next = next(batches, None)

    def __bool__(self) -> bool:
        return self._next is not None

    def popleft(self) -> list[Message]:
        batch = self._next
        assert batch is not None
        self._next = next(self._rest, None)
        return batch


class RoomSync:
    """Feed it links opening and closing, chat frames and ticks; send what it returns.

    ``max_message_bytes`` is the room's limit (None: no limit); ``now`` starts the
    repair-round clock. Call :meth:`tick` at :meth:`next_deadline` (or later).
    """

    def __init__(
        self,
        log: MessageLog,
        max_message_bytes: int | None,
        now: float,
        repair_ms: float = ANTI_ENTROPY_MS,
    ) -> None:
        self.log = log
        self.max_message_bytes = max_message_bytes
        #: ms between repair rounds (the session's ``repair_interval``).
        self.repair_ms = repair_ms
        #: Peers with an open link, in the order they opened.
        self._open: dict[str, None] = {}
        self._answered_at: dict[str, float] = {}
        self._pending: dict[str, tuple[Mapping[str, Any], object]] = {}
        #: Per peer, the history batches of its answer still to send, next first.
        self._backlog: dict[str, _Backlog] = {}
        self._next_repair = now + repair_ms
        #: Per peer, the highest of our own seqs it told us it holds.
        self.confirmed: dict[str, int] = {}

    @property
    def open_peers(self) -> list[str]:
        return list(self._open)

    def on_link_open(self, peer: str, now: float) -> Output:
        """A link to ``peer`` opened: start the history exchange on it. An answer's backlog
        is kept: the peer's ``sync`` can be handled before its link's open event."""
        backlog = self._backlog.get(peer)
        self._forget_link(peer)
        if backlog:
            self._backlog[peer] = backlog
        self._open[peer] = None
        return Output(sends=[self._sync_frame(peer)])

    def on_link_closed(self, peer: str) -> Output:
        """The link to ``peer`` is gone; its waiting sync is dropped."""
        self._forget_link(peer)
        return Output()

    def publish(self, message: Message) -> Output:
        """Our own new ``message``: to every open link."""
        return Output(sends=[Send(p, {"type": "message", "message": message}) for p in self._open])

    def on_frame(
        self, peer: str, frame: Mapping[str, Any], user: Identity | None, now: float
    ) -> Output:
        """A chat frame from ``peer`` (server-bound identity ``user``, needed for messages)."""
        out = Output()
        kind = frame.get("type")
        if kind == "sync":
            self._on_sync(peer, frame.get("have"), frame.get("beyond"), now, out)
        elif kind == "message" or kind == "history":
            if user is None:
                out.events.append(Invalid(peer, kind, "the sender's identity is unknown"))
            elif kind == "message":
                self._on_message(peer, frame.get("message"), user, out)
            else:
                self._on_history(peer, frame.get("messages"), user, out)
        else:
            out.events.append(Invalid(peer, str(kind), "not a chat frame type"))
        return out

    def import_history(self, raw: Iterable[object]) -> Output:
        """Entries from an export file (already checked for signatures, in signed rooms)."""
        out = Output()
        fresh = [
            m
            for m in raw
            if not (isinstance(m, dict) and isinstance(m.get("id"), str) and m["id"] in self.log)
        ]
        self._receive("", fresh, None, out)
        return out

    def tick(self, now: float) -> Output:
        """Answer syncs whose wait is over; run a repair round when one is due."""
        out = Output()
        for peer, (have, beyond) in list(self._pending.items()):
            if now - self._answered_at[peer] >= SYNC_ANSWER_INTERVAL_MS:
                del self._pending[peer]
                self._answer(peer, have, beyond, now, out)
        if now >= self._next_repair:
            self._next_repair = now + self.repair_ms
            out.sends.extend(self._sync_frame(p) for p in self._open)
            out.events.append(RepairRound())
        return out

    def drain(self, peer: str) -> Output:
        """The next batch of ``peer``'s answer (call when its link has room), if any is left."""
        out = Output()
        batches = self._backlog.get(peer)
        if batches:
            out.sends.append(Send(peer, {"type": "history", "messages": batches.popleft()}))
        if not batches:
            self._backlog.pop(peer, None)
        return out

    def backlogged(self) -> list[str]:
        """Peers whose answer still has batches to send."""
        return list(self._backlog)

    def next_deadline(self) -> float:
        """When :meth:`tick` next has something to do."""
        waits = [self._answered_at[p] + SYNC_ANSWER_INTERVAL_MS for p in self._pending]
        return min([self._next_repair, *waits])

    def waiting(self) -> int:
        """How many syncs wait for their answer."""
        return len(self._pending)

    # --- internals -----------------------------------------------------------------------

    def _forget_link(self, peer: str) -> None:
        self._open.pop(peer, None)
        self._answered_at.pop(peer, None)
        self._pending.pop(peer, None)
        self._backlog.pop(peer, None)

    def _sync_frame(self, peer: str) -> Send:
        frame: dict[str, Any] = {"type": "sync", "have": self.log.have(for_peer=peer)}
        beyond = self.log.beyond(for_peer=peer)
        if beyond:
            frame["beyond"] = beyond
        return Send(peer, frame)

    def _too_big(self, raw: object) -> bool:
        text = raw.get("text") if isinstance(raw, dict) else None
        limit = self.max_message_bytes
        return isinstance(text, str) and limit is not None and len(text.encode("utf-8")) > limit

    def _on_message(self, peer: str, raw: object, user: Identity, out: Output) -> None:
        if self._too_big(raw):
            out.events.append(TooBig(peer, 1))
            return
        try:
            added = self.log.receive_direct(peer, user, raw)
        except InvalidMessage as error:
            out.events.append(Invalid(peer, "message", str(error)))
            return
        if added is not None:
            out.events.append(Added(peer, [added]))

    def _on_history(self, peer: str, raw: object, user: Identity, out: Output) -> None:
        if not isinstance(raw, list):
            out.events.append(Invalid(peer, "history", "messages is not a list"))
            return
        self._receive(peer, raw, user, out)

    def _receive(self, peer: str, raw: list[object], user: Identity | None, out: Output) -> None:
        fitting = [m for m in raw if not self._too_big(m)]
        if len(fitting) < len(raw):
            out.events.append(TooBig(peer, len(raw) - len(fitting)))
        source = peer if user is not None else None
        added, rejected = self.log.receive_history(fitting, source, user, list(self._open))
        if added:
            out.events.append(Added(peer, added))
        if rejected:
            out.events.append(Rejected(peer, [str(r) for r in rejected]))

    def _on_sync(self, peer: str, have: object, beyond: object, now: float, out: Output) -> None:
        if not isinstance(have, dict):
            out.events.append(Invalid(peer, "sync", "have is not an object"))
            return
        mine = have.get(self.log.peer_id)
        if type(mine) is int and mine > self.confirmed.get(peer, 0):
            self.confirmed[peer] = mine
            out.events.append(Confirmed(peer, mine))
        last = self._answered_at.get(peer)
        if last is not None and now - last < SYNC_ANSWER_INTERVAL_MS:
            self._pending[peer] = (have, beyond)
            return
        self._answer(peer, have, beyond, now, out)

    def _answer(
        self, peer: str, have: Mapping[str, Any], beyond: object, now: float, out: Output
    ) -> None:
        self._answered_at[peer] = now
        # Never send a peer its own messages back: it is their only source (msglog rule).
        missing = [m for m in self.log.missing_for(have, beyond) if m["author"] != peer]
        batches = _Backlog(newest_first(missing))
        if batches:
            out.sends.append(Send(peer, {"type": "history", "messages": batches.popleft()}))
        if batches:
            self._backlog[peer] = batches
        else:
            self._backlog.pop(peer, None)
