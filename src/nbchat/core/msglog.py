"""The chat message log of docs/protocol.md §4: pure state, no I/O (mirrored in js/core/msglog.ts).

Rules, identical in both languages and pinned by tests/fixtures/msglog_cases.json:

- A message's key is ``author + ":" + seq``; a claimed ``id`` is never trusted, it is
  recomputed from ``author`` and ``seq``.
- Lamport clock: ``compose`` uses ``clock = max_clock_seen + 1``; every message *added*
  to the log raises ``max_clock_seen`` to its clock (duplicates and rejects do not).
  A received message whose clock is more than ``MAX_CLOCK_STEP`` beyond
  ``max_clock_seen`` is rejected, so nobody can exhaust the clock for everyone.
- Order: by ``(clock, author, seq)``. Honest authors never reuse a clock, so ``seq`` only
  breaks ties a forger manufactured; it keeps the order total and identical everywhere.
- A ``message`` frame from a direct connection is stamped: ``author`` := the connection's
  peer id, ``id`` recomputed, ``user`` := the identity the server bound to that peer.
- A ``history`` frame relays other authors' messages as they are, except that a message
  whose author is the sending peer gets that peer's bound identity, and a message
  claiming to be ours is dropped: nobody else is a source for our own messages.
- A copy is *first-hand* when it came from its author (composed here, a ``message``
  frame, or a ``history`` entry whose author is the sender), else *relayed*.
- A message already in the log is ignored, with one exception: a first-hand copy
  replaces a relayed copy of the same id. So a forged relay never replaces the original,
  and an original never loses to a forgery that came first.
- While an author is directly connected to us (``connected``), only that author is a
  source for its messages: relayed copies of them are dropped.
- ``have()`` maps each author to the highest seq held contiguously from 1;
  ``have(for_peer=P)`` counts only first-hand copies for P itself, so the ``sync`` we
  send P asks again for any of P's messages we only hold second-hand.
  ``missing_for(have)`` is every message beyond what ``have`` holds, in log order.
- ``beyond()`` (``beyond(for_peer=P)``, first-hand for P as ``have``) lists, per author, the
  seqs held past ``have``'s count as ``[first, last]`` ranges: the gaps a stored copy keeps
  where off-the-record entries were (never stored) would otherwise make every answer
  re-send all that follows them. ``missing_for(have, beyond)`` leaves out what those ranges
  cover. At most ``MAX_BEYOND_RANGES`` ranges, authors in code-unit order, each author's
  ranges from the lowest; a range beyond the cap (or malformed) is simply not counted,
  which costs a duplicate at worst, never a loss.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Collection, Iterable, Mapping
from typing import NotRequired, TypedDict

from ..protocol import PEER_ID_RE, Identity
from .files import FileMeta, clean_file_meta
from .rich import clean_mime

__all__ = [
    "AMENDMENT_KINDS",
    "Identity",
    "InvalidMessage",
    "MAX_BEYOND_RANGES",
    "Message",
    "MessageLog",
    "RECORD_KIND",
    "normalize_identity",
    "order_key",
]

# Clocks and seqs must survive a round trip through a JavaScript number.
MAX_SAFE_INTEGER = 2**53 - 1
#: A received clock may be at most this far beyond the highest we have seen. Honest clocks
#: grow by one per message; without a bound, one message with clock 2**53 - 1 would leave
#: every peer unable to compose a valid message again.
MAX_CLOCK_STEP = 2**24
#: At most this many ``[first, last]`` ranges in a sync's ``beyond``, made or read.
MAX_BEYOND_RANGES = 256
#: The last millisecond of year 9999 UTC: the latest ``time`` both a JavaScript Date and a
#: Python datetime can show (a later one made the widget's rendering throw).
MAX_TIME = 253_402_300_799_999


class Message(TypedDict):
    """A log entry: a message, or with ``kind`` an amendment of one (core/edits.py)."""

    id: str
    author: str
    seq: int
    clock: int
    time: float
    text: str
    user: Identity
    #: A rich message's MIME bundle (core/rich); ``text`` stays the fallback.
    mime: NotRequired[dict[str, str]]
    #: A shared file's card (core/files); its bytes travel apart, on request.
    file: NotRequired[FileMeta]
    kind: NotRequired[str]  # "edit" | "delete" | "react" | "record"; absent for a message
    target: NotRequired[str]  # the id an amendment applies to
    reply_to: NotRequired[str]  # the id a message answers
    emoji: NotRequired[str]  # a reaction's emoji
    on: NotRequired[bool]  # a reaction set, or a record switch on the record (True)
    #: Composed while the room was off the record (core/edits.py): never stored.
    off_record: NotRequired[bool]
    sig: NotRequired[str]  # the author's signature (core/signing.py)
    #: The digest of the author's previous entry (seq - 1), signed: a hash chain (core/signing.py).
    prev: NotRequired[str]


#: The ``kind`` of an amendment entry; a message has none.
AMENDMENT_KINDS = ("edit", "delete", "react")
#: The ``kind`` of the room's off-the-record switch (``on``: back on the record); no target.
RECORD_KIND = "record"
#: A message id, ``author:seq``, as an amendment or a reply names it.
MESSAGE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}:[1-9][0-9]{0,15}\Z")
#: The largest reaction emoji in UTF-8 bytes (a family emoji with skin tones is 41).
MAX_EMOJI_BYTES = 64
_CONTROL = re.compile(r"[\x00-\x20\x7f]")
#: An Ed25519 signature in base64url (86 characters); a little slack, nothing more.
SIG_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}\Z")
#: A SHA-256 digest in base64url (43 characters): an entry's ``prev``.
PREV_RE = re.compile(r"^[A-Za-z0-9_-]{43}\Z")


class InvalidMessage(ValueError):
    """A received message that breaks the wire format; the caller logs and drops it."""


def _as_int(value: object) -> int | None:
    """An integer as JavaScript sees one: JSON ``1.0`` parses to the number 1 there."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def normalize_identity(value: object) -> Identity:
    """Return a clean IDENTITY from untrusted JSON, keeping only the known keys."""
    if not isinstance(value, Mapping) or not isinstance(value.get("username"), str):
        raise InvalidMessage("user must be an object with a string username")
    username: str = value["username"]
    name = value.get("name")
    display_name = value.get("display_name")
    return Identity(
        username=username,
        name=name if isinstance(name, str) else username,
        display_name=display_name if isinstance(display_name, str) else username,
        initials=_optional_str(value.get("initials")),
        color=_optional_str(value.get("color")),
        avatar_url=_optional_str(value.get("avatar_url")),
    )


