"""Edits, deletes, reactions and replies folded into what each message shows: the golden
cases of tests/fixtures/edits_cases.json (js/core/edits.test.ts runs them too), in every
arrival order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbchat.core.edits import Timeline
from nbchat.core.msglog import InvalidMessage, MessageLog, normalize_identity

FIXTURE = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "edits_cases.json").read_text(encoding="utf-8")
)
OBSERVER = normalize_identity({"username": "zoe"})


def named(cases: list[dict[str, Any]]) -> Any:
    return pytest.mark.parametrize("case", cases, ids=[c["name"] for c in cases])


def fold(entries: list[dict[str, Any]]) -> tuple[list[Any], list[str]]:
    """What a peer shows after receiving ``entries`` in this order, one history batch each."""
    log, timeline = MessageLog("Z", OBSERVER), Timeline()
    for raw in entries:
        added, rejected = log.receive_history([raw])
        assert not rejected, rejected
        for entry in added:
            timeline.add(entry)
    shown = [timeline.state(m["id"]) for m in log.messages]
    return [s for s in shown if s is not None], timeline.refused()


@named(FIXTURE["cases"])
def test_the_shown_state_does_not_depend_on_arrival_order(case: dict[str, Any]) -> None:
    entries = case["entries"]
    expected = (case["expect"]["shown"], case["expect"]["refused"])
    assert fold(entries) == expected
    assert fold(entries[::-1]) == expected


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_any_permutation_of_any_case_folds_the_same(data: st.DataObject) -> None:
    case = data.draw(st.sampled_from(FIXTURE["cases"]))
    entries = data.draw(st.permutations(case["entries"]))
    assert fold(entries) == (case["expect"]["shown"], case["expect"]["refused"])


@named(FIXTURE["invalid"])
def test_the_log_refuses_a_malformed_amendment_or_reply(case: dict[str, Any]) -> None:
    added, rejected = MessageLog("Z", OBSERVER).receive_history([case["entry"]])
    assert added == [] and len(rejected) == 1


@named(FIXTURE["valid"])
def test_the_log_keeps_the_fields_of_a_reply_or_an_amendment(case: dict[str, Any]) -> None:
    added, rejected = MessageLog("Z", OBSERVER).receive_history([case["entry"]])
    assert rejected == [] and added == [case["stored"]]


def test_compose_writes_amendments_and_replies_and_refuses_bad_ones() -> None:
    log = MessageLog("A", normalize_identity({"username": "alice"}))
    first = log.compose("helo", 1)
    edit = log.compose("hello", 2, kind="edit", target=first["id"])
    reply = log.compose("and you?", 3, reply_to=first["id"])
    timeline = Timeline()
    for entry in (first, edit, reply):
        timeline.add(entry)
    state = timeline.state(first["id"])
    assert state is not None and (state["text"], state["edited"]) == ("hello", 2)
    assert timeline.state(edit["id"]) is None
    assert (timeline.state(reply["id"]) or {}).get("reply_to") == first["id"]
    with pytest.raises(InvalidMessage):
        log.compose("", 4, kind="react", target=first["id"], emoji="👍")  # no "on"
    assert len(log) == 3


def test_entry_is_the_newest_copy_held_for_an_id() -> None:
    timeline = Timeline()
    relayed = {"id": "a:1", "author": "a", "seq": 1, "clock": 1, "time": 1, "text": "x"}
    own = {**relayed, "text": "y"}
    assert timeline.entry("a:1") is None
    timeline.add(relayed)
    assert timeline.entry("a:1") is relayed
    timeline.add(own)  # the author's own copy replaces a relayed one
    assert timeline.entry("a:1") is own
