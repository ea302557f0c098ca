"""The message log: golden fixture cases (shared with js/) and property tests."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbchat.core.frames import ChatFrameType, dumps
from nbchat.core.msglog import Identity, InvalidMessage, Message, MessageLog, normalize_identity

CASES = json.loads((Path(__file__).parents[1] / "fixtures" / "msglog_cases.json").read_text())


def _run_op(log: MessageLog, op: dict[str, Any]) -> None:
    kind = op["op"]
    if kind == "local":
        assert op["as"] == log.peer_id, "a local op composes as the log's own peer"
        message = log.compose(op["text"], op["time"])
        assert message["id"] == op["result"]
    elif kind == "direct":
        try:
            added = log.receive_direct(op["from"], normalize_identity(op["user"]), op["message"])
        except InvalidMessage:
            assert op["result"] == "rejected"
        else:
            assert (added["id"] if added else None) == op["result"]
    elif kind == "history":
        user = normalize_identity(op["user"]) if "user" in op else None
        added_list, rejected = log.receive_history(
            op["messages"], op.get("from"), user, op.get("connected", [])
        )
        assert [m["id"] for m in added_list] == op["result"]["added"]
        assert len(rejected) == op["result"]["rejected"]
    elif kind == "restore":
        assert log.restore(op["messages"]) == op["result"]
    elif kind == "check":
        _check(log, op)
    else:  # pragma: no cover - a typo in the fixture
        raise AssertionError(f"unknown op {kind}")


def _check(log: MessageLog, expect: dict[str, Any]) -> None:
    if "order" in expect:
        assert [m["id"] for m in log.messages] == expect["order"]
    if "have" in expect:
        assert log.have() == expect["have"]
    if "clock" in expect:
        assert log.clock == expect["clock"]
    if "messages" in expect:
        assert log.messages == expect["messages"]
    for query in expect.get("have_for", []):
        assert log.have(for_peer=query["peer"]) == query["have"]
    if "beyond" in expect:
        assert log.beyond() == expect["beyond"]
    for query in expect.get("beyond_for", []):
        assert log.beyond(for_peer=query["peer"]) == query["beyond"]
    for message_id, position in expect.get("index", {}).items():
        assert log.index(message_id) == position
    if "wire" in expect:
        # What we would send: key order and number spelling as JSON.stringify writes them.
        frame = {"type": ChatFrameType.HISTORY.value, "messages": log.messages}
        assert dumps(frame) == expect["wire"]
    for query in expect.get("missing_for", []):
        missing = log.missing_for(query["have"], query.get("beyond"))
        assert [m["id"] for m in missing] == query["ids"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_fixture_case(case: dict[str, Any]) -> None:
    log = MessageLog(case["self"]["peer_id"], normalize_identity(case["self"]["user"]))
    for op in case["ops"]:
        _run_op(log, op)
    _check(log, case["expect"])


# --- properties ---------------------------------------------------------------------------

PEERS = ["A", "B", "C", "D"]


def _user(peer: str) -> Identity:
    return normalize_identity({"username": peer.lower()})


@st.composite
def conversations(draw: st.DrawFn) -> list[Message]:
    """Messages as honest peers would write them: each send sees some earlier messages."""
    logs = {p: MessageLog(p, _user(p)) for p in PEERS}
    sent: list[Message] = []
    for _ in range(draw(st.integers(1, 30))):
        author = draw(st.sampled_from(PEERS))
        # Deliver a random subset of what was sent so far before composing.
        for message in draw(st.lists(st.sampled_from(sent), max_size=5)) if sent else []:
            if message["author"] != author:
                logs[author].receive_direct(message["author"], message["user"], message)
        sent.append(logs[author].compose(f"text {len(sent)}", 1000 + len(sent)))
    return sent


@settings(max_examples=150, deadline=None)
@given(conversations(), st.randoms(use_true_random=False))
def test_any_interleaving_yields_the_same_order(sent: list[Message], rnd: random.Random) -> None:
    orders = []
    for observer in ["Z", "Y"]:
        log = MessageLog(observer, _user(observer))
        shuffled = sent[:]
        rnd.shuffle(shuffled)
        for message in shuffled:
            if rnd.random() < 0.5:
                log.receive_direct(message["author"], message["user"], message)
            else:
                log.receive_history([message], "X", _user("X"))
        orders.append([m["id"] for m in log.messages])
    assert orders[0] == orders[1]
    assert sorted(orders[0]) == sorted(m["id"] for m in sent)


@settings(max_examples=150, deadline=None)
@given(conversations(), st.randoms(use_true_random=False))
def test_sync_never_loses_or_duplicates(sent: list[Message], rnd: random.Random) -> None:
    """Two peers holding overlapping parts converge after one sync/history exchange."""
    left, right = MessageLog("Y", _user("Y")), MessageLog("Z", _user("Z"))
    for message in sent:
        targets = rnd.choice([[left], [right], [left, right]])
        for log in targets:
            log.receive_history([message] * rnd.randint(1, 2))
    left_gets = right.missing_for(left.have())
    right_gets = left.missing_for(right.have())
    left.receive_history(left_gets)
    right.receive_history(right_gets)
    ids = [m["id"] for m in left.messages]
    assert ids == [m["id"] for m in right.messages]
    assert len(ids) == len(set(ids)) == len({m["id"] for m in sent})
    assert left.have() == right.have()


def test_compose_continues_after_the_highest_own_seq() -> None:
    log = MessageLog("A", _user("A"))
    assert [log.compose("x", 0)["seq"] for _ in range(3)] == [1, 2, 3]
    assert log.index("A:2") == 1


def test_invalid_own_peer_id_is_refused() -> None:
    with pytest.raises(ValueError):
        MessageLog("not an id!", _user("A"))


def test_a_time_too_big_for_a_float_is_invalid_not_a_crash():
    """Found by hypothesis: math.isfinite(10**400) raises OverflowError, which escaped the
    validation and broke the Python peer's frame handling."""
    from nbchat.core.msglog import InvalidMessage, _validated

    with pytest.raises(InvalidMessage, match="invalid time"):
        _validated({"seq": 1, "clock": 1, "time": 10**400, "text": "x"}, "B", None)


