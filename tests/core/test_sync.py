"""Room sync: the golden scenarios shared with js/core/sync.test.ts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nbchat.core import sync
from nbchat.core.frames import dumps
from nbchat.core.msglog import MessageLog, normalize_identity
from nbchat.core.sync import (
    Added,
    Confirmed,
    Event,
    Invalid,
    Rejected,
    RepairRound,
    RoomSync,
    Send,
    TooBig,
)

FIXTURE = json.loads(
    (Path(__file__).parent.parent / "fixtures" / "sync_cases.json").read_text(encoding="utf-8")
)


def _send(send: Send) -> dict[str, Any]:
    """A sent frame as the fixture writes it: messages by id."""
    frame = send.frame
    if frame["type"] == "sync":
        beyond = {"beyond": frame["beyond"]} if "beyond" in frame else {}
        return {"to": send.to, "type": "sync", "have": frame["have"], **beyond}
    if frame["type"] == "history":
        return {"to": send.to, "type": "history", "ids": [m["id"] for m in frame["messages"]]}
    return {"to": send.to, "type": frame["type"], "id": frame["message"]["id"]}


def _event(event: Event) -> dict[str, Any]:
    if isinstance(event, Added):
        return {"type": "added", "peer": event.peer, "ids": [m["id"] for m in event.messages]}
    if isinstance(event, Rejected):
        return {"type": "rejected", "peer": event.peer, "count": len(event.reasons)}
    if isinstance(event, TooBig):
        return {"type": "too_big", "peer": event.peer, "count": event.count}
    if isinstance(event, Invalid):
        return {"type": "invalid", "peer": event.peer, "frame": event.frame}
    if isinstance(event, Confirmed):
        return {"type": "confirmed", "peer": event.peer, "seq": event.seq}
    assert isinstance(event, RepairRound)
    return {"type": "repair"}


def test_the_constants_are_the_shared_ones() -> None:
    assert {
        "SYNC_ANSWER_INTERVAL_MS": sync.SYNC_ANSWER_INTERVAL_MS,
        "ANTI_ENTROPY_MS": sync.ANTI_ENTROPY_MS,
        "HISTORY_BATCH_BYTES": sync.HISTORY_BATCH_BYTES,
    } == FIXTURE["constants"]


@pytest.mark.parametrize("case", FIXTURE["cases"], ids=lambda c: c["name"])
def test_sync_scenario(case: dict[str, Any]) -> None:
    me = case["self"]
    log = MessageLog(me["peer_id"], normalize_identity(me["user"]))
    repair = case.get("repair_ms", sync.ANTI_ENTROPY_MS)
    room = RoomSync(log, case["max_message_bytes"], case["start"], repair)
    for number, step in enumerate(case["steps"]):
        op = step["op"]
        if op == "deadline":
            assert room.next_deadline() == step["deadline"], f"step {number}"
            continue
        if op == "restore":
            assert log.restore(step["messages"]) == step["result"], f"step {number}"
            continue
        if op == "compose":
            out = room.publish(log.compose(step["text"], step["time"]))
        elif op == "open":
            out = room.on_link_open(step["peer"], step["now"])
        elif op == "closed":
            out = room.on_link_closed(step["peer"])
        elif op == "drain":
            out = room.drain(step["peer"])
        elif op == "frame":
            user = normalize_identity(step["user"]) if step["user"] is not None else None
            out = room.on_frame(step["peer"], step["frame"], user, step["now"])
        elif op == "import":
            out = room.import_history(step["messages"])
        else:
            assert op == "tick", op
            out = room.tick(step["now"])
        assert [_send(s) for s in out.sends] == step.get("sends", []), f"step {number}: {op}"
        assert [_event(e) for e in out.events] == step.get("events", []), f"step {number}: {op}"


def test_newest_first_batches_fit_a_frame_and_cover_the_log_once() -> None:
    user = normalize_identity({"username": "me"})
    log = MessageLog("m", user)
    for i in range(300):
        log.compose(f"message {i} " + "x" * (i % 97), i)
    batches = sync.newest_first_batches(log.messages)
    assert batches[0][-1] == log.messages[-1]
    assert [m for b in reversed(batches) for m in b] == log.messages
    for batch in batches:
        assert batch == sorted(batch, key=lambda m: (m["clock"], m["author"], m["seq"]))
    assert sync.newest_first_batches([]) == []


def test_history_batches_fit_a_frame_and_keep_order() -> None:
    user = normalize_identity({"username": "me"})
    log = MessageLog("m", user)
    for i in range(50):
        log.compose("é" * (i * 40), i)
    batches = list(sync.history_batches(log.messages))
    assert [m for b in batches for m in b] == log.messages
    for batch in batches:
        size = len(json.dumps({"type": "history", "messages": batch}, ensure_ascii=False))
        assert len(batch) == 1 or size < sync.HISTORY_BATCH_BYTES
    assert list(sync.history_batches([])) == []


def test_signed_entries_are_batched_by_their_size_on_the_wire() -> None:
    """A signed entry goes without ``id`` and ``user`` (signing.on_wire): a batch is cut by
    that size, so a frame carries what fits in it, not what would have with both."""
    from nbchat.core.signing import on_wire

    user = normalize_identity({"username": "someone", "name": "Some One " * 8})
    log = MessageLog("m", user)
    for i in range(300):
        log.compose(f"message {i} about the numbers", i)
    entries = [{**m, "sig": "s" * 86} for m in log.messages]
    batches = list(sync.history_batches(entries))
    assert [m for b in batches for m in b] == entries

    def size(batch: list[dict[str, Any]]) -> int:
        return len(dumps({"type": "history", "messages": batch}).encode())

    for batch in batches:
        assert size([on_wire(m) for m in batch]) < sync.HISTORY_BATCH_BYTES
    # Full: one entry more would not fit on the wire, though the whole entries do not fit now.
    first = batches[0]
    assert size([on_wire(m) for m in [*first, batches[1][0]]]) >= sync.HISTORY_BATCH_BYTES - 64
    assert size(first) >= sync.HISTORY_BATCH_BYTES


def test_an_answer_sizes_only_the_batches_it_sends(monkeypatch: pytest.MonkeyPatch) -> None:
    """A joiner of a big room gets the newest batch without the whole history being cut
    into batches first: the rest is cut as the link drains, to the same batches."""
    log = MessageLog("m", normalize_identity({"username": "me"}))
    for i in range(3_000):
        log.compose(f"message {i} " + "x" * 40, i)
    sized: list[str] = []
    real = sync.dumps
    monkeypatch.setattr(sync, "dumps", lambda m: sized.append(m["id"]) or real(m))
    room = RoomSync(log, None, 0)
    room.on_link_open("p", 0)
    out = room.on_frame("p", {"type": "sync", "have": {}}, None, 0)
    first = out.sends[0].frame["messages"]
    assert first[-1] == log.messages[-1]
    assert len(sized) < 3 * len(first)  # the first batch, and the next one looked ahead
    sent = [first]
    while room.backlogged():
        sent.append(room.drain("p").sends[0].frame["messages"])
    assert sent == sync.newest_first_batches(log.messages)