def _validated(raw: object, author: str, user: Identity | None) -> Message:
    """Build a log entry from untrusted JSON; ``author`` (and ``user``) are the trusted parts."""
    if not isinstance(raw, Mapping):
        raise InvalidMessage("message must be an object")
    if not PEER_ID_RE.match(author):
        raise InvalidMessage(f"invalid author {author!r}")
    seq, clock = _as_int(raw.get("seq")), _as_int(raw.get("clock"))
    time, text = raw.get("time"), raw.get("text")
    if seq is None or not 1 <= seq <= MAX_SAFE_INTEGER:
        raise InvalidMessage(f"invalid seq {raw.get('seq')!r}")
    if clock is None or not 1 <= clock <= MAX_SAFE_INTEGER:
        raise InvalidMessage(f"invalid clock {raw.get('clock')!r}")
    if (
        not isinstance(time, (int, float))
        or isinstance(time, bool)
        # An int beyond a float's range would make isfinite() raise: compare it first.
        or not 0 <= time <= MAX_TIME
        or not math.isfinite(time)
    ):
        raise InvalidMessage(f"invalid time {time!r}")
    if not isinstance(text, str):
        raise InvalidMessage("text must be a string")
    if isinstance(time, float) and time.is_integer():
        time = int(time)  # JSON 1.0 is the number 1 in JavaScript: re-encode it as 1
    message = Message(
        id=f"{author}:{seq}",
        author=author,
        seq=seq,
        clock=clock,
        time=time,
        text=text,
        user=user if user is not None else normalize_identity(raw.get("user")),
    )
    _validate_extensions(raw, message)
    return _with_extras(message, raw.get("mime"), raw.get("file"))


