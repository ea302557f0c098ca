"""Off the record: the room's switch and which entries are never stored, folded by
core/edits' Timeline from the golden cases of tests/fixtures/record_cases.json
(js/core/record.test.ts runs them too), in every arrival order."""

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
    (Path(__file__).parents[1] / "fixtures" / "record_cases.json").read_text(encoding="utf-8")
)
OBSERVER = normalize_identity({"username": "zoe"})


def named(cases: list[dict[str, Any]]) -> Any:
    return pytest.mark.parametrize("case", cases, ids=[c["name"] for c in cases])


def fold(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The room's switch and its off-the-record entries after receiving ``entries`` in
    this order, one history batch each."""
    log, timeline = MessageLog("Z", OBSERVER), Timeline()
    for raw in entries:
        added, rejected = log.receive_history([raw])
        assert not rejected, rejected
        for entry in added:
            timeline.add(entry)
    record = timeline.record()
    return {
        "record": None if record is None else {"id": record["id"], "on": record["on"]},
        "off_record": sorted(m["id"] for m in log.messages if timeline.off_record(m["id"])),
    }


@named(FIXTURE["cases"])
def test_what_is_off_the_record_does_not_depend_on_arrival_order(case: dict[str, Any]) -> None:
    entries = case["entries"]
    assert fold(entries) == case["expect"]
    assert fold(entries[::-1]) == case["expect"]


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_any_permutation_of_any_case_folds_the_same(data: st.DataObject) -> None:
    case = data.draw(st.sampled_from(FIXTURE["cases"]))
    assert fold(data.draw(st.permutations(case["entries"]))) == case["expect"]


@named(FIXTURE["invalid"])
def test_the_log_refuses_a_malformed_switch_or_flag(case: dict[str, Any]) -> None:
    added, rejected = MessageLog("Z", OBSERVER).receive_history([case["entry"]])
    assert added == [] and len(rejected) == 1


@named(FIXTURE["valid"])
def test_the_log_keeps_a_switch_and_a_flag(case: dict[str, Any]) -> None:
    added, rejected = MessageLog("Z", OBSERVER).receive_history([case["entry"]])
    assert rejected == [] and added == [case["stored"]]


def test_compose_writes_a_switch_and_a_flagged_message() -> None:
    log = MessageLog("A", normalize_identity({"username": "alice"}))
    switch = log.compose("", 1, kind="record", on=False)
    message = log.compose("between us", 2, off_record=True)
    timeline = Timeline()
    for entry in (switch, message):
        timeline.add(entry)
    assert timeline.record() == switch and timeline.off_record(message["id"])
    assert timeline.state(switch["id"]) is None  # a switch is not a message
    assert not timeline.off_record(switch["id"])
    with pytest.raises(InvalidMessage):
        log.compose("", 3, kind="record")  # no "on"
