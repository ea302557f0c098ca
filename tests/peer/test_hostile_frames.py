"""Hostile data-channel input to the Python peer: no frame a peer can send breaks the receiver.

Property tests over the frame parser (``frames.decode``), chunk reassembly and the
ChatPeer's frame handler with the message log behind it. "Never breaks" means: only
``InvalidFrame`` escapes the parsers, the handler never raises, and whatever the log
accepted can still be measured, relayed and re-encoded.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiortc import RTCConfiguration
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.support.peers import until

from nbchat.core import sync as core_sync
from nbchat.core.chunking import ChunkAssembler, split
from nbchat.core.frames import InvalidFrame, decode, encode, parse_chat_frame
from nbchat.core.msglog import MessageLog, normalize_identity
from nbchat.core.ratelimit import FLOOD_WARNING_MS, MESSAGE_RATE, IncomingLimits
from nbchat.core.session import SessionConfig
from nbchat.core.sync import history_batches
from nbchat.peer import ChatPeer
from nbchat.peer.dataconnection import DataConnection

# Strings a hostile peer likes: lone surrogates (JSON may escape them), NULs, bidi
# overrides, combining marks, astral characters, huge and odd numbers as text.
nasty_text = st.text(max_size=40) | st.sampled_from(
    [
        "\ud800",
        "\udfff",
        "a\ud83d",
        "\ude00b",
        "\x00",
        "\u202e",
        "e\u0301" * 50,
        "😀",
        "\ufeff",
        "\u2028\u2029",
        "<script>alert(1)</script>",
    ]
)
numbers = (
    st.integers() | st.floats() | st.sampled_from([2**53, 2**53 + 1, -(2**63), 10**400, 1e308])
)
json_values = st.recursive(
    st.none() | st.booleans() | numbers | nasty_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(nasty_text, children, max_size=4)
    ),
    max_leaves=25,
)
ids = st.sampled_from(["B", "A", "C", "S", "", "B:1", "../x", "A\x00"]) | nasty_text
messages = st.fixed_dictionaries(
    {},
    optional={
        "id": ids | json_values,
        "author": ids | json_values,
        "seq": numbers | json_values,
        "clock": numbers | json_values,
        "time": numbers | json_values,
        "text": nasty_text | json_values,
        "user": st.fixed_dictionaries(
            {"username": nasty_text},
            optional={
                "display_name": nasty_text | json_values,
                "avatar_url": nasty_text | json_values,
            },
        )
        | json_values,
    },
)
chunks = st.fixed_dictionaries(
    {"type": st.just("chunk")},
    optional={
        "id": st.sampled_from(["c-1", "c-2", ""]) | json_values,
        "index": numbers | json_values,
        "count": numbers | json_values,
        "data": st.sampled_from(['{"type":"message",', '"message":{}}', "]"]) | json_values,
    },
)
frames = (
    st.builds(lambda m: {"type": "message", "message": m}, messages | json_values)
    | st.builds(
        lambda ms: {"type": "history", "messages": ms}, st.lists(messages, max_size=6) | json_values
    )
    | st.builds(
        lambda h: {"type": "sync", "have": h},
        st.dictionaries(ids, numbers | json_values, max_size=4) | json_values,
    )
    | st.builds(
        lambda h, b: {"type": "sync", "have": h, "beyond": b},
        st.dictionaries(ids, numbers | json_values, max_size=4),
        st.dictionaries(
            ids, st.lists(st.lists(numbers | json_values, max_size=3) | json_values, max_size=4)
        )
        | json_values,
    )
    | chunks
    | st.dictionaries(nasty_text, json_values, max_size=4)
)


def _json_text(value: Any) -> str:
    """JSON as a browser's JSON.stringify would write it (lone surrogates escaped)."""
    return json.dumps(value, ensure_ascii=True, allow_nan=True)


payloads = (
    st.binary(max_size=200)
    | nasty_text
    | frames.map(_json_text)
    | frames.map(lambda f: _json_text(f).encode("utf-8"))
    | st.integers(1, 5000).map(lambda n: '{"a":' * n + "1" + "}" * n)
    | st.integers(1, 5000).map(lambda n: '{"type":"sync","have":' + "[" * n + "]" * n + "}")
    | st.sampled_from(['{"seq": 1' + "0" * 5000 + "}", '{"x": 1e999}', '{"x": NaN}', "\ufeff{}"])
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads)
def test_decode_raises_only_invalid_frame_and_returns_re_encodable_frames(payload: Any) -> None:
    try:
        frame = decode(payload)
    except InvalidFrame:
        return
    assert isinstance(frame, dict)
    encode(frame)  # a frame we accepted can always be sent on, as UTF-8


