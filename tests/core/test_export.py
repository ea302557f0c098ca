"""Export and re-import of a room's history: tests/fixtures/export_cases.json
(js/core/export.test.ts runs the same cases)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nbchat.core.edits import Timeline
from nbchat.core.export import InvalidExport, export_certs, from_json, to_json, to_markdown
from nbchat.core.frames import dumps
from nbchat.core.msglog import MessageLog, normalize_identity

FIXTURE = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "export_cases.json").read_text(encoding="utf-8")
)


def held_log() -> MessageLog:
    log = MessageLog("Z", normalize_identity({"username": "zoe"}))
    added, rejected = log.receive_history(FIXTURE["entries"])
    assert rejected == [] and len(added) == len(FIXTURE["entries"])
    return log


def test_markdown_shows_each_message_as_folded() -> None:
    log, timeline = held_log(), Timeline()
    for entry in log.messages:
        timeline.add(entry)
    states = [s for s in (timeline.state(m["id"]) for m in log.messages) if s is not None]
    assert to_markdown(FIXTURE["room"], states, FIXTURE["exported"]) == FIXTURE["markdown"]


def test_json_round_trips_into_an_empty_log() -> None:
    log = held_log()
    document = json.loads(dumps(to_json(FIXTURE["room"], log.messages, FIXTURE["exported"])))
    room, entries = from_json(document)
    again = MessageLog("Y", normalize_identity({"username": "yan"}))
    assert room == FIXTURE["room"] and again.restore(entries) == len(log)
    assert again.messages == log.messages


def test_json_carries_the_authors_certificates_when_given() -> None:
    certs = [{"peer": "A", "key": "k", "user": {"username": "alice"}, "room": "r", "sig": "s"}]
    document = json.loads(dumps(to_json(FIXTURE["room"], [], FIXTURE["exported"], certs)))
    assert export_certs(document) == certs and from_json(document) == (FIXTURE["room"], [])
    assert "certs" not in to_json(FIXTURE["room"], [], 0) and export_certs({}) == []


@pytest.mark.parametrize("case", FIXTURE["invalid"], ids=[c["name"] for c in FIXTURE["invalid"]])
def test_from_json_says_what_is_wrong(case: dict[str, Any]) -> None:
    with pytest.raises(InvalidExport, match="nbchat export"):
        from_json(case["document"])