# --- the indexes behind compose / have / missing_for agree with a plain scan --------------


@settings(max_examples=150, deadline=None)
@given(
    conversations(),
    st.randoms(use_true_random=False),
    st.dictionaries(
        st.sampled_from([*PEERS, "Q"]),
        st.one_of(st.integers(-2, 12), st.floats(allow_nan=True), st.text(max_size=2)),
    ),
)
def test_indexes_match_a_scan_of_the_log(
    sent: list[Message], rnd: random.Random, have: dict[str, object]
) -> None:
    """compose, have(for_peer) and missing_for keep per-author indexes instead of scanning
    the log; whatever arrives in whatever order (first-hand or relayed, duplicated), they
    answer exactly what a scan of the log answers."""
    log = MessageLog("A", _user("A"))
    shuffled = [m for m in sent if m["author"] != "A"] * 2
    rnd.shuffle(shuffled)
    for message in shuffled:
        if rnd.random() < 0.5:
            log.receive_direct(message["author"], message["user"], message)
        else:
            log.receive_history([message], "X", _user("X"))
        if rnd.random() < 0.1:
            log.compose("mine", 0)

    def held(author: str) -> int:
        value = have.get(author, 0)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    scan = [m["id"] for m in log.messages if m["seq"] > held(m["author"])]
    assert [m["id"] for m in log.missing_for(have)] == scan
    for peer in PEERS:
        first_hand = 0
        while f"{peer}:{first_hand + 1}" in log._first_hand:
            first_hand += 1
        expected = dict(log.have())
        expected.pop(peer, None)
        if first_hand and peer in log.have():
            expected[peer] = first_hand
        assert log.have(for_peer=peer) == expected
    own = [m["seq"] for m in log.messages if m["author"] == "A"]
    assert log.compose("next", 0)["seq"] == max(own, default=0) + 1