@pytest.mark.parametrize("depth", [999, 1_500, 100_000])
def test_deeply_nested_frames_are_refused_cleanly(depth: int) -> None:
    payload = ('{"type":"sync","have":' + "[" * depth + "]" * depth + "}").encode()
    try:
        decode(payload)
    except InvalidFrame as error:
        assert "nested" in str(error)


def test_lone_surrogates_become_replacement_characters() -> None:
    # JSON.stringify("\ud800") is the escape "\\ud800": valid JSON, but not encodable UTF-8.
    frame = decode(b'{"type":"message","message":{"text":"a\\ud800b\\ud83d\\ude00"}}')
    assert frame["message"]["text"] == "a\ufffdb😀"
    encode(frame)


@settings(max_examples=400, deadline=None)
@given(st.lists(chunks, max_size=40))
def test_chunk_reassembly_refuses_absurd_chunks_and_stays_bounded(sequence: list[dict]) -> None:
    assembler = ChunkAssembler(max_count=64, max_pending=4, max_bytes=4096)
    for chunk in sequence:
        try:
            whole = assembler.feed(chunk)
        except InvalidFrame:
            continue
        assert whole is None or parse_chat_frame(whole) == whole
        assert assembler.pending <= 4


def test_chunks_with_absurd_counts_and_indices_are_refused() -> None:
    assembler = ChunkAssembler()
    # (3.0 is fine: JSON 3.0 is the number 3 in JavaScript, and so it is here.)
    for count, index in [
        (10**18, 0),
        (2**53 + 1, 2),
        (-1, 0),
        (3, 3),
        (3, -1),
        (True, 0),
        (3, 1.5),
        ("3", 0),
        (None, 0),
    ]:
        with pytest.raises(InvalidFrame):
            assembler.feed({"type": "chunk", "id": "c", "index": index, "count": count, "data": ""})
    assert assembler.pending == 0


# --- the ChatPeer's handler with a real log behind it ------------------------------------

SELF = {
    "username": "self",
    "name": "self",
    "display_name": "Self",
    "initials": None,
    "color": None,
    "avatar_url": None,
}
BOB = {**SELF, "username": "bob", "name": "bob", "display_name": "Bob"}


class _Presence:
    roster = {"B": {"peer_id": "B", "user": BOB}, "S": {"peer_id": "S", "user": SELF}}


class _Connection:
    """What ChatPeer needs of a DataConnection: sends are encoded as they would be on the wire."""

    peer = "B"
    connection_id = "dc_test"
    open = True

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, frame: dict[str, Any]) -> bool:
        self.sent.extend(encode(part) for part in split(frame, lambda: "c-1"))
        return True


def _peer() -> ChatPeer:
    peer = ChatPeer("http://127.0.0.1:1/", "room")
    peer.config = SessionConfig.from_json(
        {
            "room": "room",
            "key": "room",
            "path": "/nbchat/",
            "ice_servers": [],
            "user": SELF,
            "ping_interval": 5000,
            "alive_timeout": 60000,
            "max_message_bytes": 4096,
            "version": "0",
        }
    )
    peer._log = MessageLog("S", normalize_identity(SELF))
    peer._presence = _Presence()  # type: ignore[assignment]
    peer._start_sync()  # as join() does; call on a running loop
    return peer


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(payloads | frames.map(_json_text), min_size=1, max_size=12))
def test_no_sequence_of_frames_breaks_the_peer_or_its_log(sequence: list[Any]) -> None:
    asyncio.run(_feed(sequence))  # the peer's handlers run on its event loop


async def _feed(sequence: list[Any]) -> None:
    peer, connection = _peer(), _Connection()
    assembler = ChunkAssembler()
    for payload in sequence:
        # As DataConnection._receive does: parse, reassemble chunks, hand over.
        try:
            frame = parse_chat_frame(decode(payload))
            if frame is None:
                continue
            if frame["type"] == "chunk":
                whole = assembler.feed(frame)
                if whole is None:
                    continue
                frame = whole
        except InvalidFrame:
            continue
        peer._on_frame(connection, frame)  # type: ignore[arg-type]
    log = peer._log
    assert log is not None
    for message in log.messages:
        assert message["author"] != "S"  # nobody else is a source for our own messages
        if message["author"] == "B":
            assert message["user"] == BOB  # the server-bound identity, never a claim
        encode({"type": "message", "message": message})
    # The log can still answer a sync and compose.
    for batch in history_batches(log.missing_for({})):
        encode({"type": "history", "messages": batch})
    peer._on_frame(connection, {"type": "sync", "have": {}})  # type: ignore[arg-type]
    log.compose("still here", 0)


# --- forged relays against the message log ------------------------------------------------