def _with_extras(message: Message, mime: object, file: object) -> Message:
    """``message`` with its rich parts, each kept only if valid (the text stays regardless)."""
    if mime is not None and (clean := clean_mime(mime)) is not None:
        message["mime"] = clean
    if file is not None and (meta := clean_file_meta(file)) is not None:
        message["file"] = meta
    return message


def _message_id(raw: Mapping[str, object], key: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not MESSAGE_ID_RE.fullmatch(value):
        raise InvalidMessage(f"{key} must be a message id")
    return value


def _validate_extensions(raw: Mapping[str, object], message: Message) -> None:
    """Copy the optional fields of a reply or an amendment onto ``message``, checked."""
    sig = raw.get("sig")
    if sig is not None:
        if not isinstance(sig, str) or not SIG_RE.fullmatch(sig):
            raise InvalidMessage("sig must be base64url")
        message["sig"] = sig
    prev = raw.get("prev")
    if prev is not None:
        if not isinstance(prev, str) or not PREV_RE.fullmatch(prev):
            raise InvalidMessage("prev must be a base64url SHA-256 digest")
        message["prev"] = prev
    kind = raw.get("kind")
    off_record = raw.get("off_record")
    if off_record is not None:
        if off_record is not True or kind == RECORD_KIND:
            raise InvalidMessage("off_record must be true or absent (and a switch has none)")
        message["off_record"] = True
    if kind is None:
        if raw.get("reply_to") is not None:
            message["reply_to"] = _message_id(raw, "reply_to")
        return
    if kind == RECORD_KIND:
        on = raw.get("on")
        if not isinstance(on, bool):
            raise InvalidMessage("a record switch needs on: true or false")
        if raw.get("target") is not None:
            raise InvalidMessage("a record switch has no target")
        message["kind"], message["on"] = kind, on
        return
    if kind not in AMENDMENT_KINDS:
        raise InvalidMessage(f"unknown kind {kind!r}")
    message["kind"] = kind
    message["target"] = _message_id(raw, "target")
    if kind == "react":
        emoji, on = raw.get("emoji"), raw.get("on")
        if (
            not isinstance(emoji, str)
            or not emoji
            or len(emoji.encode("utf-8", "surrogatepass")) > MAX_EMOJI_BYTES
            or _CONTROL.search(emoji)
        ):
            raise InvalidMessage("emoji must be 1 to 64 bytes without spaces or controls")
        if not isinstance(on, bool):
            raise InvalidMessage("on must be true or false")
        message["emoji"], message["on"] = emoji, on


def _held_ranges(beyond: object) -> dict[str, tuple[list[int], list[int]]]:
    """A sync's ``beyond``, untrusted: per author (a valid peer id, in code-unit order) its
    ranges merged and sorted, as (firsts, lasts); malformed parts and ranges past
    MAX_BEYOND_RANGES are left out (counted as not held)."""
    if not isinstance(beyond, Mapping):
        return {}
    budget = MAX_BEYOND_RANGES
    held: dict[str, tuple[list[int], list[int]]] = {}
    for author in sorted(k for k in beyond if isinstance(k, str) and PEER_ID_RE.match(k)):
        spans = beyond[author]
        if budget == 0:
            break
        if not isinstance(spans, list):
            continue
        pairs: list[tuple[int, int]] = []
        for span in spans[:budget]:
            if not isinstance(span, list) or len(span) != 2:
                continue
            first, last = _as_int(span[0]), _as_int(span[1])
            if first is None or last is None or not 1 <= first <= last <= MAX_SAFE_INTEGER:
                continue
            pairs.append((first, last))
        budget -= min(len(spans), budget)
        pairs.sort()
        firsts: list[int] = []
        lasts: list[int] = []
        for first, last in pairs:
            if lasts and first <= lasts[-1] + 1:
                lasts[-1] = max(lasts[-1], last)
            else:
                firsts.append(first)
                lasts.append(last)
        if firsts:
            held[author] = (firsts, lasts)
    return held


def _same(a: Message, b: Message) -> bool:
    """Whether two copies of one id say the same thing (an honest relay does)."""
    return all(a.get(k) == b.get(k) for k in _CONTENT_KEYS) and all(
        a["user"].get(k) == b["user"].get(k) for k in _IDENTITY_KEYS
    )


_CONTENT_KEYS = (
    *("clock", "time", "text", "mime", "file"),
    *("kind", "target", "reply_to", "emoji", "on", "off_record", "sig", "prev"),
)
_IDENTITY_KEYS = ("username", "name", "display_name", "initials", "color", "avatar_url")


def order_key(message: Message) -> tuple[int, str, int]:
    """The log's total order: ``(clock, author, seq)``."""
    return (message["clock"], message["author"], message["seq"])


class MessageLog:
    """One peer's view of a room's messages, ordered identically on every peer."""

    def __init__(self, peer_id: str, user: Identity) -> None:
        if not PEER_ID_RE.match(peer_id):
            raise ValueError(f"invalid peer id {peer_id!r}")
        self.peer_id = peer_id
        self.user = user
        self._messages: list[Message] = []
        self._keys: list[tuple[int, str, int]] = []
        self._by_id: dict[str, Message] = {}
        self._seqs: dict[str, set[int]] = {}
        # Per author: its seqs held, sorted (missing_for), and the highest one (compose).
        self._sorted_seqs: dict[str, list[int]] = {}
        self._max_seq: dict[str, int] = {}
        self._contiguous: dict[str, int] = {}
        self._first_hand: set[str] = set()  # ids whose copy came from their author
        # Per author, the highest seq whose copies 1..seq are all first-hand (have(for_peer)).
        self._first_hand_contiguous: dict[str, int] = {}
        self._clock = 0

    @property
    def clock(self) -> int:
        """The highest Lamport clock seen so far."""
        return self._clock

    @property
    def messages(self) -> list[Message]:
        """All messages in order (a copy)."""
        return list(self._messages)

    def __len__(self) -> int:
        return len(self._messages)

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._by_id

    def settled(self, author: object, seq: object, first_hand: bool) -> bool:
        """Whether a copy of ``author``'s entry ``seq`` would be dropped unread: the log
        holds that id, and the copy is relayed or the held one is already first-hand. A
        receiver skips such copies' signature checks (whatever they say, they change
        nothing)."""
        if not isinstance(author, str) or type(seq) is not int:
            return False
        message_id = f"{author}:{seq}"
        return message_id in self._by_id and (not first_hand or message_id in self._first_hand)

    def get(self, message_id: str) -> Message | None:
        return self._by_id.get(message_id)

    def index(self, message_id: str) -> int:
        """Position of a message in the order (for views inserting a late arrival);
        KeyError for an id the log does not hold."""
        message = self._by_id[message_id]
        return bisect.bisect_left(self._keys, order_key(message))

    def compose(
        self,
        text: str,
        time: float,
        mime: dict[str, str] | None = None,
        file: FileMeta | None = None,
        **extensions: object,
    ) -> Message:
        """Create, add and return our own next entry (``mime`` and ``file`` as received
        ones are kept: invalid parts are left out).

        ``extensions`` are a reply's ``reply_to`` or an amendment's ``kind``, ``target``,
        ``emoji`` and ``on`` (core/edits.py); InvalidMessage if they break the format.
        """
        seq = self._max_seq.get(self.peer_id, 0) + 1
        message = Message(
            id=f"{self.peer_id}:{seq}",
            author=self.peer_id,
            seq=seq,
            clock=self._clock + 1,
            time=time,
            text=text,
            user=self.user,
        )
        _validate_extensions(extensions, message)
        message = _with_extras(message, mime, file)
        self._add(message, first_hand=True)
        return message

    def receive_direct(self, from_peer: str, user: Identity, raw: object) -> Message | None:
        """Add a ``message`` frame's MESSAGE from connection peer ``from_peer``.

        Returns the stamped message (added, or replacing a relayed copy), or None if the
        log already held it. Raises InvalidMessage for a malformed one.
        """
        message = self._plausible(_validated(raw, from_peer, user))
        return self._add(message, first_hand=True)

    def receive_history(
        self,
        messages: Iterable[object],
        from_peer: str | None = None,
        user: Identity | None = None,
        connected: Collection[str] = (),
    ) -> tuple[list[Message], list[InvalidMessage]]:
        """Add a ``history`` batch from ``from_peer`` (bound identity ``user``).

        ``connected`` are the peers with an open direct connection to us. Returns the
        messages added (or replacing relayed copies) and the reasons for dropped ones.
        """
        added: list[Message] = []
        rejected: list[InvalidMessage] = []
        for raw in messages:
            try:
                author = raw.get("author") if isinstance(raw, Mapping) else None
                if not isinstance(author, str):
                    raise InvalidMessage("author must be a string")
                if author == self.peer_id:
                    raise InvalidMessage("history may not carry our own messages")
                first_hand = from_peer is not None and user is not None and author == from_peer
                if not first_hand and author in connected:
                    raise InvalidMessage(f"{author} is connected: it alone relays its messages")
                message = self._plausible(_validated(raw, author, user if first_hand else None))
            except InvalidMessage as error:
                rejected.append(error)
                continue
            if self._add(message, first_hand=first_hand) is not None:
                added.append(message)
        return added, rejected

    def restore(self, messages: Iterable[object]) -> int:
        """Reload messages stored earlier (trusted as stored; malformed ones skipped).

        Returns how many were added. Only our own count as first-hand: a stored relay
        may have been a forgery.
        """
        restored = 0
        for raw in messages:
            author = raw.get("author") if isinstance(raw, Mapping) else None
            if not isinstance(author, str):
                continue
            try:
                message = self._plausible(_validated(raw, author, None))
            except InvalidMessage:
                continue
            if self._add(message, first_hand=author == self.peer_id) is not None:
                restored += 1
        return restored

    def _plausible(self, message: Message) -> Message:
        if message["clock"] > self._clock + MAX_CLOCK_STEP:
            raise InvalidMessage(f"clock {message['clock']} is implausibly far ahead")
        return message

    def have(self, for_peer: str | None = None) -> dict[str, int]:
        """Per author, the highest seq held contiguously from 1 (authors at 0 omitted).

        With ``for_peer``, that peer's own count covers only first-hand copies: the
        ``sync`` for it, so it sends again whatever of its own we learned second-hand.
        """
        have = dict(self._contiguous)
        if for_peer is not None and for_peer in have:
            held = self._first_hand_contiguous.get(for_peer, 0)
            if held:
                have[for_peer] = held
            else:
                del have[for_peer]
        return have

    def beyond(self, for_peer: str | None = None) -> dict[str, list[list[int]]]:
        """Per author, the seqs held past ``have(for_peer)``'s count, as ``[first, last]``
        ranges from the lowest (authors with none omitted; at most MAX_BEYOND_RANGES in all).

        With ``for_peer``, that peer's own ranges cover only first-hand copies, as in ``have``.
        """
        beyond: dict[str, list[list[int]]] = {}
        budget = MAX_BEYOND_RANGES
        for author in sorted(self._sorted_seqs):
            seqs = self._sorted_seqs[author]
            if author == for_peer:
                base = self._first_hand_contiguous.get(author, 0)
                if seqs[-1] == base:
                    continue
                past = [
                    s
                    for s in seqs[bisect.bisect_right(seqs, base) :]
                    if f"{author}:{s}" in self._first_hand
                ]
            else:
                base = self._contiguous.get(author, 0)
                if seqs[-1] == base:  # no gap: the common case
                    continue
                past = seqs[bisect.bisect_right(seqs, base) :]
            ranges: list[list[int]] = []
            for seq in past:
                if ranges and ranges[-1][1] + 1 == seq:
                    ranges[-1][1] = seq
                elif len(ranges) < budget:
                    ranges.append([seq, seq])
                else:
                    break
            if ranges:
                beyond[author] = ranges
                budget -= len(ranges)
                if budget == 0:
                    break
        return beyond

    def missing_for(self, have: Mapping[str, object], beyond: object = None) -> list[Message]:
        """Every message the holder of ``have`` (and ``beyond``) lacks, in log order; junk
        in either counts as nothing held."""
        ranges = _held_ranges(beyond)

        def held(author: str) -> int:
            value = _as_int(have.get(author, 0))
            return value if value is not None else 0

        def lacks(message: Message) -> bool:
            if message["seq"] <= held(message["author"]):
                return False
            spans = ranges.get(message["author"])
            if spans is None:
                return True
            at = bisect.bisect_right(spans[0], message["seq"]) - 1
            return at < 0 or spans[1][at] < message["seq"]

        # Usually the holder lacks a few recent messages: pick them per author from the
        # sorted seqs and order them (keys are unique), instead of scanning the whole log.
        missing: list[Message] = []
        for author, seqs in self._sorted_seqs.items():
            start = bisect.bisect_right(seqs, held(author))
            if len(missing) + len(seqs) - start > len(self._messages) // 8:
                return [m for m in self._messages if lacks(m)]
            missing.extend(m for seq in seqs[start:] if lacks(m := self._by_id[f"{author}:{seq}"]))
        missing.sort(key=order_key)
        return missing

    def _add(self, message: Message, first_hand: bool = False) -> Message | None:
        held = self._by_id.get(message["id"])
        if held is not None:
            if not first_hand or message["id"] in self._first_hand:
                return None
            # The author's own copy wins over a relayed one (which may be a forgery).
            self._mark_first_hand(message)
            if _same(held, message):
                return None
            position = bisect.bisect_left(self._keys, order_key(held))
            while self._messages[position]["id"] != held["id"]:
                position += 1
            del self._keys[position]
            del self._messages[position]
            del self._by_id[held["id"]]
        elif first_hand:
            self._mark_first_hand(message)
        key = order_key(message)
        if not self._keys or self._keys[-1] < key:  # live chat appends: skip the search
            self._keys.append(key)
            self._messages.append(message)
        else:
            position = bisect.bisect_right(self._keys, key)
            self._keys.insert(position, key)
            self._messages.insert(position, message)
        self._by_id[message["id"]] = message
        author, seq = message["author"], message["seq"]
        seqs = self._seqs.setdefault(author, set())
        if seq not in seqs:
            seqs.add(seq)
            ordered = self._sorted_seqs.setdefault(author, [])
            if not ordered or ordered[-1] < seq:
                ordered.append(seq)
            else:
                bisect.insort(ordered, seq)
            if seq > self._max_seq.get(author, 0):
                self._max_seq[author] = seq
        contiguous = self._contiguous.get(author, 0)
        while contiguous + 1 in seqs:
            contiguous += 1
        if contiguous:
            self._contiguous[author] = contiguous
        self._clock = max(self._clock, message["clock"])
        return message

    def _mark_first_hand(self, message: Message) -> None:
        self._first_hand.add(message["id"])
        author = message["author"]
        held = self._first_hand_contiguous.get(author, 0)
        while f"{author}:{held + 1}" in self._first_hand:
            held += 1
        self._first_hand_contiguous[author] = held