def test_missing_for_a_few_recent_messages_of_a_big_log() -> None:
    """The sync answer for a peer that lacks the newest messages of a long log is just those
    messages, in log order (taken from the per-author index, not a scan)."""
    log = MessageLog("A", _user("A"))
    for i in range(1, 2001):
        author = PEERS[i % 4]
        if author == "A":
            log.compose(f"t{i}", i)
        else:
            seq = log.have().get(author, 0) + 1
            raw = {"seq": seq, "clock": i, "time": i, "text": ""}
            log.receive_direct(author, _user(author), raw)
    behind = {p: n - 3 for p, n in log.have().items()}
    assert [m["id"] for m in log.missing_for(behind)] == [m["id"] for m in log.messages[-12:]]
    assert log.missing_for(log.have()) == []


# --- beyond: what a copy with gaps holds past have, so an answer sends only what it lacks --


@settings(max_examples=150, deadline=None)
@given(conversations(), st.randoms(use_true_random=False))
def test_missing_for_with_beyond_is_exactly_what_the_asker_lacks(
    sent: list[Message], rnd: random.Random
) -> None:
    """Two copies with arbitrary gaps (what was off the record is in neither store): an
    answer to ``have`` + ``beyond`` carries every message the asker lacks and nothing it
    holds, and ``beyond`` for a peer covers only first-hand copies of its own."""
    holder, asker = MessageLog("Y", _user("Y")), MessageLog("Z", _user("Z"))
    for message in sent:
        for log in (holder, asker):
            if rnd.random() < 0.6:
                log.restore([message])
    lacking = [m["id"] for m in holder.messages if m["id"] not in asker]
    answer = holder.missing_for(asker.have(), asker.beyond())
    assert [m["id"] for m in answer] == lacking
    assert holder.missing_for(holder.have(), holder.beyond()) == []
    for peer in PEERS:  # nothing restored is first-hand: the author is asked for all of it
        assert peer not in asker.beyond(for_peer=peer)


def test_beyond_is_capped_and_a_range_past_the_cap_is_sent_again() -> None:
    """A copy with more gaps than MAX_BEYOND_RANGES lists the lowest ones; a sync listing
    more is read only up to the cap, so the rest costs duplicates, never a loss."""
    from nbchat.core.msglog import MAX_BEYOND_RANGES

    log = MessageLog("A", _user("A"))
    stored = [
        {"author": "B", "seq": seq, "clock": seq, "time": 0, "text": "", "user": {"username": "b"}}
        for seq in range(2, 2 * MAX_BEYOND_RANGES + 40, 2)
    ]
    assert log.restore(stored) == len(stored)
    beyond = log.beyond()
    assert beyond["B"][:2] == [[2, 2], [4, 4]] and len(beyond["B"]) == MAX_BEYOND_RANGES
    assert sum(len(r) for r in beyond.values()) == MAX_BEYOND_RANGES
    asked = {"B": [[s, s] for s in range(2, 2 * MAX_BEYOND_RANGES + 40, 2)]}
    resent = log.missing_for({}, asked)
    assert [m["seq"] for m in resent] == list(
        range(2 * MAX_BEYOND_RANGES + 2, 2 * MAX_BEYOND_RANGES + 40, 2)
    )


def test_settled_says_which_copies_the_log_would_drop_unread() -> None:
    log = MessageLog("A", _user("A"))
    relayed = {"seq": 1, "clock": 1, "time": 1, "text": "via C", "user": _user("B")}
    assert not log.settled("B", 1, first_hand=False)
    log.receive_history([{**relayed, "author": "B"}], "C", _user("C"))
    # A relayed copy of what we hold is dropped; the author's own copy replaces it.
    assert log.settled("B", 1, first_hand=False)
    assert not log.settled("B", 1, first_hand=True)
    assert log.receive_direct("B", _user("B"), relayed) is None  # same words: kept as is
    assert log.settled("B", 1, first_hand=True)
    assert not log.settled("B", 2, first_hand=False)
    assert not log.settled("B", "1", first_hand=False) and not log.settled(None, 1, False)