ALICE = {**SELF, "username": "alice", "name": "alice", "display_name": "Alice"}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 4), st.booleans()), max_size=30))
def test_forged_relays_never_outlive_the_authors_own_copies(events: list[tuple]) -> None:
    """Whatever a forger relays and in whatever order, once the author's own copies have
    arrived (live or in its history), every id of theirs shows the author's text."""
    log = MessageLog("S", normalize_identity(SELF))
    real = {
        seq: {
            "id": f"A:{seq}",
            "author": "A",
            "seq": seq,
            "clock": seq,
            "time": 1.0,
            "text": f"real {seq}",
            "user": ALICE,
        }
        for seq in range(1, 5)
    }
    for forged, seq, connected in events:
        if forged:
            fake = {**real[seq], "text": "forged", "clock": 99}
            log.receive_history([fake], "M", normalize_identity(BOB), ["A"] if connected else [])
        else:
            log.receive_direct("A", normalize_identity(ALICE), real[seq])
    # The author answers our sync: everything of its own we do not hold first-hand.
    wanted = log.have(for_peer="A").get("A", 0)
    log.receive_history([real[s] for s in range(wanted + 1, 5)], "A", normalize_identity(ALICE))
    assert [m["text"] for m in log.messages] == [f"real {s}" for s in range(1, 5)]


# --- floods -------------------------------------------------------------------------------


def test_incoming_limits_allow_a_burst_then_the_rate_and_report_once_per_interval() -> None:
    now = [0.0]
    limits = IncomingLimits(now=lambda: now[0])
    accepted = sum(limits.accept(is_message=True) for _ in range(5_000))
    assert accepted == MESSAGE_RATE.burst
    assert limits.report() == 5_000 - MESSAGE_RATE.burst
    assert limits.report() is None
    now[0] += 1000  # a second refills the rate's worth of live messages
    assert sum(limits.accept(is_message=True) for _ in range(100)) == MESSAGE_RATE.rate
    assert limits.accept(is_message=False)  # other frames have their own budget
    now[0] += FLOOD_WARNING_MS
    assert limits.report() == 100 - MESSAGE_RATE.rate


def test_a_flooding_connection_is_cut_to_its_rate_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def run() -> list[dict[str, Any]]:
        received: list[dict[str, Any]] = []
        connection = DataConnection(
            "F",
            _no_signal,
            RTCConfiguration(iceServers=[]),
            lambda c, f: received.append(f),
            limits=IncomingLimits(),
        )
        try:
            for seq in range(1, 5_001):
                message = {"seq": seq, "clock": 1, "time": 1, "text": "spam"}
                connection._receive(encode({"type": "message", "message": message}))
            for _ in range(100):
                connection._receive(b"junk")
            connection._receive(encode({"type": "sync", "have": {}}))
        finally:
            await connection.close()
        return received

    with caplog.at_level("WARNING", logger="nbchat.peer.dataconnection"):
        received = asyncio.run(run())
    messages_in = [f for f in received if f["type"] == "message"]
    assert MESSAGE_RATE.burst <= len(messages_in) < MESSAGE_RATE.burst + 50
    assert received[-1] == {"type": "sync", "have": {}}  # other frames still get through
    floods = [r for r in caplog.records if "flooding" in r.getMessage()]
    assert len(floods) == 1 and "peer F" in floods[0].getMessage()


async def _no_signal(kind: Any, dst: str, payload: dict[str, Any]) -> None:
    raise AssertionError("no signaling in this test")


class _OneLinkMesh:
    """What ChatPeer asks of its mesh when the room sync sends on its own: the link to B."""

    def __init__(self, connection: _Connection) -> None:
        self.connection = connection
        self.peers = {connection.peer}

    def connection_to(self, peer: str) -> _Connection | None:
        return self.connection if peer == self.connection.peer else None


def test_a_sync_loop_gets_one_answer_per_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core_sync, "SYNC_ANSWER_INTERVAL_MS", 200)

    async def run() -> list[int]:
        peer, connection = _peer(), _Connection()
        peer._mesh = _OneLinkMesh(connection)  # type: ignore[assignment]
        log = peer._log
        assert log is not None
        for i in range(20):
            log.compose(f"mine {i}", 0)
        counts = []
        for _ in range(1_000):
            peer._on_frame(connection, {"type": "sync", "have": {}})  # type: ignore[arg-type]
        counts.append(len(connection.sent))  # answered once, at once
        await until(lambda: len(connection.sent) > counts[0], 5)  # then the one that waited
        counts.append(len(connection.sent))
        # The other 998 were folded into that answer: nothing more is waiting to go.
        assert peer._sync is not None and peer._sync.waiting() == 0
        return counts

    assert asyncio.run(run()) == [1, 2]


# --- rich messages and files --------------------------------------------------------------

mimes = st.dictionaries(
    st.sampled_from(
        [
            "text/html",
            "image/png",
            "image/jpeg",
            "image/svg+xml",
            "text/latex",
            "application/json",
            "text/markdown",
            "text/plain",
            "application/javascript",
            "__proto__",
        ]
    ),
    json_values | st.sampled_from(["iVBORw0KGgoAAAA=", "/9j/4AAQ", "<svg/>", "{}", "PGh0bWw+"]),
    max_size=5,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    mime=mimes | json_values,
    file=json_values
    | st.fixed_dictionaries(
        {"name": nasty_text, "size": numbers, "type": nasty_text, "sha256": nasty_text}
    ),
)
def test_any_rich_bundle_or_file_card_leaves_a_valid_message(mime: Any, file: Any) -> None:
    """Whatever a peer puts in ``mime`` and ``file``, the log keeps the message (its text is
    the fallback) with only valid parts, and what it keeps re-encodes."""
    from nbchat.core.files import clean_file_meta
    from nbchat.core.rich import RICH_MIME_TYPES, clean_mime

    log = MessageLog("S", normalize_identity({"username": "s"}))
    raw = {
        "seq": 1,
        "clock": 1,
        "time": 1,
        "text": "fallback",
        "user": {"username": "b"},
        "mime": mime,
        "file": file,
    }
    # As it arrives: JSON over the wire (a browser escapes lone surrogates; decode mends them).
    try:
        raw = decode(json.dumps(raw))
    except (InvalidFrame, ValueError):
        return  # not JSON a peer could send (NaN, 10**400...)
    mime, file = raw["mime"], raw["file"]
    added = log.receive_direct("B", normalize_identity({"username": "b"}), raw)
    assert added is not None and added["text"] == "fallback"
    assert added.get("mime") == clean_mime(mime)
    assert set(added.get("mime", {})) <= set(RICH_MIME_TYPES)
    assert added.get("file") == clean_file_meta(file)
    if "file" in added:
        assert "/" not in added["file"]["name"] and "\\" not in added["file"]["name"]
    assert decode(encode({"type": "history", "messages": log.messages}))


def test_an_oversized_or_polyglot_bundle_is_dropped_and_the_text_kept() -> None:
    from nbchat.core.rich import MAX_RICH_BYTES

    log = MessageLog("S", normalize_identity({"username": "s"}))
    bob = normalize_identity({"username": "b"})
    huge = {"text/html": "<td>" + "x" * MAX_RICH_BYTES + "</td>"}
    polyglot = {"image/png": "PGh0bWw+PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg=="}
    for seq, mime in enumerate([huge, polyglot], start=1):
        raw = {"seq": seq, "clock": seq, "time": 1, "text": f"text {seq}", "user": {}, "mime": mime}
        added = log.receive_direct("B", bob, raw)
        assert added is not None and "mime" not in added and added["text"] == f"text {seq}"


async def test_file_parts_nobody_asked_for_or_that_do_not_fit_are_refused() -> None:
    """Parts for a file we did not request are ignored; a part that does not fit its card
    fails the transfer (and tells the sender to stop); nothing partial is kept."""
    from nbchat.peer.files import PeerFiles

    sent: list[tuple[str, dict[str, Any]]] = []
    files = PeerFiles(
        lambda peer, frame: sent.append((peer, frame)) or True,
        lambda peer: 0,
        lambda peer: True,
        lambda coro, name: coro.close(),
    )
    part = {"type": "file-part", "file": "B:1", "index": 0, "count": 1, "data": "AAAA"}
    files.on_frame("B", part)  # no card: ignored
    assert not files.wants_part("B", "B:1") and files.state("B:1") is None
    card = {"name": "x.bin", "size": 5, "type": "application/octet-stream", "sha256": "0" * 64}
    files.on_messages([{"id": "B:1", "author": "B", "file": card}], "S")  # type: ignore[list-item]
    assert sent == [("B", {"type": "file-get", "file": "B:1"})]
    assert not files.wants_part("M", "B:1")  # only the author may send its parts
    files.on_frame("M", {**part, "data": "AAAAAAA="})
    assert files.state("B:1") == "waiting"
    files.on_frame("B", part)  # 3 bytes where the card says 5
    assert files.state("B:1") == "failed" and "B:1" not in files.received
    assert sent[-1] == ("B", {"type": "file-cancel", "file": "B:1"})
    # Right size, wrong content: the SHA-256 check fails it.
    files.on_messages([{"id": "B:2", "author": "B", "file": card}], "S")  # type: ignore[list-item]
    files.on_frame("B", {**part, "file": "B:2", "data": "AAAAAAA="})
    assert files.state("B:2") == "failed" and files.received == {}
